"""A stream job whose definitions read a topic Kafka does not have (the broker creates none on first use) used to
start the mini-cluster and fail inside Flink after about 20 s with ``UnknownTopicOrPartitionException: This server
does not host this topic-partition.``, not naming the topic (an unbounded job restarted forever). Now one line
naming the topic, exit 1, before anything starts (as a stopped broker or registry is named)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry.core.settings import Settings
from tests.conftest import REPO, isolated, settings_env
from tests.integration.stream_io import register_card_features

pytestmark = pytest.mark.integration  # the live stack


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


def _java_partition(key: bytes, partitions: int) -> int:
    """Kafka's Java producer's partition of a keyed record: murmur2 of the key bytes, made positive, mod partitions
    (``org.apache.kafka.common.utils.Utils.murmur2`` and ``toPositive``), written out as the brute-force reference."""
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ len(key)) & 0xFFFFFFFF
    whole = len(key) // 4
    for i in range(whole):
        k = int.from_bytes(key[4 * i : 4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = key[4 * whole :]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


def test_the_producer_partitions_keys_as_kafkas_java_producer_does(it_settings: Settings, run_id: str) -> None:
    """librdkafka's default (CRC32) put a user's events in another partition than a Java service's would, so one
    user's events from the two were not in one order; the producer now uses murmur2 like the Java client."""
    from confluent_kafka import Consumer, TopicPartition

    from jobs.events import synthetic_transactions
    from jobs.produce import make_producer
    from sinks.topics import ensure_topics

    topic = f"partitioner_{run_id}"
    ensure_topics(it_settings.kafka_bootstrap, [topic], partitions=4)
    events = synthetic_transactions(3, users=40, events=200, start_ms=1_700_000_000_000, span_ms=60_000)
    producer = make_producer(it_settings)
    producer.send(topic, events)
    producer.flush()
    consumer = Consumer({"bootstrap.servers": it_settings.kafka_bootstrap, "group.id": f"g_{run_id}"})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(4)])
        seen: dict[str, set[int]] = {}
        read, deadline = 0, time.monotonic() + 30
        while read < len(events) and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=1):
                key, partition = message.key(), message.partition()
                if message.error() is None and key is not None and partition is not None:
                    read += 1
                    seen.setdefault(key.decode(), set()).add(partition)
    finally:
        consumer.close()
    assert len(seen) == len({e["user_id"] for e in events})
    assert {user: partitions for user, partitions in seen.items()} == {
        user: {_java_partition(user.encode(), 4)} for user in seen
    }
