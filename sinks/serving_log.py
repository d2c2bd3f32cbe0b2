"""The serving log's landing: the Kafka topic the feature API logs to, appended to an Iceberg table.

``python -m sinks.serving_log [--once]`` consumes the topic (``serving.online.serving_log`` says what
a record holds) and appends one table row per served feature value, in batches, then commits the
consumer's offsets: at-least-once, so a crash between the append and the commit appends a batch
twice. Each row carries its Kafka topic, partition, offset and position in the record, which identify it:
readers (``serving.offline.parity``) drop the repeats.

The table ``serving_log`` is partitioned by day of ``served_at``. ``value_json`` is the value as the
API served it, in JSON (exact for longs, doubles, strings and booleans). A record that is not valid
JSON of that shape is skipped and counted (it can only come from something other than the API), and
never stops the sink: each batch that skipped some says so on stderr (how many, and the first one's partition and
offset), and the count is printed when the sink ends (``--once``, or Ctrl-C).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from registry.core.arguments import ArgumentParser, kafka_topic, number
from registry.core.definitions import topic_name
from registry.core.errors import SettingsError, StoreUnavailableError
from registry.erasures import ErasedEntities

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Message
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

TABLE = "serving_log"
TOPIC = "fs_serving_log"  # serving.online.serving_log.DEFAULT_TOPIC


def topic_from_env(env: Mapping[str, str]) -> str:
    """The serving log's Kafka topic as ``FS_SERVING_LOG_TOPIC`` sets it (``TOPIC`` when unset), for the API that
    logs to it and the erasure that names it; SettingsError for a name Kafka would refuse."""
    topic = env.get("FS_SERVING_LOG_TOPIC", TOPIC)
    try:
        return topic_name(topic)
    except ValueError:
        raise SettingsError(
            "FS_SERVING_LOG_TOPIC must be a Kafka topic name (1-249 ASCII letters, digits, '.', '_' or '-';"
            f" not empty, '.' or '..'), not {topic!r}"
        ) from None


GROUP = "fs-serving-log-sink"
_TS = pa.timestamp("us", tz="UTC")

ARROW_SCHEMA = pa.schema(
    [
        pa.field("served_at", _TS, nullable=False),
        pa.field("request_id", pa.string()),
        pa.field("caller", pa.string()),
        pa.field("feature_service", pa.string()),
        pa.field("model_name", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("entity_type", pa.string(), nullable=False),
        pa.field("entity_id", pa.string(), nullable=False),
        pa.field("feature_name", pa.string(), nullable=False),
        pa.field("feature_version", pa.int32(), nullable=False),
        pa.field("value_json", pa.string()),
        pa.field("feature_time", _TS),
        pa.field("status", pa.string(), nullable=False),
        pa.field("kafka_topic", pa.string(), nullable=False),
        pa.field("kafka_partition", pa.int32(), nullable=False),
        pa.field("kafka_offset", pa.int64(), nullable=False),
        pa.field("position", pa.int32(), nullable=False),
    ]
)
IDENTITY = ("kafka_topic", "kafka_partition", "kafka_offset", "position")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_MS_RANGE = (-62_135_596_800_000, 253_402_300_799_999)  # 0001-01-01 to 9999-12-31 (epoch ms): what a row can hold
_INT32 = (-(2**31), 2**31 - 1)
_APPEND_ATTEMPTS = 10  # commits lost to other processes' in a row before the landing gives up (as the job's writer)


def _string(value: Any, *, null: bool = True) -> str | None:
    """A string field of a record as is; anything else (a number, an object, a null where none may be) is malformed."""
    if isinstance(value, str) or (null and value is None):
        return value
    raise TypeError(f"not a string: {value!r}")


def _whole(value: Any, bounds: tuple[int, int]) -> int:
    """A whole number within ``bounds``, both included; a bool, a float or anything else is malformed."""
    if type(value) is not int or not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"not a whole number within {bounds}: {value!r}")
    return value


def _epoch_us(value: Any) -> int | None:
    """A feature timestamp (ISO 8601 with its offset, as the API writes it: ``...Z``) in epoch µs; null stays null."""
    if value is None:
        return None
    at = datetime.fromisoformat(_string(value, null=False) or "")
    if at.tzinfo is None:
        raise ValueError(f"a feature timestamp without its offset: {value!r}")
    us = (at - _EPOCH) // _US
    if not _MS_RANGE[0] * 1000 <= us <= _MS_RANGE[1] * 1000 + 999:  # its offset took it out of 0001-9999 in UTC
        raise ValueError(f"a feature timestamp outside 0001-9999 in UTC: {value!r}")
    return us


def ensure_log_table(catalog: Catalog, namespace: str) -> Table:
    """The serving-log table, created on first use (race-safe), partitioned by day of ``served_at``."""
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import DayTransform
    from pyiceberg.types import IcebergType, IntegerType, LongType, NestedField, StringType, TimestamptzType

    from sinks.iceberg.tables import create_or_load

    types: dict[pa.DataType, IcebergType] = {
        _TS: TimestamptzType(),
        pa.string(): StringType(),
        pa.int32(): IntegerType(),
        pa.int64(): LongType(),
    }
    schema = Schema(
        *(NestedField(i + 1, f.name, types[f.type], required=not f.nullable) for i, f in enumerate(ARROW_SCHEMA))
    )
    spec = PartitionSpec(PartitionField(source_id=1, field_id=1000, transform=DayTransform(), name="served_day"))
    return create_or_load(catalog, namespace, TABLE, schema, spec)


def read_logged(log: Table, since_us: int, until_us: int) -> pa.Table:
    """Logged rows served in ``[since_us, until_us)`` (epoch µs), each once (by its identity), in the log's order."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    from sinks.iceberg.as_of import iso_us

    if log.current_snapshot() is None:
        return ARROW_SCHEMA.empty_table()
    rows = log.scan(
        row_filter=And(GreaterThanOrEqual("served_at", iso_us(since_us)), LessThan("served_at", iso_us(until_us)))
    ).to_arrow()
    if not rows.num_rows:
        return rows
    # One row per identity (topic, partition, offset, position): an at-least-once landing may hold a batch twice.
    keyed = rows.append_column("_row", pa.array(np.arange(rows.num_rows)))
    first = keyed.group_by(list(IDENTITY), use_threads=False).aggregate([("_row", "min")])
    kept = first.column("_row_min")
    return rows.take(pc.take(kept, pc.sort_indices(kept)))  # in the log's order


