"""The online API as README and docs/design.md describe it, where the code once answered otherwise: errors by
class in the metrics (404, 405, the in-flight limit's 503 and the auth middleware's 401 included), ``Allow`` on a 405
(``HEAD`` wherever ``GET``: HEAD answers on every GET route), a repeated query
parameter refused instead of one of its values picked, GET names taken as given (no stripping), and the
Python client's path for an id of dots. (The wrong key form in a ``/v1/vectors`` part: test_composite_keys.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.core.catalog import FeatureCatalog
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from serving.online.app import create_app
from serving.online.client import FeatureClient
from tests.unit.test_request_features import Source, client_for, store_with, vector


@pytest.fixture
def store(tmp_path: Path, shipped_catalog: FeatureCatalog) -> DefinitionStore:
    """The shipped features and the request-time feature amount_vs_mean_1h (request field `amount`)."""
    return store_with(tmp_path / "d.db", shipped_catalog)


class _Counted(Source):
    """Source counting its reads: a refused request reads nothing."""

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.reads = 0

    async def read_many_async(self, entity_type: str, entity_ids: Any) -> list[Any]:
        self.reads += 1
        return await super().read_many_async(entity_type, entity_ids)


class _Held(Source):
    """Source whose reads wait until released: requests stay in flight."""

    def __init__(self) -> None:
        super().__init__({})
        self.release = asyncio.Event()
        self.reads = 0

    async def read_many_async(self, entity_type: str, entity_ids: Any) -> list[Any]:
        self.reads += 1
        await self.release.wait()
        return [{} for _ in entity_ids]


def _errors(metrics_text: str) -> dict[str, float]:
    """fs_errors_total by class, from a /metrics answer."""
    out = {}
    for line in metrics_text.splitlines():
        if line.startswith("fs_errors_total{"):
            series, value = line.rsplit(" ", 1)
            out[series.split('"')[1]] = float(value)
    return out


# --- fs_errors_total{class} counts every refusal by its code ---------------------------------------------


def test_unknown_routes_and_methods_are_counted_by_their_codes(store: DefinitionStore) -> None:
    client = client_for(store, Source({}))
    assert client.get("/v1/nothing-here").status_code == 404
    assert client.get("/v1/nothing-here/either").status_code == 404
    assert client.delete("/v1/features/user/u1").status_code == 405
    assert _errors(client.get("/metrics").text) == {"not_found": 2.0, "method_not_allowed": 1.0}


def test_requests_shed_by_the_in_flight_limit_are_counted_as_overloaded(store: DefinitionStore) -> None:
    async def scenario() -> dict[str, float]:
        source = _Held()
        app = create_app(LiveCatalog(store), source, max_in_flight=2, cache_ttl_ms=0)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            admitted = [asyncio.create_task(client.get(f"/v1/features/user/u{i}")) for i in range(2)]
            while source.reads < 2:
                await asyncio.sleep(0.001)
            shed = await asyncio.gather(*(client.get(f"/v1/features/user/x{i}") for i in range(3)))
            assert [(r.status_code, r.json()["error"]) for r in shed] == [(503, "overloaded")] * 3
            source.release.set()
            assert [r.status_code for r in await asyncio.gather(*admitted)] == [200, 200]
            return _errors((await client.get("/metrics")).text)

    assert asyncio.run(scenario()) == {"overloaded": 3.0}


# --- a 405 carries Allow ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health", "/metrics", "/v1/feature-definitions", "/v1/features/user/u1"])
def test_head_answers_as_get_on_every_get_route_without_a_body(store: DefinitionStore, path: str) -> None:
    """RFC 9110 §9.3.2: HEAD wherever GET, same status and headers, no body (every route: test_http_head)."""
    client = client_for(store, Source({"u1": vector(4, 10.0)}))
    get, head = client.get(path), client.head(path)
    assert (head.status_code, head.content) == (get.status_code, b"") == (200, b"")
    assert head.headers["content-type"] == get.headers["content-type"]
    assert int(head.headers["content-length"]) > 0


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/v1/features/user/u1", "GET, HEAD"),
        ("POST", "/v1/features/user/u1", "GET, HEAD"),
        ("GET", "/v1/vectors", "POST"),
        # two routes share the path: every method either takes, not only the first route's
        ("PUT", "/v1/features/user/batch", "GET, HEAD, POST"),
        ("DELETE", "/v1/feature-definitions", "GET, HEAD, POST"),  # HEAD wherever GET (registry.http_head)
        ("DELETE", "/health", "GET, HEAD"),
        ("HEAD", "/v1/vectors", "POST"),  # a path without GET: HEAD is 405 too
    ],
)
def test_a_405_lists_the_allowed_methods_in_the_service_error_shape(
    store: DefinitionStore, method: str, path: str, allow: str
) -> None:
    response = client_for(store, Source({})).request(method, path)
    assert response.status_code == 405
    assert response.headers.get("allow") == allow
    assert response.headers["content-type"] == "application/json"
    if method != "HEAD":  # a HEAD answer has no body
        body = response.json()
        assert set(body) == {"error", "message"}
        assert body["error"] == "method_not_allowed"


# --- a repeated query parameter is a 400, not its last value --------------------------------------------


@pytest.mark.parametrize(
    ("query", "code", "parameter"),
    [
        ("names=txn_count_1h&names=txn_amount_sum_1h", "bad_names", "`names`"),
        ("names=txn_count_1h&names=txn_count_1h", "bad_names", "`names`"),
        ("names=&names=txn_count_1h", "bad_names", "`names`"),
        ("feature_service=fraud@1&feature_service=fraud@2", "bad_request", "`feature_service`"),
        ("names=amount_vs_mean_1h&amount=x&amount=1", "bad_request_data", "'amount'"),
        ("names=amount_vs_mean_1h&amount=2&amount=1", "bad_request_data", "'amount'"),
    ],
)
def test_a_repeated_query_parameter_is_refused_naming_it(
    store: DefinitionStore, query: str, code: str, parameter: str
) -> None:
    source = _Counted({"u1": vector(4, 10.0)})
    client = client_for(store, source)
    for _ in range(2):  # the second time too: a refused query string is not kept as a plan
        response = client.get(f"/v1/features/user/u1?{query}")
        assert (response.status_code, response.json()["error"]) == (400, code), response.text
        assert parameter in response.json()["message"]
        assert "more than once" in response.json()["message"]
    assert source.reads == 0


def test_a_parameter_given_once_is_still_served(store: DefinitionStore) -> None:
    client = client_for(store, Source({"u1": vector(4, 10.0)}))
    response = client.get("/v1/features/user/u1?names=txn_count_1h,amount_vs_mean_1h&amount=5")
    assert response.status_code == 200, response.text
    assert response.json()["features"]["amount_vs_mean_1h"]["value"] == 2.0
    # a parameter no requested feature takes is ignored, as before, repeated or not
    assert client.get("/v1/features/user/u1?names=txn_count_1h&amount=1&amount=2").status_code == 200


# --- names are taken as given on every route ----------------------------------------------------------------


def test_get_does_not_strip_names_as_the_body_routes_do_not(store: DefinitionStore) -> None:
    client = client_for(store, Source({"u1": vector(4, 10.0)}))
    get = client.get("/v1/features/user/u1", params={"names": "txn_count_1h, txn_amount_sum_1h"})
    batch = client.post(
        "/v1/features/user/batch", json={"entity_ids": ["u1"], "names": ["txn_count_1h", " txn_amount_sum_1h"]}
    )
    part = {"entity_type": "user", "entity_id": "u1", "names": ["txn_count_1h", " txn_amount_sum_1h"]}
    vectors = client.post("/v1/vectors", json={"entities": [part]})
    for response in (get, batch, vectors):
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "unknown_feature"
        assert response.json()["names"] == [" txn_amount_sum_1h"]
    trailing = client.get("/v1/features/user/u1", params={"names": "txn_count_1h "})
    assert (trailing.status_code, trailing.json()["names"]) == (404, ["txn_count_1h "])


def test_duplicate_names_per_route_as_served_today(store: DefinitionStore) -> None:
    """Pinned, not endorsed: a GET or a vectors part answers a features object (one key per name, so a
    duplicate is one entry); a batch answers columns (one per name given, duplicates included)."""
    client = client_for(store, Source({"u1": vector(4, 10.0)}))
    get = client.get("/v1/features/user/u1?names=txn_count_1h,txn_count_1h").json()
    assert list(get["features"]) == ["txn_count_1h"]
    part = {"entity_type": "user", "entity_id": "u1", "names": ["txn_count_1h", "txn_count_1h"]}
    assert list(client.post("/v1/vectors", json={"entities": [part]}).json()["vectors"][0]["features"]) == [
        "txn_count_1h"
    ]
    batch = client.post(
        "/v1/features/user/batch", json={"entity_ids": ["u1"], "names": ["txn_count_1h", "txn_count_1h"]}
    ).json()
    assert batch["names"] == ["txn_count_1h", "txn_count_1h"]
    assert batch["results"][0]["values"] == [4, 4]


# --- the client sends an id of dots as itself ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("entity_id", "raw_path"),
    [
        (".", b"/v1/features/user/%2E"),
        ("..", b"/v1/features/user/%2E%2E"),
        ("...", b"/v1/features/user/%2E%2E%2E"),
        ("a.b", b"/v1/features/user/a.b"),
        ("u:1@x-y_z", b"/v1/features/user/u:1@x-y_z"),
        ("a?b", b"/v1/features/user/a%3Fb"),  # not a query string
        ("a/b", b"/v1/features/user/a%2Fb"),  # not two segments
    ],
)
def test_the_client_sends_the_id_as_one_path_segment(entity_id: str, raw_path: bytes) -> None:
    sent: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.url)
        return httpx.Response(200, json={"entity_id": entity_id, "features": {}})

    http = httpx.Client(transport=httpx.MockTransport(answer), base_url="http://api")
    FeatureClient(client=http).get_features("user", entity_id, ["txn_count_1h"])
    (url,) = sent
    assert url.raw_path == raw_path + b"?names=txn_count_1h"


@pytest.mark.parametrize("entity_id", [".", ".."])
def test_the_client_reads_an_id_of_dots_through_the_api(store: DefinitionStore, entity_id: str) -> None:
    client = client_for(store, Source({entity_id: vector(4, 10.0)}))
    vector_ = FeatureClient(client=client).get_features("user", entity_id, ["txn_count_1h"])
    assert vector_["entity_id"] == entity_id
    assert vector_["features"]["txn_count_1h"]["value"] == 4


def test_requests_refused_by_the_auth_middleware_are_counted_as_unauthenticated(tmp_path: Path) -> None:
    from registry.access import Access
    from registry.access_store import AccessStore
    from tests.unit.test_access import _client

    access_store = AccessStore(tmp_path / "definitions.db")
    token = access_store.issue("scorer", "ml-team")
    definitions = DefinitionStore(tmp_path / "definitions.db")
    client = _client(LiveCatalog(definitions, refresh_s=0), Access(access_store, enabled=True, refresh_s=0), tmp_path)
    assert client.get("/v1/features/user/u1").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer fs_000000000000_wrong"}).status_code == 401
    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert metrics.status_code == 200
    assert _errors(metrics.text) == {"unauthenticated": 2.0}
