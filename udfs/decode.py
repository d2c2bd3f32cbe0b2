"""Decode Confluent-framed Avro events and validate them before they reach a window.

A record that fails here raises DecodeError with a short ``reason`` (the dead-letter topic keys on
it). A schema registry that cannot be reached is *not* a bad record: that raises
StoreUnavailableError so the job fails and restarts from its checkpoint instead of dead-lettering
good data.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
from fastavro.types import Schema

from registry.core.errors import DecodeError
from schemas.wire import unframe

# Event times further ahead of the wall clock are a producer's broken clock: dead-lettered as
# ``future_timestamp``, and kept out of the watermark (``jobs.sql.source_ddl``). Kafka 4 brokers
# refuse such records already (``log.message.timestamp.after.max.ms``, 1 h by default).
MAX_FUTURE_MS = 3_600_000

SchemaLookup = Callable[[int], str | None]
"""Returns the writer schema text for a registry id, None if the registry has no such id."""


class EventDecoder:
    """Turns framed bytes into a validated event dict in the reader schema's shape."""

    def __init__(
        self,
        lookup: SchemaLookup,
        reader_schema: dict[str, Any],
        *,
        timestamp_field: str,
        max_future_ms: int = MAX_FUTURE_MS,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._lookup = lookup
        self._reader: Schema = fastavro.parse_schema(reader_schema)
        self._writers: dict[int, Schema] = {}
        self._timestamp_field = timestamp_field
        self._max_future_ms = max_future_ms
        self._clock_ms = clock_ms
        self._required = [
            f["name"] for f in reader_schema["fields"] if not (isinstance(f["type"], list) and "null" in f["type"])
        ]

    def _writer(self, schema_id: int) -> Schema:
        writer = self._writers.get(schema_id)
        if writer is None:
            text = self._lookup(schema_id)
            if text is None:
                raise DecodeError("unknown_schema_id", f"schema id {schema_id} is not in the schema registry")
            try:
                writer = fastavro.parse_schema(json.loads(text))
            except Exception as exc:
                raise DecodeError("bad_writer_schema", f"schema id {schema_id}: {exc}") from exc
            self._writers[schema_id] = writer
        return writer

    def decode(self, payload: bytes | None) -> dict[str, Any]:
        schema_id, body = unframe(payload)
        writer = self._writer(schema_id)
        buf = io.BytesIO(body)
        try:
            record = fastavro.schemaless_reader(buf, writer, self._reader)
        except Exception as exc:
            raise DecodeError("undecodable", f"Avro body does not match schema id {schema_id}: {exc!r}") from exc
        if buf.tell() != len(body):
            raise DecodeError("undecodable", f"{len(body) - buf.tell()} trailing bytes after the Avro record")
        if not isinstance(record, dict):
            raise DecodeError("undecodable", "Avro body is not a record")
        self._validate(record)
        return record

    def _validate(self, record: dict[str, Any]) -> None:
        for name in self._required:
            value = record.get(name)
            if value is None or (isinstance(value, str) and name.endswith("_id") and not value):
                raise DecodeError("missing_field", f"required field {name!r} is missing or empty")
        for name, value in record.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise DecodeError("non_finite", f"field {name!r} is {value}")
        ts = record[self._timestamp_field]
        ts_ms = _epoch_ms(ts)
        record[self._timestamp_field] = ts_ms
        if ts_ms > self._clock_ms() + self._max_future_ms:
            raise DecodeError(
                "future_timestamp", f"{self._timestamp_field}={ts_ms} is beyond now + {self._max_future_ms} ms"
            )
        if ts_ms < 0:
            raise DecodeError("bad_timestamp", f"{self._timestamp_field}={ts_ms} is before 1970")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_ms(value: Any) -> int:
    """fastavro returns timestamp-millis as an aware datetime; keep epoch milliseconds instead."""
    if isinstance(value, int):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(milliseconds=1)
