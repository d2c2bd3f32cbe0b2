"""Audit of the online routes' fixed path segments (README "Online serving", design §3.3).

`batch` is a valid entity id by the documented id pattern, so `GET /v1/features/{type}/batch` reads the entity
`batch` (405 would leave that entity no GET); only `POST` on that path is the batch route. Every other fixed segment
either names its own route (`/v1/vectors`) or is an id or a name like any other.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from registry.feature_services import FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from serving.online.app import create_app
from tests.unit.test_request_features import NOW, Source, store_with, vector


@pytest.fixture
def client(tmp_path: Path, shipped_catalog: FeatureCatalog) -> TestClient:
    store = store_with(tmp_path / "d.db", shipped_catalog)
    app = create_app(
        LiveCatalog(store, refresh_s=0.0),
        Source({"batch": vector(4, 10.0), "vectors": vector(2, 1.0), "u1": vector(1, 2.0)}),
        clock_us=lambda: NOW * 1000,
        services=LiveFeatureServices(FeatureServiceStore(tmp_path / "d.db"), refresh_s=0.0),
    )
    client = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
    pin = [{"entity": "user", "name": "txn_count_1h", "version": 1}]
    assert client.post("/v1/feature-services", json={"name": "fraud", "features": pin}).status_code == 201
    return client


@pytest.mark.parametrize("entity_id", ["batch", "vectors"])
@pytest.mark.parametrize("query", ["names=txn_count_1h", "feature_service=fraud"])
def test_a_get_on_a_fixed_segment_reads_the_entity_of_that_id(client: TestClient, entity_id: str, query: str) -> None:
    answer = client.get(f"/v1/features/user/{entity_id}?{query}")
    assert answer.status_code == 200
    body = answer.json()
    assert body["entity_id"] == entity_id
    assert body["features"]["txn_count_1h"]["value"] == (4 if entity_id == "batch" else 2)
    head = client.head(f"/v1/features/user/{entity_id}?{query}")
    assert (head.status_code, head.content) == (200, b"")


def test_the_batch_route_is_post_and_reads_the_entity_batch_like_any_id(client: TestClient) -> None:
    batch = client.post("/v1/features/user/batch", json={"entity_ids": ["batch", "u1"], "names": ["txn_count_1h"]})
    assert batch.status_code == 200
    assert [(r["entity_id"], r["values"]) for r in batch.json()["results"]] == [("batch", [4]), ("u1", [1])]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/features/user/batch", "GET, HEAD, POST"),
        ("DELETE", "/v1/features/user/batch", "GET, HEAD, POST"),
        ("POST", "/v1/features/user/u1", "GET, HEAD"),
        ("POST", "/v1/features/user", "GET, HEAD"),
        ("GET", "/v1/vectors", "POST"),
        ("DELETE", "/v1/feature-services/fraud", "GET, HEAD"),
        ("POST", "/v1/feature-services/fraud", "GET, HEAD"),
        ("PUT", "/v1/feature-services", "GET, HEAD, POST"),
    ],
)
def test_a_wrong_method_on_a_route_is_405_listing_what_it_takes(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    answer = client.request(method, path)
    assert (answer.status_code, answer.headers.get("allow")) == (405, allow)
    assert answer.json()["error"] == "method_not_allowed"


def test_a_feature_service_named_like_a_segment_is_a_name_like_any_other(client: TestClient) -> None:
    answer = client.get("/v1/feature-services/batch")
    assert answer.status_code == 404
    assert answer.json()["error"] == "unknown_feature_service"
