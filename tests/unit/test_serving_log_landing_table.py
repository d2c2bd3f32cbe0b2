"""The serving log's landing on a real (SQLite) Iceberg catalog: other processes commit to its table as well (an
erasure deletes rows of it, retention expires its snapshots, a second landing shares the topic's partitions), a
record can hold what the table cannot, and storage can fail; each lands every good record once or stops with
one error, its offsets uncommitted."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from pyiceberg.catalog.sql import SqlCatalog

from registry.core.errors import StoreUnavailableError
from sinks.serving_log import TABLE, Batch, ServingLogSink, ensure_log_table, read_logged

TOPIC = "fs_serving_log"
SERVED_MS = 1_800_000_000_000


class _Eof:
    def code(self) -> int:
        return KafkaError._PARTITION_EOF


class _Message:
    def __init__(self, offset: int | None, value: bytes | None = None) -> None:
        self._offset, self._value = offset, value

    def error(self) -> _Eof | None:
        return _Eof() if self._offset is None else None

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return 0

    def offset(self) -> int | None:
        return self._offset

    def value(self) -> bytes | None:
        return self._value


def record(offset: int, feature_timestamp: str | None = "2026-12-01T00:00:00Z") -> bytes:
    return orjson.dumps(
        {
            "served_at": SERVED_MS + offset,
            "entity_type": "user",
            "entity_id": f"u{offset}",
            "names": ["txn_count_1h"],
            "versions": [1],
            "values": [offset],
            "feature_timestamps": [feature_timestamp],
            "statuses": ["present"],
        }
    )


class Consumer:
    """One partition's messages in a single ``consume`` result, then its end; ``commit`` records the offsets."""

    def __init__(self, values: list[bytes]) -> None:
        self.pending = [_Message(o, v) for o, v in enumerate(values)] + [_Message(None)]
        self.commits = 0

    def consume(self, num_messages: int, timeout: float) -> list[_Message]:
        out, self.pending = self.pending[:num_messages], self.pending[num_messages:]
        return out

    def commit(self, asynchronous: bool) -> None:
        self.commits += 1

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, 0)]


def catalog(tmp_path: Path) -> SqlCatalog:
    return SqlCatalog("test", uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=f"file://{tmp_path}/warehouse")


def landed(tmp_path: Path) -> pa.Table:
    table = catalog(tmp_path).load_table(("fs", TABLE))
    return read_logged(table, (SERVED_MS - 1000) * 1000, (SERVED_MS + 10_000) * 1000)


def test_an_append_after_another_process_committed_is_retried_on_the_table_as_it_is_now(tmp_path: Path) -> None:
    table = ensure_log_table(catalog(tmp_path), "fs")  # the landing's handle, loaded at its start
    other = catalog(tmp_path).load_table(("fs", TABLE))  # another process (an erasure, a second landing)
    first = Batch.empty()
    first.add(record(100), "other_topic", 0, 100)
    other.append(first.to_arrow())  # a snapshot the landing's handle has not seen
    consumer = Consumer([record(o) for o in range(3)])
    sink = ServingLogSink(consumer, table)  # type: ignore[arg-type]
    assert sink.run(once=True, timeout_s=30) == 3
    assert consumer.commits == 1
    rows = landed(tmp_path)
    assert sorted(rows.column("entity_id").to_pylist()) == ["u0", "u1", "u100", "u2"]


def test_a_feature_timestamp_outside_the_years_a_row_holds_is_skipped_not_a_batch_failed_for_good(
    tmp_path: Path,
) -> None:
    """An offset can carry a timestamp written within 0001-9999 out of them in UTC: the append failed
    (OverflowError) on the whole batch, whose offsets were never committed, so every restart failed again."""
    table = ensure_log_table(catalog(tmp_path), "fs")
    late, early = "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"
    consumer = Consumer([record(0), record(1, late), record(2, early), record(3, "9999-12-31T23:59:59.999999Z")])
    sink = ServingLogSink(consumer, table)  # type: ignore[arg-type]
    assert sink.run(once=True, timeout_s=30) == 2
    assert sink.bad == 2 and consumer.commits == 1
    assert sorted(landed(tmp_path).column("entity_id").to_pylist()) == ["u0", "u3"]


def test_a_table_whose_storage_fails_stops_the_landing_with_store_unavailable_and_commits_nothing(
    tmp_path: Path,
) -> None:
    """Storage that cannot be written (a full or unmounted disk; here its data folder is a file) was an OSError
    traceback; it is a StoreUnavailableError (the command's one error line), the offsets left uncommitted."""
    table = ensure_log_table(catalog(tmp_path), "fs")
    data = Path(table.location().removeprefix("file://")) / "data"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("not a folder")
    consumer = Consumer([record(0)])
    sink = ServingLogSink(consumer, table)  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailableError, match="Iceberg append failed"):
        sink.run(once=True, timeout_s=30)
    assert consumer.commits == 0


class RefusingConsumer(Consumer):
    """A consumer whose commit fails as librdkafka's does."""

    def __init__(self, values: list[bytes], code: int) -> None:
        super().__init__(values)
        self.code = code

    def commit(self, asynchronous: bool) -> None:
        raise KafkaException(KafkaError(self.code))


def test_a_commit_with_no_offset_stored_is_nothing_to_commit(tmp_path: Path) -> None:
    """A rebalance can take the batch's partitions before the commit: librdkafka then has no offset to commit
    (``_NO_OFFSET``), and their new owner reads the records again (readers drop the repeats). It was a traceback."""
    table = ensure_log_table(catalog(tmp_path), "fs")
    sink = ServingLogSink(RefusingConsumer([record(0)], KafkaError._NO_OFFSET), table)  # type: ignore[arg-type]
    assert sink.run(once=True, timeout_s=30) == 1


def test_a_commit_kafka_refuses_stops_the_landing_with_store_unavailable(tmp_path: Path) -> None:
    """A broker gone, or a group that moved on (an append longer than ``max.poll.interval.ms``): one error line,
    not a KafkaException traceback; the rows appended are read again on restart and their repeats dropped."""
    table = ensure_log_table(catalog(tmp_path), "fs")
    sink = ServingLogSink(RefusingConsumer([record(0)], KafkaError.ILLEGAL_GENERATION), table)  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailableError, match="could not commit"):
        sink.run(once=True, timeout_s=30)
    assert landed(tmp_path).num_rows == 1
