"""Point-in-time join edge cases: labels near year one, pinned versions, equal-ingestion ties, sub-ms ends, reach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.errors import DefinitionError
from serving.offline.historical import get_historical_features
from sinks.iceberg import layout as offline_layout
from sinks.iceberg.as_of import read_point
from sinks.iceberg.reader import data_reach
from tests.unit.test_training_sets import (
    DAY,
    HOUR,
    INGEST0,
    T0,
    Row,
    _feature,
    append,
    catalog,
    iceberg_table,
    labels_table,
)

__all__ = ["catalog"]  # the fixture, used by name


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
