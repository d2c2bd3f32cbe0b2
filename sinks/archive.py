"""The events archive: a topic's raw records kept in an Iceberg table, beyond Kafka's retention.

``python -m sinks.archive --topic T [--once]`` copies every record of a topic, as it arrived (the
Confluent-framed Avro bytes, so each keeps its writer schema id), into the table
``<namespace>.events_archive_<topic>_<hash>``: one row per record with its partition, offset and
Kafka timestamp. A backfill reads history from it where the topic no longer holds it
(``jobs.history``).

Exactly once: each append commits, in the same Iceberg snapshot, the next offset to archive per
partition (the snapshot property ``featurestore.archive.next-offsets``). The archiver starts from
the offsets of the table's current snapshot, never from a consumer group, so a crash between a
read and an append re-reads what was not committed, and nothing is appended twice. Two archivers on
one table cannot both commit from one snapshot (the catalog refuses the second commit, which fails
with ``ArchiveError``). A partition whose next offset Kafka already deleted (the archiver was down
longer than the topic's retention) is a named failure, ``ArchiveError``, not a silent jump.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from registry.core.errors import FeatureStoreError, StoreUnavailableError

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Message
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

NEXT_OFFSETS = "featurestore.archive.next-offsets"
"""Snapshot property: JSON ``{"<partition>": <next offset to archive>}``, committed with each append."""

_TS = pa.timestamp("us", tz="UTC")
ARROW_SCHEMA = pa.schema(
    [
        pa.field("kafka_timestamp", _TS, nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("schema_id", pa.int32(), nullable=True),  # null: not Confluent-framed (the decoder refuses it)
        pa.field("payload", pa.binary(), nullable=True),  # null: a record without a value
        pa.field("archived_at", _TS, nullable=False),
    ]
)


class ArchiveError(FeatureStoreError):
    """The archive cannot guarantee every record once: Kafka deleted records before they were archived,
    or another archiver committed to the same table."""


def table_name(topic: str) -> str:
    """The archive table of a topic: the topic made identifier-safe plus a hash of it (``a.b`` and
    ``a_b`` never share one)."""
    return f"events_archive_{re.sub(r'[^A-Za-z0-9_]', '_', topic)}_{hashlib.sha256(topic.encode()).hexdigest()[:8]}"


def ensure_table(catalog: Catalog, namespace: str, topic: str) -> Table:
    """The topic's archive table, created on first use (race-safe), partitioned by day of the Kafka timestamp."""
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import DayTransform
    from pyiceberg.types import BinaryType, IcebergType, IntegerType, LongType, NestedField, TimestamptzType

    from sinks.iceberg.writer import create_or_load

    types: dict[pa.DataType, IcebergType] = {
        _TS: TimestamptzType(),
        pa.int32(): IntegerType(),
        pa.int64(): LongType(),
        pa.binary(): BinaryType(),
    }
    schema = Schema(
        *(NestedField(i + 1, f.name, types[f.type], required=not f.nullable) for i, f in enumerate(ARROW_SCHEMA))
    )
    spec = PartitionSpec(PartitionField(source_id=1, field_id=1000, transform=DayTransform(), name="kafka_day"))
    return create_or_load(catalog, namespace, table_name(topic), schema, spec)


