"""The read path beyond test_app.py: batch reads, feature services, the vector cache (true age,
single-flight, bound), the request budget, metrics, OpenAPI, the Python client, and latency that
does not grow with the number of registered definitions."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import (
    RequestError,
    StoreUnavailableError,
    UnknownFeatureError,
    UnknownFeatureServiceError,
)
from registry.core.timeline import Rule, judge, resolve
from registry.definition_store import DefinitionConflictError, DefinitionStore
from registry.feature_services import FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from registry.quality import QualityStore
from serving.online.app import create_app
from serving.online.cache import VectorCache
from serving.online.client import FeatureClient
from sinks.cassandra.reader import OnlineReader, Stored, StoredValue

MIN = 60_000
T = 1_700_000_100_000  # 2023-11-14T22:15:00Z, a 5-minute window end
NOW = T + 90_000
STREAM = "card_transactions/user/sliding(1h/5m)"


class Clock:
    def __init__(self, ms: int = NOW) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


class Source:
    """In-memory stored vectors; ``gate`` holds reads until set; ``fail`` makes reads raise."""

    def __init__(
        self,
        values: dict[str, dict[tuple[str, int], StoredValue]] | None = None,
        progress: dict[str, int] | None = None,
    ) -> None:
        self.values = values or {}
        self.progress_ms = {STREAM: T} if progress is None else progress
        self.reads: list[tuple[str, ...]] = []
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def read_many_async(self, entity_type: str, entity_ids: Sequence[str]) -> list[Stored]:
        self.reads.append(tuple(entity_ids))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return [dict(self.values.get(eid, {})) for eid in entity_ids]

    async def progress_async(self) -> dict[str, int]:
        return self.progress_ms


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "definitions.db"


@pytest.fixture
def live(db: Path, shipped_catalog: FeatureCatalog, make_definition: Callable[..., FeatureDefinition]) -> LiveCatalog:
    store = DefinitionStore(db)
    for d in shipped_catalog:
        store.register(d)
    # v2 of txn_count_1h (a 2h TTL -> 3h: a new identity), active: v1 rows stay readable by pinning.
    shipped = shipped_catalog.get("user", "txn_count_1h", 1)  # same source: one stream reads its topic one way
    store.register(make_definition(version=2, ttl="3h", source=shipped.source.model_dump(mode="json")), activate=True)
    return LiveCatalog(store)


@pytest.fixture
def services(db: Path) -> LiveFeatureServices:
    return LiveFeatureServices(FeatureServiceStore(db))


def app_for(live: LiveCatalog, source: Source, clock: Callable[[], int] = lambda: NOW, **kwargs: Any) -> TestClient:
    return TestClient(
        create_app(live, source, clock_us=lambda: clock() * 1000, **kwargs), raise_server_exceptions=False
    )


def rows(
    count: tuple[int, Any] | None = None, total: tuple[int, Any] | None = None, count_v2: tuple[int, Any] | None = None
) -> dict[tuple[str, int], StoredValue]:
    out = {}
    for key, cell in ((("txn_count_1h", 1), count), (("txn_amount_sum_1h", 1), total), (("txn_count_1h", 2), count_v2)):
        if cell is not None:
            out[key] = StoredValue(cell[1], cell[0])
    return out


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- statuses, single and batch ------------------------------------------------------------------


def test_batch_reports_every_status(live: LiveCatalog) -> None:
    lagging = T - 15 * MIN  # stale: 16.5 min old, freshness 10 min, progress stuck at the same window
    source = Source(
        {
            "fresh": rows(count=(T, 7), total=(T, 2.5), count_v2=(T, 70)),
            "old": rows(total=(T - 2 * 60 * MIN - 5 * MIN, 1.0)),  # total past its 2h TTL: expired
            "lag": rows(count_v2=(lagging, 3)),
        },
        progress={STREAM: T},
    )
    stale_source = Source({"lag": rows(count_v2=(lagging, 3))}, progress={STREAM: lagging})
    body = (
        app_for(live, source)
        .post(
            "/v1/features/user/batch",
            json={"entity_ids": ["fresh", "old", "nobody"], "names": ["txn_count_1h", "txn_amount_sum_1h"]},
        )
        .json()
    )
    assert body["names"] == ["txn_count_1h", "txn_amount_sum_1h"]
    assert body["versions"] == [2, 1]  # the active versions
    assert body["served_at"] == iso(NOW)
    fresh, old, nobody = body["results"]
    assert fresh == {
        "entity_id": "fresh",
        "values": [70, 2.5],
        "feature_timestamps": [iso(T), iso(T)],
        "age_seconds": [90.0, 90.0],
        "statuses": ["present", "present"],
    }
    assert old["statuses"] == ["missing", "expired"]
    assert old["values"] == [None, None]
    assert old["feature_timestamps"] == [None, iso(T - 125 * MIN)]
    assert nobody["statuses"] == ["missing", "missing"]
    lag = app_for(live, stale_source).post("/v1/features/user/batch", json={"entity_ids": ["lag"]}).json()
    assert lag["results"][0]["statuses"][lag["names"].index("txn_count_1h")] == "stale"
    assert lag["results"][0]["age_seconds"][lag["names"].index("txn_count_1h")] == 990.0


def test_batch_reads_each_entity_once_in_one_call(live: LiveCatalog) -> None:
    source = Source({"a": rows(count_v2=(T, 1)), "b": rows(count_v2=(T, 2))})
    body = (
        app_for(live, source)
        .post("/v1/features/user/batch", json={"entity_ids": ["a", "b", "a"], "names": ["txn_count_1h"]})
        .json()
    )
    assert [r["values"] for r in body["results"]] == [[1], [2], [1]]
    assert source.reads == [("a", "b")]  # one concurrent read of each distinct entity


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"entity_ids": []}, 400, "bad_entity_ids"),
        ({"entity_ids": [f"e{i}" for i in range(1001)]}, 400, "bad_entity_ids"),
        ({"entity_ids": ["ok", "not ok"]}, 400, "bad_entity_id"),
        ({"entity_ids": ["ok", 7]}, 400, "bad_entity_id"),
        ({"entity_ids": ["a"], "names": []}, 400, "bad_names"),
        ({"entity_ids": ["a"], "names": ["txn_count_1h", ""]}, 400, "bad_names"),
        ({"entity_ids": ["a"], "names": ["nope_b", "txn_count_1h", "nope_a"]}, 404, "unknown_feature"),
        ({"entity_ids": ["a"], "names": ["txn_count_1h"], "feature_service": "s"}, 400, "bad_request"),
        ({"entity_ids": ["a"], "feature_service": "nope@3"}, 404, "unknown_feature_service"),
        ({"entity_ids": ["a"], "extra": 1}, 400, "bad_request"),
        ([1, 2], 400, "bad_request"),
    ],
)
def test_batch_errors(live: LiveCatalog, services: LiveFeatureServices, body: Any, status: int, error: str) -> None:
    source = Source()
    response = app_for(live, source, services=services).post("/v1/features/user/batch", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert source.reads == []


def test_batch_error_bodies_name_what_is_wrong(live: LiveCatalog) -> None:
    client = app_for(live, Source())
    unknown = client.post("/v1/features/user/batch", json={"entity_ids": ["a"], "names": ["nope_b", "nope_a"]})
    assert unknown.json()["names"] == ["nope_a", "nope_b"]
    bad = client.post("/v1/features/user/batch", json={"entity_ids": ["ok", "a b", "c;d"]})
    assert bad.json()["entity_ids"] == ["a b", "c;d"]
    assert (
        client.post("/v1/features/merchant/batch", json={"entity_ids": ["m"]}).json()["error"] == "unknown_entity_type"
    )
    assert client.post("/v1/features/user/batch", content=b"{nope").json()["error"] == "bad_json"
    too_big = client.post("/v1/features/user/batch", content=b" " * (1024 * 1024 + 1))
    assert (too_big.status_code, too_big.json()["error"]) == (413, "body_too_large")
    # An unknown entity type is 404 before anything in the body is checked, its size too.
    unknown_type = client.post("/v1/features/merchant/batch", content=b" " * (1024 * 1024 + 1))
    assert (unknown_type.status_code, unknown_type.json()["error"]) == (404, "unknown_entity_type")


def test_batch_plans_are_keyed_by_the_name_list_not_a_joined_string(live: LiveCatalog) -> None:
    """A name holding the old separator (\\x1f) is one unknown name, not the cached plan of two names."""
    source = Source({"u1": rows(count=(T, 5), total=(T, 9.5))})
    client = app_for(live, source)
    both, joined = ["txn_count_1h", "txn_amount_sum_1h"], "txn_count_1h\x1ftxn_amount_sum_1h"
    assert client.post("/v1/features/user/batch", json={"entity_ids": ["u1"], "names": both}).status_code == 200
    r = client.post("/v1/features/user/batch", json={"entity_ids": ["u1"], "names": [joined]})
    assert (r.status_code, r.json()["error"], r.json()["names"]) == (404, "unknown_feature", [joined]), r.text
    part = {"entity_type": "user", "entity_id": "u1"}
    assert client.post("/v1/vectors", json={"entities": [{**part, "names": both}]}).status_code == 200
    r = client.post("/v1/vectors", json={"entities": [{**part, "names": [joined]}]})
    assert (r.status_code, r.json()["error"], r.json()["names"]) == (404, "unknown_feature", [joined]), r.text


@pytest.mark.parametrize(
    "body",
    [
        {"entity_ids": ["u1"], "names": "x"},
        {"entity_ids": ["u1"], "names": [1]},
        {"entity_ids": ["u1"], "feature_service": 3},
        {"entity_ids": ["u1"], "extra": 1},
        b"{nope",
        b"[]",
    ],
)
def test_batch_checks_the_entity_type_before_the_body(live: LiveCatalog, body: Any) -> None:
    """As a GET does (design 3.3 step 2): an unknown entity type is 404 whatever is wrong with the body."""
    source = Source()
    client = app_for(live, source)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = client.post("/v1/features/nobody/batch", content=content)
    assert (r.status_code, r.json()["error"]) == (404, "unknown_entity_type"), r.text
    assert client.get("/v1/features/nobody/u1?names=").json()["error"] == "unknown_entity_type"
    r = client.post("/v1/features/user/batch", content=content)  # a known type: the body's own 400
    assert r.status_code == 400, r.text
    assert source.reads == []


def test_store_down_is_503_for_single_and_batch(live: LiveCatalog) -> None:
    source = Source()
    source.fail = StoreUnavailableError("online store read failed: NoHostAvailable")
    client = app_for(live, source)
    for response in (
        client.get("/v1/features/user/u1"),
        client.post("/v1/features/user/batch", json={"entity_ids": ["a", "b"]}),
    ):
        assert response.status_code == 503
        assert response.json() == {"error": "store_unavailable", "message": "online store read failed: NoHostAvailable"}


# --- feature services ----------------------------------------------------------------------------


def test_feature_service_pins_versions(live: LiveCatalog, services: LiveFeatureServices) -> None:
    source = Source({"u1": rows(count=(T, 5), total=(T, 9.5), count_v2=(T, 50))})
    client = app_for(live, source, services=services)
    pinned = {
        "name": "fraud-model",
        "features": [
            {"entity": "user", "name": "txn_count_1h", "version": 1},
            {"entity": "user", "name": "txn_amount_sum_1h", "version": 1},
        ],
    }
    created = client.post("/v1/feature-services", json=pinned)
    assert created.status_code == 201, created.text
    assert created.json()["feature_service"]["ref"] == "fraud-model@1"
    assert client.post("/v1/feature-services", json=pinned).json()["result"] == "unchanged"
    newer = {**pinned, "features": [{"entity": "user", "name": "txn_count_1h", "version": 2}]}
    assert client.post("/v1/feature-services", json=newer).json()["feature_service"]["version"] == 2
    conflict = client.post("/v1/feature-services", json={**newer, "version": 1})
    assert conflict.status_code == 409
    assert conflict.json()["error"] == "version_conflict"

    v1 = client.get("/v1/features/user/u1", params={"feature_service": "fraud-model@1"}).json()["features"]
    assert {k: (f["value"], f["version"]) for k, f in v1.items()} == {
        "txn_count_1h": (5, 1),
        "txn_amount_sum_1h": (9.5, 1),
    }
    latest = client.get("/v1/features/user/u1", params={"feature_service": "fraud-model"}).json()["features"]
    assert latest == {
        "txn_count_1h": {
            "value": 50,
            "feature_timestamp": iso(T),
            "age_seconds": 90.0,
            "version": 2,
            "status": "present",
        }
    }
    batch = client.post("/v1/features/user/batch", json={"entity_ids": ["u1"], "feature_service": "fraud-model@v1"})
    assert batch.json()["versions"] == [1, 1]
    assert client.get("/v1/feature-services/fraud-model").json()["versions"] == [1, 2]
    assert [s["ref"] for s in client.get("/v1/feature-services").json()] == ["fraud-model@1", "fraud-model@2"]


def test_feature_service_errors(live: LiveCatalog, services: LiveFeatureServices) -> None:
    client = app_for(live, Source(), services=services)
    unknown_pin = client.post(
        "/v1/feature-services",
        json={"name": "m", "features": [{"entity": "user", "name": "txn_count_1h", "version": 9}]},
    )
    assert unknown_pin.status_code == 404
    assert unknown_pin.json()["names"] == ["txn_count_1h@v9"]
    twice = client.post(
        "/v1/feature-services",
        json={
            "name": "m",
            "features": [
                {"entity": "user", "name": "txn_count_1h", "version": 1},
                {"entity": "user", "name": "txn_count_1h", "version": 2},
            ],
        },
    )
    assert twice.status_code == 422
    wrong_type = client.post(
        "/v1/feature-services",
        json={
            "name": "m",
            "features": [{"entity": "user", "name": "txn_count_1h", "version": 1, "value_type": "double"}],
        },
    )
    assert wrong_type.status_code == 422
    missing = client.get("/v1/features/user/u1", params={"feature_service": "nope@2"})
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "unknown_feature_service",
        "message": "unknown feature service 'nope@2'",
        "feature_service": "nope@2",
    }
    assert client.get("/v1/feature-services/nope").status_code == 404
    client.post(
        "/v1/feature-services",
        json={"name": "m", "features": [{"entity": "user", "name": "txn_count_1h", "version": 1}]},
    )
    assert client.get("/v1/features/user/u1?feature_service=m&names=txn_count_1h").json()["error"] == "bad_request"


def _with_fraud_service(live: LiveCatalog, services: LiveFeatureServices, source: Source | None = None) -> TestClient:
    """A client of an API holding the feature service ``fraud`` (version 1)."""
    client = app_for(live, Source() if source is None else source, services=services)
    pin = {"entity": "user", "name": "txn_count_1h", "version": 1}
    assert client.post("/v1/feature-services", json={"name": "fraud", "features": [pin]}).status_code == 201
    return client


@pytest.mark.parametrize(
    "ref",
    [
        "",
        " ",
        "fraud@",
        "fraud@abc",
        "fraud@0",
        "fraud@v01",
        "fraud@-1",
        "FRAUD",
        "a b",
        "fraud\n",
        " fraud",
        "fraud@1 ",
    ],
)
def test_a_malformed_feature_service_reference_is_a_400_naming_the_parameter(
    live: LiveCatalog, services: LiveFeatureServices, ref: str
) -> None:
    source = Source()
    client = _with_fraud_service(live, services, source)
    part = {"entity_type": "user", "entity_id": "u1"}
    for r in (
        client.get("/v1/features/user/u1", params={"feature_service": ref}),
        client.post("/v1/features/user/batch", json={"entity_ids": ["u1"], "feature_service": ref}),
        client.post("/v1/vectors", json={"entities": [{**part, "feature_service": ref}]}),
    ):
        assert (r.status_code, r.json()["error"]) == (400, "bad_request"), r.text
        assert "`feature_service` must be" in r.json()["message"]
    assert source.reads == []
    # without feature services configured the reference is as malformed
    r = app_for(live, source).get("/v1/features/user/u1", params={"feature_service": ref})
    assert (r.status_code, r.json()["error"]) == (400, "bad_request"), r.text


def test_a_well_formed_reference_to_no_service_stays_a_404(live: LiveCatalog, services: LiveFeatureServices) -> None:
    client = _with_fraud_service(live, services)
    for ref in ("fraud@3", "fraud@v3", "nope", "nope@1"):
        r = client.get("/v1/features/user/u1", params={"feature_service": ref})
        assert (r.status_code, r.json()) == (
            404,
            {"error": "unknown_feature_service", "message": f"unknown feature service {ref!r}", "feature_service": ref},
        )
    assert client.get("/v1/features/user/u1", params={"feature_service": "fraud@v1"}).status_code == 200
    # the service route: a malformed name or version is 400 naming it, a well-formed unknown one 404
    for path, status, named in (
        ("/v1/feature-services/FRAUD", 400, "`name`"),
        ("/v1/feature-services/fraud@0", 400, "`name`"),
        ("/v1/feature-services/fraud?version=0", 400, "`version`"),
        ("/v1/feature-services/fraud@1?version=1", 400, "`version`"),
        ("/v1/feature-services/fraud?version=abc", 400, "version"),
        ("/v1/feature-services/fraud?version=9", 404, "fraud@9"),
        ("/v1/feature-services/nope", 404, "nope"),
    ):
        r = client.get(path)
        assert r.status_code == status, (path, r.text)
        assert r.json()["error"] == ("bad_request" if status == 400 else "unknown_feature_service")
        assert named in r.json()["message"], (path, r.text)
    assert client.get("/v1/feature-services/fraud@v1").json()["ref"] == "fraud@1"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/feature-services/fraud%0A",
        "/v1/feature-services/%20fraud",
        "/v1/feature-services/fraud%20",
        "/v1/feature-services/fraud@1%0A",
        "/v1/feature-services/fraud%09",
    ],
)
def test_the_service_route_refuses_a_name_with_whitespace(
    live: LiveCatalog, services: LiveFeatureServices, path: str
) -> None:
    client = _with_fraud_service(live, services)
    r = client.get(path)
    assert (r.status_code, r.json()["error"]) == (400, "bad_request"), (path, r.text)
    assert "`name` must be" in r.json()["message"]


@pytest.mark.parametrize(
    "version", ["1.0", "+1", "01", "1_0", " 1", "1 ", "1\n", "٣", "", "-1", "0", "2147483648", "1e0"]
)
def test_the_version_query_takes_the_path_forms_grammar(
    live: LiveCatalog, services: LiveFeatureServices, version: str
) -> None:
    """``?version=`` is ``[1-9][0-9]*`` up to 2^31-1 as ``name@N`` is: not FastAPI's lax int (``1.0``, ``+1``, ``01``)."""
    client = _with_fraud_service(live, services)
    r = client.get("/v1/feature-services/fraud", params={"version": version})
    assert (r.status_code, r.json()["error"]) == (400, "bad_request"), (version, r.text)
    assert r.json()["message"].startswith("`version` must be in 1-2147483647, not "), r.text
    assert client.get(f"/v1/feature-services/fraud@{quote(version)}").status_code == 400  # the path form agrees
    assert client.get("/v1/feature-services/fraud", params={"version": "1"}).json()["ref"] == "fraud@1"
    assert client.get("/v1/feature-services/fraud", params={"version": "2147483647"}).status_code == 404


