"""The read path beyond test_app.py: batch reads (statuses, errors), a store that is down, bodies over the limit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import StoreUnavailableError
from registry.definition_store import DefinitionStore
from registry.feature_services import FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from serving.online.app import create_app
from sinks.cassandra.reader import Stored, StoredValue

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
