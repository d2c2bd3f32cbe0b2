"""An unbounded run that is not restored, in a consumer group with committed offsets, is refused (design §5.4).

Resumed at the group's offsets without its windows' state, the job would write every window open at that point
from the part of its events after it: a one-hour count of 3 written as 1, online and offline. The group's offsets
are committed with its job's checkpoints, so restoring that checkpoint, or replaying in a new group, are the ways on.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from jobs.produce import ensure_topics, make_producer
from registry.core.settings import Settings
from sinks.topics import committed_offsets
from tests.conftest import REPO, isolated, settings_env
from tests.integration.stream_io import BASE, MIN, job_output, kill_job, payload, register_card_features, start_job
from tests.integration.stream_reference import Record

pytestmark = [pytest.mark.integration]


def test_a_group_with_committed_offsets_is_not_resumed_without_its_state(
    it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = isolated(it_settings, "resumeguard", tmp_path_factory.mktemp("resumeguard"))
    topic = f"it_{run_id}_resume_guard"
    group_id = f"it-{run_id}-resume-guard"
    register_card_features(settings, topic)
    ensure_topics(settings.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=2)
    producer = make_producer(settings)
    for i, partition in enumerate((0, 1, 0)):
        r = Record("u1", BASE + i * MIN, f"e{i}", 1.0)
        producer.send_raw(topic, r.key.encode(), payload(producer, topic, r), r.timestamp_ms, partition)
    producer.flush()
    assert committed_offsets(settings.kafka_bootstrap, group_id, [topic]) == {}
    job = start_job(settings, group_id, "--checkpoint-interval-ms", "300")
    try:
        deadline = time.monotonic() + 240
        while committed_offsets(settings.kafka_bootstrap, group_id, [topic]) != {topic: {0: 2, 1: 1}}:
            assert job.poll() is None, job_output(job)
            assert time.monotonic() < deadline, "the job committed no offsets within 240 s"
            time.sleep(0.5)
    finally:
        kill_job(job)
        job.wait()

    started = time.monotonic()
    again = subprocess.run(
        [sys.executable, "-m", "jobs.feature_job", "--group-id", group_id, "--metrics-port", "0"],
        cwd=REPO,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 1, again.stdout + again.stderr
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1, again.stderr
    assert f"consumer group {group_id!r} has committed offsets ({topic}: partitions 0, 1)" in lines[0]
    assert "--restore-from" in lines[0] and "--group-id" in lines[0]
    assert time.monotonic() - started < 60  # refused before any Flink start
    # The offsets are left as they were: nothing read, nothing committed.
    assert committed_offsets(settings.kafka_bootstrap, group_id, [topic]) == {topic: {0: 2, 1: 1}}