@dataclass
class Batch:
    """Rows decoded from a run of messages, column by column."""

    columns: dict[str, list[Any]]
    bad: int = 0
    first_bad: tuple[str, int, int] | None = None  # the first skipped record's topic, partition and offset

    @classmethod
    def empty(cls) -> Batch:
        return cls({f.name: [] for f in ARROW_SCHEMA})

    def __len__(self) -> int:
        return len(self.columns["served_at"])

    def add(self, value: bytes | None, topic: str, partition: int, offset: int) -> None:
        # Every field is checked here, so that one malformed record is skipped alone: a value Arrow cannot hold
        # would otherwise fail the whole batch in ``to_arrow``, on every restart of the sink (its offset is never
        # committed).
        try:
            record = orjson.loads(value or b"")
            columns = [record[k] for k in ("names", "versions", "values", "feature_timestamps", "statuses")]
            if not all(isinstance(c, list) for c in columns) or len({len(c) for c in columns}) != 1:
                raise ValueError("columns that are not lists of one length")
            names = [_string(n, null=False) for n in record["names"]]
            versions = [_whole(v, _INT32) for v in record["versions"]]
            times = [_epoch_us(t) for t in record["feature_timestamps"]]
            statuses = [_string(s, null=False) for s in record["statuses"]]
            common = {
                "served_at": _whole(record["served_at"], _MS_RANGE) * 1000,
                "request_id": _string(record.get("request_id")),
                "caller": _string(record.get("caller")),
                "feature_service": _string(record.get("feature_service")),
                "model_name": _string(record.get("model_name")),
                "model_version": _string(record.get("model_version")),
                "entity_type": _string(record["entity_type"], null=False),
                "entity_id": _string(record["entity_id"], null=False),
                "kafka_topic": topic,
                "kafka_partition": partition,
                "kafka_offset": offset,
            }
            encoded = [orjson.dumps(v).decode() for v in record["values"]]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.bad += 1
            self.first_bad = self.first_bad or (topic, partition, offset)
            return
        c = self.columns
        for i, name in enumerate(names):
            for field, item in common.items():
                c[field].append(item)
            c["feature_name"].append(name)
            c["feature_version"].append(versions[i])
            c["value_json"].append(encoded[i])
            c["feature_time"].append(times[i])
            c["status"].append(statuses[i])
            c["position"].append(i)

    def to_arrow(self) -> pa.Table:
        arrays = []
        for field in ARROW_SCHEMA:
            values = self.columns[field.name]
            arrays.append(pa.array(values, field.type))  # feature_time: epoch µs, parsed in ``add``
        return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA)


