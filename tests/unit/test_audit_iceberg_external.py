"""The offline Iceberg table as an external reader (pyiceberg, DuckDB over its Parquet files) sees it, checked
against the documentation: docs/design.md §4 "Column details" (columns, types, partitioning, the appends' sort
order), §5.1 (UTC, microseconds, ties: latest ``ingested_at``, then highest ``revision``), §5.2 (TTL and empty
windows), §5.4 (a commit appends only new identities), README "Training sets" (``as_of``: a snapshot id, or a
time: the snapshot then and only rows ingested by then).

The external reading is written from those sentences alone; the join (``get_historical_features``) must give
the same numbers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DatasetError
from serving.offline.historical import get_historical_features
from sinks.iceberg.as_of import read_point
from sinks.iceberg.maintenance import expire_snapshots
from sinks.iceberg.writer import OfflineWriter, ensure_table
from sinks.records import FeatureRow
from tests.unit.conftest import build_definition

STEP_MS = 300_000
E_MS = 1_700_000_000_000 // 3_600_000 * 3_600_000  # a window end on every grid used here
NOW_MS = time.time_ns() // 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
COUNT = build_definition()  # txn_count_1h: count, sliding 1h by 5m, ttl 2h
MAX = build_definition(
    name="amt_max_5m",
    value_type="double",
    window={"kind": "tumbling", "size": "5m"},
    aggregation={"function": "max", "field": "amount"},
    ttl="30m",
)


def _local_path(uri: str) -> str:
    return uri.removeprefix("file://")


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from pyiceberg.catalog.sql import SqlCatalog

    folder: Path = tmp_path_factory.mktemp("external")
    sql = SqlCatalog("feature_store", uri=f"sqlite:///{folder}/cat.db", warehouse=f"file://{folder}/wh")
    yield ensure_table(sql, "fs")


def _flush(table: Any, clock_ms: int, rows: list[FeatureRow]) -> Any:
    writer = OfflineWriter(table, clock_ms=lambda: clock_ms)
    for row in rows:
        writer.add(row)
    writer.flush()
    return table.current_snapshot()


@pytest.fixture(scope="module")
def written(table: Any) -> list[Any]:
    """Four flushes: a first result, a late update (higher revision, later), a replay (nothing new), and a
    window reopened after a restore (lower revision, ingested later), plus another entity carrying the reach."""
    e, s = E_MS, STEP_MS
    snapshots = [
        _flush(
            table,
            NOW_MS - 60_000,
            [
                FeatureRow.of(COUNT, "u1", 3, e - 3_600_000, e, 3),
                FeatureRow.of(COUNT, "u1", 2, e - 3_600_000 + s, e + s, 2),
                FeatureRow.of(MAX, "u1", 7.5, e - s, e, 1),
                FeatureRow.of(MAX, "u1", -1.0, e, e + s, 1),
                FeatureRow.of(COUNT, "u2", 1, e - 3_600_000 + 3 * s, e + 3 * s, 1),
                FeatureRow.of(MAX, "u2", 2.0, e + 2 * s, e + 3 * s, 1),
            ],
        ),
        # a late update of u1's first count window, and the same window twice in one flush (revisions 4 and 5)
        _flush(
            table,
            NOW_MS - 50_000,
            [
                FeatureRow.of(COUNT, "u1", 4, e - 3_600_000, e, 4),
                FeatureRow.of(COUNT, "u1", 5, e - 3_600_000, e, 5),
                FeatureRow.of(MAX, "u1", 9.0, e - s, e, 2),
            ],
        ),
        # a replay: every identity already held, so no new snapshot either
        _flush(table, NOW_MS - 40_000, [FeatureRow.of(COUNT, "u1", 3, e - 3_600_000, e, 3)]),
        # reopened after a restore: a lower revision, ingested later (design §5.5: offline the latest ingestion)
        _flush(table, NOW_MS - 30_000, [FeatureRow.of(MAX, "u1", 8.0, e - s, e, 0)]),
        # a row whose ingestion clock is an hour ahead of its commit: an as_of time at the commit leaves it out
        _flush(table, NOW_MS + 3_600_000, [FeatureRow.of(COUNT, "u2", 6, e - 3_600_000 + 3 * s, e + 3 * s, 6)]),
    ]
    return snapshots


def test_schema_partitioning_and_properties_as_documented(table: Any) -> None:
    """§4: the long format's columns and types, required identity columns, day(event_time), full string bounds."""
    from pyiceberg.transforms import DayTransform

    schema = table.schema()
    assert [(f.name, str(f.field_type), f.required) for f in schema.fields] == [
        ("entity_type", "string", True),
        ("entity_id", "string", True),
        ("feature_name", "string", True),
        ("feature_version", "int", True),
        ("event_time", "timestamptz", True),
        ("window_start", "timestamptz", False),
        ("value_long", "long", False),
        ("value_double", "double", False),
        ("value_string", "string", False),
        ("value_boolean", "boolean", False),
        ("ingested_at", "timestamptz", True),
        ("revision", "long", False),
    ]
    assert "window end" in (schema.find_field("event_time").doc or "")
    (field,) = table.spec().fields
    assert isinstance(field.transform, DayTransform)
    assert schema.find_field(field.source_id).name == "event_time"
    for column in ("entity_type", "entity_id", "feature_name"):
        assert table.properties[f"write.metadata.metrics.column.{column}"] == "full"
    assert table.properties["write.metadata.metrics.column.value_string"] == "counts"


