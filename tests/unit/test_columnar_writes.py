"""Window results written as columns (``WindowResults``, the stream job's flush) give exactly what the same
values written row by row give: the online writer's newest-cell rule against a brute-force reference (the
per-row rule), the offline writer's identity check, and the erasure check."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.durations import to_millis
from registry.core.timeline import tie_key
from registry.core.value_types import VALUE_COLUMNS
from sinks.cassandra import layout as online_layout
from sinks.cassandra.writer import Values, newest_cells, revision_cap
from sinks.dual import DualWriter
from sinks.iceberg.writer import OfflineWriter, ensure_table
from sinks.records import FeatureRow, WindowResults
from tests.conftest import string_feature
from tests.recording_writer import RecordingWriter

MIN = 60_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
Cells = dict[tuple[str, str], dict[tuple[int, int], dict[str, bytes]]]


def _group(shipped: FeatureCatalog) -> tuple[FeatureDefinition, ...]:
    """Four features of one window group (one stream), one per value type, the double one with a short TTL."""
    total = shipped.get("user", "txn_amount_sum_1h")
    count = shipped.get("user", "txn_count_1h")
    assert count.stream == total.stream
    flag = count.model_copy(update={"name": "had_txn_1h", "value_type": "boolean"})
    short = total.model_copy(update={"name": "amount_short_ttl", "ttl": total.ttl / 12})  # 10 minutes
    return (count, short, string_feature("last_merchant_1h"), flag)


def _value(rnd: random.Random, definition: FeatureDefinition) -> Any:
    if rnd.random() < 0.15:
        return None
    return {
        "long": lambda: rnd.choice([-3, 0, 1, 2, 2**63 - 1]),
        "double": lambda: rnd.choice([-0.5, 0.0, 1.5, 2.5, 1e300]),
        "string": lambda: rnd.choice(["", "a", "b", "ab", "é"]),
        "boolean": lambda: rnd.random() < 0.5,
    }[definition.value_type]()


def _results(rnd: random.Random, features: tuple[FeatureDefinition, ...], n: int) -> WindowResults:
    """Few entities, few window ends and revisions (some above the revision cap): many values share a key,
    and many share a write time too (ties)."""
    ends = [T0 + i * 5 * MIN for i in range(3)]
    cap = revision_cap(features[0])
    rows = [
        (rnd.choice(["u1", "u2", "ü3", "u4"]), rnd.choice(ends), rnd.choice([0, 1, 2, cap, cap + 5])) for _ in range(n)
    ]
    return WindowResults(
        features,
        [r[0] for r in rows],
        np.array([r[1] - 60 * MIN for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=np.int64),
        [[_value(rnd, d) for _ in rows] for d in features],
    )


def _reference(rows: list[FeatureRow], now_ms: int) -> tuple[Cells, int]:
    """The rule one row at a time: keep a key's value if its write time is greater, or equal with a greater
    ``tie_key``; skip it if its TTL ran out; group the rest by entity and (write time, TTL in s), one pack per
    window end there."""
    newest: dict[tuple[str, str, str, int], tuple[int, FeatureRow]] = {}
    for row in rows:
        d = row.defined_by
        ts = row.window_end_ms * 1000 + min(row.revision, revision_cap(d))
        key = (row.entity_type, row.entity_id, row.feature_name, row.feature_version)
        held = newest.get(key)
        if (
            held is None
            or held[0] < ts
            or (held[0] == ts and tie_key(row.value, d.value_type) > tie_key(held[1].value, d.value_type))
        ):
            newest[key] = (ts, row)
    packs: dict[tuple[str, str, int, int, int], dict[online_layout.Member, Any]] = {}
    expired = 0
    for ts, row in newest.values():
        d = row.defined_by
        ttl_s = math.ceil((row.window_end_ms + to_millis(d.ttl) - now_ms) / 1000)
        if row.window_end_ms + to_millis(d.ttl) < now_ms:  # past its TTL; exactly at it, it still counts (§5.2)
            expired += 1
            continue
        ttl_s = min(ttl_s + online_layout.EXPIRED_GRACE_S, 630_720_000)  # an hour's grace, at most Cassandra's longest
        at = (row.entity_type, row.entity_id, ts, ttl_s, row.window_end_ms)
        packs.setdefault(at, {})[(row.feature_name, row.feature_version, d.value_type)] = row.value
    cells: Cells = {}
    for (entity_type, entity_id, ts, ttl_s, end_ms), values in packs.items():
        members = online_layout.pack_order(list(values))
        layout = online_layout.pack(tuple(members))
        group = cells.setdefault((entity_type, entity_id), {}).setdefault((ts, ttl_s), {})
        group[layout.key] = layout.encode(ts, end_ms, [values[m] for m in members])
    return cells, expired


@pytest.mark.parametrize("seed", range(30))
def test_newest_cells_equal_the_row_by_row_rule(shipped_catalog: FeatureCatalog, seed: int) -> None:
    rnd = random.Random(seed)
    features = _group(shipped_catalog)
    batches = [_results(rnd, features, rnd.randint(1, 40)) for _ in range(rnd.randint(1, 3))]
    rows = [row for results in batches for row in results.rows()]
    # Around the short TTL's end for the first window: some of its values alive, some expired.
    now_ms = T0 + 10 * MIN + rnd.choice([-1_000, 0, 1, 999, 1_000, 6 * MIN])
    expected = _reference(rows, now_ms)
    as_results, as_rows = Values(), Values()
    for results in batches:
        as_results.add_results(results)
    for row in rows:
        as_rows.add_row(row)
    assert newest_cells(as_results, now_ms) == expected
    assert newest_cells(as_rows, now_ms) == expected
    assert as_results.progress == as_rows.progress == {features[0].stream: max(r.window_end_ms for r in rows)}


def test_ties_keep_the_value_cassandra_keeps_and_of_equal_ones_the_first(shipped_catalog: FeatureCatalog) -> None:
    count = shipped_catalog.get("user", "txn_count_1h")
    results = WindowResults(
        (count,),
        ["u1", "u1", "u1", "u2", "u2"],
        np.full(5, T0 - 60 * MIN, dtype=np.int64),
        np.full(5, T0, dtype=np.int64),
        np.array([1, 1, 1, 2, 2], dtype=np.int64),
        [[5, -1, 7, None, 3]],
    )
    values = Values()
    values.add_results(results)
    cells, _ = newest_cells(values, T0)
    one = online_layout.pack(((count.name, count.version, "long"),))
    assert cells[("user", "u1")][(T0 * 1000 + 1, 7200 + online_layout.EXPIRED_GRACE_S)] == {
        one.key: one.encode(T0 * 1000 + 1, T0, [-1])
    }
    assert cells[("user", "u2")][(T0 * 1000 + 2, 7200 + online_layout.EXPIRED_GRACE_S)] == {
        one.key: one.encode(T0 * 1000 + 2, T0, [None])
    }


def test_rows_come_before_results_in_one_flush(shipped_catalog: FeatureCatalog) -> None:
    features = _group(shipped_catalog)
    values = Values()
    values.add_results(_results(random.Random(1), features, 3))
    with pytest.raises(ValueError, match="before window results"):
        values.add_row(FeatureRow.of(features[0], "u1", 1, T0 - 60 * MIN, T0))


def test_window_results_refuse_ragged_or_mixed_columns(shipped_catalog: FeatureCatalog) -> None:
    count = shipped_catalog.get("user", "txn_count_1h")
    other = count.model_copy(update={"window": count.window.model_copy(update={"slide": count.window.size})})
    one = np.array([T0], dtype=np.int64)
    with pytest.raises(ValueError, match="differ in length"):
        WindowResults((count,), ["u1", "u2"], one, one, one, [[1, 2]])
    with pytest.raises(ValueError, match="one entity type and one stream"):
        WindowResults((count, other), ["u1"], one, one, one, [[1], [2]])
    with pytest.raises(ValueError, match="value columns"):
        WindowResults((count,), ["u1"], one, one, one, [])


def test_erasure_drops_the_same_values_as_row_by_row(shipped_catalog: FeatureCatalog) -> None:
    features = _group(shipped_catalog)
    results = _results(random.Random(7), features, 60)
    # Windows start 60, 55 and 50 minutes before T0: u2's all before its erasure, ü3's first two.
    erased_at = {"u2": T0, "ü3": T0 - 55 * MIN + 1}

    def blocks(entity_type: str, entity_id: str, since_ms: int) -> bool:
        at = erased_at.get(entity_id)
        return entity_type == "user" and at is not None and since_ms < at

    by_results = DualWriter(RecordingWriter(), RecordingWriter(), blocks)
    by_results.add_results(results)
    by_rows = DualWriter(RecordingWriter(), RecordingWriter(), blocks)
    for row in results.rows():
        by_rows.add(row)
    assert by_results.offline.rows == by_results.online.rows == by_rows.offline.rows  # type: ignore[attr-defined]
    assert by_results.dropped_erased == by_rows.dropped_erased > 0
    kept = {(r.entity_id, r.window_start_ms) for r in by_results.offline.rows}  # type: ignore[attr-defined]
    assert "u2" not in {entity for entity, _ in kept}
    assert {start for entity, start in kept if entity == "ü3"} <= {T0 - 50 * MIN}


def _table_rows(table: Any) -> list[tuple[Any, ...]]:
    data = table.scan().to_arrow().drop_columns(["ingested_at"])
    return sorted((tuple(r.values()) for r in data.to_pylist()), key=repr)


def test_offline_results_hold_each_identity_once_as_rows_do(tmp_path: Path, shipped_catalog: FeatureCatalog) -> None:
    features = _group(shipped_catalog)
    results = _results(random.Random(3), features, 50)
    tables = []
    for name in ("by_results", "by_rows"):
        catalog = SqlCatalog(name, uri=f"sqlite:///{tmp_path}/{name}.db", warehouse=(tmp_path / name).as_uri())
        tables.append(ensure_table(catalog, "ns"))
    by_results, by_rows = (OfflineWriter(t, clock_ms=lambda: T0 + HOUR) for t in tables)
    half = len(results) // 2
    first = results.take(np.arange(len(results)) < half)
    by_results.add_results(first)
    by_results.flush()
    by_results.add_results(results)  # a replay: the first half again, and the rest
    by_results.flush()
    for row in first.rows():
        by_rows.add(row)
    by_rows.flush()
    for row in results.rows():
        by_rows.add(row)
    by_rows.flush()
    stored = _table_rows(tables[0])
    assert stored == _table_rows(tables[1])
    # The rule one row at a time: a row is written unless an earlier one (committed or in its batch) has its identity.
    kept: dict[tuple[Any, ...], FeatureRow] = {}
    for row in [*first.rows(), *results.rows()]:
        kept.setdefault(row.identity, row)
    data = tables[0].scan().to_arrow()
    got = {
        (r["entity_type"], r["entity_id"], r["feature_name"], r["feature_version"], r["event_time"], r["revision"]): r
        for r in data.to_pylist()
    }
    assert len(got) == data.num_rows == len(kept) == by_results.written == by_rows.written  # each identity once
    for (entity_type, entity_id, name, version, end_ms, revision), row in kept.items():
        stored_row = got[(entity_type, entity_id, name, version, _utc(end_ms), revision)]
        column = VALUE_COLUMNS[row.defined_by.value_type]
        assert (stored_row[column], stored_row["window_start"]) == (row.value, _utc(row.window_start_ms))
    arrow = OfflineWriter.results_arrow(results, T0)
    assert arrow.schema == tables[0].schema().as_arrow()
    assert arrow.num_rows == len(results) * len(features)
    assert pa.compute.all(pa.compute.equal(arrow.column("ingested_at").cast(pa.int64()), T0 * 1000)).as_py()


HOUR = 60 * MIN


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def test_a_window_wider_than_a_pack_is_several_packs_that_read_back_whole(shipped_catalog: FeatureCatalog) -> None:
    from sinks.cassandra.reader import _vector

    count = shipped_catalog.get("user", "txn_count_1h")
    n = online_layout.PACK_MEMBERS + 44
    features = tuple(count.model_copy(update={"name": f"wide_{i:03d}"}) for i in range(n))
    results = WindowResults(
        features,
        ["u1"],
        np.array([T0 - 60 * MIN], dtype=np.int64),
        np.array([T0], dtype=np.int64),
        np.array([3], dtype=np.int64),
        [[i - 7 if i % 5 else None] for i in range(n)],
    )
    values = Values()
    values.add_results(results)
    cells, expired = newest_cells(values, T0)
    ((_, packs),) = cells[("user", "u1")].items()
    assert expired == 0 and sorted(online_layout.values_in(key) for key in packs) == [44, online_layout.PACK_MEMBERS]
    assert _vector([(packs,)]) == {(d.name, 1): (i - 7 if i % 5 else None, T0) for i, d in enumerate(features)}


@pytest.mark.parametrize("now_ms", [T0 - 30 * MIN, 600_000_000_000 - 30 * MIN])  # the tests' day; 1989
def test_a_cell_ttl_is_cut_to_cassandras_longest(shipped_catalog: FeatureCatalog, now_ms: int) -> None:
    """A 7300d TTL (the most a definition may hold) on a window ending ahead of the writer's clock, or less than
    the hour of grace behind it, asks for more than Cassandra takes, which it refuses: the cell's TTL is cut to
    that (never past it): 630,720,000 s, or less when that would end after 2038-01-19T03:14:06Z (``ttl_cap_s``)."""
    cap = online_layout.ttl_cap_s(now_ms)
    assert cap == (630_720_000 if now_ms < 1_000_000_000_000 else online_layout.LAST_EXPIRY_S - 3_600 - now_ms // 1000)
    count = shipped_catalog.get("user", "txn_count_1h").model_copy(update={"ttl": timedelta(days=7300)})
    end = now_ms + 30 * MIN
    results = WindowResults(
        (count,),
        ["u1", "u2", "u3"],
        np.array([end - 60 * MIN, end - 90 * MIN, end - 180 * MIN], dtype=np.int64),
        np.array([end, end - 60 * MIN, end - 120 * MIN], dtype=np.int64),
        np.array([1, 1, 1], dtype=np.int64),
        [[5, 6, 7]],
    )
    values = Values()
    values.add_results(results)
    cells, _ = newest_cells(values, now_ms)  # u1's window ends 30 minutes ahead of now, u2's 30 and u3's 90 behind
    assert [ttl for _, ttl in cells[("user", "u1")]] == [cap]
    assert [ttl for _, ttl in cells[("user", "u2")]] == [cap]
    wanted_u3 = 7300 * 86_400 - 90 * 60 + online_layout.EXPIRED_GRACE_S  # what u3's TTL asks for
    assert [ttl for _, ttl in cells[("user", "u3")]] == [min(wanted_u3, cap)]
    if now_ms < 1_000_000_000_000:  # in 1989 nothing but Cassandra's longest binds u3's own TTL
        assert wanted_u3 < cap


def test_a_cell_outlives_its_values_ttl_by_the_grace_hour(shipped_catalog: FeatureCatalog) -> None:
    """A value written with 10 minutes of its TTL left is kept 10 minutes and an hour: serving reads it as
    `expired` for that hour (the rule nulls it), then `missing`; one already past its TTL is not written."""
    count = shipped_catalog.get("user", "txn_count_1h")  # ttl 2h
    results = WindowResults(
        (count,),
        ["u1", "u2"],
        np.array([T0 - 60 * MIN, T0 - 80 * MIN], dtype=np.int64),
        np.array([T0, T0 - 20 * MIN], dtype=np.int64),
        np.array([1, 1], dtype=np.int64),
        [[5, 6]],
    )
    values = Values()
    values.add_results(results)
    cells, expired = newest_cells(values, T0 + 110 * MIN)  # u1: 10 minutes of TTL left; u2: 10 minutes past it
    assert [ttl for _, ttl in cells[("user", "u1")]] == [10 * 60 + 3_600]
    assert ("user", "u2") not in cells and expired == 1