def load_table(catalog: Catalog, namespace: str, topic: str) -> Table:
    """The topic's archive table; ArchiveError if the topic has none."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    try:
        return catalog.load_table(f"{namespace}.{table_name(topic)}")
    except (NoSuchTableError, NoSuchNamespaceError) as exc:
        raise ArchiveError(
            f"topic {topic!r} has no archive in {namespace!r}: run `python -m sinks.archive --topic {topic}`"
        ) from exc


def next_offsets(table: Table, snapshot_id: int | None = None) -> dict[int, int]:
    """The next offset to archive per partition, as committed with the snapshot (the current one by
    default); a partition not in it has nothing archived."""
    snapshot = table.snapshot_by_id(snapshot_id) if snapshot_id is not None else table.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return {}
    text = snapshot.summary.additional_properties.get(NEXT_OFFSETS)
    return {int(p): int(o) for p, o in json.loads(text).items()} if text else {}


def kafka_offsets(consumer: Consumer, topic: str, timeout_s: float = 10.0) -> dict[int, tuple[int, int]]:
    """``{partition: (low, high)}`` of a topic now: the first offset Kafka holds and the next one to come."""
    from confluent_kafka import KafkaException, TopicPartition

    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        partitions = metadata.topics[topic].partitions
        if metadata.topics[topic].error is not None or not partitions:
            raise ArchiveError(f"topic {topic!r}: {metadata.topics[topic].error or 'no partitions'}")
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s) for p in sorted(partitions)
        }
    except KafkaException as exc:
        raise StoreUnavailableError(f"Kafka: offsets of {topic!r}: {exc}") from exc


def seam(archived: dict[int, int], kafka: dict[int, tuple[int, int]], topic: str) -> dict[int, int]:
    """Per partition, the first offset not in the archive, where the topic takes over: the archive's
    next offset, or for a partition never archived the first offset Kafka holds. ArchiveError where
    Kafka no longer holds it: records in neither place."""
    out = {}
    for p, (low, _high) in kafka.items():
        at = archived.get(p, low)
        if at < low:
            raise ArchiveError(
                f"{topic!r} partition {p}: offsets {at}..{low - 1} are neither archived nor in Kafka any more "
                "(the archiver was stopped for longer than the topic's retention)"
            )
        out[p] = at
    return out


def consumer_config(bootstrap: str) -> dict[str, Any]:
    """Assigned partitions only (no group offsets are used or committed: the archive holds them)."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": "featurestore-archive",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",  # an offset Kafka no longer holds is an error, never a jump
        "enable.partition.eof": True,
        "reconnect.backoff.max.ms": 1000,
    }


def read_range(
    consumer: Consumer, topic: str, start: dict[int, int], end: dict[int, int], *, timeout_s: float = 120.0
) -> Generator[Message, None, None]:
    """The records of each partition ``p`` from offset ``start[p]`` up to (not including) ``end[p]``,
    each partition in offset order. StoreUnavailableError if Kafka does not deliver them within ``timeout_s``."""
    from confluent_kafka import KafkaError, KafkaException, TopicPartition

    todo = {p for p in start if start[p] < end[p]}
    if not todo:
        return
    consumer.assign([TopicPartition(topic, p, start[p]) for p in sorted(todo)])
    deadline = time.monotonic() + timeout_s
    try:
        while todo:
            if time.monotonic() > deadline:
                raise StoreUnavailableError(
                    f"Kafka: {topic!r} partitions {sorted(todo)} not read within {timeout_s:.0f} s"
                )
            for message in consumer.consume(num_messages=5000, timeout=0.5):
                error = message.error()
                partition = int(message.partition() or 0)
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        todo.discard(partition)  # transaction markers can leave the end unreachable by offset
                        continue
                    if error.code() == KafkaError._AUTO_OFFSET_RESET:
                        raise ArchiveError(f"{topic!r} partition {partition}: {error.str()}")
                    if error.fatal() or not error.retriable():
                        raise StoreUnavailableError(f"Kafka: {KafkaException(error)}")
                    continue
                offset = int(message.offset() or 0)
                if partition not in todo or offset >= end[partition]:
                    todo.discard(partition)
                    continue
                yield message
                if offset + 1 >= end[partition]:
                    todo.discard(partition)
    finally:
        consumer.unassign()


def to_rows(messages: list[Message], archived_at_us: int) -> pa.Table:
    """Archive rows for Kafka records, as they came (the schema id read from a Confluent frame, if any)."""
    from confluent_kafka import TIMESTAMP_NOT_AVAILABLE

    ts, partitions, offsets, ids, payloads = [], [], [], [], []
    for m in messages:
        kind, ms = m.timestamp()
        value = m.value()
        ts.append((ms if kind != TIMESTAMP_NOT_AVAILABLE else 0) * 1000)
        partitions.append(int(m.partition() or 0))
        offsets.append(int(m.offset() or 0))
        framed = value is not None and len(value) >= 5 and value[0] == 0
        ids.append(int.from_bytes(value[1:5], "big") if framed and value is not None else None)
        payloads.append(value)
    n = len(messages)
    return pa.Table.from_arrays(
        [
            pa.array(ts, pa.int64()).cast(_TS),
            pa.array(partitions, pa.int32()),
            pa.array(offsets, pa.int64()),
            pa.array(ids, pa.int32()),
            pa.array(payloads, pa.binary()),
            pa.array([archived_at_us] * n, pa.int64()).cast(_TS),
        ],
        schema=ARROW_SCHEMA,
    )


