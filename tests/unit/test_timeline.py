from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.definitions import FeatureDefinition
from registry.timeline import Resolved, empty_value, resolve, step_ms

MIN = 60_000
HOUR = 60 * MIN
T = 1_700_000_000_000 // HOUR * HOUR  # a window end on every grid used here (5m, 10m, 1h)
TTL = 2 * HOUR
SLO = 10 * MIN

MakeDef = Callable[..., FeatureDefinition]


@pytest.fixture(scope="module")
def count_def(make_definition: MakeDef) -> FeatureDefinition:
    return make_definition()  # sliding 1h / 5m, count, long, ttl 2h, freshness 10m


@pytest.fixture(scope="module")
def sum_def(make_definition: MakeDef) -> FeatureDefinition:
    return make_definition(name="amount_sum", value_type="double", aggregation={"function": "sum", "field": "amount"})


@pytest.fixture(scope="module")
def session_def(make_definition: MakeDef) -> FeatureDefinition:
    return make_definition(name="session_count", window={"kind": "session", "gap": "30m"})


@pytest.fixture(scope="module")
def tumbling_def(make_definition: MakeDef) -> FeatureDefinition:
    return make_definition(name="count_10m", window={"kind": "tumbling", "size": "10m"})


def test_step(make_definition: MakeDef, count_def: FeatureDefinition, session_def: FeatureDefinition,
              tumbling_def: FeatureDefinition) -> None:  # fmt: skip
    assert step_ms(count_def) == 5 * MIN
    assert step_ms(tumbling_def) == 10 * MIN
    assert step_ms(session_def) is None
    assert step_ms(make_definition(window={"kind": "sliding", "size": "1h", "slide": "90s"})) == 90_000


@pytest.mark.parametrize(
    ("function", "field", "value_type", "expected"),
    [
        ("count", None, "long", 0),
        ("count_distinct", "merchant_id", "long", 0),
        ("sum", "amount", "long", 0),
        ("sum", "amount", "double", 0.0),
        ("mean", "amount", "double", None),
        ("min", "amount", "double", None),
        ("max", "amount", "long", None),
        ("last", "merchant_id", "string", None),
    ],
)
def test_empty_value(make_definition: MakeDef, function: str, field: str | None, value_type: str,
                     expected: object) -> None:  # fmt: skip
    aggregation = {"function": function} if field is None else {"function": function, "field": field}
    d = make_definition(aggregation=aggregation, value_type=value_type)
    value = empty_value(d)
    assert value == expected
    assert type(value) is type(expected)


def test_missing(count_def: FeatureDefinition) -> None:
    assert resolve(count_def, None, None, closed_through_ms=T, now_ms=T) == Resolved(None, None, "missing")
    assert resolve(count_def, None, 42, closed_through_ms=T, now_ms=T) == Resolved(None, None, "missing")


def test_present(count_def: FeatureDefinition) -> None:
    assert resolve(count_def, T, 7, closed_through_ms=T, now_ms=T + 1234) == Resolved(7, T, "present")


def test_ttl_boundary_is_not_expired(count_def: FeatureDefinition) -> None:
    # now - W == ttl exactly: still valid. The pipeline has not closed anything later.
    assert resolve(count_def, T, 7, closed_through_ms=T, now_ms=T + TTL) == Resolved(7, T, "stale")


def test_one_ms_past_ttl_is_expired(count_def: FeatureDefinition) -> None:
    assert resolve(count_def, T, 7, closed_through_ms=T, now_ms=T + TTL + 1) == Resolved(None, T, "expired")
    # Expiry wins over empty-window inference, whatever the pipeline has closed since.
    assert resolve(count_def, T, 7, closed_through_ms=T + TTL + 1, now_ms=T + TTL + 1) == Resolved(None, T, "expired")


def test_ttl_boundary_with_later_closed_window_is_empty(count_def: FeatureDefinition) -> None:
    assert resolve(count_def, T, 7, closed_through_ms=T + TTL, now_ms=T + TTL) == Resolved(0, T + TTL, "present")


@pytest.mark.parametrize(
    ("function", "field", "value_type", "expected"),
    [
        ("count", None, "long", 0),
        ("sum", "amount", "double", 0.0),
        ("mean", "amount", "double", None),
        ("min", "amount", "double", None),
        ("max", "amount", "double", None),
        ("last", "merchant_id", "string", None),
    ],
)
def test_empty_window_after_stored_one(make_definition: MakeDef, function: str, field: str | None,
                                       value_type: str, expected: object) -> None:  # fmt: skip
    aggregation = {"function": function} if field is None else {"function": function, "field": field}
    d = make_definition(aggregation=aggregation, value_type=value_type)
    r = resolve(d, T, 123, closed_through_ms=T + 5 * MIN, now_ms=T + 5 * MIN + 30_000)
    assert r == Resolved(expected, T + 5 * MIN, "present")
    assert type(r.value) is type(expected)


