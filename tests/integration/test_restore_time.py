"""Restore keeps time (#12 item 5): a record too late in a run that never stopped is too late after a restart.

One topic partition, read in order, so the brute-force reference (``stream_reference.simulate``) of the
records as one uninterrupted stream holds exactly. The job runs unbounded and checkpointing over the first
part of the records (on-time, late and too-late ones); once a checkpoint covers all of them (the group's
committed offset is their count) the whole job is killed with SIGKILL, the second part is produced, and the
job is restored from that checkpoint. The second part opens with records whose lateness is decided only by
the first part's watermark: one too late by it (for an entity with no other event, so accepting it would
add a window the reference does not have), one exactly at the boundary (watermark - allowed lateness: too
late), one a millisecond inside it and one merely late (accepted). Dead letters, offline windows and online
values must all be the reference's: what a run that never stopped gives.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from jobs.produce import ensure_topics, make_producer
from registry.core.settings import Settings
from sinks.cassandra.reader import OnlineReader
from sinks.factory import connect_cassandra
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
from tests.integration.stream_reference import Record, Reference, simulate

pytestmark = [pytest.mark.integration, pytest.mark.disruptive]  # kills its own job with SIGKILL

LONE = "u_lone"  # the entity of the record too late only by the first part's watermark


def _before(rng: random.Random) -> list[Record]:
    """On-time events over the first hour, with a late-but-allowed and a too-late one now and then."""
    out: list[Record] = []
    for i, t in enumerate(sorted(BASE + rng.randrange(60 * MIN) for _ in range(80))):
        out.append(Record(f"u{rng.randrange(4)}", t, f"a{i}", rng.randrange(1, 400) / 4))
        if i % 20 == 19:
            out.append(Record(f"u{rng.randrange(4)}", t - rng.randrange(10_000, 20 * MIN), f"aLate{i}", 2.5))
        if i % 30 == 29:
            out.append(Record(f"u{rng.randrange(4)}", t - rng.randrange(40 * MIN, 50 * MIN), f"aTooLate{i}", 9.0))
    return out


def _after(rng: random.Random, watermark: int) -> list[Record]:
    """Records late or too late only by ``watermark`` (the first part's), then the second hour's events."""
    out = [
        Record(LONE, watermark - LATENESS - 7 * MIN, "bTooLate", 5.0),
        Record("u1", watermark - LATENESS, "bAtBoundary", 6.0),
        Record("u2", watermark - LATENESS + 1, "bJustInside", 7.0),
        Record("u3", watermark - 25 * MIN, "bLate", 8.0),
        Record("u3", watermark - 24 * MIN, "bLate2", 8.5),
    ]
    for i, t in enumerate(sorted(BASE + 60 * MIN + rng.randrange(60 * MIN) for _ in range(80))):
        out.append(Record(f"u{rng.randrange(4)}", t, f"b{i}", rng.randrange(1, 400) / 4))
        if i % 30 == 29:
            out.append(Record(f"u{rng.randrange(4)}", t - rng.randrange(40 * MIN, 50 * MIN), f"bTooLate{i}", 9.0))
    return out


@dataclass(frozen=True)
class Restored:
    settings: Settings
    topic: str
    group_id: str
    reference: Reference
    watermark: int  # the first part's: what the restored job resumes from


@pytest.fixture(scope="module", params=[1, 2], ids=["parallelism1", "parallelism2"])
def restored(
    it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Restored]:
    parallelism: int = request.param
    settings = isolated(it_settings, f"restore{parallelism}", tmp_path_factory.mktemp(f"restore{parallelism}"))
    topic = f"it_{run_id}_restore_p{parallelism}"
    group_id = f"it-{run_id}-restore-p{parallelism}"
    register_card_features(settings, topic, allowed_lateness="30m")
    ensure_topics(settings.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=1)

    rng = random.Random(11)
    before = _before(rng)
    watermark = max(r.timestamp_ms for r in before) - OUT_OF_ORDERNESS
    after = _after(rng, watermark)
    reference = simulate([*before, *after], out_of_orderness_ms=OUT_OF_ORDERNESS, lateness_ms=LATENESS)
    # Without the first part's watermark, the second part's first three records would not be too late.
    alone = simulate(after, out_of_orderness_ms=OUT_OF_ORDERNESS, lateness_ms=LATENESS)
    too_late = {r.event_id for reason, r in reference.dead_letters if reason == "too_late"}
    assert {"bTooLate", "bAtBoundary"} <= too_late and not {"bJustInside", "bLate", "bLate2"} & too_late
    assert not {"bTooLate", "bAtBoundary"} & {r.event_id for _, r in alone.dead_letters}
    assert any(r.event_id.startswith("aTooLate") for r in (r for _, r in reference.dead_letters) if r.event_id)

    producer = make_producer(settings)

    def send(records: list[Record]) -> None:
        for r in records:
            producer.send_raw(topic, r.key.encode(), payload(producer, topic, r), r.timestamp_ms)
        producer.flush()

    send(before)
    # a space in the folder: the job gave Flink `as_uri()` (`check%20points`), which Flink does not unescape
    checkpoints = tmp_path_factory.mktemp(f"restore_checkpoints{parallelism}") / "check points"
    scale = ("--parallelism", str(parallelism))
    job = start_job(settings, group_id, "--checkpoint-dir", str(checkpoints), "--checkpoint-interval-ms", "300", *scale)
    deadline = time.monotonic() + 300
    # Offsets are committed when a checkpoint completes: once the group's offset is the first part's count,
    # the newest retained checkpoint holds every one of its records, and the decoder's watermark after them.
    while committed_offset(settings, group_id, topic) < len(before):
        assert job.poll() is None, job_output(job)
        assert time.monotonic() < deadline, "no checkpoint covered the first part within 300 s"
        time.sleep(0.5)
    os.killpg(job.pid, signal.SIGKILL)  # the whole job: client, mini-cluster JVM and Python workers
    job.wait()
    latest = max(checkpoints.glob("*/chk-*/_metadata"), key=lambda p: int(p.parent.name.split("-")[1]))

    send([*after, Record(MARKER, time.time_ns() // 1_000_000 - MIN, "marker")])  # the marker closes every window
    job = start_job(settings, group_id, "--restore-from", f"file://{latest.parent.resolve()}", *scale)
    try:
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
    yield Restored(settings, topic, group_id, reference, watermark)


def test_too_late_before_the_restart_is_too_late_after_it(restored: Restored) -> None:
    """Exactly the reference's dead letters, each once: the first part's before the kill, the second part's
    (the boundary record included) after the restore."""
    want = Counter((reason, r.event_id) for reason, r in restored.reference.dead_letters)
    got = dead_letters(restored.settings, f"{restored.topic}.dlq", f"{restored.group_id}-dlq", sum(want.values()))
    assert got == want


def test_windows_are_those_of_a_run_that_never_stopped(restored: Restored) -> None:
    expected = restored.reference.windows(HOUR, 5 * MIN)
    final = final_windows(offline_rows(restored.settings, leave_out=MARKER))
    assert not any(entity == LONE for entity, _ in final), "a record too late before the restart opened a window"
    assert {k: (v["txn_count_1h"], v["txn_amount_sum_1h"]) for k, v in final.items()} == expected
    assert all(v["revision"] == expected[k][0] for k, v in final.items())


def test_online_holds_each_entitys_latest_window(restored: Restored) -> None:
    expected = restored.reference.windows(HOUR, 5 * MIN)
    assert expected  # the loop below checks each of them
    cluster, session = connect_cassandra(restored.settings)
    try:
        reader = OnlineReader(session, restored.settings.cassandra_keyspace, timeout_s=5.0)
        assert reader.read("user", LONE) == {}
        for user in sorted({k for k, _ in expected}):
            latest = max(end for (u, end) in expected if u == user)
            stored = reader.read("user", user)
            assert stored[("txn_count_1h", 1)].feature_ts_ms == latest
            assert (stored[("txn_count_1h", 1)].value, stored[("txn_amount_sum_1h", 1)].value) == expected[
                (user, latest)
            ]
    finally:
        cluster.shutdown()


@pytest.mark.parametrize("restored", [1], indirect=True, ids=["parallelism1"])
def test_the_windows_see_the_restored_watermark(restored: Restored) -> None:
    """The restored job sends the first part's watermark downstream before any record, so the two late
    records after the restart late-fire each closed window they fall in one at a time, as in a run that
    never stopped: the window's revision before the second is in the offline table too. From the
    replayed records alone, those windows would not yet be closed and would fire once, with both.

    At parallelism 1 only: at 2, the second source subtask reads no partition, and the windows' watermark
    waits for it to be declared idle (the source's ``idle_timeout``, 30 s after the job starts), in a run
    that never stopped as after a restore; whether the late records come before that is timing."""
    late = [r.timestamp_ms for r in restored.reference.accepted if r.event_id in ("bLate", "bLate2")]
    last_end = restored.watermark // (5 * MIN) * 5 * MIN  # the last window end at or before the watermark
    closed = [e for e in range(last_end, BASE, -5 * MIN) if e - HOUR <= min(late) and max(late) < e]
    assert len(closed) >= 4
    expected = restored.reference.windows(HOUR, 5 * MIN)
    revisions: dict[int, set[int]] = {}
    for r in offline_rows(restored.settings, leave_out=MARKER):
        if r["entity_id"] == "u3" and r["feature_name"] == "txn_count_1h":
            revisions.setdefault(int(r["event_time"].timestamp() * 1000), set()).add(r["revision"])
    for end in closed:
        final = expected[("u3", end)][0]
        assert {final - 1, final} <= revisions[end], end
