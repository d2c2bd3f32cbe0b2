"""Feature services on the read path: pinned versions, malformed and unknown references, the service route."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from registry.feature_services import LiveFeatureServices
from registry.live import LiveCatalog
from tests.unit.test_serving_reads import Source, T, app_for, db, iso, live, rows, services

__all__ = ["db", "live", "services"]  # the fixtures, used by name


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