# --- cache: true age, single-flight, bound ---------------------------------------------------------


def test_cached_vector_reports_its_true_age(live: LiveCatalog) -> None:
    clock = Clock()
    source = Source({"u1": rows(count_v2=(T, 7))})
    client = app_for(live, source, clock, cache_ttl_ms=1000)
    ages = []
    for step_ms in (0, 400, 500):  # 0, 400 and 900 ms after the read: all within the TTL
        clock.ms += step_ms
        ages.append(
            client.get("/v1/features/user/u1?names=txn_count_1h").json()["features"]["txn_count_1h"]["age_seconds"]
        )
    assert ages == [90.0, 90.4, 90.9]
    assert len(source.reads) == 1
    clock.ms += 100  # 1 s after the read: the entry has expired
    client.get("/v1/features/user/u1?names=txn_count_1h")
    assert len(source.reads) == 2
    metrics = client.get("/metrics").text
    assert 'fs_cache_requests_total{result="hit"} 2.0' in metrics
    assert 'fs_cache_requests_total{result="miss"} 2.0' in metrics


def test_cached_vector_keeps_the_progress_read_before_it(live: LiveCatalog) -> None:
    """A window closing after the read must not turn the cached row into a false empty window."""
    clock = Clock()
    source = Source({"u1": rows(count_v2=(T, 7))})
    client = app_for(live, source, clock, cache_ttl_ms=1000)
    client.get("/v1/features/user/u1")
    source.progress_ms = {STREAM: T + 5 * MIN}  # the next window closed (its rows are newer than the cache)
    clock.ms += 500
    feature = client.get("/v1/features/user/u1").json()["features"]["txn_count_1h"]
    assert (feature["value"], feature["feature_timestamp"]) == (7, iso(T))


