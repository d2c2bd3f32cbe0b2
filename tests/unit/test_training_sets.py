"""Training sets on a real local Iceberg table: the point-in-time join against a reference, chunked and streamed, as_of.

The join is checked against a brute-force reference that also knows about ``as_of``: a row is
visible if its snapshot is at or before the one read and, for a time, if it was ingested by then.
Data is adversarial: windows stored twice (later, earlier and *equal* ingestion), rows from a
writer whose clock runs ahead (ingested "in the future"), labels exactly on window ends and TTL
edges, 1 ms either side, duplicated, for unknown entities, in several chunks across TTL boundaries.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.durations import to_millis
from registry.core.errors import DatasetError
from registry.core.timeline import resolve, step_ms, tie_key
from serving.offline.feature_resolution import resolve_features
from serving.offline.historical import get_historical_features, join_label_batches
from sinks.iceberg import layout as offline_layout
from sinks.iceberg.as_of import read_point
from sinks.iceberg.writer import ensure_table

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
T0 = 1_700_000_000_000 // HOUR * HOUR
INGEST0 = T0 + DAY  # synthetic ingestion clock: far before the wall clock
ENTITIES = ("e0", "e1", "e2")
GHOST = "nobody"


def stored_definitions(make_definition: Callable[..., FeatureDefinition]) -> list[FeatureDefinition]:
    """The definitions of this module's catalog (test_request_features_offline.py joins them too)."""
    tumbling_5m = {"kind": "tumbling", "size": "5m"}
    max_15m = {
        "aggregation": {"function": "max", "field": "amount"},
        "value_type": "double",
        "window": {"kind": "tumbling", "size": "15m"},
    }
    return [
        make_definition(name="count_5m", window=tumbling_5m, ttl="20m"),
        make_definition(
            name="sum_10m",
            value_type="double",
            window={"kind": "sliding", "size": "10m", "slide": "5m"},
            aggregation={"function": "sum", "field": "amount"},
            ttl="30m",
        ),
        make_definition(
            name="last_merchant",
            value_type="string",
            window=tumbling_5m,
            ttl="15m",
            aggregation={"function": "last", "field": "merchant_id"},
        ),
        make_definition(name="amount_max", version=1, ttl="40m", **max_15m),
        make_definition(name="amount_max", version=2, ttl="35m", **max_15m),
        make_definition(name="count_5m", entity="merchant", window=tumbling_5m, ttl="1h"),
    ]


@pytest.fixture(scope="module")
def catalog(make_definition: Callable[..., FeatureDefinition]) -> FeatureCatalog:
    return FeatureCatalog(stored_definitions(make_definition))


FEATURES = ["count_5m", "sum_10m", "last_merchant", "amount_max"]


@dataclass(frozen=True)
class Row:
    d: FeatureDefinition
    entity_id: str
    value: Any
    end_ms: int
    ingested_ms: int
    snapshot: int = 0  # index of the append that wrote it
    revision: int = 0


def iceberg_table(folder: Path, catalog_name: str = "unit") -> Any:
    from pyiceberg.catalog.sql import SqlCatalog

    folder.mkdir(parents=True, exist_ok=True)
    sql = SqlCatalog(catalog_name, uri=f"sqlite:///{folder}/cat.db", warehouse=(folder / "wh").as_uri())
    return ensure_table(sql, "fs")


def append(table: Any, rows: Sequence[Row]) -> int:
    """One snapshot holding ``rows`` (each with its own ingestion time); returns the snapshot id."""
    columns: dict[str, list[Any]] = {f.name: [] for f in offline_layout.arrow_schema()}
    for r in rows:
        columns["entity_type"].append(r.d.entity)
        columns["entity_id"].append(r.entity_id)
        columns["feature_name"].append(r.d.name)
        columns["feature_version"].append(r.d.version)
        columns["event_time"].append(r.end_ms * 1000)
        columns["window_start"].append(r.end_ms * 1000 - 1)
        for vt, col in (
            ("long", "value_long"),
            ("double", "value_double"),
            ("string", "value_string"),
            ("boolean", "value_boolean"),
        ):
            columns[col].append(r.value if r.d.value_type == vt else None)
        columns["ingested_at"].append(r.ingested_ms * 1000)
        columns["revision"].append(r.revision)
    schema = offline_layout.arrow_schema()
    table.append(pa.Table.from_arrays([pa.array(columns[f.name], f.type) for f in schema], schema=schema))
    return table.metadata.current_snapshot_id


