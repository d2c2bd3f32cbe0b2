"""design §5.3 / §6 "Bad input": a bad record goes to ``<topic>.dlq`` with its reason, nothing is dropped. The
broker creates no topic on first use (``auto.create.topics.enable=false``), and the job did not create its
dead-letter topic: with a source topic whose ``.dlq`` nobody had made (only ``jobs.produce`` and the demo make
``card_transactions.dlq``), the first bad record blocked the dead-letter sink for a minute and failed the run
(an unbounded job restarted forever), and no window reached the stores. The job now creates it first."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer as KafkaProducer

from jobs.produce import EventProducer, producer_config
from jobs.registry_client import registry_client
from registry.core.settings import Settings
from sinks.topics import ensure_topics
from tests.conftest import REPO, isolated, settings_env
from tests.integration.stream_io import dead_letters, offline_rows, register_card_features

pytestmark = pytest.mark.timeout(300)


def test_a_bad_record_reaches_a_dead_letter_topic_nobody_made(it_settings: Settings, tmp_path: Path) -> None:
    settings = isolated(it_settings, "nodlq", tmp_path / "definitions")
    topic = f"jc_nodlq_{settings.cassandra_keyspace}"
    ensure_topics(settings.kafka_bootstrap, [topic], partitions=1)  # the source topic only
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
    producer.send(topic, [{**event, "event_time": t}])
    producer.send_raw(topic, b"u1", b"\x07not an event", t + 1)
    producer.flush()

    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "jobs.feature_job", "--bounded", "--metrics-port", "0"],
        cwd=REPO,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert time.monotonic() - started < 60  # no minute blocked on a missing topic's metadata
    assert dead_letters(settings, f"{topic}.dlq", "jc-nodlq", expected=1) == {("bad_magic", None): 1}
    assert {r["entity_id"] for r in offline_rows(settings, leave_out="")} == {"u1"}
