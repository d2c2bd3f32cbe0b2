"""get_historical_features at the edges: no rows, empty or bad label frames, integer entities, exact longs, ties."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.errors import DefinitionError, UnknownFeatureError
from serving.offline.historical import get_historical_features
from sinks.iceberg.writer import OfflineWriter
from sinks.records import FeatureRow
from tests.unit.test_historical_reference import (
    CLOCK0,
    FEATURES,
    GHOST,
    HOUR,
    T0,
    Written,
    _us,
    catalog,
    hand_table,
    iceberg_table,
    label_table,
    write,
)

__all__ = ["catalog", "hand_table"]  # the fixtures, used by name


def test_no_rows_at_all(tmp_path: Path, catalog: FeatureCatalog) -> None:
    table = iceberg_table(tmp_path)  # created, never appended to
    labels = label_table([("u1", _us(T0)), (GHOST, _us(T0 + HOUR))], "UTC")
    result = get_historical_features(
        table, catalog, labels, ["txn_amount_sum_1h", "txn_count_1h"], entity_type="user", entity_column="user"
    )
    assert result.column("txn_amount_sum_1h").to_pylist() == [None, None]
    assert result.column("txn_count_1h").to_pylist() == [None, None]
    assert result.schema.field("txn_count_1h").type == pa.int64()


def test_labels_before_every_row(hand_table: tuple[Any, list[Written]], catalog: FeatureCatalog) -> None:
    table, _ = hand_table
    labels = label_table([("u1", _us(T0 - 1)), ("u1", _us(T0 - 2 * HOUR))], None)
    result = get_historical_features(table, catalog, labels, list(FEATURES), entity_type="user", entity_column="user")
    assert {name: result.column(name).to_pylist() for name in FEATURES} == {name: [None, None] for name in FEATURES}


def test_empty_label_frame(hand_table: tuple[Any, list[Written]], catalog: FeatureCatalog) -> None:
    table, _ = hand_table
    result = get_historical_features(
        table,
        catalog,
        label_table([], None),
        ["txn_count_1h", "txn_amount_sum_1h"],
        entity_type="user",
        entity_column="user",
    )
    assert result.num_rows == 0
    assert result.column_names == ["row_id", "user", "event_timestamp", "label", "txn_count_1h", "txn_amount_sum_1h"]
    assert result.schema.field("txn_count_1h").type == pa.int64()
    assert result.schema.field("txn_amount_sum_1h").type == pa.float64()


def test_integer_entity_column_is_matched_as_text(tmp_path: Path, catalog: FeatureCatalog) -> None:
    table = iceberg_table(tmp_path)
    count = catalog.get("user", "txn_count_1h")
    write(table, catalog, [(CLOCK0, [FeatureRow.of(count, "42", 3, T0 - HOUR, T0)])])
    labels = pa.table(
        {
            "user": pa.array([42, 43], type=pa.int64()),
            "event_timestamp": pa.array([_us(T0)] * 2, type=pa.timestamp("us")),
        }
    )
    result = get_historical_features(table, catalog, labels, ["txn_count_1h"], entity_type="user", entity_column="user")
    assert result.column("txn_count_1h").to_pylist() == [3, None]


@pytest.mark.parametrize(
    ("labels", "kwargs", "error", "message"),
    [
        (
            pa.table({"user": ["u1"]}),
            {},
            DefinitionError,
            "label frame has no 'event_timestamp' column (columns: ['user'])",
        ),
        (
            pa.table({"user": ["u1"], "event_timestamp": [1]}),
            {},
            DefinitionError,
            "label column 'event_timestamp' must be a timestamp, not int64",
        ),
        (
            pa.table({"user": ["u1", "u2"], "event_timestamp": pa.array([1, None], type=pa.timestamp("us"))}),
            {},
            DefinitionError,
            "label column 'event_timestamp' has 1 null timestamps",
        ),
        (
            pa.table({"who": ["u1"], "event_timestamp": pa.array([1], type=pa.timestamp("us"))}),
            {},
            DefinitionError,
            "label frame has no entity column 'user'",
        ),
        (
            pa.table({"user": ["u1"], "txn_count_1h": [1], "event_timestamp": pa.array([1], type=pa.timestamp("us"))}),
            {},
            DefinitionError,
            "label frame already has column(s) named like features: ['txn_count_1h']",
        ),
        (
            pa.table({"user": ["u1"], "ts": pa.array([1], type=pa.timestamp("us"))}),
            {"features": ["nope", "txn_count_1h", "nada"]},
            UnknownFeatureError,
            "unknown feature(s) for entity type 'user': nada, nope",
        ),
    ],
)
def test_bad_label_frames(
    hand_table: tuple[Any, list[Written]],
    catalog: FeatureCatalog,
    labels: pa.Table,
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    table, _ = hand_table
    features = kwargs.get("features", ["txn_count_1h"])
    with pytest.raises(error) as info:
        get_historical_features(table, catalog, labels, features, entity_type="user", entity_column="user")
    assert str(info.value) == message


def test_long_values_are_exact(tmp_path: Path, catalog: FeatureCatalog) -> None:
    table = iceberg_table(tmp_path)
    count = catalog.get("user", "txn_count_1h")
    total = catalog.get("user", "txn_amount_sum_1h")
    big = 2**53 + 1
    write(
        table,
        catalog,
        [(CLOCK0, [FeatureRow.of(count, "u1", big, T0 - HOUR, T0), FeatureRow.of(total, "u1", 1.0, T0 - HOUR, T0)])],
    )
    labels = label_table([("u1", _us(T0)), (GHOST, _us(T0))], None)
    result = get_historical_features(
        table, catalog, labels, ["txn_count_1h", "txn_amount_sum_1h"], entity_type="user", entity_column="user"
    )
    assert result.column("txn_amount_sum_1h").to_pylist() == [1.0, None]
    assert result.column("txn_count_1h").to_pylist() == [big, None]


@pytest.mark.parametrize(
    ("feature", "values", "expected"),
    [
        ("txn_count_1h", [5, -3, 2], -3),  # a negative long's bytes are above every non-negative one's
        ("txn_count_1h", [5, 2**40, 3], 2**40),
        ("txn_amount_sum_1h", [2.0, -0.5, -0.25], -0.5),  # negative doubles: by magnitude, above positives
        ("txn_amount_sum_1h", [1.5, 99.0, 0.0], 99.0),
        ("last_merchant_5m", ["z", "\u00fcber", "m\u00fcnchen"], "\u00fcber"),  # UTF-8 bytes: ü (0xC3..) above z
        ("last_merchant_5m", ["m\u00fcnchen", "z", "b"], "z"),
        ("txn_amount_sum_1h", [1.5, None, 2.0], None),  # no value: Cassandra's tombstone wins a tie
    ],
)
def test_rows_tied_on_end_ingestion_and_revision_resolve_like_cassandra_cells(
    tmp_path: Path, catalog: FeatureCatalog, feature: str, values: list[Any], expected: Any
) -> None:
    """Docs §5.1: registry.core.timeline.tie_key, the order Cassandra keeps one of two equal-time cells in."""
    d = catalog.get("user", feature)
    table = iceberg_table(tmp_path)
    writer = OfflineWriter(table)
    for value in values:  # appended one by one, in this order: the stream job's writer refuses a repeated identity
        table.append(writer.to_arrow([FeatureRow.of(d, "u1", value, T0 - HOUR, T0, 3)], CLOCK0))
    result = get_historical_features(
        table, catalog, label_table([("u1", _us(T0))], None), [feature], entity_type="user", entity_column="user"
    )
    assert result.column(feature).to_pylist() == [expected]
