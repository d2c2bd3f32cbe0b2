"""README.md "Online serving": a feature service is referenced as ``name``, ``name@N`` or ``name@vN``. Every
spelling of one version, in any order of first use (each is planned and cached under its own text), serves the
same answer on every route, request-time features included; stored feature names take no version at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from registry.feature_services import FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from serving.online.app import create_app
from tests.unit.test_request_features import NOW, Source, store_with, vector

PINS = [
    {"entity": "user", "name": "txn_count_1h", "version": 1},
    {"entity": "user", "name": "amount_vs_mean_1h", "version": 1},
]
SPELLINGS = ["scorer", "scorer@1", "scorer@v1"]


def _client(tmp_path: Path, shipped_catalog: FeatureCatalog) -> TestClient:
    store = store_with(tmp_path / "d.db", shipped_catalog)
    services = LiveFeatureServices(FeatureServiceStore(tmp_path / "d.db"))
    app = create_app(
        LiveCatalog(store), Source({"u1": vector(4, 10.0)}), clock_us=lambda: NOW * 1000, services=services
    )
    client = TestClient(app, raise_server_exceptions=False)
    r = client.post("/v1/feature-services", json={"name": "scorer", "features": PINS})
    assert r.status_code == 201, r.text
    return client


def _answers(client: TestClient, ref: str) -> tuple[Any, ...]:
    get = client.get(f"/v1/features/user/u1?feature_service={ref}&amount=5")
    batch = client.post(
        "/v1/features/user/batch",
        json={"entity_ids": ["u1"], "feature_service": ref, "request_data": {"amount": [5]}},
    )
    part = {"entity_type": "user", "entity_id": "u1", "feature_service": ref, "request_data": {"amount": 5}}
    vectors = client.post("/v1/vectors", json={"entities": [part]})
    for r in (get, batch, vectors):
        assert r.status_code == 200, r.text
    return get.json()["features"], batch.json()["results"], vectors.json()["vectors"][0]["features"]


@pytest.mark.parametrize("order", [SPELLINGS, SPELLINGS[::-1]])
def test_every_spelling_of_a_service_version_serves_the_same(
    tmp_path: Path, shipped_catalog: FeatureCatalog, order: list[str]
) -> None:
    client = _client(tmp_path, shipped_catalog)
    answers = {ref: _answers(client, ref) for ref in order}
    first = answers[order[0]]
    assert first[0]["amount_vs_mean_1h"]["value"] == pytest.approx(5 / (10.0 / 4))
    assert first[0]["txn_count_1h"]["value"] == 4
    assert all(a == first for a in answers.values()), answers


@pytest.mark.parametrize("name", ["txn_count_1h@1", "txn_count_1h@v1", "amount_vs_mean_1h@1", "amount_vs_mean_1h@v1"])
def test_a_name_with_a_version_is_unknown_in_either_spelling(
    tmp_path: Path, shipped_catalog: FeatureCatalog, name: str
) -> None:
    r = _client(tmp_path, shipped_catalog).get(f"/v1/features/user/u1?names={name}&amount=5")
    assert (r.status_code, r.json()["error"], r.json()["names"]) == (404, "unknown_feature", [name])
