"""The offline store's layout in Iceberg, derived here and nowhere else.

Long format, one row per (entity, feature version, window): training reads select features by
name and version and join on entity and time. Partitioned by day of ``event_time`` (the window
end) for time-range scans; each append is sorted by feature and entity so file statistics prune
reads of one feature without a partition per feature (10,000 features x days would be too many).
"""

from __future__ import annotations

import pyarrow as pa
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform
from pyiceberg.types import IntegerType, LongType, NestedField, StringType, TimestamptzType

from registry.core.value_types import VALUE_COLUMNS, iceberg_type
from sinks.names import OFFLINE_TABLE

TABLE = OFFLINE_TABLE

SCHEMA = Schema(
    NestedField(1, "entity_type", StringType(), required=True),
    NestedField(2, "entity_id", StringType(), required=True),
    NestedField(3, "feature_name", StringType(), required=True),
    NestedField(4, "feature_version", IntegerType(), required=True),
    NestedField(5, "event_time", TimestamptzType(), required=True, doc="window end: when the value became true"),
    NestedField(6, "window_start", TimestamptzType(), required=False),
    # field ids 7-10: one value column per value type, in the value-type table's order
    *(
        NestedField(7 + i, column, iceberg_type(t), required=False)
        for i, (t, column) in enumerate(VALUE_COLUMNS.items())
    ),
    NestedField(
        11,
        "ingested_at",
        TimestamptzType(),
        required=True,
        doc="the writer's clock when the flush that committed the row began",
    ),
    NestedField(
        12, "revision", LongType(), required=False, doc="events in the window when computed; late updates raise it"
    ),
)

PARTITION_SPEC = PartitionSpec(PartitionField(source_id=5, field_id=1000, transform=DayTransform(), name="event_day"))

SORT_COLUMNS = ["feature_name", "feature_version", "entity_id", "event_time", "revision"]
IDENTITY_COLUMNS = ("entity_type", "entity_id", "feature_name", "feature_version", "event_time", "revision")


def arrow_schema() -> pa.Schema:
    return SCHEMA.as_arrow()