def test_concurrent_misses_share_one_read(live: LiveCatalog) -> None:
    async def scenario() -> tuple[list[int], list[tuple[str, ...]]]:
        source = Source({"hot": rows(count_v2=(T, 7))})
        source.gate = asyncio.Event()
        app = create_app(live, source, clock_us=lambda: NOW * 1000, cache_ttl_ms=0)  # single-flight without caching
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            pending = [asyncio.ensure_future(client.get("/v1/features/user/hot")) for _ in range(50)]
            await asyncio.sleep(0.05)
            source.gate.set()
            responses = await asyncio.gather(*pending)
        return [r.status_code for r in responses], source.reads

    statuses, reads = asyncio.run(scenario())
    assert statuses == [200] * 50
    assert reads == [("hot",)]


def test_a_failed_shared_read_fails_every_waiter_and_is_not_cached() -> None:
    async def scenario() -> list[BaseException | list[Any]]:
        source = Source()
        source.gate = asyncio.Event()
        source.fail = StoreUnavailableError("down")
        cache = VectorCache(source, clock_ms=lambda: NOW, ttl_ms=1000)
        pending = [asyncio.ensure_future(cache.get_many("user", ["x"])) for _ in range(5)]
        await asyncio.sleep(0.01)
        source.gate.set()
        results = await asyncio.gather(*pending, return_exceptions=True)
        source.fail = None
        results.append(await cache.get_many("user", ["x"]))
        assert len(source.reads) == 2
        return results

    results = asyncio.run(scenario())
    assert all(isinstance(r, StoreUnavailableError) for r in results[:5])
    assert isinstance(results[5], list)


