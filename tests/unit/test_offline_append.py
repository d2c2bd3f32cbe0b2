"""The offline writer's own sort and append: the same rows, order, files and partitions as pyiceberg's
``append`` after Arrow's ``sort_by``, without their per-row Python costs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

from sinks.iceberg import layout as offline_layout
from sinks.iceberg.writer import _PARALLEL_TAKE_ROWS as PARALLEL_ROWS
from sinks.iceberg.writer import append_rows, ensure_table, sorted_rows

DAY_US = 86_400_000_000


def _rows(n: int, seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    ends = 1_700_000_000_000_000 + rng.integers(0, 5, n) * DAY_US + rng.integers(0, DAY_US // 1000, n) * 1000
    revision = pa.array(rng.integers(0, 3, n), pa.int64()).to_pylist()
    revision = [None if i % 17 == 0 else r for i, r in enumerate(revision)]
    long_values = [None if i % 2 else int(v) for i, v in enumerate(rng.integers(0, 100, n))]
    double_values = [float(v) if i % 2 else None for i, v in enumerate(rng.random(n))]
    columns = {
        "entity_type": ["user"] * n,
        "entity_id": [f"u{i}" for i in rng.integers(0, 50, n)],
        "feature_name": [f"f{i}" for i in rng.integers(0, 4, n)],
        "feature_version": rng.integers(1, 3, n).astype(np.int32),
        "event_time": pa.array(ends, pa.timestamp("us", tz="UTC")),
        "window_start": pa.array(ends - 3_600_000_000, pa.timestamp("us", tz="UTC")),
        "value_long": long_values,
        "value_double": double_values,
        "value_string": [None] * n,
        "value_boolean": [None] * n,
        "ingested_at": pa.array(np.full(n, 1_800_000_000_000_000), pa.timestamp("us", tz="UTC")),
        "revision": revision,
    }
    schema = offline_layout.arrow_schema()
    return pa.Table.from_arrays([pa.array(columns[f.name], type=f.type) for f in schema], schema=schema)


def test_the_lexsort_orders_rows_by_day_then_as_arrow_sort_by_does() -> None:
    rows = _rows(5_000)
    day = pa.array(np.asarray(rows.column("event_time").cast(pa.int64())) // DAY_US)
    keyed = rows.append_column("day", day)
    expected = keyed.sort_by([("day", "ascending"), *((c, "ascending") for c in offline_layout.SORT_COLUMNS)])
    assert sorted_rows(rows).equals(expected.drop_columns(["day"]))


def _reference(rows: pa.Table) -> pa.Table:
    """Arrow's own stable multi-column sort, after the day: the order ``sorted_rows`` must give."""
    day = pa.array(np.floor_divide(np.asarray(rows.column("event_time").cast(pa.int64())), DAY_US))
    keyed = rows.append_column("day", day)
    expected = keyed.sort_by([("day", "ascending"), *((c, "ascending") for c in offline_layout.SORT_COLUMNS)])
    return expected.drop_columns(["day"])


def _with(rows: pa.Table, name: str, values: pa.Array) -> pa.Table:
    field = rows.schema.field(name)
    return rows.set_column(rows.schema.get_field_index(name), field, values.cast(field.type))


def test_ties_keep_their_input_order() -> None:
    """Rows equal in every sort key (a replayed window) stay in the order they came in: the values tell them apart."""
    rows = _rows(3_000)
    n = rows.num_rows
    rows = _with(rows, "entity_id", pa.array([f"u{i % 3}" for i in range(n)]))
    rows = _with(rows, "event_time", pa.array(np.full(n, 1_700_000_000_000_000), pa.timestamp("us", tz="UTC")))
    rows = _with(rows, "value_long", pa.array(np.arange(n)))
    assert sorted_rows(rows).equals(_reference(rows))


def test_revisions_too_far_apart_to_pack_are_sorted_after_the_code() -> None:
    """A revision range that does not fit beside the other keys in one int64: sorted as a key of its own."""
    rows = _rows(4_000, seed=9)
    spread = [None if i % 11 == 0 else (i * 7919) % 5 * (2**61) - 2**62 for i in range(rows.num_rows)]
    rows = _with(rows, "revision", pa.array(spread, pa.int64()))
    assert sorted_rows(rows).equals(_reference(rows))


