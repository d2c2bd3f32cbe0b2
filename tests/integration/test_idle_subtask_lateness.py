"""A source subtask back from idleness, behind the others: its records are judged by two watermarks (design §5.3,
"The lateness gate", §10.5), and the later one decides.

At parallelism 2 on 2 partitions each source subtask reads one. Partition 1 has one record at ``BASE + 1 min`` and
then stays silent past its ``idle_timeout`` (2 s), while partition 0 runs two hours ahead: the windows' watermark
moves on with partition 0 alone (the early entity's windows are written, which shows partition 1 went idle). Then
partition 1 sends a record at ``BASE + 10 min``: by its own subtask's watermark (``BASE + 1 min - 5 s``) it is on
time, so the source's SQL accepts it; but Flink leaves the re-activated subtask out of the windows' watermark until
it catches up (``StatusWatermarkValve``), the windows judge it by partition 0's watermark, and all its windows are
past ``end - 1 + 30 min``. Before the lateness gate (``featurestore.job.LatenessGate``, keyed behind the
decoder) the window operator dropped it and no dead letter said so; the gate judges it by the windows' own
watermark and dead-letters it as too late.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from jobs.produce import ensure_topics, make_producer
from registry.core.settings import Settings
from tests.conftest import isolated
from tests.integration.stream_io import (
    BASE,
    MIN,
    dead_letters,
    job_output,
    offline_rows,
    payload,
    register_card_features,
    start_job,
)
from tests.integration.stream_reference import Record

pytestmark = [pytest.mark.integration]


@pytest.mark.parametrize("parallelism", [1, 2], ids=["one_subtask_reads_both", "a_subtask_each"])
def test_a_record_of_a_partition_back_from_idleness_is_counted_or_dead_lettered(
    it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory, parallelism: int
) -> None:
    """At parallelism 1 one subtask reads both partitions: the record is judged by the subtask's combined watermark,
    partition 0's, at the source and at the windows alike, and dead-lettered as too late by the source's check. At
    2 the lateness gate dead-letters it."""
    settings = isolated(it_settings, f"idlesubtask{parallelism}", tmp_path_factory.mktemp(f"idlesubtask{parallelism}"))
    topic = f"it_{run_id}_idle_subtask_p{parallelism}"
    group_id = f"it-{run_id}-idle-subtask-p{parallelism}"
    register_card_features(settings, topic, allowed_lateness="30m", idle_timeout="2s")
    ensure_topics(settings.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=2)
    producer = make_producer(settings)

    def send(partition: int, records: list[Record]) -> None:
        for r in records:
            producer.send_raw(topic, r.key.encode(), payload(producer, topic, r), r.timestamp_ms, partition)
        producer.flush()

    ahead = [Record("u_ahead", BASE + i * 5 * MIN, f"ahead{i}", 1.0) for i in range(25)]  # up to BASE + 2 h
    send(1, [Record("u_early", BASE + MIN, "early", 1.0)])
    send(0, ahead)
    # Partition 0 gets a record every half second for the whole run, so it never goes idle: only partition 1 does.
    # (Left silent too, partition 0 went idle in a race with partition 1; the one idle first froze the watermark
    # at the other's, as Flink does not move a watermark whose inputs are all idle, and u_early's windows stayed
    # open in about half the runs.)
    stop = threading.Event()

    def trickle() -> None:
        k = 0
        while not stop.wait(0.5):
            send(0, [Record("u_ahead", BASE + 2 * 60 * MIN + k * 1000, f"trickle{k}", 1.0)])
            k += 1

    trickling = threading.Thread(target=trickle, daemon=True)
    trickling.start()
    job = start_job(settings, group_id, "--parallelism", str(parallelism), "--checkpoint-interval-ms", "500")
    try:
        deadline = time.monotonic() + 240
        # The early entity's windows end after BASE + 1 min: written only once the windows' watermark passed them,
        # which partition 1 (its subtask's watermark BASE + 1 min - 5 s) allows only when it is idle.
        while not any(r["entity_id"] == "u_early" for r in offline_rows(settings, leave_out="")):
            assert job.poll() is None, job_output(job)
            assert time.monotonic() < deadline, "partition 1 did not go idle (no window of u_early) within 240 s"
            time.sleep(1)
        send(1, [Record("u_resumed", BASE + 10 * MIN, "resumed", 2.0)])  # on time by its own subtask's watermark
        while _committed_on_partition_1(settings, group_id, topic) < 2:  # read, and in a checkpoint
            assert job.poll() is None, job_output(job)
            assert time.monotonic() < deadline, "the job did not read the resumed record within 240 s"
            time.sleep(0.5)
        time.sleep(8)  # past the writer's 5 s backstop flush
        counted = {r["entity_id"] for r in offline_rows(settings, leave_out="")}
    finally:
        stop.set()
        trickling.join(10)
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    letters = dead_letters(settings, f"{topic}.dlq", f"{group_id}-dlq", 1)
    assert "u_resumed" not in counted, f"the resumed record is in a window it was too late for: {sorted(counted)}"
    assert ("too_late", "resumed") in letters, (
        f"the resumed record is in no window and no dead letter (entities written: {sorted(counted)}; "
        f"letters: {dict(letters)})"
    )


def _committed_on_partition_1(settings: Settings, group_id: str, topic: str) -> int:
    """The offset ``group_id`` committed on partition 1 (the job commits at checkpoints); -1 unanswered."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group_id})
    try:
        (committed,) = consumer.committed([TopicPartition(topic, 1)], timeout=10)
        return int(committed.offset)
    except KafkaException:
        return -1
    finally:
        consumer.close()
