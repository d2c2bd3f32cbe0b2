"""Promotion (README: "refused while the latest window end its offline data holds (how far in event time it has
computed, whatever the window's length) trails the active version's by more than --max-lag ...; default one window
step of the candidate; exactly --max-lag is ready") when the candidate's window differs from the active version's: a brute-force reference of
the rule on a real Iceberg table, at the microsecond around the limit, both with the default allowance (the
*candidate's* step) and a given one; a candidate ahead is ready."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from registry.core.definitions import FeatureDefinition
from registry.definition_store import DefinitionStore
from serving.offline import promotion
from tests.unit.test_oracle_lifecycle_retention import _append
from tests.unit.test_training_sets import iceberg_table

MIN_US = 60_000_000
T_US = 1_700_000_100_000_000 + 7  # the active version's latest window end, off the whole millisecond


def expected_ready(active_end: int | None, candidate_end: int | None, allowed_us: int) -> bool:
    if active_end is None:
        return True
    if candidate_end is None:
        return False
    return active_end - candidate_end <= allowed_us  # the ends themselves: a window's length is no lag


@pytest.mark.parametrize(
    ("max_lag", "trail_us"),
    [
        (None, 30 * MIN_US), (None, 30 * MIN_US + 1), (None, 30 * MIN_US - 1), (None, -MIN_US),
        (timedelta(minutes=5), 5 * MIN_US), (timedelta(minutes=5), 5 * MIN_US + 1),
        (timedelta(0), 0), (timedelta(0), 1),
    ],
)  # fmt: skip
def test_readiness_compares_what_each_window_covers(
    tmp_path: Path,
    make_definition: Callable[..., FeatureDefinition],
    max_lag: timedelta | None,
    trail_us: int,
) -> None:
    store = DefinitionStore(tmp_path / "d.db")
    store.register(make_definition(window={"kind": "sliding", "size": "1h", "slide": "5m"}))
    store.register(make_definition(version=2, window={"kind": "tumbling", "size": "30m"}))
    # the candidate's latest window end trails the active one's by trail_us
    candidate_end = T_US - trail_us
    table = iceberg_table(tmp_path / "t", "fs")
    _append(table, [("txn_count_1h", 1, "u1", T_US), ("txn_count_1h", 1, "u2", T_US - 5 * MIN_US)])
    _append(table, [("txn_count_1h", 2, "u2", candidate_end), ("txn_count_1h", 2, "u3", candidate_end - 30 * MIN_US)])
    allowed = 30 * MIN_US if max_lag is None else int(max_lag / timedelta(microseconds=1))
    ready = promotion.readiness(store, table, "user", "txn_count_1h", 2, max_lag=max_lag)
    assert ready.ready == expected_ready(T_US, candidate_end, allowed), ready.describe()
    assert (ready.active_reach_us, ready.reach_us) == (T_US, candidate_end)


def test_a_caught_up_candidate_with_a_longer_window_is_ready(
    tmp_path: Path, make_definition: Callable[..., FeatureDefinition]
) -> None:
    """Over the same events a 2-hour window sliding by 5 minutes ends its last window where the active 1-hour one
    does: it has caught up (subtracting each window's length made it trail by an hour, and refused it)."""
    store = DefinitionStore(tmp_path / "d.db")
    store.register(make_definition(window={"kind": "sliding", "size": "1h", "slide": "5m"}))
    store.register(make_definition(version=2, window={"kind": "sliding", "size": "2h", "slide": "5m"}))
    table = iceberg_table(tmp_path / "t", "fs")
    _append(table, [("txn_count_1h", 1, "u1", T_US)])
    _append(table, [("txn_count_1h", 2, "u1", T_US)])
    ready = promotion.readiness(store, table, "user", "txn_count_1h", 2)
    assert ready.ready, ready.describe()
