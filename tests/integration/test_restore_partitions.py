"""Restore keeps time per partition (#12 item 5): each source subtask reading two partitions, restored.

A source subtask's watermark is the lowest of its partitions' (each the highest ``timestamp -
max_out_of_orderness`` of the partition's records). At parallelism ``n`` the topic has ``2n`` partitions, and
partitions ``k`` and ``k + n`` are read by one subtask (Flink's Kafka source gives partition ``p`` to subtask
``(start + p) % n``). Partition ``k`` (ahead) runs half an hour ahead of partition ``k + n`` (behind) when the job is
killed, so the checkpoint's combined watermark of each subtask is its behind partition's. After the restore,
each behind partition moves up to its ahead partner's progress first, then brings records that are too late
only by that progress: one for an entity with no other event (accepting it would open a window the reference
does not have), one exactly at the boundary, one a millisecond inside it and one merely late. The ahead
partitions have nothing new to replay then, so the restored job knows their progress only from the
checkpoint: with each subtask's combined watermark alone (the old rule), the first two were accepted. Dead
letters and offline windows must be those of a run that never stopped (a brute-force reference over the
records in one order of reading; here every order gives the same answer, because a behind partition reaches
exactly its partner's progress before its late records, whether the partner is idle or not).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobs.produce import ensure_topics, make_producer
from registry.core.settings import Settings
from tests.conftest import isolated
from tests.integration.stream_io import (
    BASE,
    HOUR,
    LATENESS,
    MARKER,
    MIN,
    OUT_OF_ORDERNESS,
    caught_up,
    committed_offset,
    dead_letters,
    final_windows,
    job_output,
    kill_job,
    offline_rows,
    payload,
    register_card_features,
    start_job,
)
from tests.integration.stream_reference import Record, Reference

pytestmark = [pytest.mark.integration, pytest.mark.disruptive]  # kills its own job with SIGKILL

LONE = "u_lone"  # the entity of the record too late only by an ahead partition's progress


def simulate_partitions(reads: list[tuple[int, Record]], parallelism: int) -> Reference:
    """The source's rule over records in one order of reading, each with its partition: a record is too late at
    or behind ``watermark - allowed lateness`` and late at or behind the watermark, where the watermark is that
    of the subtask reading the record's partition (partitions ``k`` and ``k + parallelism``): the lowest over its
    two partitions of each one's highest ``timestamp - max_out_of_orderness`` so far (none until both have had a
    record), a record's own not yet counted."""
    ref = Reference()
    highest: dict[int, int] = {}
    for partition, r in reads:
        mine = [highest[p] for p in highest if p % parallelism == partition % parallelism]
        watermark = min(mine) - OUT_OF_ORDERNESS if len(mine) == 2 else None
        highest[partition] = max(highest.get(partition, r.timestamp_ms), r.timestamp_ms)
        if watermark is not None and r.timestamp_ms <= watermark - LATENESS:
            ref.dead_letters.append(("too_late", r))
            continue
        if watermark is not None and r.timestamp_ms <= watermark:
            ref.late += 1
        ref.accepted.append(r)
    return ref


def _on_time(rng: random.Random, partition: int, start: int, span: int, n: int, tag: str) -> list[tuple[int, Record]]:
    """``n`` on-time records of ``partition`` in ``[start, start + span)``, in time order."""
    times = sorted(start + rng.randrange(span) for _ in range(n))
    return [
        (partition, Record(f"p{partition}u{rng.randrange(3)}", t, f"{tag}{i}", rng.randrange(1, 400) / 4))
        for i, t in enumerate(times)
    ]


@dataclass(frozen=True)
class Restored:
    settings: Settings
    topic: str
    group_id: str
    reference: Reference