def consumer_config(bootstrap: str, group: str = GROUP) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "reconnect.backoff.max.ms": 1000,
        # A sink that died without leaving the group holds its partitions this long: 10 s, not the default 45 s
        # (heartbeats come from librdkafka's own thread, so a long append does not end the session).
        "session.timeout.ms": 10_000,
    }


_MAINTAIN_EVERY_S = 600.0


class ServingLogSink:
    """Consume, append, commit; ``run(once=True)`` stops when every assigned partition is read to its end."""

    def __init__(
        self,
        consumer: Consumer,
        table: Table,
        *,
        batch_rows: int = 50_000,
        max_wait_s: float = 5.0,
        erased: ErasedEntities | None = None,
        expire_after_s: float = 3600.0,
    ) -> None:
        """``erased``: records of an erased entity served at or before its serving cutoff (``registry.erasures``:
        the later of the erasure and the instant its online data was gone) are dropped, counted in
        ``dropped_erased``. Every ten minutes (``_maintain``) the table's snapshots older than ``expire_after_s``
        are expired and its metadata files out of its metadata log deleted (0: neither)."""
        self._consumer = consumer
        self._table = table
        self._expire_after_s = expire_after_s
        self._maintained_at = -_MAINTAIN_EVERY_S  # the first round runs at once
        self._erased = erased
        self.dropped_erased = 0
        self._batch_rows = batch_rows
        self._max_wait_s = max_wait_s
        self.rows = 0
        self.bad = 0

    def _chunks(self, deadline: float, eof: set[tuple[str, int]]) -> Iterator[list[Message]]:
        """The messages of each ``consume`` call, whole (possibly none). A caller stops between chunks, never
        inside one: librdkafka stores the offset of every message a call returns, so the next commit moves
        past them all, and a message left unread would be lost (and a partition's end left unseen)."""
        from confluent_kafka import KafkaError, KafkaException

        while time.monotonic() < deadline:
            chunk = []
            for message in self._consumer.consume(num_messages=1000, timeout=0.5):
                error = message.error()
                where = (str(message.topic()), int(message.partition() or 0))
                if error is None:
                    eof.discard(where)
                    chunk.append(message)
                elif error.code() == KafkaError._PARTITION_EOF:
                    eof.add(where)
                elif error.fatal() or not error.retriable():
                    raise StoreUnavailableError(f"serving log consumer: {KafkaException(error)}")
            yield chunk

    def run(self, *, once: bool = False, timeout_s: float = 120.0) -> int:
        """Append until stopped (or, with ``once``, until caught up); returns the rows appended. A batch
        holds whole ``consume`` results: ``batch_rows`` or more rows, or what ``max_wait_s`` gathered.

        ``once`` fails with StoreUnavailableError if it is not caught up within ``timeout_s``.
        """
        eof: set[tuple[str, int]] = set()
        started = time.monotonic()
        while True:
            batch = Batch.empty()
            deadline = time.monotonic() + self._max_wait_s
            for chunk in self._chunks(deadline, eof):
                for message in chunk:
                    batch.add(
                        message.value(), str(message.topic()), int(message.partition() or 0), int(message.offset() or 0)
                    )
                if len(batch) >= self._batch_rows or (once and self._caught_up(eof)):
                    break
            self.bad += batch.bad
            if len(batch):
                rows = self._without_erased(batch.to_arrow())
                if rows.num_rows:
                    self._append(rows)
                self.rows += rows.num_rows
            if len(batch) or batch.bad:
                self._commit()
            self._maintain()
            if batch.first_bad is not None:  # said as it happens, not only in --once's summary
                topic, partition, offset = batch.first_bad
                print(
                    f"[serving_log] skipped {batch.bad} malformed record(s) (not the API's JSON); the first: {topic} "
                    f"partition {partition} offset {offset}",
                    file=sys.stderr,
                    flush=True,
                )
            if once and self._caught_up(eof):
                return self.rows
            if once and time.monotonic() - started > timeout_s:
                raise StoreUnavailableError(f"serving log not caught up within {timeout_s:.0f} s")

    def _maintain(self) -> None:
        """Every ten minutes: expire the snapshots older than ``expire_after_s`` (never the current one; readers read
        the current snapshot, and the offsets are Kafka's, not the table's), then delete the metadata files out of
        the metadata log. Without it every append (one each ``max_wait_s`` under traffic) kept its snapshot for
        good: each commit rewrote a metadata file holding all of them (~11 MiB after a day), none ever deleted."""
        if time.monotonic() - self._maintained_at < _MAINTAIN_EVERY_S:
            return
        from sinks.iceberg.maintenance import expire_older_than, remove_old_metadata

        self._maintained_at = time.monotonic()
        if self._expire_after_s:
            self._table = expire_older_than(self._table, self._expire_after_s)
            remove_old_metadata(self._table)

    def _commit(self) -> None:
        """Commit the offsets of every record returned so far. None stored (a rebalance took the batch's partitions:
        their new owner reads the records again, and readers drop the repeats) is nothing to commit; any other
        refusal is StoreUnavailableError (the records landed are read again on restart)."""
        from confluent_kafka import KafkaError, KafkaException

        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError._NO_OFFSET:
                return
            raise StoreUnavailableError(f"serving log consumer could not commit its offsets: {exc}") from exc

    def _append(self, rows: pa.Table) -> None:
        """``rows`` as one snapshot. Other processes commit to this table too (an erasure deletes rows, retention
        expires snapshots, another landing appends): a commit that lost to theirs wrote nothing, and is retried on
        the table as it is now, after a random wait, up to ``_APPEND_ATTEMPTS`` times. Storage or a catalog that
        cannot be used (an I/O error, the catalog's database refusing) is StoreUnavailableError."""
        from pyiceberg.exceptions import CommitFailedException
        from sqlalchemy.exc import OperationalError

        from sinks.iceberg.maintenance import one_line
        from sinks.iceberg.writer import WHOLE_BOUNDS, append_table, commit_backoff_s

        for attempt in range(_APPEND_ATTEMPTS):
            try:
                if attempt:
                    time.sleep(commit_backoff_s(attempt))
                    self._table.refresh()
                append_table(self._table, rows, WHOLE_BOUNDS)
                return
            except CommitFailedException as exc:
                if attempt == _APPEND_ATTEMPTS - 1:
                    raise StoreUnavailableError(f"Iceberg commit lost {_APPEND_ATTEMPTS} races in a row") from exc
            except (OSError, OperationalError) as exc:
                raise StoreUnavailableError(f"Iceberg append failed: {one_line(exc)}") from exc

    def _without_erased(self, rows: pa.Table) -> pa.Table:
        """The batch without records of erased entities served at or before their serving cutoff
        (``Erased.served_cutoff``, whole ms, as ``served_at`` is): until then the API may have served the entity's
        pre-erasure values (vectorized: only rows whose entity id is an erased one, or whose entity type is erased
        by key field, are looked at one by one)."""
        erased = self._erased.current() if self._erased is not None else None
        if not erased:
            return rows
        candidates = pc.is_in(
            rows.column("entity_id"), value_set=pa.array(sorted({i for _, i in erased.ids}), pa.string())
        )
        if erased.keys:
            by_key = pc.is_in(rows.column("entity_type"), value_set=pa.array(sorted(erased.keys), pa.string()))
            candidates = pc.or_(candidates, by_key)
        at = np.flatnonzero(candidates.to_numpy(zero_copy_only=False))
        if not len(at):
            return rows
        picked = rows.take(pa.array(at)).select(["entity_type", "entity_id"]).to_pylist()
        served_ms = (rows.column("served_at").cast(pa.int64()).to_numpy()[at] // 1000).tolist()  # epoch µs -> ms
        drop = []
        for j, r, ms in zip(at, picked, served_ms, strict=True):
            cutoff = erased.served_cutoff(r["entity_type"], r["entity_id"])
            if cutoff is not None and ms <= cutoff:
                drop.append(int(j))
        self.dropped_erased += len(drop)
        keep = np.ones(rows.num_rows, dtype=bool)
        keep[drop] = False
        return rows.filter(pa.array(keep))

    def _caught_up(self, eof: set[tuple[str, int]]) -> bool:
        assigned = {(p.topic, p.partition) for p in self._consumer.assignment()}
        return bool(assigned) and assigned <= eof


def main(argv: list[str] | None = None) -> int:
    from confluent_kafka import Consumer

    from registry.core.errors import FeatureStoreError
    from registry.core.settings import settings_for_command
    from registry.core.shown import error_line
    from sinks.factory import connect_iceberg
    from sinks.topics import ensure_topics

    parser = ArgumentParser(prog="python -m sinks.serving_log", description=__doc__)
    parser.add_argument(
        "--topic", type=kafka_topic, default=TOPIC, help=f"the topic the feature API logs to (default {TOPIC})"
    )
    parser.add_argument("--once", action="store_true", help="stop when caught up (for a schedule or a test)")
    parser.add_argument(
        "--expire-after-s",
        type=number(0.0, math.inf),
        default=3600.0,
        help="expire the table's snapshots older than this, every ten minutes, and delete its metadata files out of "
        "the metadata log (0: neither; default 3600)",
    )
    args = parser.parse_args(argv)
    settings = settings_for_command()
    sink: ServingLogSink | None = None
    try:
        ensure_topics(settings.kafka_bootstrap, [args.topic])
        table = ensure_log_table(connect_iceberg(settings), settings.iceberg_namespace)
        consumer = Consumer(consumer_config(settings.kafka_bootstrap))
        consumer.subscribe([args.topic])
        try:
            sink = ServingLogSink(
                consumer,
                table,
                erased=ErasedEntities.at(settings.definitions_db),
                expire_after_s=args.expire_after_s,
            )
            rows = sink.run(once=args.once)
        finally:
            consumer.close()
    except FeatureStoreError as exc:
        print(error_line(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if sink is not None:
            print(f"interrupted: appended {sink.rows} rows ({sink.bad} records skipped as malformed)", file=sys.stderr)
        return 0
    print(f"appended {rows} rows ({sink.bad} records skipped as malformed)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
