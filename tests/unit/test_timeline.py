from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.core.definitions import FeatureDefinition
from registry.core.timeline import Resolved, Rule, empty_value, judge, resolve, step_ms, step_us, tie_key

# The rule works in epoch microseconds: every "+ 1" below is one microsecond.
MIN = 60_000_000
HOUR = 60 * MIN
T = 1_700_000_000_000_000 // HOUR * HOUR  # a window end on every grid used here (5m, 10m, 1h)
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


def test_step(
    make_definition: MakeDef,
    count_def: FeatureDefinition,
    session_def: FeatureDefinition,
    tumbling_def: FeatureDefinition,
) -> None:
    assert step_ms(count_def) == 5 * MIN // 1000
    assert step_us(count_def) == 5 * MIN
    assert step_us(tumbling_def) == 10 * MIN
    assert step_ms(session_def) is None
    assert step_us(session_def) is None
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
def test_empty_value(
    make_definition: MakeDef, function: str, field: str | None, value_type: str, expected: object
) -> None:
    aggregation = {"function": function} if field is None else {"function": function, "field": field}
    d = make_definition(aggregation=aggregation, value_type=value_type)
    value = empty_value(d)
    assert value == expected
    assert type(value) is type(expected)


def test_missing(count_def: FeatureDefinition) -> None:
    assert resolve(count_def, None, None, closed_through_us=T, now_us=T) == Resolved(None, None, "missing")
    assert resolve(count_def, None, 42, closed_through_us=T, now_us=T) == Resolved(None, None, "missing")


def test_present(count_def: FeatureDefinition) -> None:
    assert resolve(count_def, T, 7, closed_through_us=T, now_us=T + 1234) == Resolved(7, T, "present")


def test_ttl_boundary_is_not_expired(count_def: FeatureDefinition) -> None:
    # now - W == ttl exactly: still valid. The pipeline has not closed anything later.
    assert resolve(count_def, T, 7, closed_through_us=T, now_us=T + TTL) == Resolved(7, T, "stale")


def test_one_ms_past_ttl_is_expired(count_def: FeatureDefinition) -> None:
    assert resolve(count_def, T, 7, closed_through_us=T, now_us=T + TTL + 1) == Resolved(None, T, "expired")
    # Expiry wins over empty-window inference, whatever the pipeline has closed since.
    assert resolve(count_def, T, 7, closed_through_us=T + TTL + 1, now_us=T + TTL + 1) == Resolved(None, T, "expired")


def test_ttl_boundary_with_later_closed_window_is_empty(count_def: FeatureDefinition) -> None:
    assert resolve(count_def, T, 7, closed_through_us=T + TTL, now_us=T + TTL) == Resolved(0, T + TTL, "present")


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
def test_empty_window_after_stored_one(
    make_definition: MakeDef, function: str, field: str | None, value_type: str, expected: object
) -> None:
    aggregation = {"function": function} if field is None else {"function": function, "field": field}
    d = make_definition(aggregation=aggregation, value_type=value_type)
    r = resolve(d, T, 123, closed_through_us=T + 5 * MIN, now_us=T + 5 * MIN + 30_000)
    assert r == Resolved(expected, T + 5 * MIN, "present")
    assert type(r.value) is type(expected)


def test_closed_through_is_floored_to_the_grid(count_def: FeatureDefinition) -> None:
    # One ms before the next window end: that window has not closed, the stored value holds.
    assert resolve(count_def, T, 7, closed_through_us=T + 5 * MIN - 1, now_us=T + 5 * MIN - 1) == Resolved(
        7, T, "present"
    )
    # A closed_through far past the last window end floors to the last grid point.
    r = resolve(count_def, T, 7, closed_through_us=T + 17 * MIN, now_us=T + 17 * MIN)
    assert r == Resolved(0, T + 15 * MIN, "present")


def test_tumbling_grid_is_its_size(tumbling_def: FeatureDefinition) -> None:
    assert resolve(tumbling_def, T, 3, closed_through_us=T + 9 * MIN, now_us=T + 9 * MIN) == Resolved(3, T, "present")
    assert resolve(tumbling_def, T, 3, closed_through_us=T + 10 * MIN, now_us=T + 10 * MIN) == Resolved(
        0, T + 10 * MIN, "present"
    )


