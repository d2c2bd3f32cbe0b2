"""Cassandra keeps, of two cells written with one write time within one second, the one ``tie_key`` ranks higher.

docs/design.md §5.1 promises that results tied on window end, ingestion and revision resolve alike
online and offline when written within one second (``registry.core.timeline.tie_key``), and that of two
written in different seconds the later wins online. Offline the join applies ``tie_key``; online
Cassandra reconciles the cells itself. This checks both against the real Cassandra, and that the online
writer, given both rows in one flush, keeps the same one Cassandra keeps when they arrive in separate flushes.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.settings import Settings
from registry.core.timeline import tie_key
from sinks.cassandra.reader import OnlineReader
from sinks.cassandra.writer import OnlineWriter
from sinks.records import FeatureRow
from tests.conftest import string_feature

pytestmark = pytest.mark.integration

MIN = 60_000
T0 = (1_900_000_000_000 // (60 * MIN)) * 60 * MIN  # a window end years ahead: TTLs from the wall clock stay positive

PAIRS: dict[str, list[tuple[Any, Any]]] = {
    "long": [(5, -3), (-1, -(2**63)), (2**40, 3), (0, 2**63 - 1), (7, None)],
    "double": [(2.0, -0.5), (-0.5, -0.25), (-0.0, 1e300), (1.5, 99.0), (0.0, None)],
    "string": [("z", "m\u00fcnchen"), ("b", ""), ("\u00e9", "\U0001f600"), ("a", None)],
}  # no event field yields a boolean feature, so booleans are checked offline only (tests/unit/test_timeline.py)


def _definitions() -> dict[str, FeatureDefinition]:
    shipped = FeatureCatalog.from_folder()
    count, total = shipped.get("user", "txn_count_1h"), shipped.get("user", "txn_amount_sum_1h")
    last = string_feature("tie_last_merchant")
    return {"long": count, "double": total, "string": last}


def _winner(value_type: str, a: Any, b: Any) -> Any:
    return a if tie_key(a, value_type) > tie_key(b, value_type) else b  # type: ignore[arg-type]


def test_equal_write_times_keep_the_cell_tie_key_ranks_higher(it_settings: Settings) -> None:
    from sinks.factory import connect_cassandra

    definitions = _definitions()
    cluster, session = connect_cassandra(it_settings)
    try:
        reader = OnlineReader(session, it_settings.cassandra_keyspace, timeout_s=10)
        # The wall clock, as the job's writer uses it: the TTL it computes makes every rewrite of a cell expire
        # at the same second (window end + ttl), and two flushes within one second carry one TTL too, so
        # Cassandra's first tie-breaks (the later expiry, then the smaller TTL) leave the decision to the value.
        # A sample's flushes keep GUARD_MS inside one second; one that did not all the same (a stalled machine)
        # is not judged (and counted).
        writer = OnlineWriter(session, it_settings.cassandra_keyspace)
        judged = skipped = 0
        for value_type, pairs in PAIRS.items():
            d = definitions[value_type]
            for i, (a, b) in enumerate(pairs):
                expected = _winner(value_type, a, b)
                for j, order in enumerate(((a, b), (b, a))):
                    for flushes in ("apart", "together"):
                        entity = f"tie-{value_type}-{i}-{j}-{flushes}"
                        _wait_into_a_second()
                        before_ms = _now_ms()
                        for value in order:  # same window, same revision: the same write time
                            writer.add(FeatureRow.of(d, entity, value, T0 - 5 * MIN, T0, 4))
                            if flushes == "apart":
                                writer.flush()
                        writer.flush()
                        if not _one_second(before_ms, _now_ms()):
                            skipped += 1
                            continue
                        stored = reader.read("user", entity).get((d.name, d.version))
                        got = None if stored is None else stored.value
                        assert got == expected, (value_type, order, flushes, got)
                        judged += 1
        assert judged >= 3 * skipped, (judged, skipped)  # nearly every sample is judged
    finally:
        cluster.shutdown()


def test_of_two_seconds_the_later_write_wins_whatever_its_value(it_settings: Settings) -> None:
    """Cassandra's tie-break between one write time's cells that expire at the same second is the smaller TTL,
    the later written, before the value: ``tie_key`` decides only within one second (docs/design.md §5.1)."""
    from sinks.factory import connect_cassandra

    d = _definitions()["long"]
    cluster, session = connect_cassandra(it_settings)
    try:
        reader = OnlineReader(session, it_settings.cassandra_keyspace, timeout_s=10)
        writer = OnlineWriter(session, it_settings.cassandra_keyspace)
        for j, (first, later) in enumerate(((5, -3), (-3, 5))):  # tie_key ranks -3 higher
            entity = f"tie-seconds-{j}-{time.time_ns()}"
            for value in (first, later):
                _wait_into_a_second(next_one=True)
                writer.add(FeatureRow.of(d, entity, value, T0 - 5 * MIN, T0, 4))
                writer.flush()
            assert reader.read("user", entity)[(d.name, d.version)].value == later
    finally:
        cluster.shutdown()


GUARD_MS = 50
"""How far from a second boundary the writes are kept: the writer's clock reading and the coordinator's may differ
by milliseconds (Cassandra reads a clock of its own)."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _wait_into_a_second(next_one: bool = False) -> None:
    """Sleep until ``GUARD_MS`` into a second with at least 700 ms of it left (into the next second, if asked)."""
    into_ms = _now_ms() % 1000
    if next_one or into_ms < GUARD_MS or into_ms > 1000 - 6 * GUARD_MS:
        time.sleep(((GUARD_MS - into_ms) % 1000 or 1000) / 1000)


