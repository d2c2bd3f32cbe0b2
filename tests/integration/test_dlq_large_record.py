"""design §5.3: a bad record the broker takes is dead-lettered whatever its size. A letter carried the whole record
in base64 (a third larger), so a record over about 786 KB made a letter over the producer's ``max.request.size``
and the dead-letter topic's limit (1 MiB): the dead-letter sink failed the run, and an unbounded job restarted
and failed again on every replay of the record. A letter now carries the record's first 512 KiB, with
``payload_truncated`` and ``payload_bytes``; one of a smaller record is unchanged."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from confluent_kafka import Producer as KafkaProducer

from jobs.produce import EventProducer, producer_config
from jobs.registry_client import registry_client
from registry.core.settings import Settings
from sinks.topics import ensure_topics
from tests.conftest import REPO, isolated, settings_env
from tests.integration.stream_io import offline_rows, register_card_features

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CARRIED = 512 * 1024


def _letters(settings: Settings, dlq: str, expected: int) -> list[dict[str, Any]]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"{dlq}-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([dlq])
    letters: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(letters) < expected:
        letters += [json.loads(m.value() or b"null") for m in consumer.consume(10, timeout=1) if m.error() is None]
    consumer.close()
    return letters


def test_a_record_near_the_brokers_limit_is_dead_lettered_with_its_first_512_kib(
    it_settings: Settings, tmp_path: Path
) -> None:
    settings = isolated(it_settings, "bigdlq", tmp_path / "definitions")
    topic = f"big_dlq_{settings.cassandra_keyspace}"
    ensure_topics(settings.kafka_bootstrap, [topic], partitions=1)
    register_card_features(settings, topic)
    producer = EventProducer(
        KafkaProducer(producer_config(settings)),
        registry_client(settings.schema_registry_url),
        "card_transaction",
        key_field="user_id",
        time_field="event_time",
    )
    t = time.time_ns() // 1_000_000 - 7_200_000
    event = {"transaction_id": "t1", "user_id": "u1", "merchant_id": "m", "amount": 2.0, "currency": "EUR"}
    big = b"\x07" + bytes(range(256)) * 3_500  # 896,001 bytes, not an event: bad_magic
    at_limit = b"\x07" + b"a" * (CARRIED - 1)  # exactly what a letter carries whole
    over = b"\x07" + b"o" * CARRIED  # a byte more
    producer.send(topic, [{**event, "event_time": t}])
    for i, payload in enumerate((big, at_limit, over)):
        producer.send_raw(topic, b"u1", payload, t + 1 + i)
    producer.flush()

    done = subprocess.run(
        [sys.executable, "-m", "jobs.feature_job", "--bounded", "--metrics-port", "0"],
        cwd=REPO,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    letters = {base64.b64decode(x["payload_b64"])[1:2]: x for x in _letters(settings, f"{topic}.dlq", expected=3)}
    assert sorted(letters) == [b"\x00", b"a", b"o"] and {x["reason"] for x in letters.values()} == {"bad_magic"}
    whole = letters[b"a"]
    assert base64.b64decode(whole["payload_b64"]) == at_limit and len(at_limit) == CARRIED
    assert "payload_truncated" not in whole and "payload_bytes" not in whole
    for payload, letter in ((big, letters[b"\x00"]), (over, letters[b"o"])):
        assert base64.b64decode(letter["payload_b64"]) == payload[:CARRIED]
        assert letter["payload_truncated"] is True and letter["payload_bytes"] == len(payload)
        assert list(letter)[-1] == "dead_lettered_at_ms"
    assert {r["entity_id"] for r in offline_rows(settings, leave_out="")} == {"u1"}