def test_cache_is_bounded_least_recently_used_out() -> None:
    async def scenario() -> tuple[int, int]:
        source = Source()
        cache = VectorCache(source, clock_ms=lambda: NOW, ttl_ms=60_000, max_entries=3)
        for eid in ["a", "b", "c", "a", "d"]:  # "a" is used again, so "b" is the least recently used
            await cache.get_many("user", [eid])
        before = len(source.reads)
        await cache.get_many("user", ["a", "c", "d"])
        hits_kept = len(source.reads) == before
        await cache.get_many("user", ["b"])
        return len(cache), int(hits_kept) + (len(source.reads) - before)

    size, outcome = asyncio.run(scenario())
    assert size == 3
    assert outcome == 2  # a, c, d were all cached; b had been evicted and was read again


# --- the request budget ----------------------------------------------------------------------------


class _SilentFuture:
    def add_callbacks(self, *_: Any, **__: Any) -> None:  # never answers, as a dead node would not
        pass


class _SilentSession:
    def prepare(self, query: str) -> str:
        return query

    def execute_async(self, *_: Any, **__: Any) -> _SilentFuture:
        return _SilentFuture()


def test_reader_answers_within_its_budget_when_the_store_is_silent() -> None:
    reader = OnlineReader(_SilentSession(), "ks", timeout_s=0.05)  # type: ignore[arg-type]

    async def read() -> float:
        started = time.perf_counter()
        with pytest.raises(StoreUnavailableError, match="no answer within 50 ms"):
            await reader.read_many_async("user", ["a", "b"])
        return time.perf_counter() - started

    assert asyncio.run(read()) < 0.3