def test_feature_ts_is_max_of_stored_and_latest_closed(count_def: FeatureDefinition) -> None:
    # The pipeline's recorded progress is behind the stored row (e.g. progress not yet written): keep W.
    assert resolve(count_def, T + 10 * MIN, 7, closed_through_us=T, now_us=T + 11 * MIN) == Resolved(
        7, T + 10 * MIN, "present"
    )
    assert resolve(count_def, T + 10 * MIN, 7, closed_through_us=0, now_us=T + 11 * MIN) == Resolved(
        7, T + 10 * MIN, "present"
    )
    # Later windows have closed: the feature time is the latest closed end, not W.
    assert resolve(count_def, T, 7, closed_through_us=T + 30 * MIN, now_us=T + 31 * MIN) == Resolved(
        0, T + 30 * MIN, "present"
    )


def test_stale_beyond_freshness_slo(count_def: FeatureDefinition, sum_def: FeatureDefinition) -> None:
    assert resolve(count_def, T, 7, closed_through_us=T, now_us=T + SLO) == Resolved(7, T, "present")
    assert resolve(count_def, T, 7, closed_through_us=T, now_us=T + SLO + 1) == Resolved(7, T, "stale")
    assert resolve(sum_def, T, 2.5, closed_through_us=T, now_us=T + SLO + 1) == Resolved(2.5, T, "stale")
    # Staleness is measured from the inferred feature time: lagging progress makes the empty value stale.
    assert resolve(count_def, T, 7, closed_through_us=T + 5 * MIN, now_us=T + 5 * MIN + SLO + 1) == Resolved(
        0, T + 5 * MIN, "stale"
    )


def test_session_windows_have_no_empty_inference(session_def: FeatureDefinition) -> None:
    assert resolve(session_def, T, 4, closed_through_us=T + HOUR, now_us=T + 5 * MIN) == Resolved(4, T, "present")
    assert resolve(session_def, T, 4, closed_through_us=T + HOUR, now_us=T + HOUR) == Resolved(4, T, "stale")
    assert resolve(session_def, T, 4, closed_through_us=T + 3 * HOUR, now_us=T + TTL + 1) == Resolved(
        None, T, "expired"
    )


@given(
    stored_steps=st.integers(min_value=0, max_value=100),
    closed_offset=st.integers(min_value=-3 * HOUR, max_value=3 * HOUR),
    now_offset=st.integers(min_value=0, max_value=4 * HOUR),
    value=st.integers(min_value=1, max_value=10**6),
)
def test_resolve_invariants(
    count_def: FeatureDefinition, stored_steps: int, closed_offset: int, now_offset: int, value: int
) -> None:
    """Properties of the rule for an aligned sliding count, stated without re-deriving its formula."""
    w = T + stored_steps * 5 * MIN
    now = w + now_offset
    closed = min(now, w + closed_offset)
    r = resolve(count_def, w, value, closed_through_us=closed, now_us=now)
    if now - w > TTL:
        assert r == Resolved(None, w, "expired")
        return
    assert r.feature_ts_us is not None
    assert r.feature_ts_us >= w
    assert r.feature_ts_us <= max(w, closed)
    assert r.feature_ts_us % (5 * MIN) == 0
    assert r.value == (value if r.feature_ts_us == w else 0)
    assert closed - r.feature_ts_us < 5 * MIN  # no closed window after the feature time
    assert r.status == ("stale" if now - r.feature_ts_us > SLO else "present")


# --- sub-millisecond edges -------------------------------------------------------------------------


def test_sub_millisecond_ttl_edge(count_def: FeatureDefinition) -> None:
    # At exactly the TTL a row is kept; half a millisecond past it, it is expired (not "the same ms").
    assert resolve(count_def, T, 7, closed_through_us=T, now_us=T + TTL).value == 7
    assert resolve(count_def, T, 7, closed_through_us=T, now_us=T + TTL + 500) == Resolved(None, T, "expired")
    assert resolve(count_def, T + 500, 7, closed_through_us=T, now_us=T + TTL + 500).value == 7


