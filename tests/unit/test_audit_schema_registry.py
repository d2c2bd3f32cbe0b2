"""Audit of the schema registry against docs/design.md, "Schema registry contract", and Confluent's REST contract
(confluentinc/schema-registry 8.2: ``VersionId``, ``CompatibilityLevel.forName``, ``Schema(subject, request)``,
``ConfigUpdateRequest``, ``KafkaSchemaRegistry.deleteSchemaVersion``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry.schema_registry.api import create_schema_registry_app
from registry.schema_registry.store import SchemaStore

V1 = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]})
V2 = json.dumps({"type": "record", "name": "R", "fields": [{"name": "b", "type": "string"}]})
INVALID_LEVEL = (
    "Invalid compatibility level. Valid values are none, backward, forward, full, "
    "backward_transitive, forward_transitive, and full_transitive"
)


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    store = SchemaStore(tmp_path / "schemas.db", default_compatibility="NONE")
    return TestClient(create_schema_registry_app(store), raise_server_exceptions=False)


@pytest.mark.parametrize("path", ["/subjects/s/versions/{v}", "/subjects/s/versions/{v}/referencedby"])
@pytest.mark.parametrize("given", ["03", "%2B3", "%203", "3%20"])
def test_a_missing_version_is_named_by_its_number_not_by_the_text_sent(
    client: TestClient, path: str, given: str
) -> None:
    """`Version 7 not found.`: Confluent reads the path's version as VersionId (trim, Integer.parseInt) and names
    the number; `03`, `+3` and ` 3` are version 3, as DELETE and the compatibility route already named them."""
    client.post("/subjects/s/versions", json={"schema": V1})
    reply = client.get(path.format(v=given))
    assert (reply.status_code, reply.json()) == (404, {"error_code": 40402, "message": "Version 3 not found."})


@pytest.mark.parametrize("level", [" FULL", "FULL ", "FULL\t", "\nbackward"])
@pytest.mark.parametrize("path", ["/config", "/config/s"])
def test_a_level_with_blanks_around_it_is_not_one_of_the_seven(client: TestClient, level: str, path: str) -> None:
    """42203 for "a level that is present but not one of the seven": Confluent's forName upper-cases, never trims."""
    reply = client.put(path, json={"compatibility": level})
    assert (reply.status_code, reply.json()) == (422, {"error_code": 42203, "message": INVALID_LEVEL})
    assert client.get("/config").json() == {"compatibilityLevel": "NONE"}  # nothing changed
    assert client.put(path, json={"compatibility": "full"}).json() == {"compatibility": "FULL"}  # case still free


@pytest.mark.parametrize(("sent", "named"), [("", ""), (False, "false"), ("avro", "avro"), (0, "0")])
def test_a_schema_type_other_than_avro_is_refused_even_when_falsy(client: TestClient, sent: object, named: str) -> None:
    """`Invalid schema type JSON` (42201) for "a schemaType other than AVRO": only a missing or null type means AVRO."""
    for path in ("/subjects/s/versions", "/subjects/s", "/compatibility/subjects/s/versions/latest"):
        reply = client.post(path, json={"schema": V1, "schemaType": sent})
        assert (reply.status_code, reply.json()) == (
            422,
            {"error_code": 42201, "message": f"Invalid schema type {named}"},
        ), path
    assert client.get("/subjects").json() == []
    assert client.post("/subjects/s/versions", json={"schema": V1, "schemaType": None}).json() == {"id": 1}


@pytest.mark.parametrize("field", ["compatibilityPolicy", "aliasForDeks", "validateNewSchemas"])
def test_confluent_config_fields_are_accepted_when_empty_and_refused_when_set(client: TestClient, field: str) -> None:
    """Fields of Confluent's ConfigUpdateRequest (8.2) this registry does not implement: accepted null, 422 when
    set; they are not "unknown" fields."""
    accepted = client.put("/config/s", json={"compatibility": "FULL", field: None})
    assert (accepted.status_code, accepted.json()) == (200, {"compatibility": "FULL"})
    refused = client.put(
        "/config/s", json={"compatibility": "FULL", field: "x" if field != "validateNewSchemas" else True}
    )
    assert (refused.status_code, refused.json()["error_code"]) == (422, 422)
    assert field in refused.json()["message"] and "not supported" in refused.json()["message"]


