"""Training sets on a real local Iceberg table: as_of (snapshot and time), chunking, manifests, rebuilds, model links.

The join is checked against a brute-force reference that also knows about ``as_of``: a row is
visible if its snapshot is at or before the one read and, for a time, if it was ingested by then.
Data is adversarial: windows stored twice (later, earlier and *equal* ingestion), rows from a
writer whose clock runs ahead (ingested "in the future"), labels exactly on window ends and TTL
edges, 1 ms either side, duplicated, for unknown entities, in several chunks across TTL boundaries.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.durations import to_millis
from registry.core.errors import DatasetError, DefinitionError
from registry.core.timeline import resolve, step_ms, tie_key
from registry.definition_store import DefinitionStore
from registry.training_sets import Manifest, TrainingSetStore
from serving.offline.content_hash import ContentHasher, content_sha256
from serving.offline.feature_resolution import resolve_features
from serving.offline.historical import get_historical_features, join_label_batches
from serving.offline.training import build_parquet, build_training_set, rebuild, rebuild_parquet
from sinks.iceberg import layout as offline_layout
from sinks.iceberg.as_of import read_point
from sinks.iceberg.reader import data_reach
from sinks.iceberg.writer import ensure_table

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
T0 = 1_700_000_000_000 // HOUR * HOUR
INGEST0 = T0 + DAY  # synthetic ingestion clock: far before the wall clock
ENTITIES = ("e0", "e1", "e2")
GHOST = "nobody"


def stored_definitions(make_definition: Callable[..., FeatureDefinition]) -> list[FeatureDefinition]:
    """The definitions of this module's catalog (test_request_features.py joins them too)."""
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
    with pytest.raises(DatasetError, match="was expired"):  # whether the table began later is not known any more
        count_at(datetime(2000, 1, 1, tzinfo=UTC))
    assert count_at(datetime.now(UTC)) == [2]  # a time the kept snapshot covers
    assert count_at(None) == [2]