def test_closed_through_is_floored_to_the_grid(count_def: FeatureDefinition) -> None:
    # One ms before the next window end: that window has not closed, the stored value holds.
    assert resolve(count_def, T, 7, closed_through_ms=T + 5 * MIN - 1, now_ms=T + 5 * MIN - 1) == Resolved(
        7, T, "present"
    )
    # A closed_through far past the last window end floors to the last grid point.
    r = resolve(count_def, T, 7, closed_through_ms=T + 17 * MIN, now_ms=T + 17 * MIN)
    assert r == Resolved(0, T + 15 * MIN, "present")


def test_tumbling_grid_is_its_size(tumbling_def: FeatureDefinition) -> None:
    assert resolve(tumbling_def, T, 3, closed_through_ms=T + 9 * MIN, now_ms=T + 9 * MIN) == Resolved(3, T, "present")
    assert resolve(tumbling_def, T, 3, closed_through_ms=T + 10 * MIN, now_ms=T + 10 * MIN) == Resolved(
        0, T + 10 * MIN, "present"
    )


def test_feature_ts_is_max_of_stored_and_latest_closed(count_def: FeatureDefinition) -> None:
    # The pipeline's recorded progress is behind the stored row (e.g. progress not yet written): keep W.
    assert resolve(count_def, T + 10 * MIN, 7, closed_through_ms=T, now_ms=T + 11 * MIN) == Resolved(
        7, T + 10 * MIN, "present"
    )
    assert resolve(count_def, T + 10 * MIN, 7, closed_through_ms=0, now_ms=T + 11 * MIN) == Resolved(
        7, T + 10 * MIN, "present"
    )
    # Later windows have closed: the feature time is the latest closed end, not W.
    assert resolve(count_def, T, 7, closed_through_ms=T + 30 * MIN, now_ms=T + 31 * MIN) == Resolved(
        0, T + 30 * MIN, "present"
    )


def test_stale_beyond_freshness_slo(count_def: FeatureDefinition, sum_def: FeatureDefinition) -> None:
    assert resolve(count_def, T, 7, closed_through_ms=T, now_ms=T + SLO) == Resolved(7, T, "present")
    assert resolve(count_def, T, 7, closed_through_ms=T, now_ms=T + SLO + 1) == Resolved(7, T, "stale")
    assert resolve(sum_def, T, 2.5, closed_through_ms=T, now_ms=T + SLO + 1) == Resolved(2.5, T, "stale")
    # Staleness is measured from the inferred feature time: lagging progress makes the empty value stale.
    assert resolve(count_def, T, 7, closed_through_ms=T + 5 * MIN, now_ms=T + 5 * MIN + SLO + 1) == Resolved(
        0, T + 5 * MIN, "stale"
    )


def test_session_windows_have_no_empty_inference(session_def: FeatureDefinition) -> None:
    assert resolve(session_def, T, 4, closed_through_ms=T + HOUR, now_ms=T + 5 * MIN) == Resolved(4, T, "present")
    assert resolve(session_def, T, 4, closed_through_ms=T + HOUR, now_ms=T + HOUR) == Resolved(4, T, "stale")
    assert resolve(session_def, T, 4, closed_through_ms=T + 3 * HOUR, now_ms=T + TTL + 1) == Resolved(
        None, T, "expired"
    )


@given(
    stored_steps=st.integers(min_value=0, max_value=100),
    closed_offset=st.integers(min_value=-3 * HOUR, max_value=3 * HOUR),
    now_offset=st.integers(min_value=0, max_value=4 * HOUR),
    value=st.integers(min_value=1, max_value=10**6),
)
def test_resolve_invariants(count_def: FeatureDefinition, stored_steps: int, closed_offset: int, now_offset: int,
                            value: int) -> None:  # fmt: skip
    """Properties of the rule for an aligned sliding count, stated without re-deriving its formula."""
    w = T + stored_steps * 5 * MIN
    now = w + now_offset
    closed = min(now, w + closed_offset)
    r = resolve(count_def, w, value, closed_through_ms=closed, now_ms=now)
    if now - w > TTL:
        assert r == Resolved(None, w, "expired")
        return
    assert r.feature_ts_ms is not None
    assert r.feature_ts_ms >= w
    assert r.feature_ts_ms <= max(w, closed)
    assert r.feature_ts_ms % (5 * MIN) == 0
    assert r.value == (value if r.feature_ts_ms == w else 0)
    assert closed - r.feature_ts_ms < 5 * MIN  # no closed window after the feature time
    assert r.status == ("stale" if now - r.feature_ts_ms > SLO else "present")