# --- metrics and OpenAPI ---------------------------------------------------------------------------


def test_metrics(live: LiveCatalog) -> None:
    registry = CollectorRegistry()
    lagging = T - 15 * MIN
    source = Source({"u1": rows(count_v2=(lagging, 7), total=(lagging, 1.0))}, progress={STREAM: lagging})
    client = app_for(live, source, registry=registry, cache_ttl_ms=1000)
    for _ in range(3):
        assert client.get("/v1/features/user/u1").status_code == 200
    client.get("/v1/features/user/u1?names=nope")
    client.post("/v1/features/user/batch", json={"entity_ids": ["u1", "u2"], "names": ["txn_count_1h"]})
    text = client.get("/metrics").text
    assert 'fs_requests_total{route="/v1/features/{entity_type}/{entity_id}",status="200"} 3.0' in text
    assert 'fs_requests_total{route="/v1/features/{entity_type}/{entity_id}",status="404"} 1.0' in text
    assert 'fs_request_seconds_count{route="/v1/features/{entity_type}/batch"} 1.0' in text
    assert 'fs_errors_total{class="unknown_feature"} 1.0' in text
    assert 'fs_values_served_total{entity_type="user",feature="txn_count_1h",status="stale",version="2"} 4.0' in text
    assert 'fs_values_served_total{entity_type="user",feature="txn_count_1h",status="missing",version="2"} 1.0' in text
    assert (
        'fs_values_served_total{entity_type="user",feature="txn_amount_sum_1h",status="stale",version="1"} 3.0' in text
    )
    assert 'fs_cache_requests_total{result="hit"} 3.0' in text
    assert registry.get_sample_value("fs_cache_entries") == 2