def labels_table(labels: Sequence[tuple[str, int]]) -> pa.Table:
    return pa.table(
        {
            "row_id": pa.array(range(len(labels)), pa.int64()),
            "who": pa.array([e for e, _ in labels], pa.string()),
            "event_timestamp": pa.array([ms for _, ms in labels], pa.timestamp("ms", tz="UTC")),
            "target": pa.array([i % 2 == 0 for i in range(len(labels))]),
        }
    )


def reference(
    rows: Sequence[Row],
    catalog: FeatureCatalog,
    features: Sequence[str],
    labels: Sequence[tuple[str, int]],
    *,
    snapshot: int | None = None,
    ingested_until_ms: int | None = None,
) -> dict[str, list[Any]]:
    """Brute force: visible rows only; latest window end <= label; ties: latest ingestion, highest revision,
    greatest value."""
    visible = [
        r
        for r in rows
        if (snapshot is None or r.snapshot <= snapshot)
        and (ingested_until_ms is None or r.ingested_ms <= ingested_until_ms)
    ]
    out: dict[str, list[Any]] = {}
    for name in features:
        d = catalog.get("user", name)
        mine = [r for r in visible if r.d.key == d.key]
        reach = max((r.end_ms for r in mine), default=None)
        values = []
        for entity, at in labels:
            candidates = [r for r in mine if r.entity_id == entity and r.end_ms <= at]
            best = max(
                candidates,
                key=lambda r: (r.end_ms, r.ingested_ms, r.revision, tie_key(r.value, d.value_type)),
                default=None,
            )
            closed = at if reach is None else min(at, reach)
            values.append(
                resolve(
                    d,
                    best.end_ms * 1000 if best else None,
                    best.value if best else None,
                    closed_through_us=closed * 1000,
                    now_us=at * 1000,
                ).value
            )
        out[name] = values
    return out


def _value(rng: random.Random, d: FeatureDefinition) -> Any:
    if d.value_type == "long":
        return rng.choice([1, 2, 7, 2**53 + 1])
    if d.value_type == "string":
        return rng.choice(["m1", "m2", "", "caf\u00e9"])
    return rng.choice([0.5, 1.25, 99.0, -3.0])


