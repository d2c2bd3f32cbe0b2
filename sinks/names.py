"""Table names of the stores, importable without the stores' client libraries (serving needs them)."""

ONLINE_TABLE = "online_vectors"  # one row per entity; map cells: packs of one window (sinks.cassandra.layout)
LEGACY_ONLINE_TABLE = "online_feature_values"  # one row per feature version: python -m sinks.cassandra.migrate
PROGRESS_TABLE = "stream_progress"
OFFLINE_TABLE = "offline_feature_values"
