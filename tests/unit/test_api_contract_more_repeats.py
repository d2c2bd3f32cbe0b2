"""README.md and docs/design.md §3.3/§5.8 on values given twice, where the code once picked one silently: a key
field repeated inside a batch's or a ``/v1/vectors`` part's JSON key object is 400 ``bad_entity_key`` (JSON
parsers keep the last), and ``?version=`` given twice on ``GET /v1/feature-services/{name}`` is 400
``bad_request`` (its OpenAPI 400 says "or given twice"), as a repeated ``names`` or ``feature_service`` is."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from registry.feature_services import FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from serving.online.app import create_app
from tests.unit.test_composite_keys import PairSource, pair_client  # noqa: F401  (the fixture)
from tests.unit.test_request_features import NOW, Source, store_with, vector

_JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/features/user_merchant/batch",
            b'{"entity_keys": [{"user_id": "u1", "user_id": "u2", "merchant_id": "m7"}]}',
        ),
        (
            "/v1/features/user_merchant/batch",
            b'{"entity_keys": [{"user_id": "u1", "merchant_id": "m7"}, '
            b'{"merchant_id": "m7", "user_id": "u1", "merchant_id": "m8"}]}',
        ),
        (  # spelled with an escape: the same member name once decoded
            "/v1/features/user_merchant/batch",
            b'{"entity_keys": [{"user_id": "u1", "user\\u005fid": "u2", "merchant_id": "m7"}]}',
        ),
        (
            "/v1/vectors",
            b'{"entities": [{"entity_type": "user_merchant", "names": ["pair_txn_count_1h"], '
            b'"entity_key": {"user_id": "u1", "merchant_id": "m7", "user_id": "u2"}}]}',
        ),
    ],
)
def test_a_key_field_repeated_in_a_json_key_is_a_400_not_its_last_value(
    pair_client: tuple[TestClient, PairSource],  # noqa: F811
    path: str,
    body: bytes,
) -> None:
    client, source = pair_client
    r = client.post(path, content=body, headers=_JSON)
    assert (r.status_code, r.json()["error"]) == (400, "bad_entity_key"), r.text
    assert "more than once" in r.json()["message"]
    assert source.reads == []


def test_a_repeated_key_field_in_a_later_vectors_part_names_its_index(
    pair_client: tuple[TestClient, PairSource],  # noqa: F811
) -> None:
    client, _ = pair_client
    body = (
        b'{"entities": [{"entity_type": "user", "entity_id": "u1", "names": ["txn_count_1h"]}, '
        b'{"entity_type": "user_merchant", "names": ["pair_txn_count_1h"], '
        b'"entity_key": {"merchant_id": "m7", "merchant_id": "m7", "user_id": "u1"}}]}'
    )
    r = client.post("/v1/vectors", content=body, headers=_JSON)
    assert (r.status_code, r.json()["error"]) == (400, "bad_entity_key")
    assert r.json()["message"].startswith("entities[1]: ") and "merchant_id" in r.json()["message"]


def test_keys_given_once_and_repeats_elsewhere_are_still_served(
    pair_client: tuple[TestClient, PairSource],  # noqa: F811
) -> None:
    """Only a key object's fields are held to "once": the key objects as before, whatever key order."""
    client, _ = pair_client
    r = client.post(
        "/v1/features/user_merchant/batch",
        content=b'{"entity_keys": [{"merchant_id": "m7", "user_id": "u1"}], "names": ["pair_txn_count_1h"]}',
        headers=_JSON,
    )
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["values"] == [3]
    part = b'{"entity_type": "user_merchant", "entity_key": {"user_id": "u1", "merchant_id": "m7"}}'
    r = client.post("/v1/vectors", content=b'{"entities": [' + part[:-1] + b', "names": ["pair_txn_count_1h"]}]}')
    assert r.status_code == 200, r.text
    assert r.json()["vectors"][0]["features"]["pair_txn_count_1h"]["value"] == 3


@pytest.fixture
def services_client(tmp_path: Path, shipped_catalog: FeatureCatalog) -> TestClient:
    store = store_with(tmp_path / "d.db", shipped_catalog)
    services = LiveFeatureServices(FeatureServiceStore(tmp_path / "d.db"))
    app = create_app(
        LiveCatalog(store), Source({"u1": vector(4, 10.0)}), clock_us=lambda: NOW * 1000, services=services
    )
    client = TestClient(app, raise_server_exceptions=False)
    for version, names in ((1, ["txn_count_1h"]), (2, ["txn_count_1h", "txn_amount_sum_1h"])):
        features = [{"entity": "user", "name": n, "version": 1} for n in names]
        created = client.post("/v1/feature-services", json={"name": "fraud", "version": version, "features": features})
        assert created.status_code == 201, created.text
    return client


@pytest.mark.parametrize("query", ["version=1&version=2", "version=2&version=2", "version=1&version=x"])
def test_a_service_version_given_twice_is_a_400(services_client: TestClient, query: str) -> None:
    r = services_client.get(f"/v1/feature-services/fraud?{query}")
    assert (r.status_code, r.json()["error"]) == (400, "bad_request"), r.text
    assert "`version`" in r.json()["message"]


def test_a_service_version_given_once_is_served(services_client: TestClient) -> None:
    assert services_client.get("/v1/feature-services/fraud?version=1").json()["version"] == 1
    assert services_client.get("/v1/feature-services/fraud").json()["version"] == 2
