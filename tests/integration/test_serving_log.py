"""The serving log end to end on real Kafka, Cassandra and Iceberg: the API logs what it served, the
landing appends it to Iceberg, and parity finds no skew on a healthy store, then names exactly the
feature whose online values were written wrong."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from serving.offline.parity import ParityReport, parity_report
from serving.online.app import create_app
from serving.online.serving_log import KafkaSink, producer_config
from sinks.cassandra.reader import OnlineReader
from sinks.cassandra.writer import OnlineWriter
from sinks.dual import DualWriter
from sinks.factory import connect_cassandra, connect_iceberg
from sinks.iceberg.writer import OfflineWriter, ensure_table
from sinks.records import FeatureRow
from sinks.serving_log import ServingLogSink, consumer_config, ensure_log_table
from sinks.topics import ensure_topics
from tests.conftest import isolated

pytestmark = pytest.mark.integration

MIN = 60_000
USERS = [f"user_{i}" for i in range(6)]
NAMES = "txn_count_1h,txn_amount_sum_1h"


@pytest.fixture(scope="module")
def log_settings(it_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = isolated(it_settings, "servlog", Path(tmp_path_factory.mktemp("servlog")))
    yield settings
    cluster, session = connect_cassandra(settings)
    session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
    cluster.shutdown()


def _land(settings: Settings, topic: str, group: str) -> int:
    consumer = Consumer(consumer_config(settings.kafka_bootstrap, group))
    consumer.subscribe([topic])
    try:
        table = ensure_log_table(connect_iceberg(settings), settings.iceberg_namespace)
        return ServingLogSink(consumer, table, max_wait_s=1.0).run(once=True, timeout_s=60)
    finally:
        consumer.close()


def _report(settings: Settings, catalog: FeatureCatalog, since_us: int) -> ParityReport:
    iceberg = connect_iceberg(settings)
    log = ensure_log_table(iceberg, settings.iceberg_namespace)
    offline = ensure_table(iceberg, settings.iceberg_namespace)
    return parity_report(log, offline, catalog, since_us, time.time_ns() // 1000 + 1)


def test_parity_is_clean_then_names_only_the_skewed_feature(log_settings: Settings) -> None:
    settings = log_settings
    topic = f"fs_serving_log_{uuid.uuid4().hex[:8]}"
    ensure_topics(settings.kafka_bootstrap, [topic], partitions=2)
    shipped = FeatureCatalog.from_folder()
    count, total = shipped.get("user", "txn_count_1h"), shipped.get("user", "txn_amount_sum_1h")
    store = DefinitionStore(settings.definitions_db)
    for d in (count, total):
        store.register(d, activate=True)
    end = time.time_ns() // 1_000_000 // (5 * MIN) * 5 * MIN
    cluster, session = connect_cassandra(settings)
    sink = KafkaSink(Producer(producer_config(settings.kafka_bootstrap)), topic)
    try:
        offline = ensure_table(connect_iceberg(settings), settings.iceberg_namespace)
        writer = DualWriter(OfflineWriter(offline), OnlineWriter(session, settings.cassandra_keyspace))
        for i, user in enumerate(USERS):
            writer.add(FeatureRow.of(count, user, i + 1, end - 60 * MIN, end))
            writer.add(FeatureRow.of(total, user, 10.25 * (i + 1), end - 60 * MIN, end))
        writer.flush()
        app = create_app(
            LiveCatalog(store),
            OnlineReader(session, settings.cassandra_keyspace, timeout_s=5.0, batch_timeout_s=10.0),
            serving_log=sink,
            serving_log_sample=1.0,
        )
        group = f"it-{uuid.uuid4().hex[:6]}"
        with TestClient(app) as client:
            healthy_since = time.time_ns() // 1000
            for user in USERS:
                response = client.get(f"/v1/features/user/{user}?names={NAMES}", headers={"x-model-name": "ranker"})
                assert response.status_code == 200
                assert response.json()["features"]["txn_count_1h"]["status"] in ("present", "stale")
            assert client.post("/v1/features/user/batch", json={"entity_ids": USERS}).status_code == 200
            sink.close(10)
            assert _land(settings, topic, group) == 2 * len(USERS) * 2

            healthy = _report(settings, store.catalog(), healthy_since)
            assert sorted((f.feature, f.checked, f.mismatched, f.missing_offline) for f in healthy.features) == [
                ("txn_amount_sum_1h", 2 * len(USERS), 0, 0),
                ("txn_count_1h", 2 * len(USERS), 0, 0),
            ]

            # Skew: txn_amount_sum_1h written wrong online only (same window, a value that wins the tie).
            online = OnlineWriter(session, settings.cassandra_keyspace)
            for i, user in enumerate(USERS):
                online.add(FeatureRow.of(total, user, 1_000_000 + 10.25 * (i + 1), end - 60 * MIN, end))
            online.flush()
            skewed_since = time.time_ns() // 1000
            for user in USERS:
                assert client.get(f"/v1/features/user/{user}?names={NAMES}").status_code == 200
            sink.close(10)
            assert _land(settings, topic, group) == len(USERS) * 2  # only what is new to the group
    finally:
        cluster.shutdown()

    skewed = _report(settings, store.catalog(), skewed_since)
    by_name = {f.feature: f for f in skewed.features}
    assert by_name["txn_amount_sum_1h"].checked == len(USERS)
    assert by_name["txn_amount_sum_1h"].mismatch_ratio == 1.0
    assert by_name["txn_count_1h"].mismatched == 0 and by_name["txn_count_1h"].missing_offline == 0
    assert [f.feature for f in skewed.features if f.mismatched or f.missing_offline] == ["txn_amount_sum_1h"]
    example = by_name["txn_amount_sum_1h"].examples[0]
    assert example["kind"] == "mismatch" and example["online"] == 1_000_000 + example["offline"]