def test_labels_within_a_ttl_of_year_one_get_their_rows(tmp_path: Path, catalog: FeatureCatalog) -> None:
    """A label minutes after 0001-01-01 reaches a TTL back past the first time a datetime spells: every label
    row still gets its one output row (it crashed with OverflowError)."""
    table = iceberg_table(tmp_path)
    count = _feature(catalog, "count_5m")
    append(table, [Row(count, "e0", 3, T0, T0 + HOUR)])
    year_one = (datetime(1, 1, 1, 0, 5, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    labels = labels_table([("e0", year_one), ("e0", T0)])
    result = get_historical_features(table, catalog, labels, ["count_5m"], entity_type="user", entity_column="who")
    assert result.column("count_5m").to_pylist() == [None, 3]


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


def test_pinned_versions_and_duplicates(tmp_path: Path, catalog: FeatureCatalog) -> None:
    table = iceberg_table(tmp_path)
    v1, v2 = _feature(catalog, "amount_max", 1), _feature(catalog, "amount_max", 2)
    append(table, [Row(v1, "e1", 1.0, T0, INGEST0), Row(v2, "e1", 2.0, T0, INGEST0)])
    labels = labels_table([("e1", T0)])
    join = lambda features: get_historical_features(  # noqa: E731
        table,
        catalog,
        labels,
        features,
        entity_type="user",
        entity_column="who",
    )
    assert join(["amount_max"]).column("amount_max").to_pylist() == [2.0]
    assert join(["amount_max@v1"]).column("amount_max").to_pylist() == [1.0]
    with pytest.raises(DefinitionError, match="more than once"):
        join(["amount_max@v1", "amount_max"])
    with pytest.raises(DefinitionError, match="amount_max@v9"):
        join(["amount_max@v9"])


def test_equal_ingestion_ties_do_not_depend_on_append_order(tmp_path: Path, catalog: FeatureCatalog) -> None:
    total = _feature(catalog, "sum_10m")
    results = []
    for i, order in enumerate([(1.5, 7.0, 3.0), (7.0, 3.0, 1.5), (3.0, 1.5, 7.0)]):
        table = iceberg_table(tmp_path / str(i))
        for value in order:
            append(table, [Row(total, "e1", value, T0, INGEST0)])
        results.append(
            get_historical_features(
                table, catalog, labels_table([("e1", T0)]), ["sum_10m"], entity_type="user", entity_column="who"
            )
            .column("sum_10m")
            .to_pylist()
        )
    assert results == [[7.0]] * 3


def test_sub_millisecond_window_ends_compare_at_full_precision(tmp_path: Path, catalog: FeatureCatalog) -> None:
    table = iceberg_table(tmp_path)
    count = _feature(catalog, "count_5m")
    schema = offline_layout.arrow_schema()
    row = {
        "entity_type": "user",
        "entity_id": "e1",
        "feature_name": count.name,
        "feature_version": count.version,
        "event_time": T0 * 1000 + 500,
        "window_start": None,
        "value_long": 3,
        "value_double": None,
        "value_string": None,
        "value_boolean": None,
        "ingested_at": INGEST0 * 1000,
    }
    table.append(pa.Table.from_pylist([row], schema=schema))
    labels = pa.table(
        {
            "who": ["e1", "e1", "e1", "e1"],
            "event_timestamp": pa.array(
                [T0 * 1000 + 500, T0 * 1000 + 499, T0 * 1000, T0 * 1000 + 501], pa.timestamp("us")
            ),
        }
    )
    result = get_historical_features(table, catalog, labels, ["count_5m"], entity_type="user", entity_column="who")
    # The row ends at T0 + 500 µs: in the future of labels before that, by any fraction of a millisecond.
    assert result.column("count_5m").to_pylist() == [3, None, None, 3]


def test_reach_searches_back_beyond_the_newest_day(tmp_path: Path, catalog: FeatureCatalog) -> None:
    table = iceberg_table(tmp_path)
    count, total = _feature(catalog, "count_5m"), _feature(catalog, "sum_10m")
    last = _feature(catalog, "last_merchant")
    append(
        table,
        [
            Row(count, "e1", 1, T0 + 40 * DAY, INGEST0),
            Row(count, "e2", 1, T0, INGEST0),
            Row(total, "e1", 2.0, T0 - 3 * DAY, INGEST0),
            Row(total, "e2", 2.0, T0 - 90 * DAY, INGEST0),
        ],
    )
    append(table, [Row(total, "e0", 2.0, T0 - 200 * DAY, INGEST0 + 1)])
    point = read_point(table, None)
    assert data_reach(table, point, "user", [count, total, last]) == {
        ("count_5m", 1): (T0 + 40 * DAY) * 1000,
        ("sum_10m", 1): (T0 - 3 * DAY) * 1000,
    }
    assert data_reach(table, point, "merchant", [catalog.get("merchant", "count_5m")]) == {}


# --- manifests and rebuilds --------------------------------------------------------------------------


@pytest.fixture
def built(tmp_path: Path, catalog: FeatureCatalog) -> tuple[Any, list[Row], list[tuple[str, int]]]:
    batches, labels = scenario(11, catalog)
    table = iceberg_table(tmp_path)
    write(table, batches)
    return table, [r for b in batches for r in b], labels


def test_manifest_rebuilds_an_identical_table(
    built: tuple[Any, list[Row], list[tuple[str, int]]], catalog: FeatureCatalog
) -> None:
    table, _, labels = built
    given = labels_table(labels)
    first = build_training_set(table, catalog, given, FEATURES, entity_type="user", entity_column="who", chunk_rows=3)
    m = first.manifest
    assert first.table.equals(
        get_historical_features(table, catalog, given, FEATURES, entity_type="user", entity_column="who")
    )
    assert m.row_count == given.num_rows == m.labels_rows
    assert m.snapshot_id == table.metadata.current_snapshot_id and m.as_of is None and m.ingested_until is None
    assert [(f.name, f.version) for f in m.features] == [
        ("count_5m", 1),
        ("sum_10m", 1),
        ("last_merchant", 1),
        ("amount_max", 2),
    ]
    assert m.features[3].identity_hash == _feature(catalog, "amount_max").identity_hash
    assert m.content_sha256 == content_sha256(first.table) and m.labels_sha256 == content_sha256(given)
    assert "pyarrow" in m.code_version

    # Later: more data lands, and v1 of amount_max becomes the active version. The rebuild does not care.
    append(table, [Row(_feature(catalog, "count_5m"), "e1", 99, T0 + HOUR, INGEST0 + 5)])
    store_catalog = FeatureCatalog(list(catalog), {("user", "amount_max"): 1})
    again = rebuild(table, store_catalog, Manifest.from_json(m.to_json()), given, chunk_rows=100)
    assert again.table.equals(first.table)
    assert content_sha256(again.table) == m.content_sha256
    assert again.manifest == m


def test_rebuild_refuses_what_differs(
    built: tuple[Any, list[Row], list[tuple[str, int]]],
    catalog: FeatureCatalog,
    make_definition: Callable[..., FeatureDefinition],
) -> None:
    table, _, labels = built
    given = labels_table(labels)
    as_of = datetime.now(UTC)
    m = build_training_set(
        table, catalog, given, FEATURES, entity_type="user", entity_column="who", as_of=as_of
    ).manifest
    assert m.as_of is not None and m.ingested_until == m.as_of
    assert rebuild(table, catalog, m, given).table.num_rows == given.num_rows
    with pytest.raises(DatasetError, match="these labels are not training set"):
        rebuild(table, catalog, m, given.slice(1))
    changed = FeatureCatalog(
        [d for d in catalog if d.name != "count_5m" or d.entity != "user"]
        + [make_definition(name="count_5m", window={"kind": "tumbling", "size": "5m"}, ttl="21m")]
    )
    with pytest.raises(DatasetError, match="count_5m@v1 changed since"):
        rebuild(table, changed, m, given)
    with pytest.raises(DatasetError, match="differs"):
        rebuild(table, catalog, m.model_copy(update={"content_sha256": "0" * 64}), given)
    with pytest.raises(DatasetError, match="no snapshot 42 any more"):
        rebuild(table, catalog, m.model_copy(update={"snapshot_id": 42}), given)


def test_manifest_id_is_its_content(
    built: tuple[Any, list[Row], list[tuple[str, int]]], catalog: FeatureCatalog
) -> None:
    table, _, labels = built
    given = labels_table(labels)
    a = build_training_set(table, catalog, given, FEATURES, entity_type="user", entity_column="who").manifest
    b = build_training_set(table, catalog, given, FEATURES, entity_type="user", entity_column="who").manifest
    c = build_training_set(table, catalog, given, FEATURES[:2], entity_type="user", entity_column="who").manifest
    assert a.id == b.id != c.id
    assert json.loads(a.to_json())["id"] == a.id == Manifest.content_id(a.model_dump(mode="json"))


def test_parquet_build_and_rebuild_match_the_in_memory_ones(
    built: tuple[Any, list[Row], list[tuple[str, int]]], catalog: FeatureCatalog, tmp_path: Path
) -> None:
    table, _, labels = built
    pq.write_table(labels_table(labels), tmp_path / "labels.parquet")
    given = pq.read_table(tmp_path / "labels.parquet")
    in_memory = build_training_set(table, catalog, given, FEATURES, entity_type="user", entity_column="who")
    m = build_parquet(
        table,
        catalog,
        tmp_path / "labels.parquet",
        tmp_path / "out.parquet",
        FEATURES,
        entity_type="user",
        entity_column="who",
        chunk_rows=4,
    )
    assert (m.content_sha256, m.labels_sha256) == (in_memory.manifest.content_sha256, in_memory.manifest.labels_sha256)
    assert pq.read_table(tmp_path / "out.parquet").equals(in_memory.table)
    rebuild_parquet(table, catalog, m, tmp_path / "labels.parquet", tmp_path / "again.parquet", chunk_rows=5)
    assert pq.read_table(tmp_path / "again.parquet").equals(in_memory.table)
    # Byte for byte, whatever the chunks either was joined in (the row groups do not follow them).
    rebuild_parquet(table, catalog, m, tmp_path / "labels.parquet", tmp_path / "default.parquet")
    assert (tmp_path / "again.parquet").read_bytes() == (tmp_path / "out.parquet").read_bytes()
    assert (tmp_path / "default.parquet").read_bytes() == (tmp_path / "out.parquet").read_bytes()
    with pytest.raises(DatasetError, match="differs"):
        rebuild_parquet(
            table, catalog, m.model_copy(update={"row_count": 1}), tmp_path / "labels.parquet", tmp_path / "bad.parquet"
        )
    assert not (tmp_path / "bad.parquet").exists()  # a differing result never appears under its name


def test_written_row_groups_do_not_follow_the_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.offline import command_io

    monkeypatch.setattr(command_io, "OUTPUT_ROW_GROUP_ROWS", 10)
    table = pa.table({"x": pa.array(range(35), pa.int64())})
    for size in (1, 3, 10, 35):
        rows = command_io.write_parquet(
            table.to_batches(max_chunksize=size), table.schema, tmp_path / f"{size}.parquet"
        )
        assert rows == 35
        metadata = pq.ParquetFile(tmp_path / f"{size}.parquet").metadata
        assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [10, 10, 10, 5]
        assert (tmp_path / f"{size}.parquet").read_bytes() == (tmp_path / "1.parquet").read_bytes()
    assert command_io.write_parquet(iter([]), table.schema, tmp_path / "empty.parquet") == 0
    assert pq.read_table(tmp_path / "empty.parquet").num_rows == 0


def test_content_hash_ignores_layout_and_bytes_under_nulls() -> None:
    values = pa.array([1, 99, 3, 77, 5], pa.int64())
    masked = pa.array([True, False, True, False, True])
    a = pa.table({"x": pa.array([1, None, 3, None, 5], pa.int64()), "s": ["a", None, "c", None, "e"]})
    b = pa.table(
        {
            "x": values.take(pa.array([0, None, 2, None, 4])),
            "s": pa.array(["a", "zz", "c", "yy", "e"]).filter(pa.array([True] * 5)),
        }
    )
    b = b.set_column(1, "s", pa.compute.if_else(masked, b.column("s"), pa.scalar(None, pa.string())))
    b = b.set_column(0, "x", pa.compute.if_else(masked, values, pa.scalar(None, pa.int64())))
    assert a.equals(b) and content_sha256(a) == content_sha256(b)
    streamed = ContentHasher(a.schema)
    for batch in pa.concat_tables([a] * 30000).to_batches(max_chunksize=7777):
        streamed.update(batch)
    assert streamed.hexdigest() == content_sha256(pa.concat_tables([a] * 30000).combine_chunks())
    assert content_sha256(a) != content_sha256(a.slice(1))
    assert content_sha256(a) != content_sha256(a.set_column(0, "x", pa.array([1, None, 3, None, 6])))


# --- the store of manifests and model links, and the CLI -------------------------------------------


def test_store_keeps_manifests_and_model_links(
    built: tuple[Any, list[Row], list[tuple[str, int]]], catalog: FeatureCatalog, tmp_path: Path
) -> None:
    table, _, labels = built
    m = build_training_set(
        table, catalog, labels_table(labels), FEATURES, entity_type="user", entity_column="who"
    ).manifest
    db = tmp_path / "registry" / "definitions.db"
    DefinitionStore(db)  # the same file holds the definitions
    store = TrainingSetStore(db)
    assert store.record(m, labels_uri="/data/labels.parquet") is True
    assert store.record(m, output_uri="/data/train.parquet") is False
    store.link_model("fraud", "7", m.id)
    store.link_model("fraud", "7", m.id)  # idempotent
    store.link_model("fraud", "8", m.id)
    with pytest.raises(DatasetError, match="no training set 'nope'"):
        store.link_model("fraud", "9", "nope")
    reopened = TrainingSetStore(db)
    stored = reopened.get(m.id)
    assert stored.manifest == m
    assert (stored.labels_uri, stored.output_uri) == ("/data/labels.parquet", "/data/train.parquet")
    assert [(link.model, link.model_version) for link in stored.models] == [("fraud", "7"), ("fraud", "8")]
    assert [link.training_set_id for link in reopened.training_sets_for("fraud", "8")] == [m.id]
    assert reopened.ids() == [m.id]
    with pytest.raises(DatasetError, match="no training set 'x'"):
        reopened.get("x")


def _cli_environment(
    built: tuple[Any, list[Row], list[tuple[str, int]]],
    catalog: FeatureCatalog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """The offline table, the definitions and the FS_* settings the training CLI reads; the labels file."""
    _, rows, labels = built
    folder = tmp_path / "cli"
    write(iceberg_table(folder, "feature_store"), [rows])  # the catalog name connect_iceberg uses
    db = folder / "definitions.db"
    store = DefinitionStore(db)
    for d in sorted(catalog, key=lambda d: d.key):
        store.register(d)
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{folder}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (folder / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    labels_path = tmp_path / "labels.parquet"
    pq.write_table(labels_table(labels), labels_path)
    return labels_path


def _build(labels_path: Path) -> list[str]:
    """``training build`` of count_5m over the labels, without ``--out``."""
    who = ["--entity-type", "user", "--entity-column", "who"]
    return ["build", "--labels", str(labels_path), *who, "--features", "count_5m"]


def test_cli_build_link_show_rebuild(
    built: tuple[Any, list[Row], list[tuple[str, int]]],
    catalog: FeatureCatalog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from serving.offline import training

    _cli_environment(built, catalog, tmp_path, monkeypatch)
    args = [
        "--labels",
        str(tmp_path / "labels.parquet"),
        "--entity-type",
        "user",
        "--entity-column",
        "who",
        "--features",
        "count_5m,amount_max@v1",
        "--chunk-rows",
        "3",
    ]
    assert (
        training.main(
            ["build", *args, "--out", str(tmp_path / "train.parquet"), "--copy-labels-to", str(tmp_path / "kept")]
        )
        == 0
    )
    manifest = Manifest.from_json((tmp_path / "train.parquet.manifest.json").read_text())
    assert [f.ref for f in manifest.features] == ["count_5m@v1", "amount_max@v1"]
    assert training.main(["link-model", "--id", manifest.id, "--model", "fraud", "--model-version", "3"]) == 0
    capsys.readouterr()
    assert training.main(["show", "--id", manifest.id]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["manifest"]["id"] == manifest.id and shown["models"][0]["model"] == "fraud"
    (tmp_path / "labels.parquet").unlink()  # the rebuild reads the kept copy
    assert training.main(["rebuild", "--id", manifest.id, "--out", str(tmp_path / "again.parquet")]) == 0
    assert pq.read_table(tmp_path / "again.parquet").equals(pq.read_table(tmp_path / "train.parquet"))
    # --manifest of a recorded training set takes the recorded labels too (--labels: "default: the labels path
    # recorded at build time"); it was refused with "no labels path recorded".
    manifest_file = str(tmp_path / "train.parquet.manifest.json")
    assert training.main(["rebuild", "--manifest", manifest_file, "--out", str(tmp_path / "again2.parquet")]) == 0
    assert pq.read_table(tmp_path / "again2.parquet").equals(pq.read_table(tmp_path / "train.parquet"))
    assert training.main(["show", "--model", "fraud"]) == 0
    assert manifest.id in capsys.readouterr().out
    assert training.main(["rebuild", "--id", "nope", "--out", str(tmp_path / "x.parquet")]) == 1


def test_a_build_that_cannot_finish_leaves_the_files_it_would_replace_as_they_were(
    built: tuple[Any, list[Row], list[tuple[str, int]]],
    catalog: FeatureCatalog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A manifest or label copy that cannot be written, or `--out` naming the labels: refused before any
    write, so neither a recorded training set nor the labels are replaced."""
    from serving.offline import training

    labels_path = _cli_environment(built, catalog, tmp_path, monkeypatch)
    base = _build(labels_path)
    out = tmp_path / "train.parquet"
    assert training.main([*base, "--out", str(out)]) == 0
    recorded, kept_labels = out.read_bytes(), labels_path.read_bytes()
    (tmp_path / "a_file").write_text("x")
    capsys.readouterr()
    for extra, message in [
        (["--manifest", str(tmp_path / "no" / "m.json")], "--manifest"),
        (["--manifest", str(tmp_path)], "--manifest"),
        (["--copy-labels-to", str(tmp_path / "a_file")], "--copy-labels-to"),
        (["--out", str(labels_path)], "is the labels file"),
    ]:
        argv = [*base, *extra] if "--out" in extra else [*base, "--out", str(out), *extra]
        assert training.main(argv) == 1, extra
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err, err
        assert out.read_bytes() == recorded and labels_path.read_bytes() == kept_labels, extra
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".building")] == []
    not_parquet = tmp_path / "labels.csv"
    not_parquet.write_text("who,event_timestamp\nu1,2024-01-01T00:00:00Z\n")
    assert training.main([*base[:2], str(not_parquet), *base[3:], "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Parquet" in err and "Traceback" not in err, err
    assert out.read_bytes() == recorded


def test_a_build_into_a_folder_or_a_missing_folder_is_refused_before_the_join(
    built: tuple[Any, list[Row], list[tuple[str, int]]],
    catalog: FeatureCatalog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--out` that is a folder failed only when the joined file was moved there, leaving a manifest of a training
    set never recorded; a missing folder was named as --manifest, an option not given."""
    from serving.offline import training

    labels_path = _cli_environment(built, catalog, tmp_path, monkeypatch)
    base = _build(labels_path)
    (tmp_path / "outdir").mkdir()
    capsys.readouterr()
    for out in (tmp_path / "outdir", tmp_path / "nodir" / "x.parquet"):
        assert training.main([*base, "--out", str(out)]) == 1
        assert capsys.readouterr().err == f"error: --out {out}: not a file in an existing directory\n"
    assert sorted(p.name for p in tmp_path.iterdir() if "manifest" in p.name or p.name.endswith(".building")) == []
    assert list((tmp_path / "outdir").iterdir()) == []


def test_a_labels_copy_made_by_building_a_recorded_training_set_again_is_what_rebuilds_read(
    built: tuple[Any, list[Row], list[tuple[str, int]]],
    catalog: FeatureCatalog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same training set built again with --copy-labels-to kept its first labels path: once that file was gone,
    `rebuild --id` failed on it (an Arrow error naming no option)."""
    from registry.training_sets import TrainingSetStore
    from serving.offline import training

    labels_path = _cli_environment(built, catalog, tmp_path, monkeypatch)
    base = _build(labels_path)
    assert training.main([*base, "--out", str(tmp_path / "one.parquet")]) == 0
    kept = tmp_path / "kept"
    assert training.main([*base, "--out", str(tmp_path / "two.parquet"), "--copy-labels-to", str(kept)]) == 0
    manifest = Manifest.from_json((tmp_path / "two.parquet.manifest.json").read_text())
    stored = TrainingSetStore(Path(os.environ["FS_DEFINITIONS_DB"])).get(manifest.id)
    assert stored.labels_uri == str((kept / f"{manifest.id}.labels.parquet").resolve())
    labels_path.unlink()
    assert training.main(["rebuild", "--id", manifest.id, "--out", str(tmp_path / "again.parquet")]) == 0
    assert pq.read_table(tmp_path / "again.parquet").equals(pq.read_table(tmp_path / "one.parquet"))
    (kept / f"{manifest.id}.labels.parquet").unlink()
    capsys.readouterr()
    assert training.main(["rebuild", "--id", manifest.id, "--out", str(tmp_path / "x.parquet")]) == 1
    assert capsys.readouterr().err == (
        f"error: labels {stored.labels_uri} recorded for training set {manifest.id} not found: pass --labels\n"
    )


def test_null_and_integer_entities_and_the_historical_cli(
    tmp_path: Path, catalog: FeatureCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.offline import historical

    folder = tmp_path / "cli"
    table = iceberg_table(folder, "feature_store")
    count = _feature(catalog, "count_5m")
    append(table, [Row(count, "7", 3, T0, INGEST0), Row(count, "8", 4, T0, INGEST0)])
    labels = pa.table(
        {"who": pa.array([7, None, 8, 9], pa.int64()), "event_timestamp": pa.array([T0] * 4, pa.timestamp("ms"))}
    )
    result = get_historical_features(table, catalog, labels, ["count_5m"], entity_type="user", entity_column="who")
    assert result.column("count_5m").to_pylist() == [3, None, 4, None]
    db = folder / "definitions.db"
    store = DefinitionStore(db)
    for d in sorted(catalog, key=lambda d: d.key):
        store.register(d)
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{folder}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (folder / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    pq.write_table(labels, tmp_path / "labels.parquet")
    args = [
        "--labels",
        str(tmp_path / "labels.parquet"),
        "--out",
        str(tmp_path / "out.parquet"),
        "--entity-type",
        "user",
        "--entity-column",
        "who",
        "--features",
        "count_5m",
        "--chunk-rows",
        "2",
    ]
    assert historical.main(args) == 0
    assert pq.read_table(tmp_path / "out.parquet").equals(result)
    assert historical.main([*args, "--as-of", "2000-01-01T00:00:00Z"]) == 0  # before any snapshot: all null
    assert pq.read_table(tmp_path / "out.parquet").column("count_5m").null_count == 4
    assert historical.main([*args, "--as-of", "yesterday"]) == 1
    assert historical.main([*args, "--features", "nope"]) == 1
    assert not list(tmp_path.glob(".out.parquet.*"))  # no partial file left behind
