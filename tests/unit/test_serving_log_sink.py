"""The serving log's landing keeps every consumed record: a batch is cut between ``consume`` results, never
inside one (librdkafka stores the offset of every message a call returns, and the commit moves past them)."""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
from confluent_kafka import KafkaError, TopicPartition

from sinks.serving_log import ServingLogSink

NAMES = [f"f{i}" for i in range(100)]


class _Eof:
    def code(self) -> int:
        return KafkaError._PARTITION_EOF


class _Message:
    def __init__(self, partition: int, offset: int | None, value: bytes | None = None) -> None:
        self._partition, self._offset, self._value = partition, offset, value

    def error(self) -> _Eof | None:
        return _Eof() if self._offset is None else None

    def topic(self) -> str:
        return "fs_serving_log"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int | None:
        return self._offset

    def value(self) -> bytes | None:
        return self._value


def _record(offset: int) -> bytes:
    return orjson.dumps(
        {
            "served_at": 1_800_000_000_000 + offset,
            "entity_type": "user",
            "entity_id": f"u{offset}",
            "names": NAMES,
            "versions": [1] * len(NAMES),
            "values": list(range(len(NAMES))),
            "feature_timestamps": [None] * len(NAMES),
            "statuses": ["missing"] * len(NAMES),
        }
    )


class _Consumer:
    """Returns up to ``num_messages`` of each partition's log per call, then its end; ``commit`` commits
    every offset returned so far, as librdkafka's stored offsets do."""

    def __init__(self, records: dict[int, int]) -> None:
        self.pending: list[_Message] = []
        for partition, count in records.items():
            self.pending += [_Message(partition, o, _record(o)) for o in range(count)]
            self.pending.append(_Message(partition, None))  # the partition's end
        self.returned: dict[int, int] = {}
        self.committed: dict[int, int] = {}
        self.partitions = sorted(records)

    def consume(self, num_messages: int, timeout: float) -> list[_Message]:
        out, self.pending = self.pending[:num_messages], self.pending[num_messages:]
        for m in out:
            if m.offset() is not None:
                self.returned[m.partition()] = int(m.offset() or 0) + 1
        return out

    def commit(self, asynchronous: bool) -> None:
        self.committed = dict(self.returned)

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("fs_serving_log", p) for p in self.partitions]


class _Table:
    def __init__(self) -> None:
        self.appended: list[pa.Table] = []

    def append(self, rows: pa.Table) -> None:
        self.appended.append(rows)


def test_every_consumed_record_lands_once_before_its_offset_is_committed() -> None:
    consumer, table = _Consumer({0: 1_700, 1: 900}), _Table()
    sink = ServingLogSink(consumer, table, batch_rows=50_000, expire_after_s=0)  # type: ignore[arg-type]
    assert sink.run(once=True, timeout_s=30) == 2_600 * len(NAMES)
    landed = pa.concat_tables(table.appended)
    keys = set(zip(landed["kafka_partition"].to_pylist(), landed["kafka_offset"].to_pylist(), strict=True))
    assert keys == {(0, o) for o in range(1_700)} | {(1, o) for o in range(900)}
    assert landed.num_rows == 2_600 * len(NAMES)
    assert consumer.committed == {0: 1_700, 1: 900}


def test_a_batch_is_cut_at_batch_rows_between_consume_results() -> None:
    consumer, table = _Consumer({0: 2_500}), _Table()
    sink = ServingLogSink(consumer, table, batch_rows=150, expire_after_s=0)  # type: ignore[arg-type]
    sink.run(once=True, timeout_s=30)
    sizes: list[Any] = [t.num_rows // len(NAMES) for t in table.appended]
    assert sizes == [1_000, 1_000, 500]  # each append whole consume results (1,000 records at most per call)


def test_malformed_records_are_said_as_they_are_skipped(capsys: Any) -> None:
    """In a run that does not end (no --once), skipped records were only counted, never said: committed past
    without a word. Each batch that skips some now names how many and the first one's place."""
    consumer, table = _Consumer({0: 3}), _Table()
    consumer.pending[1] = _Message(0, 1, b"not json")
    sink = ServingLogSink(consumer, table, batch_rows=50_000, expire_after_s=0)  # type: ignore[arg-type]
    assert sink.run(once=True, timeout_s=30) == 2 * len(NAMES)
    assert sink.bad == 1 and consumer.committed == {0: 3}
    err = capsys.readouterr().err
    assert "[serving_log] skipped 1 malformed record(s)" in err and "partition 0 offset 1" in err