class Archiver:
    """Copies a topic into its archive table: read a batch, append it with the next offsets, repeat."""

    def __init__(
        self, consumer: Consumer, table: Table, topic: str, *, batch_rows: int = 50_000, max_wait_s: float = 5.0
    ) -> None:
        self._consumer = consumer
        self._table = table
        self._topic = topic
        self._batch_rows = batch_rows
        self._max_wait_s = max_wait_s
        self.rows = 0

    def run(self, *, once: bool = False, timeout_s: float = 120.0) -> int:
        """Archive until stopped, or with ``once`` until the offsets Kafka had at the start; returns the
        rows appended. ArchiveError on a gap (records deleted before they were archived) or a rival writer."""
        target: dict[int, int] | None = None  # with ``once``: the ends Kafka had at the start
        while True:
            offsets = kafka_offsets(self._consumer, self._topic)
            start = seam(next_offsets(self._table), offsets, self._topic)
            end = {p: high for p, (_, high) in offsets.items()}
            if once:
                target = end if target is None else target
                end = {p: min(end[p], target.get(p, start[p])) for p in end}
            if all(start[p] >= end[p] for p in start):
                if once:
                    return self.rows
                time.sleep(self._max_wait_s / 5)
                continue
            self._archive(start, end, timeout_s)

    def _archive(self, start: dict[int, int], end: dict[int, int], timeout_s: float) -> None:
        batch: list[Message] = []
        following = dict(start)
        deadline = time.monotonic() + self._max_wait_s
        messages = read_range(self._consumer, self._topic, start, end, timeout_s=timeout_s)
        for message in messages:
            batch.append(message)
            following[int(message.partition() or 0)] = int(message.offset() or 0) + 1
            if len(batch) >= self._batch_rows or time.monotonic() > deadline:
                break
        messages.close()  # unassigns
        if not batch:
            # Only markers between start and end (e.g. transaction commits): nothing to keep, move past them.
            following = {p: max(following[p], end[p]) for p in following}
        self._append(batch, following)

    def _append(self, batch: list[Message], following: dict[int, int]) -> None:
        from pyiceberg.exceptions import CommitFailedException

        committed = next_offsets(self._table)
        offsets = {**committed, **following}
        rows = to_rows(batch, time.time_ns() // 1000)
        try:
            self._table.append(rows, snapshot_properties={NEXT_OFFSETS: json.dumps(offsets, sort_keys=True)})
        except CommitFailedException as exc:
            raise ArchiveError(f"archive of {self._topic!r}: another writer committed to the table ({exc})") from exc
        self.rows += rows.num_rows


def main(argv: list[str] | None = None) -> int:
    from confluent_kafka import Consumer

    from registry.core.settings import Settings
    from sinks.factory import connect_iceberg

    parser = argparse.ArgumentParser(prog="python -m sinks.archive", description=__doc__)
    parser.add_argument("--topic", required=True, help="the event topic to archive")
    parser.add_argument("--once", action="store_true", help="stop when the offsets Kafka had at the start are archived")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    try:
        consumer = Consumer(consumer_config(settings.kafka_bootstrap))
        try:
            kafka_offsets(consumer, args.topic)  # a topic that does not exist fails before a table is made
            table = ensure_table(connect_iceberg(settings), settings.iceberg_namespace, args.topic)
            archiver = Archiver(consumer, table, args.topic)
            archiver.run(once=args.once)
        finally:
            consumer.close()
    except FeatureStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    print(f"archived {archiver.rows:,} records of {args.topic} to {'.'.join(table.name())}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
