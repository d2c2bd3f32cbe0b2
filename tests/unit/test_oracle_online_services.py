"""A feature service with no pins of the requested entity type (README "Online serving", docs/design.md §3.3 and
§5.8): every route that takes a feature service answers 400 ``bad_feature_service`` for it, and a ``/v1/vectors``
part keeps that code with its index, on every request: the refusal was made only while the plan was compiled,
and a repeat found the empty plan cached and served an empty vector (200, ``features: {}``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.feature_services import FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from serving.online.app import create_app
from tests.unit.test_request_features import NOW, Source, store_with, vector

PAIR = {
    "name": "pair_count",
    "entity": "user_merchant",
    "version": 1,
    "owner": "it",
    "value_type": "long",
    "source": {
        "topic": "pair_events",
        "event_schema": "card_transaction",
        "subject": "pair_events-value",
        "entity_key": ["user_id", "merchant_id"],
        "timestamp_field": "event_time",
    },
    "window": {"kind": "session", "gap": "1m"},
    "aggregation": {"function": "count"},
    "freshness_slo": "1h",
    "ttl": "1h",
}


@pytest.fixture
def client(tmp_path: Path, shipped_catalog: FeatureCatalog) -> TestClient:
    store = store_with(tmp_path / "d.db", shipped_catalog)
    store.register(FeatureDefinition.model_validate(PAIR))
    services = LiveFeatureServices(FeatureServiceStore(tmp_path / "d.db"))
    app = create_app(
        LiveCatalog(store), Source({"u1": vector(4, 10.0)}), clock_us=lambda: NOW * 1000, services=services
    )
    client = TestClient(app, raise_server_exceptions=False)
    pins = [{"entity": "user_merchant", "name": "pair_count", "version": 1}]
    registered = client.post("/v1/feature-services", json={"name": "pairs", "version": 1, "features": pins})
    assert registered.status_code == 201, registered.text
    return client


def _get(client: TestClient) -> Any:
    return client.get("/v1/features/user/u1?feature_service=pairs@1")


def _batch(client: TestClient) -> Any:
    return client.post("/v1/features/user/batch", json={"entity_ids": ["u1"], "feature_service": "pairs@1"})


def _vectors(client: TestClient) -> Any:
    part = {"entity_type": "user", "entity_id": "u1", "feature_service": "pairs@1"}
    return client.post("/v1/vectors", json={"entities": [part]})


ROUTES = [_get, _batch, _vectors]


@pytest.mark.parametrize("first", ROUTES, ids=lambda r: r.__name__)
@pytest.mark.parametrize("then", ROUTES, ids=lambda r: r.__name__)
def test_a_service_without_pins_of_the_type_is_refused_on_every_request(
    client: TestClient, first: Any, then: Any
) -> None:
    for route in (first, then, then):
        response = route(client)
        assert (response.status_code, response.json()["error"]) == (400, "bad_feature_service"), (
            route.__name__,
            response.text,
        )
        message = response.json()["message"]
        assert "no features of entity type 'user'" in message
        assert message.startswith("entities[0]: ") == (route is _vectors), message


def test_the_service_still_serves_the_type_it_pins(client: TestClient) -> None:
    assert _get(client).status_code == 400
    served = client.get("/v1/features/user_merchant?user_id=u1&merchant_id=m7&feature_service=pairs@1")
    assert served.status_code == 200, served.text
    assert list(served.json()["features"]) == ["pair_count"]
