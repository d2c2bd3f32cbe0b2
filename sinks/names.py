"""Table names of the stores, importable without the stores' client libraries (serving needs them)."""

ONLINE_TABLE = "online_feature_values"
PROGRESS_TABLE = "stream_progress"
OFFLINE_TABLE = "offline_feature_values"