@pytest.fixture(scope="module", params=[1, 2], ids=["parallelism1", "parallelism2"])
def restored(
    it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Restored]:
    parallelism: int = request.param
    partitions = 2 * parallelism
    settings = isolated(
        it_settings, f"restoreparts{parallelism}", tmp_path_factory.mktemp(f"restoreparts{parallelism}")
    )
    topic = f"it_{run_id}_restore_parts_p{parallelism}"
    group_id = f"it-{run_id}-restore-parts-p{parallelism}"
    # Partitions never idle here: the ahead ones are quiet for a while after the restore, and a run that never
    # stopped (the reference) has them holding the watermark back all along.
    register_card_features(settings, topic, allowed_lateness="30m", idle_timeout="1h")
    ensure_topics(settings.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=partitions)

    rng = random.Random(23)
    before: list[tuple[int, Record]] = []
    after: list[tuple[int, Record]] = []
    later: list[tuple[int, Record]] = []  # the ahead partitions' second part, once the restored job read the rest
    for k in range(parallelism):  # ahead partition k and behind partition k + parallelism: one subtask's
        ahead = _on_time(rng, k, BASE, 60 * MIN, 40, f"a{k}_")  # the first hour
        behind = _on_time(rng, k + parallelism, BASE, 30 * MIN, 40, f"a{k + parallelism}_")  # its first half
        before += [*ahead, *behind]
        top = max(r.timestamp_ms for _, r in ahead)
        progress = top - OUT_OF_ORDERNESS  # the ahead partition's at the checkpoint
        combined = max(r.timestamp_ms for _, r in behind) - OUT_OF_ORDERNESS  # the subtask's: the old rule's floor
        assert progress - 7 * MIN > combined
        b = k + parallelism
        too_late_here = [
            (b, Record(f"{LONE}{b}", progress - LATENESS - 7 * MIN, f"bTooLate{b}", 5.0)),
            (b, Record(f"p{b}u1", progress - LATENESS, f"bAtBoundary{b}", 6.0)),
        ]
        # The subtask's combined watermark alone finds neither too late.
        assert all(r.timestamp_ms > combined - LATENESS for _, r in too_late_here)
        after += [
            (b, Record(f"p{b}u0", top, f"bCatchUp{b}", 3.0)),  # reaches the ahead partition's progress exactly
            *too_late_here,
            (b, Record(f"p{b}u2", progress - LATENESS + 1, f"bJustInside{b}", 7.0)),
            (b, Record(f"p{k}u1", progress - 20 * MIN, f"bLate{b}", 8.0)),
            *_on_time(rng, b, top + 1, 60 * MIN, 30, f"b{b}_"),
        ]
        later += _on_time(rng, k, top + 1, 60 * MIN, 30, f"b{k}_")
    reference = simulate_partitions([*before, *after, *later], parallelism)
    too_late = {r.event_id for reason, r in reference.dead_letters}
    want = {f"{kind}{k + parallelism}" for kind in ("bTooLate", "bAtBoundary") for k in range(parallelism)}
    assert too_late == want, too_late

    producer = make_producer(settings)

    def send(records: list[tuple[int, Record]]) -> None:
        for partition, r in records:
            producer.send_raw(topic, r.key.encode(), payload(producer, topic, r), r.timestamp_ms, partition)
        producer.flush()

    def await_checkpoint(job: subprocess.Popen[str], count: int, what: str) -> None:
        # Offsets are committed when a checkpoint completes: once the group's offsets cover ``count`` records,
        # the newest retained checkpoint holds every one of them, and each partition's progress after them.
        deadline = time.monotonic() + 300
        while committed_offset(settings, group_id, topic, partitions) < count:
            assert job.poll() is None, job_output(job)
            assert time.monotonic() < deadline, f"no checkpoint covered {what} within 300 s"
            time.sleep(0.5)

    send(before)
    checkpoints = tmp_path_factory.mktemp(f"restoreparts_checkpoints{parallelism}")
    options = (
        "--checkpoint-dir",
        str(checkpoints),
        "--checkpoint-interval-ms",
        "300",
        "--parallelism",
        str(parallelism),
    )
    job = start_job(settings, group_id, *options)
    await_checkpoint(job, len(before), "the first part")
    os.killpg(job.pid, signal.SIGKILL)  # the whole job: client, mini-cluster JVM and Python workers
    job.wait()
    latest = max(checkpoints.glob("*/chk-*/_metadata"), key=lambda p: int(p.parent.name.split("-")[1]))

    send(after)
    job = start_job(settings, group_id, "--restore-from", Path(latest.parent).resolve().as_uri(), *options)
    try:
        # The ahead partitions stay quiet until the restored job has read the behind ones' records: only their stored
        # progress can then tell those too late (records of their own would move the source's watermark there too).
        await_checkpoint(job, len(before) + len(after), "the second part")
        marker_ms = time.time_ns() // 1_000_000 - MIN
        send([*later, *((p, Record(MARKER, marker_ms, f"marker{p}")) for p in range(partitions))])  # closes all
        expected = reference.windows(HOUR, 5 * MIN)
        deadline = time.monotonic() + 300
        while not caught_up(settings, expected, leave_out=MARKER):
            assert job.poll() is None, job_output(job)
            assert time.monotonic() < deadline, "the restored job did not write every final window within 300 s"
            time.sleep(1)
        time.sleep(6)  # past the writer's 5 s backstop flush, so that a window the reference lacks would show
    finally:
        kill_job(job)
        job.wait()
    yield Restored(settings, topic, group_id, reference)


def test_too_late_by_a_partitions_stored_progress_is_too_late_after_the_restore(restored: Restored) -> None:
    """Exactly the reference's dead letters, each once: per subtask, the record too late by its ahead partition's
    stored progress and the one exactly at its boundary; the one a millisecond inside it and the merely late one
    accepted."""
    want = Counter((reason, r.event_id) for reason, r in restored.reference.dead_letters)
    got = dead_letters(restored.settings, f"{restored.topic}.dlq", f"{restored.group_id}-dlq", sum(want.values()))
    assert got == want


def test_windows_are_those_of_a_run_that_never_stopped(restored: Restored) -> None:
    expected = restored.reference.windows(HOUR, 5 * MIN)
    final = final_windows(offline_rows(restored.settings, leave_out=MARKER))
    assert not any(entity.startswith(LONE) for entity, _ in final), (
        "a record too late by a stored progress opened a window"
    )
    assert {k: (v["txn_count_1h"], v["txn_amount_sum_1h"]) for k, v in final.items()} == expected
    assert all(v["revision"] == expected[k][0] for k, v in final.items())
