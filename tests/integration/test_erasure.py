"""Per-entity erasure on the real stack: Kafka -> the stream job -> Cassandra and Iceberg, a serving-log
table and a training set; then ``python -m serving.offline.erasure`` removes one user.

The user is then absent from Cassandra, from every Iceberg snapshot that can still be read and from
every data file on disk, the other user is untouched, the training set pinned on an expired snapshot
is named as invalidated, the Kafka topics that still hold the user's events are named with the time
they age out, and after the stream job replays the whole topic the user is still absent everywhere;
a second erasure finds nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.produce import make_producer
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.erasures import ErasureStore
from registry.training_sets import TrainingSetStore
from serving.offline.training import build_training_set
from sinks.cassandra.reader import OnlineReader
from sinks.factory import connect_cassandra, connect_iceberg
from sinks.iceberg.layout import TABLE
from sinks.serving_log import ARROW_SCHEMA, ensure_log_table
from tests.conftest import isolated, run_feature_job, run_module, shipped_features_on

pytestmark = pytest.mark.integration

MIN = 60_000
HOUR = 60 * MIN
NOW_MS = time.time_ns() // 1_000_000
BASE = NOW_MS // HOUR * HOUR - 3 * HOUR  # every window of the events has closed
EVENTS = [("alice", 1, 10.0), ("alice", 2, 20.0), ("bob", 3, 100.0), ("alice", 7, 5.5), ("bob", 9, 1.0)]


def _run_job(settings: Settings) -> None:
    run_feature_job(settings, "--bounded")


def _erase(settings: Settings, entity_id: str) -> dict[str, Any]:
    done = run_module(settings, "serving.offline.erasure", "--entity-type", "user", "--entity-id", entity_id)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout))


@pytest.fixture(scope="module")
def stack(it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = isolated(it_settings, "erase", tmp_path_factory.mktemp("erase"))
    topic = f"it_{run_id}_erase_txns"
    shipped_features_on(settings, topic)
    producer = make_producer(settings)
    producer.send(
        topic,
        [
            {
                "transaction_id": f"t{i}",
                "user_id": u,
                "merchant_id": "m1",
                "amount": a,
                "currency": "EUR",
                "event_time": BASE + m * MIN,
            }
            for i, (u, m, a) in enumerate(EVENTS)
        ],
    )
    producer.flush()
    _run_job(settings)
    yield settings
    cluster, session = connect_cassandra(settings)
    session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
    cluster.shutdown()


def _online(settings: Settings, entity_id: str) -> int:
    cluster, session = connect_cassandra(settings)
    try:
        return len(OnlineReader(session, settings.cassandra_keyspace, timeout_s=30).read("user", entity_id))
    finally:
        cluster.shutdown()


def _offline(table: Any, entity_id: str) -> dict[int, int]:
    """Rows of the entity in every snapshot that can still be read, by snapshot id."""
    out = {}
    for snapshot in table.metadata.snapshots:
        ids = table.scan(snapshot_id=snapshot.snapshot_id, selected_fields=("entity_id",)).to_arrow()
        out[snapshot.snapshot_id] = ids.column("entity_id").to_pylist().count(entity_id)
    return out


def _files_holding(folder: Path, entity_id: str) -> list[str]:
    return [
        str(p)
        for p in folder.rglob("*.parquet")
        if entity_id in pq.read_table(p, columns=["entity_id"]).column("entity_id").to_pylist()
    ]


def _log_rows(entity_ids: list[str]) -> pa.Table:
    now_us = NOW_MS * 1000
    rows = [
        {
            "served_at": now_us - 1000 * i,
            "request_id": f"r{i}",
            "caller": "scorer",
            "feature_service": None,
            "model_name": None,
            "model_version": None,
            "entity_type": "user",
            "entity_id": e,
            "feature_name": "txn_count_1h",
            "feature_version": 1,
            "value_json": "3",
            "feature_time": now_us - 60_000_000,
            "status": "present",
            "kafka_topic": "fs_serving_log",
            "kafka_partition": 0,
            "kafka_offset": i,
            "position": 0,
        }
        for i, e in enumerate(entity_ids)
    ]
    return pa.Table.from_pylist(rows, schema=ARROW_SCHEMA)


def test_an_erased_user_is_gone_from_every_store_and_stays_gone_after_a_replay(stack: Settings) -> None:
    settings = stack
    iceberg = connect_iceberg(settings)
    offline = iceberg.load_table(f"{settings.iceberg_namespace}.{TABLE}")
    assert _online(settings, "alice") > 0 and _online(settings, "bob") > 0
    assert sum(_offline(offline, "alice").values()) > 0
    log = ensure_log_table(iceberg, settings.iceberg_namespace)
    log.append(_log_rows(["alice", "bob", "alice"]))
    labels = pa.table(
        {
            "user_id": ["alice", "bob"],
            "event_timestamp": pa.array([(BASE + 2 * HOUR) * 1000] * 2, pa.timestamp("us", "UTC")),
        }
    )
    built = build_training_set(
        offline,
        DefinitionStore(settings.definitions_db).catalog(),
        labels,
        ["txn_count_1h"],
        entity_type="user",
        entity_column="user_id",
    )
    TrainingSetStore(settings.definitions_db).record(built.manifest)
    assert built.table.column("txn_count_1h").to_pylist()[0] is not None
    bob_offline = offline.scan(selected_fields=("entity_id", "feature_name", "event_time")).to_arrow()
    bob_before = _keys(bob_offline, "bob")
    alice_online = _online(settings, "alice")

    report = _erase(settings, "alice")

    assert report["online"]["rows_removed"] == alice_online
    assert report["offline"]["rows_removed"] > 0 and report["offline"]["snapshots_expired"] > 0
    assert report["offline"]["files_deleted"] > 0
    assert report["serving_log"]["rows_removed"] == 2
    assert report["manifests_invalidated"] == [built.manifest.id]
    topics = {item["where"] for item in report["not_erased"]}
    assert any(".dlq" in t for t in topics) and any(t.endswith("_erase_txns") for t in topics)
    assert all(item["until"] not in ("", "unknown") for item in report["not_erased"])
    _assert_absent(settings, bob_before)

    # The stream job replays the whole topic: alice's old windows are not written again, online or offline.
    _run_job(settings)
    _assert_absent(settings, bob_before)
    assert ErasureStore(settings.definitions_db).get("user", "alice") is not None

    again = _erase(settings, "alice")
    assert (
        again["online"]["rows_removed"],
        again["offline"]["rows_removed"],
        again["serving_log"]["rows_removed"],
    ) == (
        0,
        0,
        0,
    )


def _keys(rows: pa.Table, entity_id: str) -> list[tuple[str, str, Any]]:
    return sorted(
        (r["entity_id"], r["feature_name"], r["event_time"]) for r in rows.to_pylist() if r["entity_id"] == entity_id
    )


def _assert_absent(settings: Settings, bob_before: list[tuple[str, str, Any]]) -> None:
    iceberg = connect_iceberg(settings)
    offline = iceberg.load_table(f"{settings.iceberg_namespace}.{TABLE}")
    log = iceberg.load_table(f"{settings.iceberg_namespace}.serving_log")
    assert _online(settings, "alice") == 0
    assert _online(settings, "bob") > 0
    assert set(_offline(offline, "alice").values()) == {0}
    assert set(_offline(log, "alice").values()) == {0}
    for table in (offline, log):
        assert _files_holding(Path(table.location().removeprefix("file://")), "alice") == []
    bob_now = offline.scan(selected_fields=("entity_id", "feature_name", "event_time")).to_arrow()
    assert _keys(bob_now, "bob") == bob_before
