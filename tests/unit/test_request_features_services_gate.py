"""Request-time features in feature services and the deployment gate, and request fields of two types."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.live import LiveCatalog
from serving.online.app import create_app
from tests.unit.test_request_features import NOW, Source, request_feature, store_with, vector

# --- feature services and the deployment gate ----------------------------------------------------------


def test_a_feature_service_pins_a_request_feature(tmp_path: Path, shipped_catalog: FeatureCatalog) -> None:
    from registry.feature_services import FeatureServiceStore, LiveFeatureServices

    store = store_with(tmp_path / "d.db", shipped_catalog)
    services = LiveFeatureServices(FeatureServiceStore(tmp_path / "d.db"))
    app = create_app(
        LiveCatalog(store), Source({"u1": vector(4, 10.0)}), clock_us=lambda: NOW * 1000, services=services
    )
    client = TestClient(app, raise_server_exceptions=False)
    held = store.catalog().request_feature("user", "amount_vs_mean_1h")
    assert held is not None
    pin: dict[str, Any] = {"entity": "user", "name": "amount_vs_mean_1h", "version": 1}
    service = {
        "name": "fraud-model",
        "features": [
            {**pin, "identity_hash": held.identity_hash},
            {"entity": "user", "name": "txn_count_1h", "version": 1},
        ],
    }
    created = client.post("/v1/feature-services", json=service)
    assert created.status_code == 201, created.text
    got = client.get("/v1/features/user/u1?feature_service=fraud-model@1&amount=5").json()["features"]
    assert list(got) == ["amount_vs_mean_1h", "txn_count_1h"]
    assert got["amount_vs_mean_1h"]["value"] == 2.0
    missing = client.get("/v1/features/user/u1?feature_service=fraud-model@1")
    assert missing.status_code == 400 and missing.json()["error"] == "bad_request_data"
    batch = client.post(
        "/v1/features/user/batch",
        json={"entity_ids": ["u1"], "feature_service": "fraud-model", "request_data": {"amount": [10.0]}},
    ).json()
    assert batch["names"] == ["amount_vs_mean_1h", "txn_count_1h"] and batch["results"][0]["values"] == [4.0, 4]
    wrong = {"name": "other", "features": [{**pin, "identity_hash": "0" * 16}]}
    refused = client.post("/v1/feature-services", json=wrong)
    assert refused.status_code == 422 and "pinned identity 0000000000000000" in refused.text


def test_the_gate_checks_a_pinned_request_feature(tmp_path: Path, shipped_catalog: FeatureCatalog) -> None:
    from registry.gate import ModelManifest, PinnedFeature, check_model

    store = store_with(tmp_path / "d.db", shipped_catalog)
    held = store.catalog().request_feature("user", "amount_vs_mean_1h")
    assert held is not None
    pin = PinnedFeature(entity="user", name="amount_vs_mean_1h", version=1, identity_hash=held.identity_hash)
    model = ModelManifest(model="fraud", features=(pin,))
    assert check_model(model, store.catalog(), None) == []
    changed = FeatureCatalog(
        list(store.catalog()), request_features=[held.model_copy(update={"function_hash": "0" * 16})]
    )
    problems = check_model(model, changed, None)
    assert any("changed since training" in p for p in problems) and any("has changed since v1" in p for p in problems)
    unknown = ModelManifest(model="fraud", features=(pin.model_copy(update={"version": 3}),))
    assert check_model(unknown, store.catalog(), None) == ["user.amount_vs_mean_1h@v3: not registered"]


def test_request_fields_of_two_types_are_refused_together(tmp_path: Path, shipped_catalog: FeatureCatalog) -> None:
    from registry.feature_services import FeatureServiceStore, LiveFeatureServices

    as_long = request_feature(
        name="amount_long",
        value_type="long",
        function="tests.request_fns:amount_as_long",
        request_fields=[{"name": "amount", "value_type": "long"}],
    )
    too_big = request_feature(name="too_big", value_type="long", function="tests.request_fns:too_big")
    store = store_with(tmp_path / "d.db", shipped_catalog, as_long, too_big)
    services = LiveFeatureServices(FeatureServiceStore(tmp_path / "d.db"))
    app = create_app(
        LiveCatalog(store), Source({"u1": vector(4, 10.0)}), clock_us=lambda: NOW * 1000, services=services
    )
    client = TestClient(app, raise_server_exceptions=False)
    both = client.get("/v1/features/user/u1?names=amount_vs_mean_1h,amount_long&amount=5")
    assert both.status_code == 400 and both.json()["error"] == "bad_request_data"
    assert "request field `amount` is long here and double elsewhere" in both.json()["message"]
    assert client.get("/v1/features/user/u1?names=amount_long&amount=5").json()["features"]["amount_long"]["value"] == 5
    overflow = client.get("/v1/features/user/u1?names=too_big&amount=5").json()["features"]["too_big"]
    assert overflow["status"] == "error" and "returned values that are not long" in overflow["message"]
    pins = [{"entity": "user", "name": n, "version": 1} for n in ("amount_vs_mean_1h", "amount_long")]
    refused = client.post("/v1/feature-services", json={"name": "mixed", "features": pins})
    assert refused.status_code == 422 and "is long here and double elsewhere" in refused.text
    only = client.post("/v1/feature-services", json={"name": "only-request", "features": pins[:1]})
    assert only.status_code == 201, only.text
    got = client.get("/v1/features/user/u1?feature_service=only-request&amount=5")
    assert got.status_code == 200 and got.json()["features"]["amount_vs_mean_1h"]["value"] == 2.0


def test_the_gate_refuses_inputs_the_live_job_no_longer_computes(
    tmp_path: Path, shipped_catalog: FeatureCatalog, make_definition: Callable[..., FeatureDefinition]
) -> None:
    from registry.gate import ModelManifest, PinnedFeature, check_model

    store = store_with(tmp_path / "d.db", shipped_catalog)
    pin = PinnedFeature(entity="user", name="amount_vs_mean_1h", version=1)
    model = ModelManifest(model="fraud", features=(pin,))
    assert check_model(model, store.catalog(), None) == []
    shipped = shipped_catalog.get("user", "txn_count_1h", 1)
    store.register(make_definition(version=2, ttl="3h", source=shipped.source.model_dump(mode="json")), activate=True)
    (problem,) = check_model(model, store.catalog(), None)
    assert "input txn_count_1h@v1 is not computed by the live job (v2 is active)" in problem
