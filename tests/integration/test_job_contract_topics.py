"""A stream job whose definitions read a topic Kafka does not have (the broker creates none on first use) used to
start the mini-cluster and fail inside Flink after about 20 s with ``UnknownTopicOrPartitionException: This server
does not host this topic-partition.``, not naming the topic (an unbounded job restarted forever). Now one line
naming the topic, exit 1, before anything starts (as a stopped broker or registry is named)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from registry.core.settings import Settings
from tests.conftest import REPO, isolated, settings_env
from tests.integration.stream_io import register_card_features


def test_a_source_topic_kafka_does_not_have_is_named_at_once(it_settings: Settings, tmp_path: Path) -> None:
    settings = isolated(it_settings, "nosrc", tmp_path / "definitions")
    topic = f"jc_nosrc_{settings.cassandra_keyspace}"
    register_card_features(settings, topic)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "jobs.feature_job", "--bounded", "--metrics-port", "0"],
        cwd=REPO,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert done.stderr == (
        f"error: topic {topic!r} is not in Kafka at {settings.kafka_bootstrap} (the broker creates no topic on first use)\n"
    )
    assert time.monotonic() - started < 15  # the interpreter's start and imports; no mini-cluster