def test_openapi_describes_the_routes(live: LiveCatalog, services: LiveFeatureServices) -> None:
    doc = app_for(live, Source(), services=services).get("/openapi.json").json()
    paths = doc["paths"]
    single = paths["/v1/features/{entity_type}/{entity_id}"]["get"]
    assert {p["name"] for p in single["parameters"]} == {"entity_type", "entity_id", "names", "feature_service"}
    assert set(single["responses"]) >= {"200", "400", "404", "503"}
    assert "/v1/features/{entity_type}/batch" in paths
    assert "post" in paths["/v1/feature-services"]
    assert "/v1/feature-definitions" in paths and "/metrics" in paths
    schemas = doc["components"]["schemas"]
    assert {"FeatureVectorDoc", "BatchDoc", "BatchRequestDoc", "ProblemDoc"} <= set(schemas)


def _typed(parameter: dict[str, Any]) -> bool:
    """A parameter FastAPI parses (an integer, a boolean): a malformed value is refused."""
    schema = parameter["schema"]
    return bool({s.get("type") for s in [schema, *schema.get("anyOf", [])]} - {"string", "null", None})


def test_openapi_documents_the_error_body_not_fastapis_422(
    live: LiveCatalog, services: LiveFeatureServices, db: Path
) -> None:
    """Every refusal documented is the project's error body; FastAPI's 422 HTTPValidationError, which the app
    never answers (a malformed parameter is 400 `bad_request`), is gone; a route's own 422 stays."""
    client = app_for(live, Source(), services=services, quality=QualityStore(db))
    doc = client.get("/openapi.json").json()
    assert "ValidationError" not in json.dumps(doc)
    problem = {"$ref": "#/components/schemas/ProblemDoc"}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for status, response in responses.items():
                if int(status) >= 400:
                    assert response["content"]["application/json"]["schema"] == problem, (method, path, status)
            if any(_typed(p) for p in operation.get("parameters", [])) or "requestBody" in operation:
                assert "400" in responses, (method, path)
    reads = [doc["paths"]["/v1/features/{entity_type}/{entity_id}"]["get"], doc["paths"]["/v1/vectors"]["post"]]
    assert all("422" not in op["responses"] for op in reads)
    assert set(doc["paths"]["/v1/feature-services/{name}"]["get"]["responses"]) == {"200", "400", "404"}
    register = doc["paths"]["/v1/feature-services"]["post"]["responses"]
    assert set(register) == {"200", "201", "400", "403", "404", "408", "409", "413", "422", "503"}
    assert "invalid_feature_service" in register["422"]["description"]
    assert set(doc["paths"]["/v1/feature-definitions"]["post"]["responses"]) == {
        "200",
        "201",
        "400",
        "403",  # auth on: another team's feature
        "408",  # the body not received whole within FS_BODY_TIMEOUT_MS
        "409",
        "413",
        "422",
        "503",  # the registry's file gone
    }
    activate = doc["paths"]["/v1/feature-definitions/{entity}/{name}/activate"]["post"]["responses"]
    assert {"403", "503"} <= set(activate)
    # what the document says is what the routes answer
    bad = client.get("/v1/feature-services/fraud?version=abc")
    assert (bad.status_code, bad.json()["error"]) == (400, "bad_request")
    invalid = client.post("/v1/feature-services", json={"name": "X", "features": []})
    assert (invalid.status_code, invalid.json()["error"]) == (422, "invalid_feature_service")
    pin = {"entity": "user", "name": "txn_count_1h", "version": 1}
    unknown = client.post("/v1/feature-services", json={"name": "m", "features": [{**pin, "version": 9}]})
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_feature")
    assert client.post("/v1/feature-services", json={"name": "m", "features": [pin]}).status_code == 201
    assert client.post("/v1/feature-services", json={"name": "m", "features": [pin]}).status_code == 200
    conflict = client.post(
        "/v1/feature-services", json={"name": "m", "version": 1, "features": [{**pin, "version": 2}]}
    )
    assert (conflict.status_code, conflict.json()["error"]) == (409, "version_conflict")
    assert client.post("/v1/feature-services", content=b"{").json()["error"] == "bad_json"


