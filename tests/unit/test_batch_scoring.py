"""Batch scoring: every entity's feature vector as of a time, on a real local Iceberg table."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DatasetError, UnknownFeatureError
from registry.definition_store import DefinitionStore
from serving.offline.batch_scoring import export_feature_vectors, main
from serving.offline.historical import get_historical_features
from sinks.iceberg import layout as offline_layout
from sinks.iceberg.writer import ensure_table

MIN = 60_000
T0 = 1_700_000_000_000 // (60 * MIN) * (60 * MIN)
OLD = T0 + 24 * 60 * MIN  # an ingestion clock well before the wall clock


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@pytest.fixture(scope="module")
def catalog(make_definition: Callable[..., FeatureDefinition]) -> FeatureCatalog:
    five = {"kind": "tumbling", "size": "5m"}
    return FeatureCatalog(
        [
            make_definition(name="count_5m", window=five, ttl="20m"),
            make_definition(
                name="last_merchant",
                value_type="string",
                window=five,
                ttl="1h",
                aggregation={"function": "last", "field": "merchant_id"},
            ),
            make_definition(name="count_5m", version=2, window=five, ttl="30m"),
            make_definition(name="count_5m", entity="merchant", window=five, ttl="20m"),
        ],
        {("user", "count_5m"): 1},
    )


def _append(table: Any, rows: list[tuple[FeatureDefinition, str, Any, int, int]]) -> int:
    schema = offline_layout.arrow_schema()
    records = [
        {
            "entity_type": d.entity,
            "entity_id": e,
            "feature_name": d.name,
            "feature_version": d.version,
            "event_time": end * 1000,
            "window_start": (end - 5 * MIN) * 1000,
            "value_long": v if d.value_type == "long" else None,
            "value_string": v if d.value_type == "string" else None,
            "ingested_at": ingested * 1000,
        }
        for d, e, v, end, ingested in rows
    ]
    table.append(pa.Table.from_pylist(records, schema=schema))
    return table.metadata.current_snapshot_id


@pytest.fixture
def offline(tmp_path: Path, catalog: FeatureCatalog) -> tuple[Any, int, datetime]:
    from pyiceberg.catalog.sql import SqlCatalog

    table = ensure_table(
        SqlCatalog("feature_store", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=(tmp_path / "wh").as_uri()), "fs"
    )
    count, last = catalog.get("user", "count_5m", 1), catalog.get("user", "last_merchant")
    v2, merchant = catalog.get("user", "count_5m", 2), catalog.get("merchant", "count_5m")
    first = _append(
        table,
        [
            (count, "u1", 4, T0, OLD),
            (last, "u1", "m9", T0 - 5 * MIN, OLD),  # fresh at T0 + 10m
            (count, "u2", 2, T0 - 30 * MIN, OLD),  # expired by T0 + 10m (ttl 20m)
            (count, "u3", 8, T0 + 20 * MIN, OLD),  # only after the time: not an entity yet
            (v2, "u4", 1, T0, OLD),  # another version only
            (merchant, "m1", 5, T0, OLD),  # another entity type
            (count, "u0", 1, T0 + 10 * MIN, OLD),  # the data reaches T0 + 10m
        ],
    )
    time.sleep(0.01)
    between = datetime.now(UTC)
    time.sleep(0.01)
    _append(table, [(count, "u5", 6, T0, int(time.time() * 1000)), (count, "u1", 40, T0, int(time.time() * 1000))])
    return table, first, between


def test_every_entity_seen_by_then_with_the_training_rule(
    offline: tuple[Any, int, datetime], catalog: FeatureCatalog
) -> None:
    table, _, _ = offline
    at = _at(T0 + 10 * MIN)
    vectors = export_feature_vectors(table, catalog, "user", ["count_5m", "last_merchant"], at, chunk_rows=2)
    assert vectors.column_names == ["entity_id", "as_of", "count_5m", "last_merchant"]
    assert vectors.column("entity_id").to_pylist() == ["u0", "u1", "u2", "u5"]
    assert vectors.column("count_5m").to_pylist() == [1, 0, None, 0]  # u1, u5: window T0+5m closed empty
    assert vectors.column("last_merchant").to_pylist() == [None, "m9", None, None]
    assert set(vectors.column("as_of").to_pylist()) == {at}
    # The same values a training row labelled at that time gets.
    labels = pa.table({"user": vectors.column("entity_id"), "event_timestamp": vectors.column("as_of")})
    joined = get_historical_features(
        table, catalog, labels, ["count_5m", "last_merchant"], entity_type="user", entity_column="user"
    )
    assert joined.column("count_5m").equals(vectors.column("count_5m"))
    assert joined.column("last_merchant").equals(vectors.column("last_merchant"))


def test_read_as_of_pins_what_is_read(offline: tuple[Any, int, datetime], catalog: FeatureCatalog) -> None:
    table, first, between = offline
    at = _at(T0)

    def counts(**kwargs: Any) -> dict[str, Any]:
        vectors = export_feature_vectors(table, catalog, "user", ["count_5m"], at, **kwargs)
        return dict(zip(vectors.column("entity_id").to_pylist(), vectors.column("count_5m").to_pylist(), strict=True))

    assert counts() == {"u1": 40, "u2": None, "u5": 6}  # the later append recomputed u1 and added u5
    # Scoring T0 with only what was known at `between` (or in the first snapshot): no u5, u1's first value.
    assert counts(read_as_of=between) == counts(read_as_of=first) == {"u1": 4, "u2": None}
    assert counts(read_as_of=datetime.now(UTC) - timedelta(days=3650)) == {}  # before any snapshot


def test_pinned_versions_empty_results_and_errors(offline: tuple[Any, int, datetime], catalog: FeatureCatalog) -> None:
    table, _, _ = offline
    v2 = export_feature_vectors(table, catalog, "user", ["count_5m@v2"], _at(T0))
    assert v2.column("entity_id").to_pylist() == ["u4"] and v2.column("count_5m").to_pylist() == [1]
    before = export_feature_vectors(table, catalog, "user", ["count_5m"], _at(T0 - 60 * MIN))
    assert before.num_rows == 0 and before.schema.field("count_5m").type == pa.int64()
    with pytest.raises(UnknownFeatureError):
        export_feature_vectors(table, catalog, "user", ["nope"], _at(T0))
    with pytest.raises(DatasetError, match="timezone-aware"):
        export_feature_vectors(table, catalog, "user", ["count_5m"], datetime(2024, 1, 1))


def test_cli_writes_parquet(
    offline: tuple[Any, int, datetime], catalog: FeatureCatalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "definitions.db"
    store = DefinitionStore(db)
    for d in sorted(catalog, key=lambda d: d.key):
        store.register(d)
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    out = tmp_path / "vectors.parquet"
    args = ["--entity-type", "user", "--features", "count_5m,last_merchant", "--out", str(out), "--chunk-rows", "1"]
    assert main([*args, "--as-of", str(T0 + 10 * MIN)]) == 0
    table, _, _ = offline
    expected = export_feature_vectors(table, catalog, "user", ["count_5m", "last_merchant"], _at(T0 + 10 * MIN))
    assert pq.read_table(out).equals(expected)
    assert main([*args, "--as-of", "2024-01-01T00:00:00"]) == 1  # no zone
    _, first, _ = offline
    assert main([*args, "--as-of", str(T0), "--snapshot-id", str(first)]) == 0
    assert pq.read_table(out).column("entity_id").to_pylist() == ["u1", "u2"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--as-of", "99999999999999999"], "error: --as-of '99999999999999999' epoch milliseconds is past the year"),
        (["--as-of", "1", "--read-as-of", "nope"], "error: --read-as-of 'nope' is neither"),
        (
            ["--as-of", "1", "--read-as-of", "1", "--snapshot-id", "3"],
            "error: give either --snapshot-id or --read-as-of",
        ),
        (["--as-of", "1"], "error: offline table fs.offline_feature_values does not exist"),
    ],
)
def test_cli_bad_times_and_a_missing_table_are_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    DefinitionStore(tmp_path / "definitions.db")
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "definitions.db"))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/fresh.db")  # no offline table yet
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    args = ["--entity-type", "user", "--features", "count_5m", "--out", str(tmp_path / "v.parquet")]
    assert main([*args, *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


@pytest.mark.parametrize("name", ["entity_id", "as_of"])
def test_a_feature_named_like_an_export_column_is_refused_naming_the_export(
    offline: tuple[Any, int, datetime], make_definition: Callable[..., FeatureDefinition], name: str
) -> None:
    """The export's own columns are ``entity_id`` and ``as_of``: a feature of either name would be a second column
    of that name. Refused before any read, naming the export's columns (it was the join's message about a
    "label frame", which batch scoring has none of)."""
    from registry.core.errors import DefinitionError

    table, _, _ = offline
    clashing = FeatureCatalog([make_definition(name=name, window={"kind": "tumbling", "size": "5m"}, ttl="20m")])
    with pytest.raises(DefinitionError, match=f"feature\\(s\\) \\['{name}'\\] would name two columns of the export"):
        export_feature_vectors(table, clashing, "user", [name], _at(T0))
