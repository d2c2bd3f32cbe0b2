"""The schema registry dies in the middle of a bounded run of the stream job (README "The stream job", design §6
"Schema registry down"): the run ends with one line naming the registry, exit 1, not Flink's Java trace; nothing
is dead-lettered, and a rerun once the registry is back writes exactly the windows of the events."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka import Producer as KafkaProducer

from jobs.produce import EventProducer, producer_config
from jobs.registry_client import registry_client
from registry.core.settings import Settings
from sinks.topics import ensure_topics
from tests.conftest import REPO, isolated, settings_env
from tests.integration.stream_io import BASE, HOUR, MIN, final_windows, offline_rows, register_card_features

pytestmark = pytest.mark.timeout(400)

USERS = ("u1", "u2", "u3")
EVENTS = [(USERS[i % 3], BASE + i * 97_000) for i in range(30)]  # 30 events over about 47 minutes


def _expected_counts() -> Counter[tuple[str, int]]:
    """(user, window end) -> events in that 1 h window sliding by 5 min (``start <= t < end``)."""
    counts: Counter[tuple[str, int]] = Counter()
    for user, t in EVENTS:
        end = (t // (5 * MIN) + 1) * 5 * MIN
        while end - HOUR <= t:
            counts[(user, end)] += 1
            end += 5 * MIN
    return counts


class _RegistryThatDies:
    """A schema registry that answers the job's first request (its start-up check, ``GET /subjects``) and then
    stops: its port refuses every later connection, as a registry process killed during the run."""

    def __init__(self) -> None:
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen()
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve_once, daemon=True)
        self._thread.start()

    def _serve_once(self) -> None:
        try:
            connection, _ = self._server.accept()
        except OSError:
            return
        with connection:
            connection.recv(65_536)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\n"
                b"Content-Length: 2\r\nConnection: close\r\n\r\n[]"
            )
        self._server.close()

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def settings(it_settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    s = isolated(it_settings, "regdies", tmp_path / "definitions")
    topic = f"jc_regdies_{s.cassandra_keyspace}"
    ensure_topics(s.kafka_bootstrap, [topic, f"{topic}.dlq"])
    register_card_features(s, topic)
    producer = EventProducer(
        KafkaProducer(producer_config(s)),
        registry_client(s.schema_registry_url),
        "card_transaction",
        key_field="user_id",
        time_field="event_time",
    )
    events = [
        {"transaction_id": f"t{i}", "user_id": u, "merchant_id": "m", "amount": 1.0, "currency": "EUR", "event_time": t}
        for i, (u, t) in enumerate(EVENTS)
    ]
    producer.send(topic, events)
    producer.flush()
    yield s


def _dead_letter_count(settings: Settings, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "jc-regdies-count"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(f"{topic}.dlq", 0), timeout=10)
    finally:
        consumer.close()
    return int(high - low)


def _run_job(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobs.feature_job", "--bounded", "--metrics-port", "0", *args],
        cwd=REPO,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("checkpointed", [False, True], ids=["plain", "checkpointed"])
def test_a_registry_that_dies_during_a_bounded_run_is_named_in_one_line(
    settings: Settings, checkpointed: bool, tmp_path: Path
) -> None:
    """Checkpointed (``--checkpoint-interval-ms``), the bounded run took the live job's restart strategy and ran on
    without a word for as long as the registry was down."""
    topic = f"jc_regdies_{settings.cassandra_keyspace}"
    registry = _RegistryThatDies()
    extra = ["--checkpoint-interval-ms", "1000", "--checkpoint-dir", str(tmp_path / "ckpt")] if checkpointed else []
    try:
        failed = _run_job(settings.model_copy(update={"schema_registry_url": registry.url}), *extra)
    finally:
        registry.close()
    assert failed.returncode == 1, failed.stderr[-3000:]
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1, failed.stderr[-3000:]
    assert lines[0].startswith(f"error: schema registry at {registry.url} unavailable during the run: "), lines[0]
    assert _dead_letter_count(settings, topic) == 0  # a registry that is down is not a bad record

    again = _run_job(settings)  # the registry back: the rerun completes what the failed run left
    assert again.returncode == 0, again.stderr[-3000:]
    rows = offline_rows(settings, leave_out="")
    identities = [(r["entity_id"], r["feature_name"], r["event_time"], r["revision"]) for r in rows]
    assert len(identities) == len(set(identities))
    written = {key: values["txn_count_1h"] for key, values in final_windows(rows).items()}
    assert written == dict(_expected_counts())
    assert _dead_letter_count(settings, topic) == 0
