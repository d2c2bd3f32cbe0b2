"""The offline Python API called as from a notebook: what callers pass that is not what the API takes is one typed
error (``FeatureStoreError``) naming it, never a traceback from inside Arrow, a silently slow join or output
columns under other names (audit, 2026-12-07)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.errors import DatasetError, DefinitionError
from serving.offline.batch_scoring import export_feature_vectors
from serving.offline.historical import (
    EntityFeatures,
    get_historical_features,
    get_historical_vectors,
    join_label_batches,
)
from serving.offline.training import build_training_set
from sinks.iceberg.as_of import read_point
from tests.unit.test_training_sets import INGEST0, MIN, T0, Row, append, catalog, iceberg_table, labels_table

__all__ = ["catalog"]  # the fixture, used by name

LABELS = [("e1", T0 + 6 * MIN), ("e2", T0 + 6 * MIN), ("e1", T0 + 3 * MIN)]


@pytest.fixture
def table(tmp_path: Path, catalog: FeatureCatalog) -> Any:
    count = catalog.get("user", "count_5m")
    table = iceberg_table(tmp_path)
    append(table, [Row(count, "e1", 3, T0 + 5 * MIN, INGEST0), Row(count, "e2", 7, T0 + 5 * MIN, INGEST0)])
    return table


_DEFAULT: Any = object()


def _historical(
    table: Any, catalog: FeatureCatalog, labels: Any = _DEFAULT, features: Any = _DEFAULT, **kwargs: Any
) -> Any:
    return get_historical_features(
        table,
        catalog,
        labels_table(LABELS) if labels is _DEFAULT else labels,
        ["count_5m"] if features is _DEFAULT else features,
        entity_type="user",
        entity_column="who",
        **kwargs,
    )


@pytest.mark.parametrize("chunk_rows", [True, 1.5, None, "10", 0])
def test_a_chunk_rows_that_is_not_a_whole_number_is_refused_everywhere(
    table: Any, catalog: FeatureCatalog, chunk_rows: Any
) -> None:
    """``True`` was taken as 1 (a join of one label at a time: 13 ms a label), a float or None raised a TypeError
    from inside the join."""
    calls = {
        "historical": lambda: _historical(table, catalog, chunk_rows=chunk_rows),
        "vectors": lambda: get_historical_vectors(
            table, catalog, labels_table(LABELS), [EntityFeatures("user", "who", ["count_5m"])], chunk_rows=chunk_rows
        ),
        "build": lambda: build_training_set(
            table,
            catalog,
            labels_table(LABELS),
            ["count_5m"],
            entity_type="user",
            entity_column="who",
            chunk_rows=chunk_rows,
        ),
        "export": lambda: export_feature_vectors(
            table, catalog, "user", ["count_5m"], datetime.now(UTC), chunk_rows=chunk_rows
        ),
    }
    for name, call in calls.items():
        with pytest.raises(DatasetError, match=r"chunk_rows must be positive \(a whole number of at least 1\)"):
            call()
        assert name


def test_labels_that_are_no_arrow_table_are_refused_with_the_conversion_to_use(
    table: Any, catalog: FeatureCatalog
) -> None:
    import pandas as pd

    frame = pd.DataFrame({"who": ["e1"], "event_timestamp": [pd.Timestamp(T0 + 6 * MIN, unit="ms", tz="UTC")]})
    for call in (
        lambda labels: _historical(table, catalog, labels),
        lambda labels: get_historical_vectors(table, catalog, labels, [EntityFeatures("user", "who", ["count_5m"])]),
        lambda labels: build_training_set(
            table, catalog, labels, ["count_5m"], entity_type="user", entity_column="who"
        ),
    ):
        with pytest.raises(DatasetError, match=r"not pandas\.core\.frame\.DataFrame: convert it with pyarrow\.Table"):
            call(frame)
        with pytest.raises(DatasetError, match=r"labels must be a pyarrow\.Table, not builtins\.NoneType"):
            call(None)
        with pytest.raises(DatasetError, match=r"RecordBatch: make it one with pyarrow\.Table\.from_batches"):
            call(labels_table(LABELS).to_batches()[0])
    converted = pa.Table.from_pandas(frame, preserve_index=False)  # as the message says: the join answers
    assert _historical(table, catalog, converted).column("count_5m").to_pylist() == [3]


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ("count_5m", r"not str 'count_5m' \(one string would be read as its characters\)"),
        (None, "features must be a list of feature names, not NoneType"),
        ([], "give at least one feature"),
        ([1], "feature names must be strings, not 1"),
    ],
)
def test_features_that_are_no_list_of_names_are_refused(
    table: Any, catalog: FeatureCatalog, features: Any, message: str
) -> None:
    """One string was read as its characters ('_', '5' malformed, or 't', 'x', 'n' unknown), and no feature at all
    gave the labels back (a training set of no feature recorded)."""
    with pytest.raises(DefinitionError, match=message):
        _historical(table, catalog, features=features)
    with pytest.raises(DefinitionError, match=message):
        build_training_set(table, catalog, labels_table(LABELS), features, entity_type="user", entity_column="who")
    with pytest.raises(DefinitionError, match=message):
        get_historical_vectors(table, catalog, labels_table(LABELS), [EntityFeatures("user", "who", features)])


def _batches(table: Any, catalog: FeatureCatalog, labels_schema: pa.Schema, batches: Any) -> pa.Table:
    results = join_label_batches(
        table,
        [catalog.get("user", "count_5m")],
        labels_schema,
        batches,
        entity_type="user",
        entity_column="who",
        timestamp_column="event_timestamp",
        point=read_point(table, None),
    )
    return pa.Table.from_batches(list(results))


def test_label_batches_are_held_to_the_labels_schema_by_name(table: Any, catalog: FeatureCatalog) -> None:
    """A batch whose columns came in another order than ``labels_schema``'s was labelled by position: the ids
    under another column's name, the join right, no error. Columns are now taken by name; a batch lacking one,
    with another, or one of another type is a DefinitionError naming the batch; a Table is read as its batches."""
    labels = labels_table(LABELS)
    expected = _historical(table, catalog)
    assert expected.column("count_5m").to_pylist() == [3, 7, None]
    reordered = labels.select(["event_timestamp", "target", "who", "row_id"]).to_batches()
    assert _batches(table, catalog, labels.schema, reordered) == expected
    assert _batches(table, catalog, labels.schema, labels) == expected  # a Table: its batches
    for batch, message in (
        (labels.drop_columns(["target"]).to_batches()[0], r"label batch 1 has the columns .* \(missing \['target'\]"),
        (labels.append_column("x", pa.array([1, 2, 3])).to_batches()[0], r"not in it \['x'\]"),
        (labels.set_column(0, "row_id", pa.array(["a", "b", "c"])).to_batches()[0], "column 'row_id' is string"),
        (labels.column("who"), "label batch 1 is a ChunkedArray, not a pyarrow.RecordBatch"),
    ):
        with pytest.raises(DefinitionError, match=message):
            _batches(table, catalog, labels.schema, [batch])


def test_a_numpy_integer_snapshot_id_reads_that_snapshot(table: Any, catalog: FeatureCatalog) -> None:
    """A snapshot id taken from a DataFrame is a numpy integer: it was refused as 'as_of must be ... (int)'."""
    snapshot = table.current_snapshot().snapshot_id
    expected = _historical(table, catalog, snapshot_id=snapshot)
    assert _historical(table, catalog, snapshot_id=np.int64(snapshot)) == expected
    assert _historical(table, catalog, as_of=np.int64(snapshot)) == expected


def test_a_numpy_integer_snapshot_id_builds_the_training_set_of_that_snapshot(
    table: Any, catalog: FeatureCatalog
) -> None:
    """The join read it, then the manifest refused it after the join ('as_of must be a timezone-aware datetime')."""
    snapshot = table.current_snapshot().snapshot_id
    join: dict[str, Any] = {"entity_type": "user", "entity_column": "who"}
    plain = build_training_set(table, catalog, labels_table(LABELS), ["count_5m"], as_of=snapshot, **join)
    numpy_id: Any = np.int64(snapshot)
    numpy = build_training_set(table, catalog, labels_table(LABELS), ["count_5m"], as_of=numpy_id, **join)
    assert numpy.manifest.as_of == plain.manifest.as_of == f"snapshot:{snapshot}"
    assert numpy.manifest.id == plain.manifest.id and numpy.table == plain.table