def _one_second(before_ms: int, after_ms: int) -> bool:
    """Whether ``[before_ms, after_ms]`` lies in one second, ``GUARD_MS`` or more from both of its ends."""
    return (before_ms - GUARD_MS) // 1000 == (after_ms + GUARD_MS) // 1000


def test_one_request_per_entity_and_newest_wins_inside_batches(it_settings: Settings) -> None:
    """A flush packs an entity's values of one window into one cell and cells into requests, several entities a
    request, and each value keeps its own write time inside them: an older window written later never wins."""
    from sinks.cassandra.writer import CELLS_PER_REQUEST
    from sinks.factory import connect_cassandra

    count = _definitions()["long"]
    features = [count.model_copy(update={"name": f"batched_{i:02d}"}) for i in range(2 * CELLS_PER_REQUEST + 3)]
    entity, lone = f"batched-{time.time_ns()}", f"lone-{time.time_ns()}"
    cluster, session = connect_cassandra(it_settings)
    try:
        reader = OnlineReader(session, it_settings.cassandra_keyspace, timeout_s=10)
        writer = OnlineWriter(session, it_settings.cassandra_keyspace)
        for i, d in enumerate(features):
            writer.add(FeatureRow.of(d, entity, i, T0 - 5 * MIN, T0, 1))
        writer.add(FeatureRow.of(features[0], lone, 99, T0 - 5 * MIN, T0, 1))
        writer.flush()
        # the entity's 131 values in one pack (one cell), the lone entity's in another: one request
        assert (writer.written, writer.requests) == (len(features) + 1, 1)
        for i, d in enumerate(features):  # an older window, and the same window at a lower revision
            writer.add(FeatureRow.of(d, entity, -i, T0 - 10 * MIN, T0 - 5 * MIN, 9))
            writer.add(FeatureRow.of(d, entity, -i - 100, T0 - 5 * MIN, T0, 0))
        writer.flush()
        stored = reader.read("user", entity)
        assert {name: stored[(name, 1)].value for name in (d.name for d in features)} == {
            d.name: i for i, d in enumerate(features)
        }
        assert all(stored[(d.name, 1)].feature_ts_ms == T0 for d in features)
        assert reader.read("user", lone)[(features[0].name, 1)].value == 99
    finally:
        cluster.shutdown()
