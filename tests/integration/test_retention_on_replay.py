"""Offline retention holds for what the stream job writes after it (design, Retention): a run over events whose
windows ended before ``now - offline_retention`` of a feature version writes none of them to the offline table
(a replay wrote them back, and they stayed until retention's next run), while a feature of a longer retention in the
same window group keeps every window, and the windows inside the retention are all written."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pyarrow.compute as pc
import pytest

from jobs.produce import make_producer
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from sinks.factory import connect_cassandra, connect_iceberg
from sinks.iceberg.layout import TABLE
from tests.conftest import isolated, run_feature_job, shipped_features_on

pytestmark = pytest.mark.integration

MIN = 60_000
HOUR = 60 * MIN
BASE = time.time_ns() // 1_000_000 // HOUR * HOUR - 4 * HOUR
RETENTION_MS = 2 * HOUR


@pytest.fixture(scope="module")
def stack(it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = isolated(it_settings, "retain", tmp_path_factory.mktemp("retain"))
    topic = f"it_{run_id}_retain_txns"
    shipped_features_on(
        settings,
        topic,
        lambda toml: toml.replace('name = "txn_count_1h"\n', 'name = "txn_count_1h"\noffline_retention = "2h"\n'),
    )
    assert DefinitionStore(settings.definitions_db).catalog().get(
        "user", "txn_count_1h"
    ).offline_retention == timedelta(hours=2)
    producer = make_producer(settings)
    producer.send(
        topic,
        [
            {
                "transaction_id": f"t{m}",
                "user_id": f"u{m % 3}",
                "merchant_id": "m1",
                "amount": 1.0 + m,
                "currency": "EUR",
                "event_time": BASE + m * MIN + 7_000,
            }
            for m in range(0, 200, 4)
        ],
    )
    producer.flush()
    yield settings
    cluster, session = connect_cassandra(settings)
    session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
    cluster.shutdown()


def _window_ends(settings: Settings, name: str) -> set[tuple[str, int]]:
    table = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}")
    rows = table.scan(selected_fields=("entity_id", "feature_name", "event_time")).to_arrow()
    rows = rows.filter(pc.equal(rows.column("feature_name"), name))
    ends = rows.column("event_time").cast("int64").to_pylist()  # µs
    return {(e, us // 1000) for e, us in zip(rows.column("entity_id").to_pylist(), ends, strict=True)}


def test_windows_past_a_features_offline_retention_are_not_written_offline(stack: Settings) -> None:
    before_ms = time.time_ns() // 1_000_000
    done = run_feature_job(stack, "--bounded")
    after_ms = time.time_ns() // 1_000_000
    assert done.returncode == 0, done.stderr[-3000:]
    kept = _window_ends(stack, "txn_count_1h")
    every = _window_ends(stack, "txn_amount_sum_1h")  # one window group: the same windows, retention 1095d
    assert any(end < before_ms - RETENTION_MS for _, end in every), "the scenario needs windows past the retention"
    assert kept <= every
    assert all(end >= before_ms - RETENTION_MS for _, end in kept)  # the cut at the write is never earlier
    assert {w for w in every if w[1] >= after_ms - RETENTION_MS} <= kept  # inside the retention at any write: all
    assert kept  # and some windows are inside it

    # A replay of the whole topic (a new consumer group) brings none back.
    again = run_feature_job(stack, "--bounded", "--group-id", "retain-replay")
    assert again.returncode == 0, again.stderr[-3000:]
    assert all(end >= before_ms - RETENTION_MS for _, end in _window_ends(stack, "txn_count_1h"))