def test_a_permanent_delete_of_the_last_version_drops_the_subject_override(client: TestClient) -> None:
    """A subject permanently gone loses its override, whether by DELETE /subjects/s?permanent=true or by the
    permanent delete of its last version (Confluent's deleteSchemaVersion drops the config then)."""
    client.put("/config/s", json={"compatibility": "FULL"})
    client.post("/subjects/s/versions", json={"schema": V1})
    client.put("/config/s", json={"compatibility": "NONE"})
    client.post("/subjects/s/versions", json={"schema": V2})
    client.put("/config/s", json={"compatibility": "FULL"})
    for version in (1, 2):
        assert client.delete(f"/subjects/s/versions/{version}").json() == version
    assert client.delete("/subjects/s/versions/1?permanent=true").json() == 1
    assert client.get("/config/s").json() == {"compatibilityLevel": "FULL"}  # version 2 (soft-deleted) is left
    assert client.delete("/subjects/s/versions/2?permanent=true").json() == 2
    reply = client.get("/config/s")
    assert (reply.status_code, reply.json()["error_code"]) == (404, 40408)


def test_a_soft_delete_of_the_last_version_keeps_the_override(client: TestClient) -> None:
    client.post("/subjects/s/versions", json={"schema": V1})
    client.put("/config/s", json={"compatibility": "FULL"})
    assert client.delete("/subjects/s/versions/1").json() == 1
    assert client.get("/config/s").json() == {"compatibilityLevel": "FULL"}


def test_a_permanent_subject_delete_checks_version_by_version_oldest_first(client: TestClient) -> None:
    """40405 / 42206 in Confluent's order (deleteSubject walks the versions oldest first: a version referenced from
    another subject, then a live one): a live, unreferenced version 1 answers 40405 before a referenced version 2."""
    base = json.dumps({"type": "record", "name": "Base", "namespace": "n", "fields": [{"name": "x", "type": "int"}]})
    base2 = json.dumps({"type": "record", "name": "Base", "namespace": "n", "fields": [{"name": "y", "type": "int"}]})
    user = json.dumps({"type": "record", "name": "U", "fields": [{"name": "b", "type": "n.Base"}]})
    client.post("/subjects/base/versions", json={"schema": base})
    client.post("/subjects/base/versions", json={"schema": base2})
    ref = [{"name": "n.Base", "subject": "base", "version": 2}]
    assert client.post("/subjects/user/versions", json={"schema": user, "references": ref}).status_code == 200
    reply = client.delete("/subjects/base?permanent=true")
    assert (reply.status_code, reply.json()) == (
        404,
        {"error_code": 40405, "message": "Subject 'base' was not deleted first before being permanently deleted"},
    )
    assert client.delete("/subjects/base/versions/1").json() == 1
    reply = client.delete("/subjects/base?permanent=true")  # version 1 soft-deleted: version 2 is referenced
    assert (reply.status_code, reply.json()["error_code"]) == (422, 42206)
    assert client.get("/subjects/base/versions?deleted=true").json() == [1, 2]


def test_a_transitive_level_names_the_newest_failing_version(client: TestClient) -> None:
    """Confluent's CompatibilityChecker validates "in order of most recent to least recent" and names the first
    failure: under BACKWARD_TRANSITIVE, with v1 {a} and v2 {a, b with a default}, {c} fails both and names v2 (here
    it named v1)."""
    field = {"name": "a", "type": "string"}
    v1 = {"type": "record", "name": "R", "fields": [field]}
    v2 = {"type": "record", "name": "R", "fields": [field, {"name": "b", "type": "string", "default": ""}]}
    assert client.put("/config/s", json={"compatibility": "BACKWARD_TRANSITIVE"}).status_code == 200
    for schema in (v1, v2):
        assert client.post("/subjects/s/versions", json={"schema": json.dumps(schema)}).status_code == 200
    c = {"type": "record", "name": "R", "fields": [{"name": "c", "type": "string"}]}
    refused = client.post("/subjects/s/versions", json={"schema": json.dumps(c)})
    assert refused.status_code == 409 and "{oldSchemaVersion: 2}" in refused.json()["message"], refused.text
