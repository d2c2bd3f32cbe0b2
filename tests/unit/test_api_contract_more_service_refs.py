"""Feature-service references at their bounds (README "Online serving", docs/design.md §3.3): a name is 1-63
characters of a-z 0-9 _ - starting with a letter (``registry.core.refs.SERVICE_NAME_PATTERN``, the rule a
registration is held to), so 63 is well formed (404 when unregistered) and 64 is 400 ``bad_request``, whose
message states the length it broke (it stated only the characters, which a 64-letter name has)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from registry.feature_services import FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from serving.online.app import create_app
from tests.unit.test_request_features import NOW, Source, store_with, vector


@pytest.fixture
def client(tmp_path: Path, shipped_catalog: FeatureCatalog) -> TestClient:
    store = store_with(tmp_path / "d.db", shipped_catalog)
    services = LiveFeatureServices(FeatureServiceStore(tmp_path / "d.db"))
    app = create_app(
        LiveCatalog(store), Source({"u1": vector(4, 10.0)}), clock_us=lambda: NOW * 1000, services=services
    )
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("route", ["/v1/feature-services/{ref}", "/v1/features/user/u1?feature_service={ref}"])
@pytest.mark.parametrize("suffix", ["", "@1", "@v2147483647"])
def test_a_service_name_of_63_characters_is_well_formed_and_64_is_not(
    client: TestClient, route: str, suffix: str
) -> None:
    unknown = client.get(route.format(ref="f" * 63 + suffix))
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_feature_service"), unknown.text
    refused = client.get(route.format(ref="f" * 64 + suffix))
    assert (refused.status_code, refused.json()["error"]) == (400, "bad_request"), refused.text
    assert "1-63 characters" in refused.json()["message"]


def test_a_registration_is_held_to_the_same_length(client: TestClient) -> None:
    pin = [{"entity": "user", "name": "txn_count_1h", "version": 1}]
    assert client.post("/v1/feature-services", json={"name": "f" * 63, "features": pin}).status_code == 201
    assert client.post("/v1/feature-services", json={"name": "f" * 64, "features": pin}).status_code == 422
    assert client.get("/v1/feature-services/" + "f" * 63).json()["name"] == "f" * 63