def test_files_hold_utc_microseconds_sorted_as_documented(table: Any, written: list[Any]) -> None:
    """§5.1: UTC, window ends in microseconds; §4: each append sorted by feature, version, entity, time,
    revision; §5.4: no identity twice (the replay appended nothing)."""
    import duckdb

    files = [_local_path(task.file.file_path) for task in table.scan().plan_files()]
    assert len({s.snapshot_id for s in written}) == 4  # the replay made no snapshot
    for path in files:
        meta = pq.ParquetFile(path).schema.column(pq.ParquetFile(path).schema_arrow.get_field_index("event_time"))
        assert meta.logical_type.to_json().find('"isAdjustedToUTC": true') >= 0
        assert meta.logical_type.to_json().find('"timeUnit": "microseconds"') >= 0
        rows = pq.read_table(path)
        assert rows.schema.field("event_time").type == pa.timestamp("us", tz="UTC")
        keys = rows.select(["feature_name", "feature_version", "entity_id", "event_time", "revision"]).to_pylist()
        ordered = [tuple(k.values()) for k in keys]
        assert ordered == sorted(ordered)
    con = duckdb.connect()
    described = dict(
        (name, kind) for name, kind, *_ in con.execute(f"DESCRIBE SELECT * FROM read_parquet({files!r})").fetchall()
    )
    assert described["event_time"] == described["ingested_at"] == "TIMESTAMP WITH TIME ZONE"
    identities = con.execute(
        "SELECT count(*), count(DISTINCT (entity_type, entity_id, feature_name, feature_version, event_time,"
        f" coalesce(revision, 0))) FROM read_parquet({files!r})"
    ).fetchone()
    assert identities is not None and identities[0] == identities[1] == 11


def test_time_travel_by_snapshot_id_and_by_commit_time(table: Any, written: list[Any]) -> None:
    """A snapshot read by its id holds what was committed by then; the snapshot current at exactly its commit
    time is itself (a commit at T is visible as of T), and 1 ms earlier is its parent."""
    first, second, _, restored, ahead = written
    assert table.scan(snapshot_id=first.snapshot_id).to_arrow().num_rows == 6
    assert table.scan(snapshot_id=second.snapshot_id).to_arrow().num_rows == 9
    assert table.scan(snapshot_id=restored.snapshot_id).to_arrow().num_rows == 10
    assert table.scan(snapshot_id=ahead.snapshot_id).to_arrow().num_rows == 11
    for snapshot in (first, second, restored, ahead):
        assert table.snapshot_as_of_timestamp(snapshot.timestamp_ms).snapshot_id == snapshot.snapshot_id
        earlier = table.snapshot_as_of_timestamp(snapshot.timestamp_ms - 1)
        assert (earlier.snapshot_id if earlier else None) == snapshot.parent_snapshot_id


