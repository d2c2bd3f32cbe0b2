"""The feature API's OpenAPI document says what its routes answer (audit B2).

Checked the way an OpenAPI fuzzer (schemathesis, all checks) reads the document: every ``$ref`` resolves, a
route answering JSON is not described as a plain string, each answer fits its documented schema, a parameter's
documented pattern is what the route accepts, and a path's ``Allow`` lists only documented methods (``HEAD`` aside).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import MAX_VERSION
from registry.core.refs import SERVICE_NAME_PATTERN, parse_ref
from registry.definition_store import DefinitionStore
from registry.feature_services import FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from registry.quality import QualityStore
from serving.online.app import create_app
from serving.online.features_docs import ENTITY_ID_PATTERN, SERVICE_REF_PATTERN, VERSION_PATTERN
from serving.online.keys import ENTITY_ID
from tests.unit.conftest import NoValues

NOW_US = 1_700_000_000_000_000
PIN = {"entity": "user", "name": "txn_count_1h", "version": 1}


@pytest.fixture
def client(tmp_path: Path, shipped_catalog: FeatureCatalog) -> Iterator[TestClient]:
    db = tmp_path / "definitions.db"
    store = DefinitionStore(db)
    for d in shipped_catalog:
        store.register(d)
    app = create_app(
        LiveCatalog(store),
        NoValues(),
        clock_us=lambda: NOW_US,
        services=LiveFeatureServices(FeatureServiceStore(db)),
        quality=QualityStore(db),
    )
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _ecma(pattern: str) -> re.Pattern[str]:
    """A JSON Schema pattern as ECMA-262 reads it: a final ``$`` is the end of the text, not also before a newline."""
    return re.compile(pattern.removesuffix("$") + r"\Z" if pattern.endswith("$") else pattern)


def _doc(client: TestClient) -> dict[str, Any]:
    doc: dict[str, Any] = client.get("/openapi.json").json()
    return doc


def _fits(doc: dict[str, Any], schema: dict[str, Any], value: Any) -> list[str]:
    """The ways ``value`` breaks ``schema`` (a part of ``doc``: its ``#/components/...`` references resolve), as
    schemathesis validates an answer: ``schema`` made the only answer of an operation of its own."""
    answer = {"description": "", "content": {"application/json": {"schema": schema}}}
    probe = {
        "openapi": doc["openapi"],
        "info": doc["info"],
        "paths": {"/probe": {"get": {"responses": {"200": answer}}}},
        "components": doc["components"],
    }
    operation = schemathesis.openapi.from_dict(probe)["/probe"]["GET"]
    response = httpx.Response(200, json=value, request=httpx.Request("GET", "http://probe/probe"))
    response.elapsed = timedelta(0)  # as a transport sets it
    return [] if operation.is_valid_response(response) else [f"{value!r:.300} does not fit {schema!r:.300}"]


def _answer_schema(doc: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    schema: dict[str, Any] = doc["paths"][path][method]["responses"][str(status)]["content"]["application/json"][
        "schema"
    ]
    return schema


def test_every_reference_in_the_document_resolves(client: TestClient) -> None:
    """The service registration body referred to `#/components/schemas/PinnedFeature`, which the document lacked
    (schemathesis: "unresolvable reference", that part of the body never generated)."""
    doc = _doc(client)
    refs = set(re.findall(r'"\$ref": "([^"]+)"', json.dumps(doc)))
    assert refs
    for ref in refs:
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(node, dict) and part in node, ref
            node = node[part]


def test_no_json_route_is_documented_as_answering_a_string(client: TestClient) -> None:
    """Routes answering the app's orjson response were documented as `{"type": "string"}` (FastAPI's guess for a
    response class that is not a JSONResponse): `[]`, `{"status": "ok"}` broke their own document."""
    doc = _doc(client)
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if path != "/metrics":  # Prometheus text, served by app.py (reported, not owned here)
                    assert schema != {"type": "string"}, (method, path, status)
    assert not _fits(doc, _answer_schema(doc, "/health", "get", 200), client.get("/health").json())


def test_feature_service_answers_fit_their_documented_schemas(client: TestClient) -> None:
    doc = _doc(client)
    listed = client.get("/v1/feature-services")
    assert not _fits(doc, _answer_schema(doc, "/v1/feature-services", "get", 200), listed.json())
    created = client.post("/v1/feature-services", json={"name": "fraud", "features": [PIN]})
    assert created.status_code == 201
    again = client.post("/v1/feature-services", json={"name": "fraud", "features": [PIN]})
    assert again.status_code == 200
    for answer, status in ((created, 201), (again, 200)):
        assert not _fits(doc, _answer_schema(doc, "/v1/feature-services", "post", status), answer.json())
    got = client.get("/v1/feature-services/fraud@1")
    assert got.status_code == 200
    assert not _fits(doc, _answer_schema(doc, "/v1/feature-services/{name}", "get", 200), got.json())
    assert not _fits(
        doc, _answer_schema(doc, "/v1/feature-services", "get", 200), client.get("/v1/feature-services").json()
    )


def test_the_registration_body_is_documented_as_the_route_reads_it(client: TestClient) -> None:
    """`version` may be left out (the store picks it); a pin given twice is refused (422)."""
    doc = _doc(client)
    body = doc["paths"]["/v1/feature-services"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert not _fits(doc, body, {"name": "fraud", "features": [PIN]})
    assert client.post("/v1/feature-services", json={"name": "fraud", "features": [PIN]}).status_code == 201
    assert _fits(doc, body, {"name": "fraud", "features": [PIN, PIN]})
    assert client.post("/v1/feature-services", json={"name": "fraud", "features": [PIN, PIN]}).status_code == 422


@pytest.mark.parametrize(
    "ref",
    ["0", "fraud", "fraud@1", "fraud@v1", "fraud@0", "fraud@01", "fraud@2147483647", "fraud@2147483648", "Fraud",
     "fraud@", "a-b_c", "fraud ", "fraud\n", "fraud@+1", "f" * 63, "f" * 64, "fraud@99999999999"],
)  # fmt: skip
def test_the_documented_service_reference_is_what_the_routes_accept(client: TestClient, ref: str) -> None:
    """`GET /v1/feature-services/0` was a 400 to a name the document let be any string (schemathesis:
    "schema-valid request rejected")."""
    doc = _doc(client)
    parameters = {p["name"]: p for p in doc["paths"]["/v1/feature-services/{name}"]["get"]["parameters"]}
    pattern = parameters["name"]["schema"]["pattern"]
    assert pattern == SERVICE_REF_PATTERN
    accepted = parse_ref(ref, name_pattern=SERVICE_NAME_PATTERN) is not None
    assert (_ecma(pattern).search(ref) is not None) == accepted
    status = client.get(f"/v1/feature-services/{quote(ref, safe='@')}").status_code
    assert status == (404 if accepted else 400)


@pytest.mark.parametrize("n", [0, 1, 9, 10, 99, 999_999_999, 1_000_000_000, 2_147_483_646, MAX_VERSION, 2**31, 10**10])
def test_the_version_pattern_spells_1_to_2_to_the_31_minus_1(n: int) -> None:
    assert (re.fullmatch(VERSION_PATTERN, str(n)) is not None) == (1 <= n <= MAX_VERSION)
    assert re.fullmatch(VERSION_PATTERN, f"0{n}") is None


@pytest.mark.parametrize("entity_id", ["u1", "a.b:c@d-e_f", "x" * 256, "x" * 257, "", "u 1", "ü", "u1\n"])
def test_the_documented_entity_id_pattern_is_the_routes(entity_id: str) -> None:
    assert (_ecma(ENTITY_ID_PATTERN).search(entity_id) is not None) == (ENTITY_ID.match(entity_id) is not None)


def test_a_path_allows_only_documented_methods(client: TestClient) -> None:
    """`OPTIONS /v1/features/user/batch` answered `Allow: GET, HEAD, POST` while the document gave the batch path only
    POST: the single-key GET route takes the id `batch`, and now the document says so."""
    doc = _doc(client)
    for path in ("/v1/features/user/batch", "/v1/vectors", "/v1/feature-services"):
        template = {"/v1/features/user/batch": "/v1/features/{entity_type}/batch"}.get(path, path)
        refused = client.request("OPTIONS", path)
        assert refused.status_code == 405
        allowed = {m.strip().lower() for m in refused.headers["allow"].split(",")} - {"head"}
        assert allowed == set(doc["paths"][template]), path
    vector = client.get("/v1/features/user/batch")
    assert vector.status_code == 200
    assert not _fits(doc, _answer_schema(doc, "/v1/features/{entity_type}/batch", "get", 200), vector.json())


def test_batch_and_vectors_bodies_are_documented_as_refused_where_refused(client: TestClient) -> None:
    """`entity_ids: null` and both `names` and `feature_service` are 400s; the document let both through."""
    doc = _doc(client)
    batch = doc["paths"]["/v1/features/{entity_type}/batch"]["post"]["requestBody"]["content"]["application/json"]
    vectors = doc["paths"]["/v1/vectors"]["post"]["requestBody"]["content"]["application/json"]
    cases: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
        ("/v1/features/user/batch", batch["schema"], {"entity_ids": ["u1"]}, True),
        ("/v1/features/user/batch", batch["schema"], {"entity_ids": ["u1"], "names": None}, True),
        ("/v1/features/user/batch", batch["schema"], {"entity_ids": None}, False),
        ("/v1/features/user/batch", batch["schema"], {}, False),
        ("/v1/features/user/batch", batch["schema"], {"entity_ids": ["u 1"]}, False),
        ("/v1/features/user/batch", batch["schema"], {"entity_ids": ["u1"], "names": []}, False),
        ("/v1/features/user/batch", batch["schema"], {"entity_ids": ["u1"], "names": ["txn_count_1h"],
                                                      "feature_service": "fraud"}, False),
        ("/v1/vectors", vectors["schema"], {"entities": [{"entity_type": "user", "entity_id": "u1",
                                                          "names": ["txn_count_1h"]}]}, True),
        ("/v1/vectors", vectors["schema"], {"entities": [{"entity_type": "user", "entity_id": "u1"}]}, False),
        ("/v1/vectors", vectors["schema"], {"entities": [{"entity_type": "user", "entity_id": "u1",
                                                          "entity_key": None, "names": ["txn_count_1h"]}]}, False),
    ]  # fmt: skip
    for path, schema, body, valid in cases:
        assert (not _fits(doc, schema, body)) == valid, body
        answer = client.post(path, json=body)
        assert (answer.status_code == 200) == valid, (body, answer.text)
        if valid:
            assert not _fits(
                doc, _answer_schema(doc, path.replace("user", "{entity_type}"), "post", 200), answer.json()
            )


def test_the_quality_answer_and_its_instants_are_documented(client: TestClient) -> None:
    doc = _doc(client)
    path = "/v1/quality/{entity_type}/{name}"
    answer = client.get("/v1/quality/user/txn_count_1h?since=2023-11-14T00:00:00Z")
    assert answer.status_code == 200
    assert not _fits(doc, _answer_schema(doc, path, "get", 200), answer.json())
    parameters = {p["name"]: p for p in doc["paths"][path]["get"]["parameters"]}
    assert all("date-time" in json.dumps(parameters[name]["schema"]) for name in ("since", "until"))
    assert "403" in doc["paths"][path]["get"]["responses"]  # a read of a restricted feature's statistics


def test_metrics_is_documented_as_text_and_a_definition_body_as_a_definition(tmp_path: Path) -> None:
    """``/metrics`` was documented as JSON (it is Prometheus text); ``POST /v1/feature-definitions`` had no body in
    the document, so a fuzzer sent none; its durations are documented as the route reads them ("5m", not ISO's
    "P5M", which the route refuses)."""
    from registry.core.catalog import load_folder
    from tests.unit.test_serving_reads import Source, app_for

    store = DefinitionStore(tmp_path / "r.db")
    store.register_all(load_folder())
    doc = app_for(LiveCatalog(store), Source()).get("/openapi.json").json()
    assert set(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    body = doc["paths"]["/v1/feature-definitions"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert body["required"] and "version" not in schema["required"] and "name" in schema["required"]
    assert "$ref" not in json.dumps(schema)
    ttl = re.compile(schema["properties"]["ttl"]["pattern"])
    assert ttl.fullmatch("5m") and ttl.fullmatch("500ms") and not ttl.fullmatch("P5M") and not ttl.fullmatch(" 5m")
