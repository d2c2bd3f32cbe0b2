"""Table names of the stores, importable without the stores' client libraries (serving needs them)."""

from __future__ import annotations

from dataclasses import dataclass

ONLINE_TABLE = "online_vectors"  # one row per entity; map cells: packs of one window (sinks.cassandra.layout)
LEGACY_ONLINE_TABLE = "online_feature_values"  # one row per feature version: python -m sinks.cassandra.migrate
PROGRESS_TABLE = "stream_progress"
OFFLINE_TABLE = "offline_feature_values"


@dataclass(frozen=True)
class StoreNames:
    """Where one deployment keeps its tables: the Cassandra keyspace (``FS_CASSANDRA_KEYSPACE``) of
    ``ONLINE_TABLE`` and the Iceberg namespace (``FS_ICEBERG_NAMESPACE``) of ``OFFLINE_TABLE``; a lineage names
    the tables by them, as two deployments on one cluster hold tables of the same name."""

    cassandra_keyspace: str
    iceberg_namespace: str
