"""The serving log end to end on real Kafka, Cassandra and Iceberg: the API logs what it served, the
landing appends it to Iceberg, and parity finds no skew on a healthy store, then names exactly the
feature whose online values were written wrong; and drift scored, stored, alerted on, plotted and
gated on."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
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
from sinks.cassandra.reader import OnlineReader, Stored
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


def _own_stores(it_settings: Settings, name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings with a keyspace, namespace and registry of their own; the keyspace dropped afterwards."""
    settings = isolated(it_settings, name, Path(tmp_path_factory.mktemp(name)))
    yield settings
    cluster, session = connect_cassandra(settings)
    session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
    cluster.shutdown()


@pytest.fixture(scope="module")
def log_settings(it_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    yield from _own_stores(it_settings, "servlog", tmp_path_factory)


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

            # Skew: txn_amount_sum_1h written wrong online only: the same window as a later revision, whose
            # write time is higher. (At the same revision the write times tie and Cassandra keeps the cell
            # expiring later: the second write's TTL is computed a moment later, so which one wins would
            # depend on where the second boundary falls between the two writes.)
            online = OnlineWriter(session, settings.cassandra_keyspace)
            for i, user in enumerate(USERS):
                online.add(FeatureRow.of(total, user, 1_000_000 + 10.25 * (i + 1), end - 60 * MIN, end, revision=1))
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


ENTITIES = [f"drift_{i}" for i in range(300)]


class _NoVectors:
    def read(self, entity_type: str, entity_id: str) -> Stored:
        raise AssertionError("no vector is read here")

    def progress(self) -> dict[str, int]:
        return {}


@pytest.fixture(scope="module")
def drift_settings(it_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    yield from _own_stores(it_settings, "drift", tmp_path_factory)


def _drift_alerts(metrics_file: Path, tmp_path: Path) -> list[tuple[str, str]]:
    """Which FeatureDrift alerts Prometheus' own rule evaluator raises on the gauges of ``metrics_file``
    held for 10 minutes: promtool test rules, once per feature and source, expecting the alert."""
    import json
    import os
    import subprocess

    from prometheus_client.parser import text_string_to_metric_families

    from infra.promtool import ensure_promtool

    promtool = ensure_promtool(Path(os.environ.get("FS_CACHE_DIR", Path.home() / ".cache" / "featurestore")))
    rules = Path(__file__).resolve().parents[2] / "infra" / "prometheus" / "alerts.yml"
    fired: list[tuple[str, str, bool]] = []
    for family in text_string_to_metric_families(metrics_file.read_text()):
        for sample in family.samples:
            if sample.name != "fs_feature_psi":
                continue
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            expected = {
                "exp_labels": {**sample.labels, "severity": "ticket"},
                "exp_annotations": {
                    "summary": f"{sample.labels['feature']}@v{sample.labels['version']} drifted from training set "
                    f"{sample.labels['training_set']} (PSI > 0.25)"
                },
            }
            test = {
                "rule_files": [str(rules)],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [{"series": f"fs_feature_psi{{{labels}}}", "values": f"{sample.value}x10"}],
                        "alert_rule_test": [{"eval_time": "5m", "alertname": "FeatureDrift", "exp_alerts": [expected]}],
                    }
                ],
            }
            path = tmp_path / f"drift_{len(fired)}_{sample.labels['feature']}.yml"
            path.write_text(json.dumps(test))  # JSON is YAML
            result = subprocess.run(
                [str(promtool), "test", "rules", str(path)], capture_output=True, text=True, timeout=120
            )
            if result.returncode != 0:  # the alert did not fire: nothing else may have failed
                assert "got:[]" in result.stdout + result.stderr, result.stdout + result.stderr
            fired.append((sample.labels["feature"], sample.labels["source"], result.returncode == 0))
    return [(feature, source) for feature, source, ok in fired if ok]


