"""Event schema evolution through the job (#12, item 7): two producers write one topic at once, one on the
event schema the features read (``schemas/card_transaction.avsc``) and one on a newer version of it that
adds an optional field. The writer schemas are resolved to the reader schema record by record: no record
is dead-lettered and the features equal a brute force over all the events, whichever schema wrote them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from jobs.produce import ensure_topics, make_producer
from jobs.registry_client import registry_client
from registry.core.catalog import load_folder
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.plan import apply
from schemas import schema_text
from sinks.factory import connect_iceberg
from sinks.iceberg.layout import TABLE
from tests.conftest import REPO, isolated, run_feature_job

pytestmark = pytest.mark.integration

MIN = 60_000
HOUR = 60 * MIN
BASE = time.time_ns() // 1_000_000 // HOUR * HOUR - 4 * HOUR
# (user, minutes after BASE, amount, producer): amounts are exact in binary floating point.
EVENTS = [(f"u{i % 3}", i * 7 % 90, float(i % 5) + 0.5, "new" if i % 2 else "old") for i in range(40)]


def _v2_schema() -> str:
    schema = json.loads(schema_text("card_transaction"))
    schema["fields"].append({"name": "device_id", "type": ["null", "string"], "default": None})
    return json.dumps(schema)


def _reference() -> dict[tuple[str, int], tuple[int, float]]:
    """Brute force: every 1 h window sliding by 5 min that holds an event -> (count, sum)."""
    out: dict[tuple[str, int], tuple[int, float]] = {}
    times = [BASE + m * MIN for _, m, _, _ in EVENTS]
    for end in range(min(times) // (5 * MIN) * 5 * MIN, max(times) + HOUR + 5 * MIN, 5 * MIN):
        for user in {u for u, _, _, _ in EVENTS}:
            inside = [a for (u, m, a, _) in EVENTS if u == user and end - HOUR <= BASE + m * MIN < end]
            if inside:
                out[(user, end)] = (len(inside), sum(inside))
    return out


@pytest.fixture(scope="module")
def evolved_run(
    it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, str]]:
    settings = isolated(it_settings, "evolution", tmp_path_factory.mktemp("evolution"))
    topic = f"it_{run_id}_evolution"
    toml = (REPO / "registry" / "features" / "user_transactions.toml").read_text()
    toml = toml.replace('topic = "card_transactions"', f'topic = "{topic}"').replace('ttl = "2h"', 'ttl = "1d"')
    (settings.definitions_dir / "features.toml").write_text(toml)
    apply(DefinitionStore(settings.definitions_db), load_folder(settings.definitions_dir))
    ensure_topics(settings.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=2)
    old = make_producer(settings)  # the reader schema, registered as the subject's first version
    new = AvroSerializer(registry_client(settings.schema_registry_url), _v2_schema())  # its next version
    context = SerializationContext(topic, MessageField.VALUE)
    for i, (user, minute, amount, producer) in enumerate(EVENTS):
        event: dict[str, object] = {
            "transaction_id": f"t{i}",
            "user_id": user,
            "merchant_id": "m1",
            "amount": amount,
            "currency": "EUR",
            "event_time": BASE + minute * MIN,
        }
        if producer == "new":
            event["device_id"] = None if i % 4 == 1 else f"d{i}"
            payload = new(event, context)
        else:
            payload = old.serialize(topic, event)
        old.send_raw(topic, user.encode(), payload, BASE + minute * MIN)
    old.flush()
    versions = registry_client(settings.schema_registry_url).get_versions(f"{topic}-value")
    assert len(versions) == 2, "both schema versions are registered under the topic's subject"
    run_feature_job(settings, "--bounded")
    yield settings, topic


def test_features_from_two_schema_versions_equal_the_brute_force(evolved_run: tuple[Settings, str]) -> None:
    settings, _ = evolved_run
    rows = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}").scan().to_arrow().to_pylist()
    got: dict[tuple[str, int], dict[str, float]] = {}
    for r in rows:
        end = int(r["event_time"].timestamp() * 1000)
        value = r["value_long"] if r["feature_name"] == "txn_count_1h" else r["value_double"]
        got.setdefault((r["entity_id"], end), {})[r["feature_name"]] = value
    expected = {k: {"txn_count_1h": c, "txn_amount_sum_1h": s} for k, (c, s) in _reference().items()}
    assert got == expected


def test_no_record_of_either_schema_is_dead_lettered(evolved_run: tuple[Settings, str], run_id: str) -> None:
    settings, topic = evolved_run
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"it-{run_id}-evolution-dlq",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([f"{topic}.dlq"])
    letters: list[bytes | None] = []
    deadline = time.monotonic() + 8  # the topic exists; a dead letter would have been written before the job ended
    while time.monotonic() < deadline:
        letters.extend(m.value() for m in consumer.consume(10, timeout=1) if m.error() is None)
    consumer.close()
    assert letters == []
