"""A source's whole history: its archive (``sinks.archive``) joined to its topic at one offset per partition.

``python -m jobs.feature_job --events archive`` (and ``python -m jobs.backfill ... --events archive``)
reads the events of the definitions' source from here: for each partition ``p`` of the topic, the
archive's records below its committed next offset ``s[p]`` (the archive's snapshot is pinned when the
read starts), then the topic's records from ``s[p]`` up to the end Kafka had when the read started.
The seam is an offset, so no record is read twice or missed; if Kafka no longer holds ``s[p]`` (the
archiver fell behind the topic's retention), that is ``ArchiveError`` naming the partition and the
offsets lost, not a gap in the features.

The records are decoded by the stream's own decoder (``udfs.decode.EventDecoder``, the writer schema
of each record from the schema registry, resolved to the source's reader schema), so a record is
refused here exactly when the stream job would dead-letter it, with the same reason. Decoding is one
Python call per record (about 10-20 µs); the rest is columnar (``jobs.events_table``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from jobs.events_table import Events
from registry.core.definitions import Source
from registry.core.errors import DecodeError
from registry.core.settings import Settings
from schemas import load_schema

if TYPE_CHECKING:
    from udfs.decode import EventDecoder

ARCHIVE = "archive"
"""The ``--events`` location meaning "the source's archive, then its topic"."""

REJECTED_SCHEMA = pa.schema(
    [
        pa.field("partition", pa.int32()),
        pa.field("offset", pa.int64()),
        pa.field("from_archive", pa.bool_()),
        pa.field("payload", pa.binary()),
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
    ]
)


def run_lookup(settings: Settings) -> Callable[[int], str | None]:
    """The registry's schema lookup for a run over the archive: a registry that stops answering is named as a
    Flink-decoded run names it (``jobs.failures.registry_unavailable``, design §6), not as its client says it."""
    from jobs.failures import registry_unavailable
    from jobs.registry_client import schema_lookup
    from registry.core.errors import StoreUnavailableError

    registry = schema_lookup(settings.schema_registry_url, settings.token)

    def lookup(schema_id: int) -> str | None:
        try:
            return registry(schema_id)
        except StoreUnavailableError as exc:
            detail = str(exc).removeprefix("schema registry unreachable: ").removeprefix("schema registry: ")
            raise registry_unavailable(settings.schema_registry_url, detail) from exc

    return lookup


def _decoder(settings: Settings, source: Source, now_ms: int) -> EventDecoder:
    from udfs.decode import EventDecoder

    return EventDecoder(
        run_lookup(settings),
        load_schema(source.event_schema),
        timestamp_field=source.timestamp_field,
        key_fields=source.key_fields,
        clock_ms=lambda: now_ms,
    )


def read_history(
    settings: Settings, source: Source, *, now_ms: int, time_range_ms: tuple[int, int] | None = None
) -> Events:
    """The source's events (``jobs.events_table.arrow_schema``) sorted by event time, then partition and
    offset (whichever side, archive or topic, gave them), and the records refused
    (``REJECTED_SCHEMA``). ``time_range_ms`` (``[since, until)``, epoch ms): only the records whose
    Kafka timestamp is in it are read and decoded (the archive's scan is pruned by its day partitions
    and file statistics); an accepted event's time is its record's timestamp, so this keeps exactly
    the events of the range."""
    from confluent_kafka import Consumer

    from jobs.events_table import arrow_schema
    from sinks.archive import consumer_config, kafka_offsets, load_table, next_offsets, read_range, seam
    from sinks.factory import connect_iceberg
    from sinks.topics import require_reachable

    require_reachable(settings.kafka_bootstrap)  # a stopped broker is named first, whatever the archive holds
    table = load_table(connect_iceberg(settings), settings.iceberg_namespace, source.topic)
    snapshot = table.current_snapshot()
    archived = next_offsets(table, snapshot.snapshot_id if snapshot else None)
    consumer = Consumer(consumer_config(settings.kafka_bootstrap))
    try:
        kafka = kafka_offsets(consumer, source.topic)
        start = seam(archived, kafka, source.topic)
        old = _archived(table, snapshot.snapshot_id if snapshot else None, time_range_ms)
        _progress(f"archive {'.'.join(table.name())}: {old.num_rows:,} records below offsets {_show(start)}")
        end = {p: high for p, (_, high) in kafka.items()}
        lo, hi = time_range_ms if time_range_ms is not None else (-(2**63), 2**63)
        new = [
            (int(m.partition() or 0), int(m.offset() or 0), m.timestamp()[1], m.value())
            for m in read_range(consumer, source.topic, start, end)
            if lo <= m.timestamp()[1] < hi
        ]
        _progress(f"topic {source.topic}: {len(new):,} records from offsets {_show(start)} to {_show(end)}")
    finally:
        consumer.close()
    decoder = _decoder(settings, source, now_ms)
    names = arrow_schema(source).names
    rows: list[dict[str, Any]] = []
    seats: list[tuple[int, int]] = []  # each accepted event's (partition, offset)
    rejected: list[dict[str, Any]] = []
    records = zip(
        old.column("partition").to_pylist(),
        old.column("offset").to_pylist(),
        pc.divide(old.column("kafka_timestamp").cast(pa.int64()), 1000).to_pylist(),
        old.column("payload").to_pylist(),
        strict=True,
    )
    for from_archive, batch in ((True, records), (False, iter(new))):
        for partition, offset, record_ms, payload in batch:
            try:
                event = decoder.decode_record(payload, record_ms)
            except DecodeError as exc:
                rejected.append(
                    {
                        "partition": partition,
                        "offset": offset,
                        "from_archive": from_archive,
                        "payload": payload,
                        "reason": exc.reason,
                        "detail": exc.detail,
                    }
                )
                continue
            rows.append({n: event.get(n) for n in names})
            seats.append((partition, offset))
    _progress(f"decoded {len(rows):,} events, {len(rejected):,} refused")
    valid = pa.Table.from_pylist(rows, schema=arrow_schema(source))
    # By event time, then partition and offset: the topic's records arrive interleaved across partitions
    # (in no fixed order), and which of two records of one event id and time counts must not depend on that.
    partitions, offsets = zip(*seats, strict=True) if seats else ((), ())
    keys = pa.table(
        {
            "time": valid.column(source.timestamp_field),
            "partition": pa.array(partitions, pa.int32()),
            "offset": pa.array(offsets, pa.int64()),
        }
    )
    order = pc.sort_indices(
        keys, sort_keys=[("time", "ascending"), ("partition", "ascending"), ("offset", "ascending")]
    )
    return Events(valid.take(order), pa.Table.from_pylist(rejected, schema=REJECTED_SCHEMA))


def _archived(table: Any, snapshot_id: int | None, time_range_ms: tuple[int, int] | None) -> pa.Table:
    """The archive's records in the snapshot (in the range of Kafka timestamps, if given), in partition
    and offset order."""
    from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, GreaterThanOrEqual, LessThan

    from sinks.archive import ARROW_SCHEMA
    from sinks.iceberg.as_of import iso_us

    columns = ("partition", "offset", "kafka_timestamp", "payload")
    if snapshot_id is None:
        return ARROW_SCHEMA.empty_table().select(list(columns))
    where: BooleanExpression = AlwaysTrue()
    if time_range_ms is not None:
        since, until = time_range_ms
        where = And(
            GreaterThanOrEqual("kafka_timestamp", iso_us(since * 1000)),
            LessThan("kafka_timestamp", iso_us(until * 1000)),
        )
    rows = table.scan(snapshot_id=snapshot_id, row_filter=where, selected_fields=columns).to_arrow()
    return rows.sort_by([("partition", "ascending"), ("offset", "ascending")])


def _show(offsets: dict[int, int]) -> str:
    return ", ".join(f"{p}:{o}" for p, o in sorted(offsets.items())) or "-"


def _progress(text: str) -> None:
    print(f"[history] {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)