# --- the Python client -----------------------------------------------------------------------------


def test_client_against_the_app(
    live: LiveCatalog, services: LiveFeatureServices, make_definition_dict: Callable[..., dict[str, Any]]
) -> None:
    source = Source({"u1": rows(count_v2=(T, 7), total=(T, 2.5))})
    fs = FeatureClient(client=app_for(live, source, services=services))
    vector = fs.get_features("user", "u1", ["txn_count_1h"])
    assert vector["features"]["txn_count_1h"]["value"] == 7
    batch = fs.get_features_batch("user", ["u1", "u2"], ["txn_amount_sum_1h", "txn_count_1h"])
    assert batch[0] == {
        "entity_id": "u1",
        "features": {
            "txn_amount_sum_1h": {
                "value": 2.5,
                "feature_timestamp": iso(T),
                "age_seconds": 90.0,
                "version": 1,
                "status": "present",
            },
            "txn_count_1h": {
                "value": 7,
                "feature_timestamp": iso(T),
                "age_seconds": 90.0,
                "version": 2,
                "status": "present",
            },
        },
    }
    assert batch[1]["features"]["txn_count_1h"]["status"] == "missing"
    assert {d["name"] for d in fs.list_definitions(entity="user")} == {"txn_count_1h", "txn_amount_sum_1h"}
    created = fs.register_definition(
        make_definition_dict(name="txn_count_10m", window={"kind": "tumbling", "size": "10m"})
    )
    assert created["result"] == "created"
    with pytest.raises(UnknownFeatureError) as unknown:
        fs.get_features("user", "u1", ["nope"])
    assert unknown.value.names == ["nope"]
    with pytest.raises(UnknownFeatureServiceError):
        fs.get_features("user", "u1", feature_service="nope")
    with pytest.raises(RequestError) as bad:
        fs.get_features("user", "a b")
    assert bad.value.code == "bad_entity_id"
    with pytest.raises(DefinitionConflictError):
        fs.register_definition(
            make_definition_dict(name="txn_count_10m", window={"kind": "tumbling", "size": "20m"}, version=1)
        )
    source.fail = StoreUnavailableError("down")
    with pytest.raises(StoreUnavailableError):
        fs.get_features_batch("user", ["u9"])


def test_client_reports_an_unreachable_api_as_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    fs = FeatureClient(client=httpx.Client(transport=httpx.MockTransport(refuse), base_url="http://api"))
    with pytest.raises(StoreUnavailableError, match="unreachable"):
        fs.get_features("user", "u1")


# --- latency independent of the number of definitions --------------------------------------------


def _bulk_store(path: Path, definitions: list[FeatureDefinition]) -> DefinitionStore:
    """A definition store holding ``definitions``, written in one transaction (register() is one per call)."""
    store = DefinitionStore(path)
    now = datetime.now(UTC).isoformat()
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO feature_versions VALUES (?, ?, ?, ?, ?, ?)",
            [(d.entity, d.name, d.version, d.model_dump_json(), d.identity_hash, now) for d in definitions],
        )
        conn.executemany(
            "INSERT INTO active_versions VALUES (?, ?, ?, ?)", [(d.entity, d.name, d.version, now) for d in definitions]
        )
        conn.execute(
            "INSERT INTO changes (at, entity, name, version, action) VALUES (?, 'bulk', 'bulk', 0, 'created')", (now,)
        )
    conn.close()
    return store


