"""The Python operators of the stream job: decode at the entry, dual-write at the exit."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timedelta
from typing import Any

from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, ProcessFunction, RuntimeContext

from registry.catalog import FeatureCatalog
from registry.definitions import FeatureDefinition
from registry.errors import DecodeError, StoreUnavailableError
from registry.settings import Settings
from sinks.records import FeatureRow

DEAD_LETTER = OutputTag("dead-letter", Types.STRING())
_EPOCH = datetime(1970, 1, 1)


class DecodeEvents(ProcessFunction):  # type: ignore[misc]
    """Bytes -> Row of the reader schema's fields; undecodable records go to the dead-letter output."""

    def __init__(self, settings: Settings, reader_schema: dict[str, Any], timestamp_field: str, topic: str) -> None:
        self._settings = settings
        self._reader_schema = reader_schema
        self._timestamp_field = timestamp_field
        self._topic = topic
        self._fields = [f["name"] for f in reader_schema["fields"]]

    def open(self, runtime_context: RuntimeContext) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        from udfs.decode import EventDecoder

        client = SchemaRegistryClient({"url": self._settings.schema_registry_url, "timeout": 10})

        def lookup(schema_id: int) -> str | None:
            try:
                return str(client.get_schema(schema_id).schema_str)
            except SchemaRegistryError as exc:
                if exc.http_status_code == 404:
                    return None
                raise StoreUnavailableError(f"schema registry: {exc}") from exc
            except Exception as exc:  # connection refused, timeout
                raise StoreUnavailableError(f"schema registry unreachable: {exc}") from exc

        self._decoder = EventDecoder(lookup, self._reader_schema, timestamp_field=self._timestamp_field)

    def process_element(self, value: bytes, ctx: ProcessFunction.Context):  # type: ignore[no-untyped-def]
        try:
            event = self._decoder.decode(value)
            if event[self._timestamp_field] != ctx.timestamp():
                raise DecodeError(
                    "timestamp_mismatch",
                    f"{self._timestamp_field}={event[self._timestamp_field]} but the Kafka timestamp is "
                    f"{ctx.timestamp()}; producers must set the record timestamp to the event time",
                )
        except DecodeError as exc:
            yield DEAD_LETTER, json.dumps({
                "topic": self._topic, "reason": exc.reason, "detail": exc.detail,
                "payload_b64": base64.b64encode(value or b"").decode(),
                "dead_lettered_at_ms": time.time_ns() // 1_000_000,
            })  # fmt: skip
            return
        yield Row(*(event[name] for name in self._fields))


def _ms(value: datetime) -> int:
    """Window bounds arrive as naive TIMESTAMP(3) in the session time zone, which the job pins to UTC."""
    return (value - _EPOCH) // timedelta(milliseconds=1)


class WriteWindowResults(KeyedProcessFunction):  # type: ignore[misc]
    """Unpivots each (entity, window) row into one FeatureRow per feature and writes both stores.

    Commit points are event-time timers at each window end: a window operator emits all results of
    a window when the watermark passes its end, so the timer fires right after the last of them
    (and the final watermark of a bounded run fires every pending timer). ``close()`` is no commit
    point: PyFlink runs it during worker teardown without waiting for it. A flush also happens when
    ``flush_rows`` rows are buffered. Offline is written first, so a crash can leave the online
    store behind the offline log, never ahead of it.

    Rows for windows that end after the wall clock are dropped: a window cannot have closed before
    its end; such rows appear only when a bounded run's final watermark fires open windows.
    """

    def __init__(self, settings: Settings, features: tuple[FeatureDefinition, ...], *, flush_rows: int = 5000) -> None:
        self._settings = settings
        self._features = features
        self._flush_rows = flush_rows

    def open(self, runtime_context: RuntimeContext) -> None:
        from sinks.cassandra import OnlineWriter
        from sinks.factory import connect_cassandra, connect_iceberg
        from sinks.iceberg import OfflineWriter, ensure_table

        catalog = FeatureCatalog(self._features)
        self._cluster, session = connect_cassandra(self._settings)
        table = ensure_table(connect_iceberg(self._settings), self._settings.iceberg_namespace)
        writer_id = str(runtime_context.get_index_of_this_subtask())
        self._online = OnlineWriter(session, self._settings.cassandra_keyspace, catalog, writer_id=writer_id)
        self._offline = OfflineWriter(table, catalog)
        self.dropped_open_windows = 0

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        entity_id, start, end = value[0], _ms(value[1]), _ms(value[2])
        if end > time.time_ns() // 1_000_000:
            self.dropped_open_windows += 1
            return
        for i, definition in enumerate(self._features):
            row = FeatureRow.of(definition, entity_id, value[3 + i], start, end)
            self._online.add(row)
            self._offline.add(row)
        ctx.timer_service().register_event_time_timer(end - 1)
        if len(self._offline) >= self._flush_rows:
            self._flush()
        return
        yield  # a generator that emits nothing: this operator is the end of the pipeline

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):  # type: ignore[no-untyped-def]
        self._flush()
        return
        yield

    def _flush(self) -> None:
        self._offline.flush()
        self._online.flush()

    def close(self) -> None:
        self._cluster.shutdown()
