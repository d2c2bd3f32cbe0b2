"""The events archive: a topic's raw records kept in an Iceberg table, beyond Kafka's retention.

``python -m sinks.archive --topic T [--once]`` copies every record of a topic, as it arrived (the
Confluent-framed Avro bytes, so each keeps its writer schema id), into the table
``<namespace>.events_archive_<topic>_<hash>``: one row per record with its partition, offset, key
and Kafka timestamp. A backfill reads history from it where the topic no longer holds it
(``jobs.history``).

Exactly once: each append commits, in the same Iceberg snapshot, the next offset to archive per
partition (the snapshot property ``featurestore.archive.next-offsets``). The archiver starts from
the offsets of the table's current snapshot, never from a consumer group, so a crash between a
read and an append re-reads what was not committed, and nothing is appended twice. An append
commits only if the table is still at the snapshot its batch was planned from (the catalog's check);
if another writer (a second archiver, maintenance) committed first, the batch is dropped, the table
reloaded, and reading resumes from the offsets committed there. A partition whose next offset Kafka already deleted (the archiver was down
longer than the topic's retention) is a named failure, ``ArchiveError``, not a silent jump.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import time
from collections.abc import Callable, Generator, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from registry.core.arguments import ArgumentParser, kafka_topic, number, positive_duration, whole
from registry.core.errors import DecodeError, FeatureStoreError, StoreUnavailableError
from registry.core.shown import error_line
from schemas.wire import unframe
from sinks.archive_offsets import NEXT_OFFSETS, next_offsets, offsets_holder

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from confluent_kafka import Consumer, Message
    from prometheus_client import CollectorRegistry
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table


_TS = pa.timestamp("us", tz="UTC")
_MERGE = "commit.manifest-merge.enabled"  # pyiceberg's TableProperties.MANIFEST_MERGE_ENABLED
ARROW_SCHEMA = pa.schema(
    [
        pa.field("kafka_timestamp", _TS, nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("key", pa.binary(), nullable=True),  # the record key (producers key by entity id)
        pa.field("schema_id", pa.int64(), nullable=True),  # null: not Confluent-framed (the decoder refuses it)
        pa.field("payload", pa.binary(), nullable=True),  # null: a record without a value
        pa.field("archived_at", _TS, nullable=False),
    ]
)


class ArchiveError(FeatureStoreError):
    """The archive cannot hold every record: Kafka deleted records before they were archived, or the
    topic has no archive or cannot be read."""


def table_name(topic: str) -> str:
    """The archive table of a topic: its first 231 characters made identifier-safe (a folder name within 255 bytes),
    plus a hash of the whole topic (``a.b`` and ``a_b``, or two topics alike in 231 characters, never share one)."""
    safe = re.sub(r"[^A-Za-z0-9_]", "_", topic)[:231]
    return f"events_archive_{safe}_{hashlib.sha256(topic.encode()).hexdigest()[:8]}"


def ensure_table(catalog: Catalog, namespace: str, topic: str) -> Table:
    """The topic's archive table, created on first use (race-safe), partitioned by day of the Kafka timestamp."""
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import DayTransform
    from pyiceberg.types import BinaryType, IcebergType, IntegerType, LongType, NestedField, TimestamptzType

    from sinks.iceberg.tables import create_or_load

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
    table = create_or_load(catalog, namespace, table_name(topic), schema, spec)
    if table.properties.get(_MERGE) != "true":
        # One append every few seconds, for good: merge manifests as they accumulate, or every snapshot's
        # manifest list (and every scan's planning) grows with the number of appends ever made.
        with table.transaction() as tx:
            tx.set_properties({_MERGE: "true"})
        table = table.refresh()
    return table