def test_sub_millisecond_window_ends_order_within_a_millisecond(count_def: FeatureDefinition) -> None:
    # A row ending 1 µs before the next grid end is older than that end: the later window closed empty.
    assert resolve(count_def, T + 5 * MIN - 1, 7, closed_through_us=T + 5 * MIN, now_us=T + 5 * MIN) == Resolved(
        0, T + 5 * MIN, "present"
    )
    assert resolve(count_def, T + 5 * MIN - 1, 7, closed_through_us=T + 5 * MIN - 1, now_us=T + 5 * MIN) == Resolved(
        7, T + 5 * MIN - 1, "present"
    )


@given(
    ttl_ms=st.integers(1, 10**6),
    slo_ms=st.integers(1, 10**6),
    step_ms_=st.sampled_from([None, 1, 60_000, 300_000]),
    closed_us=st.integers(0, 2 * 10**12),
    now_us=st.integers(0, 2 * 10**12),
    stored_ms=st.one_of(st.none(), st.integers(0, 2 * 10**9)),
)
def test_a_cut_in_whole_milliseconds_judges_like_the_microsecond_rule(
    ttl_ms: int, slo_ms: int, step_ms_: int | None, closed_us: int, now_us: int, stored_ms: int | None
) -> None:
    """The online store keeps whole-millisecond window ends; its cut (``unit_us=1000``) must answer every
    row exactly as the microsecond rule does, with the feature timestamp in milliseconds."""
    rule = Rule(ttl_ms * 1000, slo_ms * 1000, None if step_ms_ is None else step_ms_ * 1000, 0)
    value_ms, ts_ms, status_ms = judge(rule.cut(closed_us, now_us, unit_us=1000), stored_ms, "v")
    stored_us = None if stored_ms is None else stored_ms * 1000
    value_us, ts_us, status_us = judge(rule.cut(closed_us, now_us), stored_us, "v")
    assert (value_ms, status_ms) == (value_us, status_us)
    assert (None if ts_ms is None else ts_ms * 1000) == ts_us


# --- ties: Cassandra's order for equal-time cells -----------------------------------------------------


def test_tie_key_orders_as_cassandra_compares_cells() -> None:
    assert tie_key(None, "long") > tie_key(-1, "long") > tie_key(-(2**63), "long") > tie_key(2**63 - 1, "long")
    assert tie_key(5, "long") > tie_key(3, "long") > tie_key(0, "long")
    assert tie_key(-0.5, "double") > tie_key(-0.25, "double") > tie_key(-0.0, "double") > tie_key(1e300, "double")
    assert tie_key(2.0, "double") > tie_key(1.5, "double") > tie_key(0.0, "double")
    assert tie_key("\u00e9", "string") > tie_key("z", "string") > tie_key("b", "string") > tie_key("", "string")
    assert tie_key(True, "boolean") > tie_key(False, "boolean")


_VALUES = {
    "long": st.integers(-(2**63), 2**63 - 1),
    "double": st.floats(allow_nan=False),
    "string": st.text(max_size=6),
    "boolean": st.booleans(),
}
_ARROW = {"long": pa.int64(), "double": pa.float64(), "string": pa.large_string(), "boolean": pa.bool_()}


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=st.sampled_from(sorted(_VALUES)).flatmap(
        lambda t: st.tuples(st.just(t), st.lists(st.one_of(st.none(), _VALUES[t]), min_size=1, max_size=12))
    )
)
def test_vectorized_tie_keys_order_like_tie_key(case: tuple[str, list[object]]) -> None:
    from serving.offline.asof_join import tie_keys

    value_type, values = case
    order = np.lexsort(tie_keys(pa.array(values, _ARROW[value_type])))
    ranked = [tie_key(values[i], value_type) for i in order]  # type: ignore[arg-type]
    assert ranked == sorted(ranked)
