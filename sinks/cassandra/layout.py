"""The online store's layout in Cassandra, derived here and nowhere else.

One partition per entity ``(entity_type, entity_id)`` holds the whole feature vector, so a serving
read is one single-partition query. Rows cluster by ``(feature_name, feature_version)``; a value is
written with ``USING TIMESTAMP <feature time in µs>`` so a write of an older window can never
overwrite a newer one, whatever order writes arrive in, and replays are idempotent.
"""

from __future__ import annotations

from registry.core.value_types import SPECS, VALUE_COLUMNS, ValueType
from sinks.names import ONLINE_TABLE, PROGRESS_TABLE

TABLE = ONLINE_TABLE
__all__ = ["PROGRESS_TABLE", "TABLE", "VALUE_COLUMNS"]
PROGRESS_TTL_S = 86_400  # a writer that stopped (rescaled away) stops holding its stream back after a day


def keyspace_ddl(keyspace: str, replication_factor: int = 1) -> str:
    return (
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
        f"{{'class': 'SimpleStrategy', 'replication_factor': {replication_factor}}}"
    )


def table_ddl(keyspace: str) -> list[str]:
    value_columns = ", ".join(f"{col} {SPECS[t].cql}" for t, col in VALUE_COLUMNS.items())
    return [
        f"CREATE TABLE IF NOT EXISTS {keyspace}.{TABLE} ("
        "entity_type text, entity_id text, feature_name text, feature_version int, "
        f"{value_columns}, feature_ts timestamp, window_start timestamp, written_at timestamp, "
        "PRIMARY KEY ((entity_type, entity_id), feature_name, feature_version))",
        f"CREATE TABLE IF NOT EXISTS {keyspace}.{PROGRESS_TABLE} ("
        "stream text, writer text, closed_through timestamp, updated_at timestamp, PRIMARY KEY (stream, writer))",
    ]


def insert_cql(keyspace: str, value_type: ValueType) -> str:
    col = VALUE_COLUMNS[value_type]
    return (
        f"INSERT INTO {keyspace}.{TABLE} (entity_type, entity_id, feature_name, feature_version, {col}, "
        "feature_ts, window_start, written_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
    )


def progress_cql(keyspace: str) -> str:
    return (
        f"INSERT INTO {keyspace}.{PROGRESS_TABLE} (stream, writer, closed_through, updated_at) VALUES (?, ?, ?, ?) "
        f"USING TIMESTAMP ? AND TTL {PROGRESS_TTL_S}"
    )


def select_entity_cql(keyspace: str) -> str:
    cols = ", ".join(VALUE_COLUMNS.values())
    return (
        f"SELECT feature_name, feature_version, {cols}, feature_ts FROM {keyspace}.{TABLE} "
        "WHERE entity_type = ? AND entity_id = ?"
    )


def select_progress_cql(keyspace: str) -> str:
    return f"SELECT stream, writer, closed_through FROM {keyspace}.{PROGRESS_TABLE}"


def erase_entity_cql(keyspace: str) -> str:
    """Delete an entity's partition at a write time (``USING TIMESTAMP``): cells written later with an
    older write time (a replay of old windows) stay deleted."""
    return f"DELETE FROM {keyspace}.{TABLE} USING TIMESTAMP ? WHERE entity_type = ? AND entity_id = ?"


def count_entity_cql(keyspace: str) -> str:
    return f"SELECT feature_name FROM {keyspace}.{TABLE} WHERE entity_type = ? AND entity_id = ?"