def test_request_cost_does_not_grow_with_10000_definitions(
    tmp_path: Path, make_definition: Callable[..., FeatureDefinition]
) -> None:
    template = make_definition()
    few = [template.model_copy(update={"name": f"f{i}"}) for i in range(10)]
    # 10,000 definitions over 1,000 entity types; the requested entity type has the same 10 features.
    many = few + [template.model_copy(update={"name": f"f{i % 10}", "entity": f"e{i // 10:04d}"}) for i in range(9_990)]
    catalogs = {
        "few": LiveCatalog(_bulk_store(tmp_path / "few.db", few)),
        "many": LiveCatalog(_bulk_store(tmp_path / "many.db", many)),
    }
    assert len(catalogs["many"].current()) == 10_000
    stored = {(f"f{i}", 1): StoredValue(i, T) for i in range(10)}
    names = ",".join(f"f{i}" for i in range(10))

    def per_request(path: str, n: int = 200, rounds: int = 7) -> dict[str, float]:
        """Best per-request time of each catalog, in-process over ASGI, rounds alternating between the two
        (so a burst of load on this shared machine slows both, not one)."""
        apps = {
            key: create_app(live, Source({"u1": stored}), clock_us=lambda: NOW * 1000) for key, live in catalogs.items()
        }

        async def measure() -> dict[str, float]:
            best = dict.fromkeys(apps, float("inf"))
            clients = {
                k: httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://t") for k, a in apps.items()
            }
            for client in clients.values():
                assert (await client.get(path)).json()["features"]["f3"]["value"] == 3
            for _ in range(rounds):
                for key, client in clients.items():
                    started = time.perf_counter()
                    for _ in range(n):
                        await client.get(path)
                    best[key] = min(best[key], (time.perf_counter() - started) / n)
            for client in clients.values():
                await client.aclose()
            return best

        return asyncio.run(measure())

    for path in (f"/v1/features/user/u1?names={names}", "/v1/features/user/u1"):
        best = per_request(path)
        assert best["many"] / best["few"] < 2.0, (path, best)
    # Catalog lookups alone: an index, not a scan.
    calls = {
        "for_entity": lambda c: c.for_entity("user"),
        "resolve": lambda c: c.resolve("user", [f"f{i}" for i in range(10)]),
    }
    for name, call in calls.items():
        timings = dict.fromkeys(catalogs, float("inf"))
        for _ in range(7):
            for key, live in catalogs.items():
                catalog = live.current()
                started = time.perf_counter()
                for _ in range(2000):
                    call(catalog)
                timings[key] = min(timings[key], time.perf_counter() - started)
        assert timings["many"] / timings["few"] < 2.0, (name, timings)


# --- the time rule's fast path ---------------------------------------------------------------------


@given(
    ttl=st.integers(1, 10**8),
    slo=st.integers(1, 10**8),
    step=st.sampled_from([None, 60_000, 300_000]),
    empty=st.sampled_from([0, 0.0, None]),
    closed=st.integers(0, 2 * 10**9),
    now=st.integers(0, 2 * 10**9),
    stored=st.one_of(st.none(), st.integers(0, 2 * 10**9)),
)
def test_present_from_is_exactly_when_a_row_is_served_as_stored(
    ttl: int, slo: int, step: int | None, empty: float | None, closed: int, now: int, stored: int | None
) -> None:
    cut = Rule(ttl, slo, step, empty).cut(closed, now)
    value, ts, status = judge(cut, stored, "v")
    if stored is not None and stored >= cut[4]:
        assert (value, ts, status) == ("v", stored, "present")
    else:
        assert not (value == "v" and ts == stored and status == "present")
    # The reference: the rule as the design states it (docs/design.md, section 5.2).
    if stored is None:
        assert status == "missing"
    elif now - stored > ttl:
        assert (value, status) == (None, "expired")
    else:
        latest = closed // step * step if step else None
        expect_ts = latest if latest is not None and stored < latest else stored
        assert ts == expect_ts
        assert status == ("stale" if now - expect_ts > slo else "present")


def test_resolve_still_takes_a_definition(make_definition: Callable[..., FeatureDefinition]) -> None:
    r = resolve(make_definition(), T * 1000, 4, closed_through_us=(T + 5 * MIN) * 1000, now_us=(T + 6 * MIN) * 1000)
    assert (r.value, r.feature_ts_us, r.status) == (0, (T + 5 * MIN) * 1000, "present")


@pytest.mark.parametrize("version", [True, "1", 1.0, 2**31])
def test_a_feature_service_version_or_pin_that_is_not_a_32_bit_integer_is_refused(
    live: LiveCatalog, services: LiveFeatureServices, version: Any
) -> None:
    """As for a definition: versions are JSON integers 1 to 2^31-1, never converted from a bool, text or float."""
    client = app_for(live, Source(), services=services)
    pin = {"entity": "user", "name": "txn_count_1h", "version": 1}
    for body in (
        {"name": "m", "version": version, "features": [pin]},
        {"name": "m", "features": [{**pin, "version": version}]},
    ):
        answer = client.post("/v1/feature-services", json=body)
        assert (answer.status_code, answer.json()["error"]) == (422, "invalid_feature_service"), answer.text
        # the pin's own problem alone: not also "features: ... at least 1 item" for the list it emptied
        assert "at least 1 item" not in answer.json()["message"], answer.text
    assert client.post("/v1/feature-services", json={"name": "m", "features": [pin]}).status_code == 201


def test_a_body_declared_larger_than_the_limit_is_refused_before_it_is_read(live: LiveCatalog) -> None:
    import asyncio
    from collections.abc import MutableMapping

    app = create_app(live, Source(), clock_us=lambda: NOW * 1000)
    received: list[int] = []
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:  # a slow sender: a byte at a time, never done
        received.append(1)
        return {"type": "http.request", "body": b" ", "more_body": True}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async def call(path: str) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"99999999999")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 8000),
        }
        await asyncio.wait_for(app(scope, receive, send), timeout=10)

    for path in ("/v1/features/user/batch", "/v1/vectors"):
        received.clear()
        sent.clear()
        asyncio.run(call(path))
        assert sent[0]["status"] == 413, path
        assert b"body_too_large" in b"".join(m.get("body", b"") for m in sent[1:])
        assert received == [], path  # refused on the header: not one chunk was waited for