def test_window_ends_before_1970_and_extreme_revisions_sort_as_arrow_does() -> None:
    rows = _rows(4_000, seed=11)
    n = rows.num_rows
    rng = np.random.default_rng(2)
    ends = -5 * DAY_US + rng.integers(0, 10, n) * DAY_US + rng.integers(-DAY_US, DAY_US, n)
    rows = _with(rows, "event_time", pa.array(ends, pa.timestamp("us", tz="UTC")))
    extreme = [None, 2**63 - 1, -(2**63), 0, 5]
    rows = _with(rows, "revision", pa.array([extreme[i % 5] for i in range(n)], pa.int64()))
    got = sorted_rows(rows)
    want = _reference(rows)
    # A null and the largest int64 both sort last and cannot be told apart by the sort; the rest is exact.
    assert got.drop_columns(["revision"]).equals(want.drop_columns(["revision"]))
    assert sorted(got.column("revision").to_pylist(), key=str) == sorted(want.column("revision").to_pylist(), key=str)


def test_all_null_revisions() -> None:
    rows = _rows(2_000, seed=4)
    rows = _with(rows, "revision", pa.nulls(rows.num_rows, pa.int64()))
    assert sorted_rows(rows).equals(_reference(rows))


def test_append_rows_writes_each_day_to_its_partition(tmp_path: Path) -> None:
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri())
    table = ensure_table(catalog, "ns")
    rows = sorted_rows(_rows(20_000))
    append_rows(table, rows)
    table = catalog.load_table("ns." + offline_layout.TABLE)
    assert len(table.snapshots()) == 1  # one commit
    back = sorted_rows(table.scan().to_arrow().cast(rows.schema))
    assert back.equals(rows)
    days = {int(v.timestamp() * 1_000_000) // DAY_US for v in rows.column("event_time").to_pylist()}
    files = list(table.scan().plan_files())
    assert {f.file.partition[0] for f in files} == days  # day(event_time): days since the epoch
    one_day = min(days)
    within = And(
        GreaterThanOrEqual("event_time", _iso(one_day * DAY_US)), LessThan("event_time", _iso((one_day + 1) * DAY_US))
    )
    pruned = list(table.scan(row_filter=within).plan_files())
    assert pruned and {f.file.partition[0] for f in pruned} == {one_day}


def _iso(us: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(us / 1_000_000, tz=UTC).isoformat()


def test_a_batch_large_enough_for_threads_in_several_chunks_with_null_keys_sorts_as_arrow_does() -> None:
    """From ``_PARALLEL_TAKE_ROWS`` rows the keys are computed and the columns moved on threads, and a ranked
    string column is gathered from its distinct values: the same rows as Arrow's sort, nulls last."""
    parts = []
    for seed in (5, 6, 7):
        part = _rows(PARALLEL_ROWS // 2, seed=seed)
        n = part.num_rows
        nullable = pa.schema([f.with_nullable(True) for f in part.schema])
        part = pa.Table.from_arrays(part.columns, schema=nullable)
        ids = part.column("entity_id").to_pylist()
        names = part.column("feature_name").to_pylist()
        part = _with(part, "entity_id", pa.array([None if i % 29 == 0 else v for i, v in enumerate(ids)]))
        part = _with(part, "feature_name", pa.array([None if i % 31 == 0 else v for i, v in enumerate(names)]))
        part = _with(part, "value_string", pa.array([f"s{i % 97}" if i % 3 else None for i in range(n)]))
        parts.append(part)
    rows = pa.concat_tables(parts)
    assert rows.num_rows >= PARALLEL_ROWS and rows.column("entity_id").num_chunks == 3
    got = sorted_rows(rows)
    assert got.schema == rows.schema
    assert got.equals(_reference(rows))
    assert got.column("entity_id").null_count == rows.column("entity_id").null_count > 0


def test_a_commit_retried_after_a_race_appends_no_row_the_winner_committed(tmp_path: Path) -> None:
    """The identity check ran once, before the commit's retries: a writer that lost the commit race to another
    committing the same (window, revision)s appended them again on the winner's snapshot (each row twice)."""
    from registry.core.catalog import FeatureCatalog
    from sinks.iceberg.writer import OfflineWriter
    from sinks.records import WindowResults

    t0 = 1_767_225_600_000
    catalog = SqlCatalog("c", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri())
    ensure_table(catalog, "ns")
    count = FeatureCatalog.from_folder().get("user", "txn_count_1h")

    def results() -> WindowResults:
        starts, ends = np.array([t0 - 3_600_000] * 2), np.array([t0] * 2)
        return WindowResults((count,), ["u1", "u2"], starts, ends, np.array([3, 4]), [[3, 4]])

    a = OfflineWriter(catalog.load_table("ns.offline_feature_values"), clock_ms=lambda: t0 + 1000)
    b = OfflineWriter(catalog.load_table("ns.offline_feature_values"), clock_ms=lambda: t0 + 2000)
    checked = b._new_rows
    raced: list[bool] = []

    def racing(rows: pa.Table) -> pa.Table:
        fresh = checked(rows)  # nothing committed yet: both rows are new to B
        if not raced:  # A commits the same results between B's check and B's commit
            raced.append(True)
            a.add_results(results())
            a.flush()
        return fresh

    b._new_rows = racing  # type: ignore[method-assign]
    b.add_results(results())
    b.flush()
    rows = catalog.load_table("ns.offline_feature_values").scan().to_arrow()
    assert rows.num_rows == 2 and (a.written, b.written) == (2, 0)
    assert set(rows.column("ingested_at").cast(pa.int64()).to_pylist()) == {(t0 + 1000) * 1000}


def test_a_lost_commit_is_retried_after_a_growing_random_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each retry waits a random share of a doubling bound (writers that lost together do not retry together); a
    flush gives up after 10 lost races in a row (5 back-to-back attempts were lost at parallelism 2 under load),
    its rows still buffered, and the next flush appends them."""
    from pyiceberg.exceptions import CommitFailedException

    import sinks.iceberg.writer as writer_module
    from registry.core.catalog import FeatureCatalog
    from registry.core.errors import StoreUnavailableError
    from sinks.iceberg.writer import OfflineWriter, commit_backoff_s
    from sinks.records import WindowResults

    assert [commit_backoff_s(a, lambda: 1.0) for a in (1, 2, 3, 6, 7, 40)] == [0.05, 0.1, 0.2, 1.6, 2.0, 2.0]
    assert commit_backoff_s(3, lambda: 0.0) == 0.0
    t0 = 1_767_225_600_000
    catalog = SqlCatalog("c", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri())
    ensure_table(catalog, "ns")
    count = FeatureCatalog.from_folder().get("user", "txn_count_1h")
    waits: list[float] = []
    writer = OfflineWriter(catalog.load_table("ns.offline_feature_values"), clock_ms=lambda: t0, sleep=waits.append)
    writer.add_results(
        WindowResults((count,), ["u1"], np.array([t0 - 3_600_000]), np.array([t0]), np.array([3]), [[3]])
    )
    real_append = writer_module.append_rows
    losses = [10]

    def append(table: object, rows: pa.Table, snapshot_properties: dict[str, str] | None = None) -> None:
        if losses[0]:
            losses[0] -= 1
            raise CommitFailedException("another writer committed first")
        real_append(table, rows, snapshot_properties)  # type: ignore[arg-type]

    monkeypatch.setattr(writer_module, "append_rows", append)
    with pytest.raises(StoreUnavailableError, match="lost 10 races in a row"):
        writer.flush()
    assert len(waits) == 9 and all(0 <= w <= 2.0 for w in waits)
    assert len(writer) == 1 and writer.written == 0  # still buffered
    losses[0] = 9  # nine lost, the tenth attempt commits
    writer.flush()
    assert writer.written == 1 and len(writer) == 0
    assert catalog.load_table("ns.offline_feature_values").scan().to_arrow().num_rows == 1


def test_opening_existing_tables_again_writes_no_metadata_file(tmp_path: Path) -> None:
    """Every job start, parity and statistics run opens the offline table and the serving log's with
    ``create_or_load``; on an existing table it tried to create it first, and pyiceberg wrote a new metadata file
    before the catalog refused the name: one more file per call that nothing points to."""
    from sinks.serving_log import ensure_log_table

    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=(tmp_path / "wh").as_uri())
    offline, log = ensure_table(catalog, "fs"), ensure_log_table(catalog, "fs")
    files = sorted(p.name for p in (tmp_path / "wh").rglob("*.metadata.json"))
    assert len(files) == 2
    for _ in range(3):
        assert ensure_table(catalog, "fs").metadata_location == offline.metadata_location
        assert ensure_log_table(catalog, "fs").metadata_location == log.metadata_location
    assert sorted(p.name for p in (tmp_path / "wh").rglob("*.metadata.json")) == files
