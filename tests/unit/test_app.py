"""The feature API with an in-memory VectorSource (the read side's test double) and an injected clock."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from registry.core.errors import StoreUnavailableError
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from serving.online.app import create_app
from sinks.cassandra.reader import StoredValue
from sinks.names import StoreNames

MIN = 60_000
T = 1_700_000_100_000  # 2023-11-14T22:15:00Z, a 5-minute window end
NOW = T + 90_000  # 2023-11-14T22:16:30Z
STREAM = "card_transactions/user/sliding(1h/5m)"  # the window group of both shipped features


class MemorySource:
    """Stored values and stream progress held in dicts; ``fail`` makes every read raise it."""

    def __init__(
        self,
        values: dict[tuple[str, str], dict[tuple[str, int], StoredValue]] | None = None,
        progress: dict[str, int] | None = None,
        fail: Exception | None = None,
        fail_progress: Exception | None = None,
    ) -> None:
        self.values = values or {}
        self.progress_ms = progress if progress is not None else {STREAM: T}
        self.fail = fail
        self.fail_progress = fail_progress
        self.reads: list[tuple[str, str]] = []

    def read(self, entity_type: str, entity_id: str) -> dict[tuple[str, int], StoredValue]:
        self.reads.append((entity_type, entity_id))
        if self.fail is not None:
            raise self.fail
        return dict(self.values.get((entity_type, entity_id), {}))

    def progress(self) -> dict[str, int]:
        if self.fail_progress is not None:
            raise self.fail_progress
        return dict(self.progress_ms)


@pytest.fixture
def live(tmp_path: Path, shipped_catalog: FeatureCatalog) -> LiveCatalog:
    store = DefinitionStore(tmp_path / "definitions.db")
    for d in shipped_catalog:
        store.register(d)
    return LiveCatalog(store)


def client_for(live: LiveCatalog, source: MemorySource, now_ms: int = NOW) -> TestClient:
    return TestClient(create_app(live, source, clock_us=lambda: now_ms * 1000), raise_server_exceptions=False)


def _stored(
    count: tuple[int, Any] | None = None, total: tuple[int, Any] | None = None
) -> dict[tuple[str, int], StoredValue]:
    out = {}
    if count is not None:
        out[("txn_count_1h", 1)] = StoredValue(count[1], count[0])
    if total is not None:
        out[("txn_amount_sum_1h", 1)] = StoredValue(total[1], total[0])
    return out


def test_stream_key_of_shipped_features(shipped_catalog: FeatureCatalog) -> None:
    assert {d.stream for d in shipped_catalog} == {STREAM}


def test_present_and_missing(live: LiveCatalog) -> None:
    source = MemorySource({("user", "u1"): _stored(count=(T, 7))})
    response = client_for(live, source).get("/v1/features/user/u1")
    assert response.status_code == 200
    assert response.json() == {
        "entity_type": "user",
        "entity_id": "u1",
        "served_at": "2023-11-14T22:16:30.000Z",
        "features": {
            "txn_count_1h": {
                "value": 7,
                "feature_timestamp": "2023-11-14T22:15:00.000Z",
                "age_seconds": 90.0,
                "version": 1,
                "status": "present",
            },
            "txn_amount_sum_1h": {
                "value": None,
                "feature_timestamp": None,
                "age_seconds": None,
                "version": 1,
                "status": "missing",
            },
        },
    }
    assert source.reads == [("user", "u1")]


def test_stale_when_the_pipeline_lags(live: LiveCatalog) -> None:
    lagging = T - 15 * MIN
    source = MemorySource({("user", "u1"): _stored(count=(lagging, 7), total=(lagging, 12.5))}, {STREAM: lagging})
    features = client_for(live, source).get("/v1/features/user/u1").json()["features"]
    assert features["txn_count_1h"] == {
        "value": 7,
        "feature_timestamp": "2023-11-14T22:00:00.000Z",
        "age_seconds": 990.0,
        "version": 1,
        "status": "stale",
    }
    assert features["txn_amount_sum_1h"]["value"] == 12.5
    assert features["txn_amount_sum_1h"]["status"] == "stale"


def test_later_closed_window_without_row_is_empty(live: LiveCatalog) -> None:
    quiet = T - 30 * MIN
    source = MemorySource({("user", "u1"): _stored(count=(quiet, 7), total=(quiet, 12.5))})
    features = client_for(live, source).get("/v1/features/user/u1").json()["features"]
    assert features["txn_count_1h"] == {
        "value": 0,
        "feature_timestamp": "2023-11-14T22:15:00.000Z",
        "age_seconds": 90.0,
        "version": 1,
        "status": "present",
    }
    assert features["txn_amount_sum_1h"] == {
        "value": 0.0,
        "feature_timestamp": "2023-11-14T22:15:00.000Z",
        "age_seconds": 90.0,
        "version": 1,
        "status": "present",
    }


def test_expired(live: LiveCatalog) -> None:
    old = T - 2 * 60 * MIN - 5 * MIN  # 2h 6m 30s before NOW; ttl is 2h
    source = MemorySource({("user", "u1"): _stored(count=(old, 7))})
    features = client_for(live, source).get("/v1/features/user/u1").json()["features"]
    assert features["txn_count_1h"] == {
        "value": None,
        "feature_timestamp": "2023-11-14T20:10:00.000Z",
        "age_seconds": 7590.0,
        "version": 1,
        "status": "expired",
    }


def test_ttl_boundary_uses_the_injected_clock(live: LiveCatalog) -> None:
    source = MemorySource({("user", "u1"): _stored(count=(T, 7))}, {STREAM: T})
    at_ttl = client_for(live, source, now_ms=T + 2 * 60 * MIN).get("/v1/features/user/u1").json()
    assert at_ttl["features"]["txn_count_1h"]["status"] == "stale"
    assert at_ttl["features"]["txn_count_1h"]["value"] == 7
    assert at_ttl["features"]["txn_count_1h"]["age_seconds"] == 7200.0
    past = client_for(live, source, now_ms=T + 2 * 60 * MIN + 1).get("/v1/features/user/u1").json()
    assert past["features"]["txn_count_1h"]["status"] == "expired"
    assert past["features"]["txn_count_1h"]["age_seconds"] == 7200.001
    assert past["served_at"] == "2023-11-15T00:15:00.001Z"


def test_progress_ahead_of_the_clock_is_capped_at_now(live: LiveCatalog) -> None:
    source = MemorySource({("user", "u1"): _stored(count=(T, 7))}, {STREAM: T + 10 * MIN})
    features = client_for(live, source).get("/v1/features/user/u1").json()["features"]
    assert features["txn_count_1h"]["value"] == 7
    assert features["txn_count_1h"]["status"] == "present"


def test_no_progress_recorded_keeps_the_stored_value(live: LiveCatalog) -> None:
    source = MemorySource({("user", "u1"): _stored(count=(T - 5 * MIN, 7))}, {})
    features = client_for(live, source).get("/v1/features/user/u1").json()["features"]
    assert features["txn_count_1h"] == {
        "value": 7,
        "feature_timestamp": "2023-11-14T22:10:00.000Z",
        "age_seconds": 390.0,
        "version": 1,
        "status": "present",
    }


def test_names_select_and_order(live: LiveCatalog) -> None:
    source = MemorySource({("user", "u1"): _stored(count=(T, 7), total=(T, 1.25))})
    body = client_for(live, source).get("/v1/features/user/u1", params={"names": "txn_count_1h"}).json()
    assert list(body["features"]) == ["txn_count_1h"]
    # a name is taken as given, as in a batch body: with spaces around it, it is an unknown name
    spaced = client_for(live, source).get("/v1/features/user/u1", params={"names": " txn_count_1h "})
    assert (spaced.status_code, spaced.json()["names"]) == (404, [" txn_count_1h "])
    body = client_for(live, source).get("/v1/features/user/u1?names=txn_count_1h,txn_amount_sum_1h").json()
    assert list(body["features"]) == ["txn_count_1h", "txn_amount_sum_1h"]
    assert body["features"]["txn_amount_sum_1h"]["value"] == 1.25


def test_unknown_features_are_all_named(live: LiveCatalog) -> None:
    source = MemorySource()
    response = client_for(live, source).get("/v1/features/user/u1?names=nope_b,txn_count_1h,nope_a")
    assert response.status_code == 404
    assert response.json() == {
        "error": "unknown_feature",
        "message": "unknown feature(s) for entity type 'user': nope_a, nope_b",
        "entity_type": "user",
        "names": ["nope_a", "nope_b"],
    }
    assert source.reads == []


def test_unknown_entity_type(live: LiveCatalog) -> None:
    source = MemorySource()
    response = client_for(live, source).get("/v1/features/merchant/m1")
    assert response.status_code == 404
    assert response.json() == {
        "error": "unknown_entity_type",
        "message": "no features are registered for entity type 'merchant'",
    }
    assert source.reads == []


@pytest.mark.parametrize("entity_id", ["a%20b", "a" * 300, "a" * 257, "%C3%A9", "a%22b", "a%3Bb"])
def test_bad_entity_id(live: LiveCatalog, entity_id: str) -> None:
    source = MemorySource()
    response = client_for(live, source).get(f"/v1/features/user/{entity_id}")
    assert response.status_code == 400
    assert response.json()["error"] == "bad_entity_id"
    assert source.reads == []


@pytest.mark.parametrize("entity_id", ["a" * 256, "user:42@eu-west.1", "A_b-9"])
def test_good_entity_ids(live: LiveCatalog, entity_id: str) -> None:
    source = MemorySource()
    response = client_for(live, source).get(f"/v1/features/user/{entity_id}")
    assert response.status_code == 200
    assert response.json()["entity_id"] == entity_id
    assert source.reads == [("user", entity_id)]


@pytest.mark.parametrize(
    "names", ["", ",", "txn_count_1h,", "txn_count_1h,,txn_amount_sum_1h", ",txn_count_1h", ",".join(["a"] * 1001)]
)
def test_bad_names(live: LiveCatalog, names: str) -> None:
    source = MemorySource()
    response = client_for(live, source).get("/v1/features/user/u1", params={"names": names})
    assert response.status_code == 400
    assert response.json() == {
        "error": "bad_names",
        "message": "`names` must list 1-1000 non-empty, comma-separated names",
    }
    assert source.reads == []


@pytest.mark.parametrize("which", ["read", "progress"])
def test_store_unavailable_is_503_quickly(live: LiveCatalog, which: str) -> None:
    error = StoreUnavailableError("online store read failed: OperationTimedOut: errors={}")
    source = MemorySource(fail=error) if which == "read" else MemorySource(fail_progress=error)
    client = client_for(live, source)
    started = time.perf_counter()
    response = client.get("/v1/features/user/u1")
    elapsed = time.perf_counter() - started
    assert response.status_code == 503
    assert response.json() == {
        "error": "store_unavailable",
        "message": "online store read failed: OperationTimedOut: errors={}",
    }
    assert elapsed < 1.0


def test_lineage_names_the_tables_with_their_keyspace_and_namespace(live: LiveCatalog) -> None:
    """Two deployments on one cluster hold tables of the same names: the lineage tells them apart (design §9)."""
    app = create_app(live, MemorySource(), clock_us=lambda: NOW * 1000, stores=StoreNames("fraud_ks", "fraud_ns"))
    client = TestClient(app, raise_server_exceptions=False)
    listed = client.get("/v1/feature-definitions").json()
    one = client.get("/v1/feature-definitions/user/txn_count_1h").json()
    assert len(listed) == 2
    for lineage in [item["lineage"] for item in listed] + [one["lineage"]]:
        assert lineage["online_table"] == "online_vectors"
        assert lineage["offline_table"] == "offline_feature_values"
        assert lineage["online_table_qualified"] == "fraud_ks.online_vectors"
        assert lineage["offline_table_qualified"] == "fraud_ns.offline_feature_values"


def test_feature_definitions_list(live: LiveCatalog, shipped_catalog: FeatureCatalog) -> None:
    response = client_for(live, MemorySource()).get("/v1/feature-definitions")
    assert response.status_code == 200
    body = response.json()
    assert [(d["entity"], d["name"], d["version"]) for d in body] == [
        ("user", "txn_amount_sum_1h", 1),
        ("user", "txn_count_1h", 1),
    ]
    for item in body:
        d = shipped_catalog.get("user", item["name"])
        assert item["transform_hash"] == d.transform_hash
        assert item["transform_ref"] == d.transform_ref
        lineage = item["lineage"]
        assert lineage["source_topic"] == "card_transactions"
        assert lineage["transform"] == d.transform_ref
        assert lineage["online_table"] == "online_vectors"
        assert lineage["offline_table"] == "offline_feature_values"
        assert "online_table_qualified" not in lineage  # an app not told its keyspace names the tables alone
        assert item["window"] == {
            "kind": "sliding",
            "size": "1h",
            "slide": "5m",
            "gap": None,
            "allowed_lateness": "0ms",
        }
        assert item["ttl"] == "2h"
    assert body[0]["transform_hash"] != body[1]["transform_hash"]


def test_feature_definition_by_name(live: LiveCatalog) -> None:
    client = client_for(live, MemorySource())
    response = client.get("/v1/feature-definitions/user/txn_count_1h")
    assert response.status_code == 200
    assert response.json()["aggregation"] == {"function": "count", "field": None}
    response = client.get("/v1/feature-definitions/user/nope")
    assert response.status_code == 404
    assert response.json()["names"] == ["nope"]
    response = client.get("/v1/feature-definitions/user/txn_count_1h?version=9")
    assert response.status_code == 404
    assert response.json()["names"] == ["txn_count_1h@v9"]