def test_drift_is_scored_stored_alerted_plotted_and_gated(
    drift_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A training set is built on one distribution; then txn_amount_sum_1h's inputs shift (its values
    move by three standard deviations) while txn_count_1h's do not, and the new window is served
    stale (20-25 minutes old against a 10-minute SLO). Parity is clean; the statistics command scores
    the shift from the offline table and from the serving log and stores it (the API serves it);
    Prometheus' rule evaluator raises FeatureDrift for that feature only; the plots draw both; and
    the gate refuses a model on both features, naming the staleness of each and the drift of one."""
    import numpy as np
    import orjson
    import pyarrow as pa

    from registry import cli
    from registry.quality import QualityStore
    from registry.training_sets import TrainingSetStore
    from serving.offline import parity, statistics
    from serving.offline.plots import render_all
    from serving.offline.training import build_training_set

    settings = drift_settings
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    topic = f"fs_serving_log_{uuid.uuid4().hex[:8]}"
    ensure_topics(settings.kafka_bootstrap, [topic], partitions=2)
    shipped = FeatureCatalog.from_folder()
    count, total = shipped.get("user", "txn_count_1h"), shipped.get("user", "txn_amount_sum_1h")
    store = DefinitionStore(settings.definitions_db)
    for d in (count, total):
        store.register(d, activate=True)
    rng = np.random.default_rng(7)
    # Window ends on the features' 5-minute grid; the new one 20-25 minutes old (the SLO is 10 minutes).
    stale_end = time.time_ns() // 1_000_000 // (5 * MIN) * 5 * MIN - 20 * MIN
    trained_end = stale_end - 180 * MIN
    cluster, session = connect_cassandra(settings)
    sink = KafkaSink(Producer(producer_config(settings.kafka_bootstrap)), topic)
    try:
        offline = ensure_table(connect_iceberg(settings), settings.iceberg_namespace)
        writer = DualWriter(OfflineWriter(offline), OnlineWriter(session, settings.cassandra_keyspace))
        for user in ENTITIES:
            writer.add(FeatureRow.of(count, user, int(rng.poisson(5)), trained_end - 60 * MIN, trained_end))
            writer.add(FeatureRow.of(total, user, float(rng.normal(50, 10)), trained_end - 60 * MIN, trained_end))
        writer.flush()
        labels = pa.table(
            {"user_id": ENTITIES, "event_timestamp": pa.array([trained_end * 1000] * 300, pa.timestamp("us", "UTC"))}
        )
        training = build_training_set(
            offline,
            store.catalog(),
            labels,
            ["txn_count_1h", "txn_amount_sum_1h"],
            entity_type="user",
            entity_column="user_id",
        )
        TrainingSetStore(settings.definitions_db).record(training.manifest)
        for user in ENTITIES:  # a later window: the same distribution of counts, amounts shifted
            writer.add(FeatureRow.of(count, user, int(rng.poisson(5)), stale_end - 60 * MIN, stale_end))
            writer.add(FeatureRow.of(total, user, float(rng.normal(80, 10)), stale_end - 60 * MIN, stale_end))
        writer.flush()
        app = create_app(
            LiveCatalog(store),
            OnlineReader(session, settings.cassandra_keyspace, timeout_s=5.0, batch_timeout_s=10.0),
            serving_log=sink,
            serving_log_sample=1.0,
        )
        with TestClient(app) as client:
            for first in range(0, len(ENTITIES), 100):
                response = client.post("/v1/features/user/batch", json={"entity_ids": ENTITIES[first : first + 100]})
                assert response.status_code == 200
            sink.close(10)
        assert _land(settings, topic, f"it-{uuid.uuid4().hex[:6]}") == 2 * len(ENTITIES)
    finally:
        cluster.shutdown()

    # Parity is clean (the values are what offline holds); statistics score the drift.
    assert parity.main(["--since", "1h", "--fail-above", "0"]) == 0
    capsys.readouterr()
    metrics_file = tmp_path / "statistics.prom"
    argv = ["--since", "1h", "--training-set", training.manifest.id, "--metrics-file", str(metrics_file)]
    assert statistics.main(argv) == 0
    report = orjson.loads(capsys.readouterr().out)
    scores = {(d["feature"], d["source"]): d for d in report["drift"]}
    assert set(scores) == {(f, s) for f in ("txn_count_1h", "txn_amount_sum_1h") for s in ("offline", "serving_log")}
    for source in ("offline", "serving_log"):
        assert scores[("txn_amount_sum_1h", source)]["psi"] > 0.25, scores
        assert scores[("txn_count_1h", source)]["psi"] < 0.1, scores
        assert scores[("txn_amount_sum_1h", source)]["current_values"] == len(ENTITIES)
    served = [h for h in report["hourly"] if h["source"] == "serving_log" and h["feature"] == "txn_count_1h"]
    assert sum(h["count"] for h in served) == len(ENTITIES)
    assert min(h["lag_p50_ms"] for h in served) >= 20 * MIN  # the stale window's age when served
    assert statistics.main([*argv, "--fail-above", "0.25", "--no-store"]) == 3
    capsys.readouterr()

    # Stored: the API answers it; the alert rule fires on the gauges for the shifted feature only.
    quality = QualityStore(settings.definitions_db)
    app = create_app(LiveCatalog(store), _NoVectors(), quality=quality)  # no vector read: the quality route only
    with TestClient(app) as client:
        body = client.get("/v1/quality/user/txn_amount_sum_1h?version=1").json()
    assert {(d["source"], d["training_set"]) for d in body["drift"]} == {
        ("offline", training.manifest.id),
        ("serving_log", training.manifest.id),
    }
    assert {h["source"] for h in body["hourly"]} == {"offline", "serving_log"} and len(body["parity"]) == 1
    assert sorted(_drift_alerts(metrics_file, tmp_path)) == [
        ("txn_amount_sum_1h", "offline"),
        ("txn_amount_sum_1h", "serving_log"),
    ]
    plots = render_all(
        quality, datetime.now(UTC) - timedelta(hours=4), datetime.now(UTC) + timedelta(hours=1), tmp_path / "plots"
    )
    assert sorted(p.name for p in plots) == ["user.txn_amount_sum_1h.v1.png", "user.txn_count_1h.v1.png"]

    # The gate: refused, naming the staleness of both features and the drift of one.
    model = tmp_path / "model.toml"
    model.write_text(
        'model = "fraud"\n'
        + "".join(
            f'[[features]]\nentity = "user"\nname = "{n}"\nversion = 1\n' for n in ("txn_count_1h", "txn_amount_sum_1h")
        )
    )
    assert cli.main(["gate", str(model), "--no-schema-check", "--guardrails", "--since", "1h"]) == 1
    refusals = [line for line in capsys.readouterr().err.splitlines() if line.startswith("REFUSED")]
    assert len(refusals) == 3, refusals
    assert refusals[0].startswith("REFUSED: user.txn_count_1h@v1: served stale in 300 of 300 logged values")
    assert refusals[1].startswith("REFUSED: user.txn_amount_sum_1h@v1: served stale in 300 of 300 logged values")
    assert refusals[2].startswith(
        f"REFUSED: user.txn_amount_sum_1h@v1: drifted from training set {training.manifest.id}"
    )
