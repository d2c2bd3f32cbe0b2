"""The TTL contract on the real online store: a value past its TTL is served as null with status
``expired``, as the offline join returns null for it (the unit test ``tests/unit/test_ttl_contract.py``
checks value and status against the offline join at every TTL edge with an in-memory store).

The online writer keeps each cell an hour past its value's TTL (``sinks.cassandra.layout.EXPIRED_GRACE_S``),
so for that hour the API reads the value and says ``expired`` (null); only after it does Cassandra drop the
cell and the API say ``missing``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry.core.definitions import FeatureDefinition
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from serving.online.app import create_app
from sinks.cassandra.reader import OnlineReader
from sinks.cassandra.writer import OnlineWriter
from sinks.factory import connect_cassandra
from sinks.records import FeatureRow
from tests.conftest import isolated

pytestmark = pytest.mark.integration

TTL_MS = 60_000


@pytest.fixture(scope="module")
def served(it_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, int]]:
    settings = isolated(it_settings, "ttl", tmp_path_factory.mktemp("ttl"))
    d = FeatureDefinition.model_validate(
        {
            "name": "ttl_count",
            "entity": "user",
            "version": 1,
            "owner": "it",
            "value_type": "long",
            "source": {
                "topic": "ttl_events",
                "event_schema": "card_transaction",
                "subject": "ttl_events-value",
                "entity_key": "user_id",
                "timestamp_field": "event_time",
            },
            "window": {"kind": "session", "gap": "1m"},
            "aggregation": {"function": "count"},
            "freshness_slo": "1h",
            "ttl": "1m",
        }
    )
    store = DefinitionStore(settings.definitions_db)
    store.register(d)
    cluster, session = connect_cassandra(settings)
    try:
        # A window that ended TTL - 2 s ago: its value is within its TTL for about 2 more seconds.
        end = time.time_ns() // 1_000_000 - TTL_MS + 2000
        writer = OnlineWriter(session, settings.cassandra_keyspace)
        writer.add(FeatureRow.of(d, "t1", 5, end - 1000, end))
        writer.flush()
        assert writer.written == 1
        client = TestClient(
            create_app(LiveCatalog(store), OnlineReader(session, settings.cassandra_keyspace, timeout_s=5.0))
        )
        yield client, end
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
        cluster.shutdown()


def _feature(client: Any) -> dict[str, Any]:
    response = client.get("/v1/features/user/t1", params={"names": "ttl_count"})
    assert response.status_code == 200, response.text
    return dict(response.json()["features"]["ttl_count"])


def test_value_is_null_once_past_ttl(served: tuple[Any, int]) -> None:
    client, end = served
    assert _feature(client)["value"] == 5  # within the TTL
    time.sleep(max(0.0, (end + TTL_MS + 3000) / 1000 - time.time()))
    assert _feature(client)["value"] is None


def test_status_is_expired_once_past_ttl(served: tuple[Any, int]) -> None:
    client, end = served
    time.sleep(max(0.0, (end + TTL_MS + 3000) / 1000 - time.time()))
    assert _feature(client)["status"] == "expired"