# --- the external reading, from the docs -----------------------------------------------------------------


def _external_rows(table: Any, snapshot_id: int, until_us: int | None) -> dict[tuple[str, str], list[Any]]:
    """One row per (entity, feature, version, window end) read with DuckDB from the snapshot's data files:
    rows ingested by ``until_us`` (an as_of time), then the latest ``ingested_at``, then the highest revision."""
    import duckdb

    files = [_local_path(t.file.file_path) for t in table.scan(snapshot_id=snapshot_id).plan_files()]
    cut = "" if until_us is None else f"WHERE epoch_us(ingested_at) <= {until_us}"
    query = f"""
        SELECT entity_id, feature_name, epoch_us(event_time) AS end_us,
               coalesce(value_long::DOUBLE, value_double) AS value
        FROM (SELECT *, row_number() OVER (
                  PARTITION BY entity_type, entity_id, feature_name, feature_version, event_time
                  ORDER BY ingested_at DESC, coalesce(revision, 0) DESC) AS n
              FROM read_parquet({files!r}) {cut})
        WHERE n = 1 ORDER BY end_us"""
    out: dict[tuple[str, str], list[Any]] = {}
    for entity_id, name, end_us, value in duckdb.connect().execute(query).fetchall():
        out.setdefault((entity_id, name), []).append((end_us, value))
    return out


def _expected(rows: dict[tuple[str, str], list[Any]], d: FeatureDefinition, entity_id: str, t_us: int) -> Any:
    """§5.2 over the deduplicated rows: latest W <= t; null past the ttl; an empty later window closed by
    min(t, reach) reads 0 for a count, null for a max."""
    step = STEP_MS * 1000
    ttl = int(d.ttl.total_seconds()) * 1_000_000
    reach = max((end for (_, name), ends in rows.items() if name == d.name for end, _ in ends), default=None)
    mine = [(end, v) for end, v in rows.get((entity_id, d.name), []) if end <= t_us]
    if not mine:
        return None
    end, value = mine[-1]
    if t_us - end > ttl:
        return None
    closed = min(t_us, reach) // step * step if reach is not None else end
    if closed > end:
        return 0 if d.aggregation.function == "count" else None
    return value


@pytest.mark.parametrize("read", ["current", "first", "second", "restored", "as_of_commit", "as_of_later"])
def test_external_reading_equals_the_join(table: Any, written: list[Any], read: str) -> None:
    """Following the docs on the raw files (snapshot, ingestion cut, ties, then §5.2) gives the join's numbers."""
    first, second, _, restored, ahead = written
    at_commit = EPOCH + timedelta(milliseconds=ahead.timestamp_ms)
    snapshot_id, until_us, as_of = {
        "current": (ahead.snapshot_id, None, None),
        "first": (first.snapshot_id, None, first.snapshot_id),
        "second": (second.snapshot_id, None, second.snapshot_id),
        "restored": (restored.snapshot_id, None, restored.snapshot_id),
        # the last snapshot is current at its commit time, but its row was ingested an hour later
        "as_of_commit": (ahead.snapshot_id, ahead.timestamp_ms * 1000, at_commit),
        "as_of_later": (ahead.snapshot_id, None, at_commit + timedelta(hours=2)),
    }[read]
    rows = _external_rows(table, snapshot_id, until_us)
    e_us, step = E_MS * 1000, STEP_MS * 1000
    times = [
        e_us - 1,
        e_us,
        e_us + 1,
        e_us + step,
        e_us + 2 * step,
        e_us + 3 * step,
        e_us + 7 * step,
        e_us + 6 * step,
        e_us + 3_600_000_000 * 2,
        e_us + 3_600_000_000 * 2 + 1,
        e_us + 3 * step + 3_600_000_000 * 2,
        e_us + 3 * step + 3_600_000_000 * 2 + 1,
    ]
    labels = pa.table(
        {
            "user_id": [u for u in ("u1", "u2") for _ in times],
            "event_timestamp": pa.array([t for _ in ("u1", "u2") for t in times], pa.timestamp("us", tz="UTC")),
        }
    )
    catalog = FeatureCatalog([COUNT, MAX])
    joined = get_historical_features(
        table,
        catalog,
        labels,
        [COUNT.name, MAX.name],
        entity_type="user",
        entity_column="user_id",
        as_of=as_of,
    )
    for d in (COUNT, MAX):
        got = [None if v is None else float(v) for v in joined.column(d.name).to_pylist()]
        want = [
            _expected(rows, d, u, t.value if hasattr(t, "value") else int(t.timestamp() * 1_000_000))
            for u, t in zip(labels.column("user_id").to_pylist(), labels.column("event_timestamp"), strict=True)
        ]
        want = [None if v is None else float(v) for v in want]
        assert got == want, (read, d.name)


