"""Per-record functions run inside the stream job: decoding and validation. Pure Python, no Flink."""