def load_table(catalog: Catalog, namespace: str, topic: str) -> Table:
    """The topic's archive table; ArchiveError if the topic has none."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    try:
        return catalog.load_table(f"{namespace}.{table_name(topic)}")
    except (NoSuchTableError, NoSuchNamespaceError) as exc:
        raise ArchiveError(
            f"topic {topic!r} has no archive in {namespace!r}: run `python -m sinks.archive --topic {topic}`"
        ) from exc


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
            raise _gap(topic, p, at, low)
        out[p] = at
    return out


def _gap(topic: str, partition: int, at: int, low: int) -> ArchiveError:
    """The named failure for offsets ``at..low-1`` of a partition: Kafka deleted them before they were archived."""
    return ArchiveError(
        f"{topic!r} partition {partition}: offsets {at}..{low - 1} are neither archived nor in Kafka any more "
        "(the archiver was stopped for longer than the topic's retention)"
    )


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
    each partition in offset order. StoreUnavailableError if Kafka delivers nothing for ``timeout_s``."""
    from confluent_kafka import KafkaError, KafkaException, TopicPartition

    todo = {p for p in start if start[p] < end[p]}
    if not todo:
        return
    consumer.assign([TopicPartition(topic, p, start[p]) for p in sorted(todo)])
    at = dict(start)  # per partition, the next offset to read
    deadline = time.monotonic() + timeout_s
    try:
        while todo:
            if time.monotonic() > deadline:
                raise StoreUnavailableError(
                    f"Kafka: {topic!r} partitions {sorted(todo)}: nothing read for {timeout_s:.0f} s"
                )
            messages = consumer.consume(num_messages=5000, timeout=0.5)
            if messages:
                deadline = time.monotonic() + timeout_s
            for message in messages:
                error = message.error()
                partition = int(message.partition() or 0)
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        todo.discard(partition)  # transaction markers can leave the end unreachable by offset
                        continue
                    if error.code() == KafkaError._AUTO_OFFSET_RESET:
                        # Kafka deleted the next offset while it was being read (retention ran after the
                        # seam was checked): the same named gap as ``seam``'s, once Kafka says where it starts.
                        try:
                            low, _ = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10.0)
                        except KafkaException:
                            low = -1
                        if partition in at and low > at[partition]:
                            raise _gap(topic, partition, at[partition], low)
                        raise ArchiveError(f"{topic!r} partition {partition}: {error.str()}")
                    if error.fatal() or not error.retriable():
                        raise StoreUnavailableError(f"Kafka: {KafkaException(error)}")
                    continue
                offset = int(message.offset() or 0)
                if partition not in todo or offset >= end[partition]:
                    todo.discard(partition)
                    continue
                at[partition] = offset + 1
                yield message
                if offset + 1 >= end[partition]:
                    todo.discard(partition)
    finally:
        consumer.unassign()


def to_rows(messages: list[Message], archived_at_us: int) -> pa.Table:
    """Archive rows for Kafka records, as they came (the schema id read from a Confluent frame, if any)."""
    from confluent_kafka import TIMESTAMP_NOT_AVAILABLE

    ts, partitions, offsets, keys, ids, payloads = [], [], [], [], [], []
    for m in messages:
        kind, ms = m.timestamp()
        value = m.value()
        ts.append((ms if kind != TIMESTAMP_NOT_AVAILABLE else 0) * 1000)
        partitions.append(int(m.partition() or 0))
        offsets.append(int(m.offset() or 0))
        keys.append(m.key())
        ids.append(_schema_id(value))
        payloads.append(value)
    n = len(messages)
    return pa.Table.from_arrays(
        [
            pa.array(ts, pa.int64()).cast(_TS),
            pa.array(partitions, pa.int32()),
            pa.array(offsets, pa.int64()),
            pa.array(keys, pa.binary()),
            pa.array(ids, pa.int64()),
            pa.array(payloads, pa.binary()),
            pa.array([archived_at_us] * n, pa.int64()).cast(_TS),
        ],
        schema=ARROW_SCHEMA,
    )


def _schema_id(value: bytes | None) -> int | None:
    """The writer schema id of a Confluent-framed value (``schemas.wire``), None if it is not framed."""
    try:
        return unframe(value)[0]
    except DecodeError:
        return None


_EXPIRE_EVERY_S = 600.0