def test_as_of_exactly_a_commit_time_reads_that_commit(table: Any, written: list[Any]) -> None:
    """README: ``as_of`` a time reads the snapshot current then: a commit at exactly T is read as of T (its rows
    were ingested before it committed), and not as of T - 1 ms."""
    restored = written[3]
    labels = pa.table({"user_id": ["u1"], "event_timestamp": pa.array([E_MS * 1000], pa.timestamp("us", tz="UTC"))})
    catalog = FeatureCatalog([MAX])

    def read(at_ms: int) -> Any:
        as_of = EPOCH + timedelta(milliseconds=at_ms)  # exact, no float
        joined = get_historical_features(
            table, catalog, labels, [MAX.name], entity_type="user", entity_column="user_id", as_of=as_of
        )
        return joined.column(MAX.name).to_pylist()

    assert read(restored.timestamp_ms) == [8.0]  # the reopened window's value, ingested latest
    assert read(restored.timestamp_ms - 1) == [9.0]  # before it: the late update (revision 2)


_E_MS = 1_700_000_000_000 // 300_000 * 300_000


def test_expiry_with_a_pin_leaves_no_gap_in_the_snapshot_log(tmp_path: Path) -> None:
    """After an expiry that keeps a training set's pinned snapshot, time travel by timestamp as an external reader
    does it (the snapshot log: pyiceberg's ``snapshot_as_of_timestamp``, Spark's ``TIMESTAMP AS OF``) must not
    present the pinned snapshot as current when an expired one was: the Iceberg spec removes every snapshot-log
    entry before an expired snapshot's. Our own ``as_of`` keeps refusing such a time and reads the rest."""
    from pyiceberg.catalog.sql import SqlCatalog

    sql = SqlCatalog("feature_store", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=f"file://{tmp_path}/wh")
    table = ensure_table(sql, "fs")
    definition = build_definition()
    snapshots = []
    for revision in (1, 2, 3):
        writer = OfflineWriter(table)
        writer.add(FeatureRow.of(definition, "u1", revision, _E_MS - 3_600_000, _E_MS, revision))
        writer.flush()
        snapshot = table.current_snapshot()
        assert snapshot is not None
        snapshots.append(snapshot)
        time.sleep(0.01)
    pinned, expired, current = snapshots
    table, _ = expire_snapshots(table, keep=[pinned.snapshot_id])

    then = table.snapshot_as_of_timestamp(expired.timestamp_ms)
    assert then is None or then.snapshot_id != pinned.snapshot_id  # was: the pinned snapshot, silently
    now = table.snapshot_as_of_timestamp(current.timestamp_ms)
    assert now is not None and now.snapshot_id == current.snapshot_id
    assert table.scan(snapshot_id=pinned.snapshot_id).to_arrow().num_rows == 1  # the pin is still read by id
    for at_ms in (pinned.timestamp_ms, expired.timestamp_ms):
        with pytest.raises(DatasetError, match="was expired"):
            read_point(table, datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=at_ms))
    assert read_point(
        table, datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=current.timestamp_ms)
    ).snapshot_id == (current.snapshot_id)
