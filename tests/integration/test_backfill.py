"""Backfill a new version from a Kafka replay while the active version serves, then promote it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from jobs import backfill
from jobs.produce import ensure_topics, make_producer
from registry.core.catalog import load_folder
from registry.core.definitions import Window
from registry.core.errors import DefinitionError, FeatureStoreError
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from registry.plan import apply
from serving.offline.promotion import PromotionRefusedError, promote
from serving.online.app import create_app
from sinks.cassandra.reader import OnlineReader
from sinks.factory import connect_cassandra, connect_iceberg
from sinks.iceberg.layout import TABLE
from tests.conftest import REPO, isolated, settings_env

pytestmark = pytest.mark.integration

MIN = 60_000
HOUR = 60 * MIN
BASE = time.time_ns() // 1_000_000 // HOUR * HOUR - 3 * HOUR
EVENTS = [("alice", 1, 10.0), ("alice", 2, 20.0), ("bob", 3, 100.0), ("alice", 7, 5.5), ("alice", 70, 1.0)]


def _windows(size_min: int, events: list[tuple[str, int, float]] = EVENTS) -> dict[tuple[str, int], int]:
    """Brute force: (user, window end) -> count, for windows of size_min sliding by 5 min."""
    out: dict[tuple[str, int], int] = {}
    first = min(m for _, m, _ in events) // 5 * 5 + 5
    for end_min in range(first, 70 + size_min + 5, 5):
        for user in ("alice", "bob"):
            n = sum(1 for u, m, _ in events if u == user and end_min - size_min <= m < end_min)
            if n:
                out[(user, BASE + end_min * MIN)] = n
    return out


@pytest.fixture(scope="module")
def setup(it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = isolated(it_settings, "bf", tmp_path_factory.mktemp("bf"))
    topic = f"it_{run_id}_bf"
    toml = (REPO / "registry" / "features" / "user_transactions.toml").read_text()
    (settings.definitions_dir / "f.toml").write_text(
        toml.replace('topic = "card_transactions"', f'topic = "{topic}"').replace('ttl = "2h"', 'ttl = "1d"')
    )
    store = DefinitionStore(settings.definitions_db)
    apply(store, load_folder(settings.definitions_dir))
    ensure_topics(settings.kafka_bootstrap, [topic, f"{topic}.dlq"])
    producer = make_producer(settings)
    producer.send(
        topic,
        [
            {
                "transaction_id": f"t{i}",
                "user_id": u,
                "merchant_id": "m",
                "amount": a,
                "currency": "EUR",
                "event_time": BASE + m * MIN,
            }
            for i, (u, m, a) in enumerate(EVENTS)
        ],
    )
    producer.flush()
    live = subprocess.run(
        [sys.executable, "-m", "jobs.feature_job", "--bounded"],
        cwd=REPO,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert live.returncode == 0, live.stdout[-3000:] + live.stderr[-3000:]
    v1 = store.catalog().get("user", "txn_count_1h")
    v2 = v1.model_copy(
        update={"version": 2, "window": Window(kind="sliding", size=timedelta(minutes=30), slide=timedelta(minutes=5))}
    )
    store.register(v2)  # registered, not active
    yield settings


def _body(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return dict(response.json())


def _served(settings: Settings, store: DefinitionStore) -> dict[str, dict[str, object]]:
    cluster, session = connect_cassandra(settings)
    try:
        client = TestClient(
            create_app(
                LiveCatalog(store, refresh_s=0),
                OnlineReader(session, settings.cassandra_keyspace, timeout_s=5.0, batch_timeout_s=10.0),
            )
        )
        return {
            u: _body(client.get(f"/v1/features/user/{u}", params={"names": "txn_count_1h"}))["features"]["txn_count_1h"]
            for u in ("alice", "bob")
        }
    finally:
        cluster.shutdown()


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_backfill_computes_the_new_version_while_the_old_one_serves(
    setup: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = setup
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)  # the backfill's job subprocess reads its settings from FS_*
    store = DefinitionStore(settings.definitions_db)
    with pytest.raises(DefinitionError, match="is the active version"):
        backfill.run(settings, ["user.txn_count_1h@1"])
    backfill.run(settings, ["user.txn_count_1h@2"], progress_every_s=1)

    rows = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}").scan().to_arrow().to_pylist()
    by_version = {
        v: {
            (r["entity_id"], int(r["event_time"].timestamp() * 1000)): r["value_long"]
            for r in rows
            if r["feature_name"] == "txn_count_1h" and r["feature_version"] == v
        }
        for v in (1, 2)
    }
    assert by_version[2] == _windows(30)
    assert by_version[1] == _windows(60)  # the active version's rows are untouched

    before = _served(settings, store)  # v1 still serves: its latest window ends at 130 min
    assert {u: (f["version"], f["feature_timestamp"], f["value"]) for u, f in before.items()} == {
        "alice": (1, _iso(BASE + 130 * MIN), 1),
        "bob": (1, _iso(BASE + 130 * MIN), 0),
    }
    table = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}")
    # The stream stopped: v1's 60-min windows end 30 min past v2's 30-min ones (README: give a caught-up
    # candidate the --max-lag that covers that difference; exactly --max-lag is ready, the default step is not).
    with pytest.raises(PromotionRefusedError, match="trails v1 by 1800000ms"):
        promote(store, table, "user", "txn_count_1h", 2)
    promote(store, table, "user", "txn_count_1h", 2, max_lag=timedelta(minutes=30))
    after = _served(settings, store)  # v2's latest window ends at 100 min: [70 min, 100 min) holds alice's 1.0
    assert {u: (f["version"], f["feature_timestamp"], f["value"]) for u, f in after.items()} == {
        "alice": (2, _iso(BASE + 100 * MIN), 1),
        "bob": (2, _iso(BASE + 100 * MIN), 0),
    }


def test_a_backfill_reads_history_the_topic_never_held_from_a_table_of_events(
    setup: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The topic's events and older ones (before BASE) in a Parquet file: the new version's windows
    cover both, as the brute force over all of them gives; and so do a second candidate version's of the same name
    and window, backfilled in the same run (two columns of one name in the job's SQL were refused before)."""
    settings = setup
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    store = DefinitionStore(settings.definitions_db)
    v1 = store.catalog().get("user", "txn_count_1h", 1)
    v3 = v1.model_copy(
        update={"version": 3, "window": Window(kind="sliding", size=timedelta(minutes=15), slide=timedelta(minutes=5))}
    )
    store.register(v3)
    store.register(v3.model_copy(update={"version": 4, "ttl": v3.ttl * 2}))
    history = [("alice", -50, 3.0), ("bob", -48, 4.0), ("bob", -20, 1.0), *EVENTS]
    pq.write_table(
        pa.Table.from_pylist(
            [
                {
                    "transaction_id": f"h{i}",
                    "user_id": u,
                    "merchant_id": "m",
                    "amount": a,
                    "currency": "EUR",
                    "event_time": BASE + m * MIN,
                }
                for i, (u, m, a) in enumerate(history)
            ]
        ),
        tmp_path / "history.parquet",
    )
    versions = ["user.txn_count_1h@3", "user.txn_count_1h@4"]
    # A range around every event: the job's range filter selects the group's columns (where one name twice failed).
    since, until = str(BASE - 2 * HOUR), str(BASE + 2 * HOUR)
    backfill.run(
        settings, versions, events=str(tmp_path / "history.parquet"), since=since, until=until, progress_every_s=1
    )
    rows = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}").scan().to_arrow().to_pylist()
    for version in (3, 4):
        got = {
            (r["entity_id"], int(r["event_time"].timestamp() * 1000)): r["value_long"]
            for r in rows
            if r["feature_name"] == "txn_count_1h" and r["feature_version"] == version
        }
        assert got == _windows(15, history), version
        assert min(end for _, end in got) == BASE - 45 * MIN  # [-60 min, -45 min): alice's oldest event's first window


def test_a_failed_backfill_leaves_the_active_version(setup: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = setup
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    store = DefinitionStore(settings.definitions_db)
    active = store.catalog().get("user", "txn_amount_sum_1h").version
    with pytest.raises(FeatureStoreError):
        backfill.run(settings, ["user.txn_amount_sum_1h@7"])
    assert store.catalog().get("user", "txn_amount_sum_1h").version == active
