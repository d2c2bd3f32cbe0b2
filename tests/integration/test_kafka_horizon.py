"""The erasure's Kafka horizon (``serving.offline.kafka_horizon``, docs §9 step 5) against the real broker.

Kafka deletes a segment by time only once its *newest record timestamp* is more than ``retention.ms`` old, and
with ``CreateTime`` (the default, our producers' event time) the broker takes a record stamped up to
``message.timestamp.after.max.ms`` (1 h in Kafka 4) ahead of its clock. The horizon was ``erased_at +
retention.ms + segment.ms``: a record stamped 10 min ahead outlived it by 10 min (and any record by up to the
broker's retention check interval).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from registry.core.settings import Settings
from serving.offline.kafka_horizon import kafka_horizon


@pytest.fixture
def short_topic(it_settings: Settings) -> Iterator[str]:
    """A topic that keeps its records 1 s by retention.ms, in segments of 1 s (deleted afterwards)."""
    topic = f"kaudit_horizon_{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": it_settings.kafka_bootstrap})
    config = {"retention.ms": "1000", "segment.ms": "1000"}
    admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(timeout=30)
    yield topic
    admin.delete_topics([topic])[topic].result(timeout=30)


def test_a_record_stamped_ahead_outlives_retention_plus_segment_and_the_horizon_covers_it(
    it_settings: Settings, short_topic: str
) -> None:
    bootstrap = it_settings.kafka_bootstrap
    now = datetime.now(UTC)
    stamped_ms = int(now.timestamp() * 1000) + 600_000  # a producer clock 10 min ahead: the broker takes it
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    errors: list[object] = []
    producer.produce(
        short_topic, key=b"alice", value=b"event", timestamp=stamped_ms, on_delivery=lambda e, m: errors.append(e)
    )
    assert producer.flush(30) == 0 and errors == [None], errors

    [left] = kafka_horizon(bootstrap, [short_topic], now)
    until = datetime.fromisoformat(left["until"])
    # Kafka's own rule: the segment goes once its newest timestamp is more than retention.ms old, checked every
    # log.retention.check.interval.ms, its files removed file.delete.delay.ms later.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic_res = ConfigResource(ConfigResource.Type.TOPIC, short_topic)
    topic_cfg = admin.describe_configs([topic_res])[topic_res].result(timeout=10)
    broker_res = ConfigResource(ConfigResource.Type.BROKER, str(min(admin.list_topics(timeout=10).brokers)))
    broker_cfg = admin.describe_configs([broker_res])[broker_res].result(timeout=10)
    earliest_deletion = datetime.fromtimestamp(stamped_ms / 1000, UTC) + timedelta(milliseconds=1000)
    assert until > earliest_deletion, left
    ahead = int(topic_cfg["message.timestamp.after.max.ms"].value)
    check = int(broker_cfg["log.retention.check.interval.ms"].value)
    delay = int(topic_cfg["file.delete.delay.ms"].value)
    erased_at = datetime.fromisoformat(now.isoformat(timespec="milliseconds"))
    assert until == erased_at + timedelta(milliseconds=1000 + 1000 + ahead + check + delay), left

    # The former horizon (now + retention.ms + segment.ms) has passed: the record is still in the topic.
    time.sleep(max(0.0, (now + timedelta(milliseconds=2500) - datetime.now(UTC)).total_seconds()))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{short_topic}_g"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(short_topic, 0), timeout=10)
    finally:
        consumer.close()
    assert (low, high) == (0, 1)