class ArchiveMetrics:
    """The archiver's Prometheus metrics, labelled by ``topic`` (and ``partition``):

    - ``fs_archive_records_total``: records appended;
    - ``fs_archive_next_offset``: the next offset to archive, as committed;
    - ``fs_archive_kafka_first_offset`` and ``fs_archive_kafka_end_offset``: what Kafka holds, as last
      seen. Archive lag = end - next; retention headroom = next - first (at 0 with a lag, the next
      record Kafka deletes is lost to the archive);
    - ``fs_archive_last_commit_ms``: epoch ms of the last append (a time, not an age, so an idle
      exporter does not freeze a lag).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge

        self.records = Counter("fs_archive_records", "Records appended to the archive", ["topic"], registry=registry)
        labels = ["topic", "partition"]
        self.next_offset = Gauge("fs_archive_next_offset", "Next offset to archive", labels, registry=registry)
        self.first_offset = Gauge(
            "fs_archive_kafka_first_offset", "First offset Kafka holds", labels, registry=registry
        )
        self.end_offset = Gauge(
            "fs_archive_kafka_end_offset", "Next offset Kafka will write", labels, registry=registry
        )
        self.last_commit_ms = Gauge(
            "fs_archive_last_commit_ms", "Epoch ms of the archive's last append", ["topic"], registry=registry
        )

    def saw(self, topic: str, kafka: dict[int, tuple[int, int]]) -> None:
        for p, (low, high) in kafka.items():
            self.first_offset.labels(topic, str(p)).set(low)
            self.end_offset.labels(topic, str(p)).set(high)

    def next_offsets(self, topic: str, offsets: dict[int, int]) -> None:
        for p, offset in offsets.items():
            self.next_offset.labels(topic, str(p)).set(offset)

    def committed(self, topic: str, rows: int, offsets: dict[int, int]) -> None:
        self.records.labels(topic).inc(rows)
        self.next_offsets(topic, offsets)
        self.last_commit_ms.labels(topic).set(time.time_ns() // 1_000_000)


def metrics_app(registry: CollectorRegistry) -> Callable[..., Iterable[bytes]]:
    """The WSGI app of the archiver's metrics: ``prometheus_client``'s, answering ``HEAD`` as well (RFC 9110
    §9.3.2, as every HTTP endpoint of the project): the GET's status and headers, ``Content-Length`` the length
    of the GET's body, no body; a 405 (a method other than GET, HEAD or OPTIONS) lists HEAD in ``Allow``."""
    from prometheus_client import make_wsgi_app

    inner = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        head = environ.get("REQUEST_METHOD") == "HEAD"
        answer: list[Any] = []

        def keep(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            answer[:] = [status, headers]

        body = b"".join(inner({**environ, "REQUEST_METHOD": "GET"} if head else environ, keep))
        status, headers = answer
        headers = [(k, "GET, HEAD, OPTIONS") if k.lower() == "allow" else (k, v) for k, v in headers]
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [b"" if head else body]

    return app


def serve_metrics(port: int, registry: CollectorRegistry) -> WSGIServer:
    """Serve ``registry`` on 127.0.0.1:``port`` from a daemon thread (as ``prometheus_client.start_http_server``,
    with ``HEAD`` answered: ``metrics_app``); OSError when the port cannot be bound."""
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client.exposition import ThreadingWSGIServer

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """No access log."""

    server = make_server("127.0.0.1", port, metrics_app(registry), ThreadingWSGIServer, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, name="archive-metrics", daemon=True).start()
    return server


_IDLE_POLL_S = 0.1
"""The shortest wait between two looks at an idle topic, whatever ``--max-wait-s``."""


class Archiver:
    """Copies a topic into its archive table: read a batch, append it with the next offsets, repeat.

    A batch is appended when it holds ``batch_rows`` records or ``max_wait_s`` passed since it
    started, whichever comes first: one snapshot per append."""

    def __init__(
        self,
        consumer: Consumer,
        table: Table,
        topic: str,
        *,
        batch_rows: int = 50_000,
        max_wait_s: float = 5.0,
        expire_after_s: float = 3600.0,
        retention: timedelta | None = None,
        metrics: ArchiveMetrics | None = None,
    ) -> None:
        """``retention``: records whose Kafka timestamp is older than this are deleted (None: kept for
        good), at start and every ten minutes, with the snapshot expiry."""
        self._consumer = consumer
        self._table = table
        self._topic = topic
        self._batch_rows = batch_rows
        self._max_wait_s = max_wait_s
        self._metrics = metrics
        self._expire_after_s = expire_after_s
        self._retention = retention
        self._expired_at = -_EXPIRE_EVERY_S  # the first round runs at once
        self.rows = 0
        self.conflicts = 0

    def run(self, *, once: bool = False, timeout_s: float = 120.0) -> int:
        """Archive until stopped, or with ``once`` until the offsets Kafka had at the start; returns the
        rows appended. ArchiveError on a gap (records deleted before they were archived)."""
        target: dict[int, int] | None = None  # with ``once``: the ends Kafka had at the start
        while True:
            self._expire()
            start, end = self._plan(next_offsets(self._table))
            if self._metrics is not None:
                # What the table holds (a partition never archived: from Kafka's first offset), also when
                # nothing comes to append: a restarted archiver on an idle topic still shows its lag.
                self._metrics.next_offsets(self._topic, start)
            if once:
                target = end if target is None else target
                end = {p: min(end[p], target.get(p, start[p])) for p in end}
            if all(start[p] >= end[p] for p in start):
                if once:
                    return self.rows
                time.sleep(max(self._max_wait_s / 5, _IDLE_POLL_S))  # --max-wait-s 0 must not spin on Kafka
                continue
            self._archive(start, end, timeout_s, more=not once)

    def _plan(self, archived: dict[int, int]) -> tuple[dict[int, int], dict[int, int]]:
        """From the next offsets ``archived``: per partition, where to read from (``seam``: ArchiveError on
        a gap) and the end Kafka has now."""
        offsets = kafka_offsets(self._consumer, self._topic)
        if self._metrics is not None:
            self._metrics.saw(self._topic, offsets)
        return seam(archived, offsets, self._topic), {p: high for p, (_, high) in offsets.items()}

    def _expire(self) -> None:
        """Every ten minutes: delete the records past ``retention`` (carrying the offsets into the
        delete's snapshot), then expire the snapshots older than ``expire_after_s`` (never the current
        one), then delete the metadata files out of the table's metadata log (``remove_old_metadata``).
        Appends only add files, so expiry alone deletes old manifest lists, not data; a history
        read pins a snapshot for far less than ``expire_after_s``."""
        if time.monotonic() - self._expired_at < _EXPIRE_EVERY_S:
            return
        from sinks.iceberg.maintenance import delete_rows, expire_older_than, remove_old_metadata

        self._expired_at = time.monotonic()
        now_ms = time.time_ns() // 1_000_000
        current = self._table.current_snapshot()
        carries = (
            current is not None
            and current.summary is not None
            and NEXT_OFFSETS in current.summary.additional_properties
        )
        # A current snapshot without the offsets (another tool's commit) gets them back with the next
        # append; retention waits for that, so that its delete can carry them.
        horizon_us = None if self._retention is None else (now_ms - self._retention // timedelta(milliseconds=1)) * 1000
        # A horizon at or before 1970 deletes nothing (no Kafka timestamp is older), and before year 1 it is no
        # date at all: such a retention keeps every record, as a definition's offline_retention does.
        if horizon_us is not None and horizon_us > 0 and carries:
            from pyiceberg.expressions import LessThan

            from sinks.iceberg.as_of import iso_us

            self._table = delete_rows(
                self._table, LessThan("kafka_timestamp", iso_us(horizon_us)), keep_properties=(NEXT_OFFSETS,)
            )
        if not self._expire_after_s:
            return
        holder = offsets_holder(self._table)  # another tool's delete may not carry them: keep where they are
        self._table = expire_older_than(self._table, self._expire_after_s, keep=[] if holder is None else [holder])
        remove_old_metadata(self._table)  # every append wrote a whole metadata file: ~10 GiB a day, never deleted

    def _archive(self, start: dict[int, int], end: dict[int, int], timeout_s: float, *, more: bool) -> None:
        """Read one batch from ``start`` and append it: the records Kafka holds up to ``end``, at most
        ``batch_rows`` (records already there are taken, not waited for: a batch is not cut to a few
        records by the time the consumer takes to start fetching). With ``more`` (not ``--once``), records
        that arrive after ``end`` join the batch until it holds ``batch_rows`` or ``max_wait_s`` has passed:
        a topic that receives a trickle gets one append per ``max_wait_s``, not one per record."""
        batch: list[Message] = []
        following = dict(start)
        deadline = time.monotonic() + self._max_wait_s
        try:
            while True:
                full = False
                messages = read_range(self._consumer, self._topic, following, end, timeout_s=timeout_s)
                for message in messages:
                    batch.append(message)
                    following[int(message.partition() or 0)] = int(message.offset() or 0) + 1
                    if len(batch) >= self._batch_rows:
                        full = True
                        break
                messages.close()  # unassigns
                if full:
                    break
                # Every partition was read up to its end: what is left below it are markers (e.g. transaction
                # commits), nothing to keep; move past them.
                following = {p: max(o, end.get(p, o)) for p, o in following.items()}
                left = deadline - time.monotonic()
                if not more or left <= 0:
                    break
                time.sleep(min(self._max_wait_s / 5, left))
                following, end = self._plan(following)
        except ArchiveError:
            # Kafka deleted what comes next (a gap, named in the error): keep what was read before it, so
            # that the archive holds it and the gap named at the next start is exactly the records lost.
            if batch:
                self._append(batch, following)
            raise
        self._append(batch, following)

    def _append(self, batch: list[Message], following: dict[int, int]) -> None:
        """Append the batch with the offsets after it, if the table is still at the snapshot the batch
        was read from; otherwise (another archiver, or maintenance, committed) drop the batch and
        reload the table: the next round starts from the offsets committed there."""
        from pyiceberg.exceptions import CommitFailedException
        from sqlalchemy.exc import OperationalError

        from sinks.iceberg.maintenance import one_line
        from sinks.iceberg.writer import append_table

        committed = next_offsets(self._table)
        offsets = {**committed, **following}
        rows = to_rows(batch, time.time_ns() // 1000)
        try:
            # a key over 4,096 bytes in files of its own: Arrow's statistics would hide every key of its file
            append_table(self._table, rows, ("key",), {NEXT_OFFSETS: json.dumps(offsets, sort_keys=True)})
        except CommitFailedException:
            self.conflicts += 1
            self._table = self._table.refresh()
            return
        except (OSError, OperationalError) as exc:  # a full or failing disk, a catalog it cannot write: the batch is
            # not archived and its offsets not committed (the next run reads them again), as the serving log's landing
            raise StoreUnavailableError(
                f"Iceberg append to {'.'.join(self._table.name())} failed: {one_line(exc)}"
            ) from exc
        self.rows += rows.num_rows
        if self._metrics is not None:
            self._metrics.committed(self._topic, rows.num_rows, offsets)


def main(argv: list[str] | None = None) -> int:
    from confluent_kafka import Consumer

    from registry.core.settings import settings_for_command
    from sinks.factory import connect_iceberg

    parser = ArgumentParser(prog="python -m sinks.archive", description=__doc__)
    parser.add_argument("--topic", type=kafka_topic, required=True, help="the event topic to archive")
    parser.add_argument("--once", action="store_true", help="stop when the offsets Kafka had at the start are archived")
    parser.add_argument("--batch-rows", type=whole(1), default=50_000, help="records per append, at most")
    parser.add_argument(
        "--max-wait-s",
        type=number(0.0, 86_400.0),
        default=5.0,
        help="seconds a batch waits for more records, at most (0 to 86400: a longer sleep overflows the platform's time)",
    )
    parser.add_argument(
        "--expire-after-s",
        type=number(0.0, math.inf),
        default=3600.0,
        help="expire snapshots older than this, every ten minutes, and delete the metadata files out of the metadata "
        "log (0: neither)",
    )
    parser.add_argument(
        "--retention",
        type=positive_duration,
        help="delete archived records whose Kafka timestamp is older than this (e.g. 400d; default: keep them)",
    )
    parser.add_argument(
        "--metrics-port", type=whole(0, 65_535), default=0, help="serve Prometheus metrics on 127.0.0.1:PORT (0: none)"
    )
    args = parser.parse_args(argv)
    settings = settings_for_command()
    from sinks.topics import require_reachable

    archiver: Archiver | None = None
    try:
        require_reachable(settings.kafka_bootstrap)
        consumer = Consumer(consumer_config(settings.kafka_bootstrap))
        try:
            kafka_offsets(consumer, args.topic)  # a topic that does not exist fails before a table is made
            metrics = None
            if args.metrics_port:  # before the table is made: a port in use fails with nothing created
                from prometheus_client import CollectorRegistry

                registry = CollectorRegistry()
                metrics = ArchiveMetrics(registry)
                try:
                    serve_metrics(args.metrics_port, registry)
                except OSError:
                    raise FeatureStoreError(
                        f"--metrics-port {args.metrics_port}: 127.0.0.1:{args.metrics_port} is in use or not ours "
                        "to listen on"
                    ) from None
            table = ensure_table(connect_iceberg(settings), settings.iceberg_namespace, args.topic)
            archiver = Archiver(
                consumer,
                table,
                args.topic,
                batch_rows=args.batch_rows,
                max_wait_s=args.max_wait_s,
                expire_after_s=args.expire_after_s,
                retention=args.retention,
                metrics=metrics,
            )
            archiver.run(once=args.once)
        finally:
            consumer.close()
    except FeatureStoreError as exc:
        print(error_line(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a normal stop, as the serving log's: what it archived is said
        if archiver is not None:
            print(f"interrupted: archived {archiver.rows:,} records of {args.topic}", file=sys.stderr)
        return 0
    print(f"archived {archiver.rows:,} records of {args.topic} to {'.'.join(table.name())}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
