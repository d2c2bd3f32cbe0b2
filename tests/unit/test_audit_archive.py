"""The archiver's contract (design §5.7), with Kafka and the table stood in for.

- "An append holds at most ``--batch-rows`` records and waits at most ``--max-wait-s`` for them, whichever
  comes first" (the class: "A batch is appended when it holds ``batch_rows`` records or ``max_wait_s``
  passed since it started"): a topic receiving a record a second got one append (one snapshot) per
  record, not one per ``max_wait_s``.
- ``fs_archive_next_offset`` is the committed next offset: a restarted archiver with nothing new to append
  did not export it at all, so archive lag (end - next) could not be computed.
- "If Kafka already deleted the next offset to archive, the archiver stops with ``ArchiveError: '<topic>'
  partition P: offsets A..B are neither archived nor in Kafka any more``": when retention deleted it while
  the range was being read (after the seam was checked), the error was librdkafka's own text instead.
"""

from __future__ import annotations

from collections.abc import Generator
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError
from prometheus_client import CollectorRegistry

from sinks import archive


class _Clock:
    """Monotonic time that moves only when the archiver sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def time_ns(self) -> int:
        return 1_800_000_000_000_000_000


def _message(partition: int, offset: int) -> Any:
    return SimpleNamespace(
        partition=lambda: partition,
        offset=lambda: offset,
        error=lambda: None,
        timestamp=lambda: (1, 1_800_000_000_000),
        value=lambda: b"v",
        key=lambda: b"k",
    )


class _Stop(Exception):
    pass


def _trickle(
    monkeypatch: pytest.MonkeyPatch, *, backlog: int = 1, fetch_s: float = 0.0
) -> tuple[archive.Archiver, list[int]]:
    """An archiver over a topic of one partition that holds ``backlog`` records and receives one more a
    second (archive empty); each read takes ``fetch_s`` to deliver its first record."""
    clock = _Clock()
    monkeypatch.setattr(archive, "time", clock)
    monkeypatch.setattr(archive, "next_offsets", lambda table, snapshot_id=None: {})
    start_s = clock.now
    monkeypatch.setattr(archive, "kafka_offsets", lambda c, t: {0: (0, backlog + int(clock.now - start_s))})

    def read_range(c: Any, t: str, start: dict[int, int], end: dict[int, int], **kw: Any) -> Generator[Any]:
        clock.now += fetch_s
        for p in start:
            for offset in range(start[p], end[p]):
                yield _message(p, offset)

    monkeypatch.setattr(archive, "read_range", read_range)
    archiver = archive.Archiver(None, None, "t", batch_rows=1000, max_wait_s=5.0)  # type: ignore[arg-type]
    appended: list[int] = []

    def append(batch: list[Any], following: dict[int, int]) -> None:
        appended.append(len(batch))
        raise _Stop

    monkeypatch.setattr(archiver, "_append", append)
    monkeypatch.setattr(archiver, "_expire", lambda: None)
    return archiver, appended


def test_a_trickle_is_appended_once_per_max_wait_not_once_per_record(monkeypatch: pytest.MonkeyPatch) -> None:
    archiver, appended = _trickle(monkeypatch)
    with pytest.raises(_Stop):
        archiver.run()
    # Records at 0 s .. 5 s: the batch waited its 5 s for them (before: one record, appended at once).
    assert appended == [6]


def test_a_batch_stops_at_batch_rows_before_max_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    archiver, appended = _trickle(monkeypatch)
    archiver._batch_rows = 3
    with pytest.raises(_Stop):
        archiver.run()
    assert appended == [3]


def test_once_appends_what_kafka_had_at_the_start_without_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    archiver, appended = _trickle(monkeypatch)
    with pytest.raises(_Stop):
        archiver.run(once=True)
    assert appended == [1]


@pytest.mark.parametrize("max_wait_s", [0.0, 0.2])
def test_records_kafka_holds_are_taken_not_cut_by_the_wait(monkeypatch: pytest.MonkeyPatch, max_wait_s: float) -> None:
    # A backlog of 300 records, the consumer 1 s from its first fetch: with --max-wait-s 0.2 (or 0) every
    # append held one record (300 snapshots, minutes for --once), as the wait ran out before the first came.
    archiver, appended = _trickle(monkeypatch, backlog=300, fetch_s=1.0)
    archiver._max_wait_s = max_wait_s
    with pytest.raises(_Stop):
        archiver.run(once=True)
    assert appended == [300]


def test_a_restarted_archiver_with_nothing_new_exports_its_next_offsets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "next_offsets", lambda table, snapshot_id=None: {0: 5})
    monkeypatch.setattr(archive, "kafka_offsets", lambda c, t: {0: (2, 5), 1: (3, 3)})
    registry = CollectorRegistry()
    archiver = archive.Archiver(None, None, "t", metrics=archive.ArchiveMetrics(registry))  # type: ignore[arg-type]
    monkeypatch.setattr(archiver, "_expire", lambda: None)
    assert archiver.run(once=True) == 0

    def sample(name: str, partition: str) -> float | None:
        return registry.get_sample_value(name, {"topic": "t", "partition": partition})

    assert sample("fs_archive_next_offset", "0") == 5  # committed
    assert sample("fs_archive_next_offset", "1") == 3  # never archived: from Kafka's first offset
    assert sample("fs_archive_kafka_end_offset", "0") == 5  # lag = end - next = 0


class _ResetConsumer:
    """A consumer that delivers ``records`` of partition 0, then finds its next offset deleted (Kafka now
    starts at ``low``)."""

    def __init__(self, records: list[int], low: int) -> None:
        self._pending = [_message(0, o) for o in records]
        self._low = low

    def assign(self, partitions: Any) -> None:
        pass

    def unassign(self) -> None:
        pass

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        if self._pending:
            out, self._pending = self._pending, []
            return out
        error = KafkaError(KafkaError._AUTO_OFFSET_RESET, "fetch failed: Broker: Offset out of range")
        return [SimpleNamespace(error=lambda: error, partition=lambda: 0)]

    def get_watermark_offsets(self, partition: Any, timeout: float) -> tuple[int, int]:
        return (self._low, 10)


@pytest.mark.parametrize(("records", "lost"), [([], "3..6"), ([3], "4..6"), ([3, 4, 5, 6], None)])
def test_offsets_deleted_while_read_are_named(records: list[int], lost: str | None) -> None:
    consumer = _ResetConsumer(records, low=7)
    with pytest.raises(archive.ArchiveError) as raised:
        list(archive.read_range(consumer, "t", {0: 3}, {0: 10}))  # type: ignore[arg-type]
    if lost is None:  # nothing lost (Kafka still holds the next offset): the reset is reported as it came
        assert "Offset out of range" in str(raised.value)
    else:
        assert str(raised.value).startswith(
            f"'t' partition 0: offsets {lost} are neither archived nor in Kafka any more"
        )


def test_a_gap_while_a_batch_waits_keeps_the_batch_and_names_only_what_is_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Records 0 and 1 read (at 0 s and 1 s); at 2 s Kafka starts at offset 10: 2..9 are lost, 0 and 1 are not.
    archiver, _ = _trickle(monkeypatch)
    clock = archive.time
    monkeypatch.setattr(
        archive,
        "kafka_offsets",
        lambda c, t: {0: (0, 2) if clock.now < 1002 else (10, 12)},  # type: ignore[attr-defined]
    )
    kept: list[tuple[int, dict[int, int]]] = []
    monkeypatch.setattr(archiver, "_append", lambda batch, following: kept.append((len(batch), following)))
    with pytest.raises(archive.ArchiveError, match=r"^'t' partition 0: offsets 2\.\.9 are neither archived"):
        archiver.run()
    assert kept == [(2, {0: 2})]


def test_an_archive_table_name_fits_a_file_name_for_every_kafka_topic() -> None:
    """A topic of 232 characters or more gave a table name past 255 bytes: the archiver's first append failed with
    ``OSError: File name too long`` (a traceback). Names of shorter topics are what they were."""
    import hashlib

    assert archive.table_name("card_transactions") == (
        f"events_archive_card_transactions_{hashlib.sha256(b'card_transactions').hexdigest()[:8]}"
    )
    assert len(archive.table_name("t" * 231)) == 255
    longest, other = "t" * 249, "t" * 248 + "u"
    assert len(archive.table_name(longest)) == 255 and archive.table_name(longest) != archive.table_name(other)
