"""Kill the job mid-stream, restart it from its checkpoint: same offline rows and online values as a clean run.

The clean run is bounded, at parallelism 1. The crashed run, at parallelism 1 and at 2, is a real
unbounded stream job (a bounded Kafka source
restored from a checkpoint does not end: its finished partitions are not in the checkpoint and the
restored enumerator never says "no more splits"), so the event set ends with a marker event whose
watermark closes every window of the real users, and the test waits until the restarted job's
stores hold what the clean run's do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra import stack
from infra.process import PidFile, alive
from infra.settings import StackSettings
from jobs.events import synthetic_transactions
from jobs.produce import ensure_topics, make_producer
from registry.core.settings import Settings
from sinks.cassandra.reader import scan_vectors
from sinks.factory import connect_cassandra, connect_iceberg
from sinks.iceberg.layout import TABLE
from tests.conftest import isolated
from tests.integration.stream_io import kill_job, register_card_features, start_job
from tests.processes import pause

pytestmark = [pytest.mark.integration, pytest.mark.disruptive]  # the faulted run pauses Cassandra, kills Kafka

HOUR = 3_600_000
BASE = time.time_ns() // 1_000_000 // HOUR * HOUR - 12 * HOUR
EVENTS = 60_000
MARKER = "zz_watermark_marker"
PARTITIONS = 2  # at parallelism 2, one per source subtask


def _finish(proc: subprocess.Popen[str], timeout_s: float = 420) -> None:
    out, _ = proc.communicate(timeout=timeout_s)
    assert proc.returncode == 0, out[-4000:]


def _committed(settings: Settings) -> bool:
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    try:
        return (
            connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}").current_snapshot() is not None
        )
    except (NoSuchTableError, NoSuchNamespaceError):
        return False


def _offline(settings: Settings) -> list[tuple[Any, ...]]:
    if not _committed(settings):
        return []
    rows = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}").scan().to_arrow().to_pylist()
    rows = [r for r in rows if r["entity_id"] != MARKER]
    return sorted(
        (r["entity_id"], r["feature_name"], r["event_time"], r["revision"], r["value_long"], r["value_double"])
        for r in rows
    )


def _online(settings: Settings) -> dict[tuple[str, str], tuple[Any, ...]]:
    cluster, session = connect_cassandra(settings)
    try:
        return {
            (entity_id, name): (value, end_ms)
            for _, entity_id, vector in scan_vectors(session, settings.cassandra_keyspace)
            if entity_id != MARKER
            for (name, _), (value, end_ms) in vector.items()
        }
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def clean(it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    """The events (and one watermark marker per partition) in a topic, and a clean bounded run over them."""
    topic = f"it_{run_id}_crash"
    settings = isolated(it_settings, "clean", tmp_path_factory.mktemp("clean"))
    register_card_features(settings, topic)
    ensure_topics(it_settings.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=PARTITIONS)
    producer = make_producer(it_settings)
    events = synthetic_transactions(3, users=500, events=EVENTS, start_ms=BASE, span_ms=10 * HOUR)
    producer.send(topic, events)
    marker_time = BASE + 11 * HOUR + 10 * 60_000
    for partition in range(PARTITIONS):  # every partition's watermark must pass the last real window
        marker = dict(events[-1], transaction_id=f"marker{partition}", user_id=MARKER, event_time=marker_time)
        producer.send_raw(topic, MARKER.encode(), producer.serialize(topic, marker), marker_time, partition)
    producer.flush()
    started = time.monotonic()
    _finish(start_job(settings, f"{run_id}-clean", "--bounded"))
    print(f"clean run: {time.monotonic() - started:.0f}s", file=sys.stderr)
    return settings, topic


@pytest.fixture(scope="module", params=[(1, 1), (2, 2), (1, 2)], ids=["parallelism1", "parallelism2", "rescaled1to2"])
def runs(
    clean: tuple[Settings, str],
    it_settings: Settings,
    run_id: str,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[Settings, Settings, int, int]]:
    """The same topic through an unbounded, checkpointing job at parallelism 1 or 2, killed (the whole
    process group) once it has committed rows and retained a checkpoint, then restored from it, at the same
    parallelism or (``rescaled1to2``) at 2 from a checkpoint taken at 1: the job's graph is the same at every
    parallelism, so Flink maps every operator's state onto the rescaled job (design §5.3, the lateness gate)."""
    before, parallelism = request.param
    name = f"{before}to{parallelism}" if before != parallelism else str(parallelism)
    clean_settings, topic = clean
    crashed = isolated(it_settings, f"crashed{name}", tmp_path_factory.mktemp(f"crashed{name}"))
    register_card_features(crashed, topic)
    group = f"{run_id}-crashed-p{name}"
    scale = ("--parallelism", str(before))

    checkpoints = tmp_path_factory.mktemp(f"checkpoints{name}")
    started = time.monotonic()
    proc = start_job(crashed, group, "--checkpoint-dir", str(checkpoints), "--checkpoint-interval-ms", "300", *scale)
    # Kill as soon as the job has both committed offline rows and retained a checkpoint. Whatever
    # happened between that checkpoint and the kill happens again after the restart: rows committed
    # after the checkpoint are re-flushed (the idempotent commit must drop them), and rows that were
    # only in checkpointed state must still arrive.
    deadline = time.monotonic() + 300

    def retained() -> list[Path]:
        return sorted(checkpoints.glob("*/chk-*/_metadata"), key=lambda p: int(p.parent.name.split("-")[1]))

    while time.monotonic() < deadline and proc.poll() is None and not (_committed(crashed) and retained()):
        time.sleep(0.05)
    assert proc.poll() is None, "the job finished before it had committed rows and retained a checkpoint"
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job: client, mini-cluster JVM and Python workers
    proc.wait()
    rows_at_crash = len(_offline(crashed))
    latest = retained()[-1]
    print(
        f"killed at {time.monotonic() - started:.0f}s with {rows_at_crash} rows committed; restoring {latest.parent.name}",
        file=sys.stderr,
    )
    restarted = start_job(
        crashed, group, "--restore-from", latest.parent.resolve().as_uri(), "--parallelism", str(parallelism)
    )
    try:
        target = len(_offline(clean_settings))
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and restarted.poll() is None and len(_offline(crashed)) < target:
            time.sleep(1)
        print(f"restarted run caught up at {time.monotonic() - started:.0f}s", file=sys.stderr)
        time.sleep(3)  # a moment more, so a late duplicate commit would show
        assert restarted.poll() is None, (restarted.stdout.read() if restarted.stdout else "")[-4000:]
    finally:
        kill_job(restarted)
        restarted.wait()
    yield clean_settings, crashed, rows_at_crash, parallelism


