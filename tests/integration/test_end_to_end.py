"""Event -> Kafka -> Flink -> Cassandra and Iceberg -> HTTP API and training set, on the real stack.

The events are few and hand-placed, so the expected feature values below are worked out by hand
(and, for every offline row, by a brute-force sliding window over the events).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from confluent_kafka import Consumer
from fastapi.testclient import TestClient

from jobs.produce import ensure_topics, make_producer
from registry.core.catalog import load_folder, load_request_folder
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from registry.plan import apply
from serving.offline.historical import get_historical_features
from serving.online.app import create_app
from sinks.cassandra.reader import OnlineReader
from sinks.factory import connect_cassandra, connect_iceberg
from sinks.iceberg.layout import TABLE
from tests.conftest import REPO, isolated, settings_env

pytestmark = pytest.mark.integration

MIN = 60_000
HOUR = 60 * MIN
NOW_MS = time.time_ns() // 1_000_000
BASE = NOW_MS // HOUR * HOUR - 3 * HOUR  # whole hour, 3-4 h ago: every window of the events has closed
# (user, minutes after BASE, amount): amounts are exact in binary floating point.
EVENTS = [("alice", 1, 10.0), ("alice", 2, 20.0), ("bob", 3, 100.0), ("alice", 7, 5.5), ("alice", 70, 1.0)]


def _definitions_toml(topic: str) -> str:
    toml = (REPO / "registry" / "features" / "user_transactions.toml").read_text()
    return toml.replace('topic = "card_transactions"', f'topic = "{topic}"').replace('ttl = "2h"', 'ttl = "1d"')


def reference_windows(events: list[tuple[str, int, float]]) -> dict[tuple[str, int], tuple[int, float]]:
    """Brute force: every 1 h window sliding by 5 min that holds an event -> (count, sum)."""
    out = {}
    times = [BASE + m * MIN for _, m, _ in events]
    for end in range(min(times) // (5 * MIN) * 5 * MIN, max(times) + HOUR + 5 * MIN, 5 * MIN):
        for user in {u for u, _, _ in events}:
            inside = [a for (u, m, a) in events if u == user and end - HOUR <= BASE + m * MIN < end]
            if inside:
                out[(user, end)] = (len(inside), sum(inside))
    return out


@pytest.fixture(scope="module", params=[1, 2], ids=["parallelism1", "parallelism2"])
def pipeline_run(
    request: pytest.FixtureRequest, it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, str]]:
    """The events through a bounded job at parallelism 1 and 2 (4 partitions): the same results either way."""
    parallelism: int = request.param
    settings = isolated(it_settings, f"e2e{parallelism}", tmp_path_factory.mktemp(f"e2e{parallelism}"))
    topic = f"it_{run_id}_card_transactions_p{parallelism}"
    (settings.definitions_dir / "user_transactions.toml").write_text(_definitions_toml(topic))
    apply(
        DefinitionStore(settings.definitions_db),
        load_folder(settings.definitions_dir),
        load_request_folder(settings.definitions_dir),
    )
    ensure_topics(settings.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=4)
    producer = make_producer(settings)
    events = [
        {
            "transaction_id": f"t{i}",
            "user_id": u,
            "merchant_id": "m1",
            "amount": a,
            "currency": "EUR",
            "event_time": BASE + m * MIN,
        }
        for i, (u, m, a) in enumerate(EVENTS)
    ]
    producer.send(topic, events)
    # Two bad records: not Confluent-framed, and a payload time that disagrees with the Kafka timestamp.
    producer.send_raw(topic, b"alice", b"\x07not avro at all", BASE + 3 * MIN)
    good = producer._serializer(dict(events[0], transaction_id="t-skew"), _ctx(topic))
    producer.send_raw(topic, b"alice", good, BASE + 4 * MIN)
    producer.flush()
    started = time.monotonic()
    job = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.feature_job",
            "--bounded",
            "--parallelism",
            str(parallelism),
            "--metrics-port",
            "0",
        ],
        cwd=REPO,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert job.returncode == 0, (
        f"job failed after {time.monotonic() - started:.0f}s:\n{job.stdout[-3000:]}\n{job.stderr[-3000:]}"
    )
    yield settings, topic


def _ctx(topic: str):  # type: ignore[no-untyped-def]
    from confluent_kafka.serialization import MessageField, SerializationContext

    return SerializationContext(topic, MessageField.VALUE)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_online_vector_served_over_http(pipeline_run: tuple[Settings, str]) -> None:
    settings, _ = pipeline_run
    live = LiveCatalog(DefinitionStore(settings.definitions_db))
    cluster, session = connect_cassandra(settings)
    try:
        client = TestClient(
            create_app(live, OnlineReader(session, settings.cassandra_keyspace, timeout_s=5.0, batch_timeout_s=10.0))
        )
        alice = client.get("/v1/features/user/alice", params={"names": "txn_count_1h,txn_amount_sum_1h"})
        bob = client.get("/v1/features/user/bob")
        carol = client.get("/v1/features/user/carol", params={"names": "txn_count_1h"})
    finally:
        cluster.shutdown()
    assert alice.status_code == 200, alice.text
    features = alice.json()["features"]
    # Latest closed window: the one ending at BASE+130m, [BASE+70m, BASE+130m): alice's 1.0 only.
    assert features["txn_count_1h"]["value"] == 1
    assert features["txn_amount_sum_1h"]["value"] == 1.0
    assert features["txn_count_1h"]["feature_timestamp"] == _iso(BASE + 130 * MIN)
    assert features["txn_count_1h"]["status"] in ("present", "stale")
    assert features["txn_count_1h"]["age_seconds"] >= (NOW_MS - (BASE + 130 * MIN)) / 1000
    # Bob's last event left his window at BASE+60m; the window closed at BASE+130m was empty for him.
    bob_features = bob.json()["features"]
    assert bob_features["txn_count_1h"]["value"] == 0
    assert bob_features["txn_amount_sum_1h"]["value"] == 0.0
    assert bob_features["txn_count_1h"]["feature_timestamp"] == _iso(BASE + 130 * MIN)
    assert carol.json()["features"]["txn_count_1h"] == {
        "value": None,
        "feature_timestamp": None,
        "age_seconds": None,
        "version": 1,
        "status": "missing",
    }


def test_every_writer_records_its_progress_up_to_the_streams_reach(pipeline_run: tuple[Settings, str]) -> None:
    """Each bucket's writer has a ``stream_progress`` row of its own (writer id: the bucket's number), at the stream's
    reach, BASE+130m (alice's last window), bob's bucket too, though his last window ended at BASE+60m: a writer
    whose entities are quiet records its progress from the watermark and holds nobody back (design §5.5). At
    parallelism 2 alice's and bob's buckets run in writer subtasks of their own."""
    from sinks.cassandra import layout as online_layout

    settings, topic = pipeline_run
    cluster, session = connect_cassandra(settings)
    try:
        rows = list(session.execute(online_layout.select_progress_ms_cql(settings.cassandra_keyspace)))
    finally:
        cluster.shutdown()
    parallelism = 1 if topic.endswith("_p1") else 2
    streams = {r[0] for r in rows}
    assert streams == {f"{topic}/user/sliding(1h/5m)"}, streams
    got = {r[1]: int(r[2]) for r in rows}
    assert got == {**{str(b): BASE + 130 * MIN for b in range(parallelism)}, "*": BASE + 130 * MIN}


def test_offline_rows_equal_brute_force_windows(pipeline_run: tuple[Settings, str]) -> None:
    settings, _ = pipeline_run
    table = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}")
    rows = table.scan().to_arrow().to_pylist()
    keys = [(r["entity_id"], r["feature_name"], r["event_time"]) for r in rows]
    assert len(keys) == len(set(keys)), "an offline row was written twice"
    got: dict[tuple[str, int], dict[str, float]] = {}
    for r in rows:
        end = int(r["event_time"].timestamp() * 1000)
        value = r["value_long"] if r["feature_name"] == "txn_count_1h" else r["value_double"]
        got.setdefault((r["entity_id"], end), {})[r["feature_name"]] = value
    expected = {k: {"txn_count_1h": c, "txn_amount_sum_1h": s} for k, (c, s) in reference_windows(EVENTS).items()}
    assert got == expected
    # Spot-check the reference itself against hand-worked values.
    assert expected[("alice", BASE + 10 * MIN)] == {"txn_count_1h": 3, "txn_amount_sum_1h": 35.5}
    assert expected[("alice", BASE + 65 * MIN)] == {"txn_count_1h": 1, "txn_amount_sum_1h": 5.5}
    # alice: windows ending 5..65 (events at 1, 2, 7 min) and 75..130 (70 min); bob: 5..60.
    assert len(expected) == 13 + 12 + 12


def test_point_in_time_training_set(pipeline_run: tuple[Settings, str]) -> None:
    settings, _ = pipeline_run
    table = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}")
    minutes = [10, 9.999, 65, 170, 30, 30, 5, 100]
    users = ["alice", "alice", "alice", "alice", "bob", "carol", "bob", "bob"]
    labels = pa.table(
        {
            "user_id": users,
            "event_timestamp": pa.array([BASE + int(m * MIN) for m in minutes], pa.timestamp("ms", tz="UTC")),
            "row_id": list(range(len(users))),
        }
    )
    result = get_historical_features(
        table,
        DefinitionStore(settings.definitions_db).catalog(),
        labels,
        ["txn_count_1h", "txn_amount_sum_1h"],
        entity_type="user",
        entity_column="user_id",
    )
    assert result.column("row_id").to_pylist() == list(range(len(users)))
    # alice@10m: window [-50m, 10m) holds 10+20+5.5; @9.999m only the window ending 5m is closed;
    # @65m: [5m, 65m) holds 5.5; @170m: no data reaches past the window ending 130m, so that window
    # is the latest known closed, and it holds 1.0 (online serves the same); bob@30m: 100.0;
    # carol has no rows; bob@5m: the window ending exactly at 5m counts (end <= label time);
    # bob@100m: his windows ended at 60m, and the data reaches 130m: the window ending 100m was empty.
    assert result.column("txn_count_1h").to_pylist() == [3, 2, 1, 1, 1, None, 1, 0]
    assert result.column("txn_amount_sum_1h").to_pylist() == [35.5, 30.0, 5.5, 1.0, 100.0, None, 100.0, 0.0]


def test_request_feature_online_and_offline_agree(pipeline_run: tuple[Settings, str]) -> None:
    """The shipped request feature (amount / mean amount of the last hour) served by the API from Cassandra
    and joined from Iceberg at the same instant, for the same amounts: the same values, worked out by hand."""
    settings, _ = pipeline_run
    store = DefinitionStore(settings.definitions_db)
    users = ["alice", "bob", "carol", "alice"]
    amounts = [3.0, 50.0, 1.0, None]
    cluster, session = connect_cassandra(settings)
    try:
        client = TestClient(
            create_app(
                LiveCatalog(store),
                OnlineReader(session, settings.cassandra_keyspace, timeout_s=5.0, batch_timeout_s=10.0),
            )
        )
        single = client.get("/v1/features/user/alice", params={"names": "amount_vs_mean_1h", "amount": "3"})
        batch = client.post(
            "/v1/features/user/batch",
            json={"entity_ids": users, "names": ["amount_vs_mean_1h"], "request_data": {"amount": amounts}},
        )
        at_ms = time.time_ns() // 1_000_000
    finally:
        cluster.shutdown()
    assert single.status_code == 200 and batch.status_code == 200, (single.text, batch.text)
    online = [r["values"][0] for r in batch.json()["results"]]
    # alice's latest window (ending BASE+130m) holds 1.0: mean 1.0, so 3.0 -> 3.0; bob's closed window was
    # empty (count 0): no mean; carol has no rows; no amount: null.
    assert online == [3.0, None, None, None]
    assert single.json()["features"]["amount_vs_mean_1h"]["value"] == 3.0
    labels = pa.table(
        {
            "user_id": users,
            "event_timestamp": pa.array([at_ms] * len(users), pa.timestamp("ms", tz="UTC")),
            "amount": pa.array(amounts, pa.float64()),
        }
    )
    table = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}")
    offline = get_historical_features(
        table, store.catalog(), labels, ["amount_vs_mean_1h"], entity_type="user", entity_column="user_id"
    )
    assert offline.column("amount_vs_mean_1h").to_pylist() == online


def test_bad_records_go_to_the_dead_letter_topic(pipeline_run: tuple[Settings, str], run_id: str) -> None:
    settings, topic = pipeline_run
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"it-{run_id}-{topic}-dlq",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([f"{topic}.dlq"])
    letters: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(letters) < 3:
        for msg in consumer.consume(10, timeout=1):
            if msg.error() is None:
                letters.append(json.loads(msg.value() or b"null"))
        if len(letters) == 2:
            deadline = min(deadline, time.monotonic() + 3)  # a moment more, to catch an unexpected third
    consumer.close()
    assert sorted(letter["reason"] for letter in letters) == ["bad_magic", "timestamp_mismatch"]
    assert all(letter["topic"] == topic and letter["payload_b64"] for letter in letters)
