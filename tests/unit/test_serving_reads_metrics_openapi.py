"""The read path's metrics and its OpenAPI document (the project's error body, not FastAPI's 422)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from registry.feature_services import LiveFeatureServices
from registry.live import LiveCatalog
from registry.quality import QualityStore
from tests.unit.test_serving_reads import MIN, STREAM, Source, T, app_for, db, live, rows, services

__all__ = ["db", "live", "services"]  # the fixtures, used by name


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