def _rounded(rows: Any) -> Any:
    """Doubles to 12 significant digits: a sum's last bits depend on the order its terms were added."""
    if isinstance(rows, dict):
        return {k: _rounded(v) for k, v in rows.items()}
    if isinstance(rows, list):
        return [_rounded(r) for r in rows]
    return tuple(float(f"{v:.12g}") if isinstance(v, float) else v for v in rows)


def test_restart_from_checkpoint_matches_a_clean_run(runs: tuple[Settings, Settings, int, int]) -> None:
    """At parallelism 1 every value is bit-identical to the clean run's. At parallelism 2 a user's
    events reach its window from two upstream subtasks (the event-id dedup is partitioned by event id,
    not by user) in an interleaving that differs between runs, so a double sum can differ in its last
    bits (floating-point addition is not associative): there doubles are compared to 12 significant
    digits; every row's identity, revision (event count) and long value still exactly."""
    clean, crashed, rows_at_crash, parallelism = runs
    clean_rows, crashed_rows = _offline(clean), _offline(crashed)
    assert len(clean_rows) > 0
    assert rows_at_crash < len(clean_rows), "the crash happened after all results were written"
    assert len(crashed_rows) == len(set(r[:4] for r in crashed_rows)), "a row was written twice"
    if parallelism == 1:
        assert crashed_rows == clean_rows
        assert _online(crashed) == _online(clean)
    else:
        assert [r[:5] for r in crashed_rows] == [r[:5] for r in clean_rows]
        assert _rounded(crashed_rows) == _rounded(clean_rows)
        assert _rounded(_online(crashed)) == _rounded(_online(clean))


@pytest.fixture(scope="module")
def faulted(
    clean: tuple[Settings, str],
    local_stack: StackSettings,
    it_settings: Settings,
    run_id: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Settings]:
    """The same events through a running job while its stores fail under it: Cassandra hangs for 5 s (the
    online flush times out, the task fails and restarts from its checkpoint), then the Kafka broker is
    killed and restarted, then the job itself hangs for 3 s (SIGSTOP). Waits until the stores hold what
    the clean run's do."""
    clean_settings, topic = clean
    settings = isolated(it_settings, "faulted", tmp_path_factory.mktemp("faulted"))
    register_card_features(settings, topic)
    checkpoints = tmp_path_factory.mktemp("faulted_checkpoints")
    proc = start_job(
        settings, f"{run_id}-faulted", "--checkpoint-dir", str(checkpoints), "--checkpoint-interval-ms", "300"
    )
    started = time.monotonic()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and not _committed(settings):
            time.sleep(0.05)
        assert proc.poll() is None, (proc.stdout.read() if proc.stdout else "")[-4000:]
        cassandra = PidFile(local_stack.service_dir("cassandra") / "pid").read()
        assert cassandra is not None
        pause(cassandra)
        try:
            time.sleep(5)
        finally:
            os.kill(cassandra, signal.SIGCONT)
        kafka = PidFile(local_stack.service_dir("kafka") / "pid").read()
        assert kafka is not None
        os.kill(kafka, signal.SIGKILL)
        while alive(kafka):
            time.sleep(0.05)
        time.sleep(2)
        stack.up(local_stack, ["kafka"])
        pause(proc.pid, group=True)  # the job itself hangs: client, mini-cluster and Python workers
        try:
            time.sleep(3)
        finally:
            os.killpg(proc.pid, signal.SIGCONT)
        print(f"faults injected by {time.monotonic() - started:.0f}s", file=sys.stderr)
        target, online = len(_offline(clean_settings)), _online(clean_settings)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if len(_offline(settings)) >= target and _online(settings) == online:
                break
            time.sleep(1)
        print(f"faulted run caught up at {time.monotonic() - started:.0f}s", file=sys.stderr)
        time.sleep(3)  # a moment more, so a late duplicate commit would show
        assert proc.poll() is None, (proc.stdout.read() if proc.stdout else "")[-4000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    yield settings


def test_store_faults_under_a_running_job_lose_and_duplicate_nothing(
    clean: tuple[Settings, str], faulted: Settings
) -> None:
    rows = _offline(faulted)
    assert len(rows) == len(set(rows)), "a row was written twice"
    assert rows == _offline(clean[0])
    assert _online(faulted) == _online(clean[0])