def scenario(seed: int, catalog: FeatureCatalog, appends: int = 3) -> tuple[list[list[Row]], list[tuple[str, int]]]:
    rng = random.Random(seed)
    batches: list[list[Row]] = [[] for _ in range(appends)]
    ends: list[tuple[FeatureDefinition, int]] = []
    for d in catalog:
        step = step_ms(d)
        assert step is not None
        for entity in ENTITIES:
            for _ in range(rng.randint(0, 4)):
                end = T0 + step * rng.randint(0, 3 * HOUR // step)
                ends.append((d, end))
                clocks = [INGEST0 + rng.choice([0, 1, 2]) for _ in range(rng.randint(1, 3))]  # equal clocks too
                if rng.random() < 0.15:
                    clocks.append(int(time.time() * 1000) + HOUR)  # a writer whose clock runs an hour ahead
                for clock in clocks:
                    b = rng.randrange(appends)
                    batches[b].append(Row(d, entity, _value(rng, d), end, clock, b, rng.choice([0, 0, 1, 2])))
    labels: list[tuple[str, int]] = []
    user_defs = [catalog.get("user", n) for n in FEATURES]
    for _ in range(rng.randint(5, 30)):
        kind = rng.choice(["end", "ttl", "ttl", "random", "dup"])
        entity = rng.choice([*ENTITIES, *ENTITIES, GHOST])
        if kind == "dup" and labels:
            labels.append(rng.choice(labels))
            continue
        if kind in ("end", "ttl") and ends:
            d, at = rng.choice(ends)
            if kind == "ttl":
                at += to_millis(rng.choice([d, *user_defs]).ttl)
            at += rng.choice([0, 0, -1, 1])
        else:
            at = T0 + rng.randint(-HOUR, 5 * HOUR)
        labels.append((entity, at))
    return batches, labels


def write(table: Any, batches: Sequence[Sequence[Row]]) -> list[int]:
    return [append(table, batch) for batch in batches if batch]


@pytest.fixture
def built(tmp_path: Path, catalog: FeatureCatalog) -> tuple[Any, list[Row], list[tuple[str, int]]]:
    batches, labels = scenario(11, catalog)
    table = iceberg_table(tmp_path)
    write(table, batches)
    return table, [r for b in batches for r in b], labels


@pytest.mark.parametrize("seed", range(6))
def test_chunked_and_streamed_joins_equal_the_reference_at_every_snapshot(
    seed: int, tmp_path: Path, catalog: FeatureCatalog
) -> None:
    batches, labels = scenario(seed, catalog)
    batches = [b for b in batches if b]
    batches = [
        [Row(r.d, r.entity_id, r.value, r.end_ms, r.ingested_ms, i, r.revision) for r in b]
        for i, b in enumerate(batches)
    ]
    table = iceberg_table(tmp_path)
    snapshots = write(table, batches)
    rows = [r for b in batches for r in b]
    given = labels_table(labels)
    join = lambda **kw: get_historical_features(  # noqa: E731
        table,
        catalog,
        given,
        FEATURES,
        entity_type="user",
        entity_column="who",
        **kw,
    )
    whole = join()
    expected = reference(rows, catalog, FEATURES, labels)
    assert {n: whole.column(n).to_pylist() for n in FEATURES} == expected, labels
    assert whole.select(given.column_names).equals(given)
    for chunk_rows in (1, 2, 7):  # chunks cut across TTL edges, duplicates and entities
        assert join(chunk_rows=chunk_rows).equals(whole), chunk_rows
    definitions = resolve_features(catalog, "user", FEATURES)
    for batch_rows in (1, 4):
        streamed = join_label_batches(
            table,
            definitions,
            given.schema,
            given.to_batches(max_chunksize=batch_rows),
            entity_type="user",
            entity_column="who",
            timestamp_column="event_timestamp",
            point=read_point(table, None),
        )
        assert pa.Table.from_batches(list(streamed)).equals(whole)
    for i, snapshot_id in enumerate(snapshots):
        at = join(as_of=snapshot_id)
        assert {n: at.column(n).to_pylist() for n in FEATURES} == reference(
            rows, catalog, FEATURES, labels, snapshot=i
        ), i
        assert join(snapshot_id=snapshot_id).equals(at)
    # As of now: the last snapshot, minus the rows of the writer whose clock runs ahead.
    now = datetime.now(UTC)
    at = join(as_of=now)
    until = (now - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert {n: at.column(n).to_pylist() for n in FEATURES} == reference(
        rows, catalog, FEATURES, labels, ingested_until_ms=until
    )


def _feature(catalog: FeatureCatalog, name: str, version: int | None = None) -> FeatureDefinition:
    return catalog.get("user", name, version)


def _count_5m(table: Any, catalog: FeatureCatalog, labels: pa.Table, as_of: Any) -> list[Any]:
    """``count_5m`` of each label row, read as of ``as_of``."""
    result = get_historical_features(
        table, catalog, labels, ["count_5m"], entity_type="user", entity_column="who", as_of=as_of
    )
    return list(result.column("count_5m").to_pylist())


def test_as_of_a_time_reads_the_snapshot_then_and_rows_ingested_by_then(
    tmp_path: Path, catalog: FeatureCatalog
) -> None:
    table = iceberg_table(tmp_path)
    count = _feature(catalog, "count_5m")
    wall = int(time.time() * 1000)
    first = append(table, [Row(count, "e1", 1, T0, wall - 2000), Row(count, "e2", 5, T0, wall - 2000)])
    time.sleep(0.01)
    between = datetime.now(UTC)
    time.sleep(0.01)
    # A backfill recomputes e1's window later: it must not leak into a dataset as of `between`.
    append(table, [Row(count, "e1", 2, T0, int(time.time() * 1000))])
    labels = labels_table([("e1", T0), ("e2", T0), ("e1", T0 + 1)])

    def count_at(as_of: Any) -> list[Any]:
        return _count_5m(table, catalog, labels, as_of)

    assert count_at(None) == [2, 5, 2]
    assert count_at(between) == [1, 5, 1]
    assert count_at(first) == [1, 5, 1]
    assert count_at(datetime(2000, 1, 1, tzinfo=UTC)) == [None, None, None]  # before any snapshot: nothing known
    # Committed now by a writer whose clock runs an hour ahead: as of now, it was not ingested yet.
    ahead = append(table, [Row(count, "e2", 9, T0, int(time.time() * 1000) + HOUR)])
    assert count_at(datetime.now(UTC)) == [2, 5, 2]  # committed, but "ingested" an hour from now
    assert count_at(ahead) == [2, 9, 2]  # by snapshot id, everything the snapshot holds
    assert count_at(datetime.now(UTC) + timedelta(hours=2)) == [2, 9, 2]


def test_as_of_a_time_whose_snapshot_was_expired_is_an_error_not_an_empty_read(
    tmp_path: Path, catalog: FeatureCatalog
) -> None:
    from sinks.iceberg.maintenance import expire_snapshots

    table = iceberg_table(tmp_path)
    count = _feature(catalog, "count_5m")
    append(table, [Row(count, "e1", 1, T0, int(time.time() * 1000))])
    time.sleep(0.01)
    between = datetime.now(UTC)
    time.sleep(0.01)
    append(table, [Row(count, "e1", 2, T0, int(time.time() * 1000))])
    labels = labels_table([("e1", T0)])

    def count_at(as_of: Any) -> list[Any]:
        return _count_5m(table, catalog, labels, as_of)

    assert count_at(between) == [1]
    table, _ = expire_snapshots(table)
    with pytest.raises(DatasetError, match=r"history at .* was expired: its oldest snapshot kept is"):
        count_at(between)
    # Before the table's first snapshot: nothing, as before the expiry (which recorded that snapshot's time).
    assert count_at(datetime(2000, 1, 1, tzinfo=UTC)) == [None]
    assert count_at(datetime.now(UTC)) == [2]  # a time the kept snapshot covers
    assert count_at(None) == [2]


def test_as_of_also_bounds_the_reach_of_the_data(tmp_path: Path, catalog: FeatureCatalog) -> None:
    """A late row of *another* entity must not turn a stored value into an empty window as of earlier."""
    table = iceberg_table(tmp_path)
    count = _feature(catalog, "count_5m")
    early = append(table, [Row(count, "e1", 4, T0, INGEST0)])
    append(table, [Row(count, "e0", 1, T0 + 30 * MIN, INGEST0 + 1)])
    labels = labels_table([("e1", T0 + 10 * MIN)])

    def count_at(as_of: Any) -> list[Any]:
        return _count_5m(table, catalog, labels, as_of)

    assert count_at(None) == [0]  # the data reaches T0 + 30m: the window ending T0 + 10m closed empty
    assert count_at(early) == [4]  # as of the first snapshot the data reached T0 only: the value holds


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"as_of": datetime(2024, 1, 1)}, "as_of must be timezone-aware"),
        ({"as_of": 12345}, "the offline table has no snapshot 12345"),
        ({"as_of": "2024-01-01"}, "as_of must be a snapshot id (int) or a timezone-aware datetime"),
        ({"as_of": True}, "as_of must be a snapshot id"),
        ({"chunk_rows": 0}, "chunk_rows must be positive"),
    ],
)
def test_bad_as_of(tmp_path: Path, catalog: FeatureCatalog, kwargs: dict[str, Any], message: str) -> None:
    table = iceberg_table(tmp_path)
    snapshot = append(table, [Row(_feature(catalog, "count_5m"), "e1", 1, T0, INGEST0)])
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        get_historical_features(
            table, catalog, labels_table([("e1", T0)]), ["count_5m"], entity_type="user", entity_column="who", **kwargs
        )
    with pytest.raises(DatasetError, match="either snapshot_id or as_of"):
        get_historical_features(
            table,
            catalog,
            labels_table([("e1", T0)]),
            ["count_5m"],
            entity_type="user",
            entity_column="who",
            snapshot_id=snapshot,
            as_of=snapshot,
        )
