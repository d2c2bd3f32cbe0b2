"""Answers that follow Confluent Schema Registry where a review found this registry differed: the 409
error code, ``deletedOnly`` on versions, ``subjectPrefix``, ``latest`` with soft-deleted versions, the
compatibility routes (codes, ``verbose``, ``messages``), a config update without a level and the root
resource (``GET /``).

The Confluent references are SubjectVersionsResource, SubjectsResource, SchemasResource,
CompatibilityResource, ConfigResource and AbstractSchemaRegistry of confluentinc/schema-registry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry.schema_registry.api import create_schema_registry_app
from registry.schema_registry.store import SchemaStore, normalize


def record(*extra: dict[str, Any], name: str = "R") -> str:
    return json.dumps({"type": "record", "name": name, "fields": [{"name": "a", "type": "string"}, *extra]})


V1 = record()
V2 = record({"name": "b", "type": "int", "default": 1})
V3 = record({"name": "b", "type": "int", "default": 1}, {"name": "c", "type": "int", "default": 2})
REQUIRED = record({"name": "z", "type": "int"})  # a new field without a default: BACKWARD refuses it


@pytest.fixture
def store(tmp_path: Path) -> SchemaStore:
    return SchemaStore(tmp_path / "schemas.db", default_compatibility="BACKWARD")


@pytest.fixture
def client(store: SchemaStore) -> TestClient:
    return TestClient(create_schema_registry_app(store), raise_server_exceptions=False)


def error(response: Any) -> tuple[int, int, str]:
    return response.status_code, response.json()["error_code"], response.json()["message"]


def register(client: TestClient, subject: str, *schemas: str) -> None:
    for schema in schemas:
        assert client.post(f"/subjects/{subject}/versions", json={"schema": schema}).status_code == 200


# -- 1. an incompatible schema is error_code 409 ------------------------------------------------------


def test_incompatible_schema_is_error_code_409(client: TestClient) -> None:
    register(client, "s", V1)
    status, code, message = error(client.post("/subjects/s/versions", json={"schema": REQUIRED}))
    assert (status, code) == (409, 409)
    assert message.startswith('Schema being registered is incompatible with an earlier schema for subject "s"')


# -- 2. deletedOnly on a subject's versions -----------------------------------------------------------


def test_versions_deleted_only_lists_only_soft_deleted_versions(client: TestClient) -> None:
    register(client, "s", V1, V2, V3)
    assert client.get("/subjects/s/versions?deletedOnly=true").json() == []
    assert client.delete("/subjects/s/versions/2").json() == 2
    assert client.get("/subjects/s/versions").json() == [1, 3]
    assert client.get("/subjects/s/versions?deleted=true").json() == [1, 2, 3]
    assert client.get("/subjects/s/versions?deletedOnly=true").json() == [2]
    assert client.get("/subjects/s/versions?deletedOnly=true&deleted=true").json() == [2]  # deletedOnly wins
    # Confluent reads deletedOnly only: the deleted_only confluent-kafka's Python client sends is ignored there
    assert client.get("/subjects/s/versions?deleted_only=true").json() == [1, 3]
    assert client.delete("/subjects/s").json() == [1, 3]
    assert client.get("/subjects/s/versions?deletedOnly=true").json() == [1, 2, 3]
    assert error(client.get("/subjects/nope/versions?deletedOnly=true"))[:2] == (404, 40401)


def test_store_versions_deleted_only(store: SchemaStore) -> None:
    for schema in (V1, V2):
        store.register("s", schema)
    store.delete_version("s", 1)
    assert store.versions("s", deleted_only=True) == [1]
    assert store.versions("s", deleted=True, deleted_only=True) == [1]


# -- 3. subjectPrefix; ?subject= on the by-id routes ---------------------------------------------------


def test_subjects_filtered_by_prefix(client: TestClient) -> None:
    for subject in ("orders-value", "orders-key", "payments-value"):
        register(client, subject, V1)
    assert client.get("/subjects?subjectPrefix=orders-").json() == ["orders-key", "orders-value"]
    assert client.get("/subjects?subjectPrefix=pay").json() == ["payments-value"]
    assert client.get("/subjects?subjectPrefix=zz").json() == []
    assert client.get("/subjects?subjectPrefix=").json() == ["orders-key", "orders-value", "payments-value"]
    client.delete("/subjects/orders-key")
    assert client.get("/subjects?subjectPrefix=orders-").json() == ["orders-value"]
    assert client.get("/subjects?subjectPrefix=orders-&deleted=true").json() == ["orders-key", "orders-value"]
    assert client.get("/subjects?subjectPrefix=orders-&deletedOnly=true").json() == ["orders-key"]
    assert client.get("/subjects?subjectPrefix=o%25").json() == []  # a prefix, not a LIKE pattern


def test_a_single_valued_parameter_given_twice_takes_its_first_value_as_jax_rs_does(client: TestClient) -> None:
    for subject in ("orders-value", "orders-key", "payments-value"):
        register(client, subject, V1)
    assert client.get("/subjects?subjectPrefix=pay&subjectPrefix=orders-").json() == ["payments-value"]
    assert client.get("/subjects?limit=1&limit=1_0").json() == ["orders-key"]  # the second, not an int, unread
    assert client.get("/subjects?limit=1_0&limit=1").status_code == 404  # the first is Jersey's 404
    assert client.get("/subjects?offset=2&offset=0").json() == ["payments-value"]


def test_subject_query_on_schema_id_routes_does_not_filter(client: TestClient) -> None:
    """Confluent's listVersionsForId / listSubjectsForId use ``subject`` only to find the id's schema
    context (getSchemaKeyUsingContexts); in the default context every holder of the id is listed."""
    register(client, "a", V1)
    register(client, "b", V1)
    both = [{"subject": "a", "version": 1}, {"subject": "b", "version": 1}]
    for query in ("", "?subject=a", "?subject=nope"):
        assert client.get(f"/schemas/ids/1/subjects{query}").json() == ["a", "b"]
        assert client.get(f"/schemas/ids/1/versions{query}").json() == both
    assert error(client.get("/schemas/ids/9/versions?subject=a"))[:2] == (404, 40403)


# -- 4. latest is the latest live version -------------------------------------------------------------


def test_latest_is_the_latest_live_version_even_with_deleted(client: TestClient, store: SchemaStore) -> None:
    register(client, "L", V1, V2)
    assert client.delete("/subjects/L/versions/2").json() == 2
    for version in ("latest", "-1"):
        found = client.get(f"/subjects/L/versions/{version}?deleted=true").json()
        assert (found["version"], found["schema"]) == (1, normalize(V1))
        assert client.get(f"/subjects/L/versions/{version}/schema?deleted=true").text == normalize(V1)
    assert client.get("/subjects/L/versions/2?deleted=true").json()["version"] == 2  # a number still finds it
    assert store.version("L", "latest", deleted=True).version == 1

    # latest is v1, which is live: Confluent answers "not soft-deleted first" for that version
    assert error(client.delete("/subjects/L/versions/latest?permanent=true")) == (
        404,
        40407,
        "Subject 'L' Version 1 was not deleted first before being permanently deleted",
    )
    assert client.get("/subjects/L/versions?deleted=true").json() == [1, 2]  # nothing was deleted

    # with no live version left, latest names none: "Version -1 not found." (VersionId of latest is -1)
    assert client.delete("/subjects/L/versions/latest").json() == 1
    assert error(client.get("/subjects/L/versions/latest?deleted=true")) == (404, 40402, "Version -1 not found.")
    assert error(client.delete("/subjects/L/versions/latest")) == (404, 40402, "Version -1 not found.")
    assert error(client.delete("/subjects/L/versions/latest?permanent=true")) == (404, 40402, "Version -1 not found.")
    assert error(client.get("/subjects/L/versions/latest"))[:2] == (404, 40401)  # no live version: no subject
    assert error(client.delete("/subjects/nope/versions/latest?permanent=true"))[:2] == (404, 40401)


# -- 5. compatibility against a version that does not exist --------------------------------------------


def test_compatibility_against_a_missing_version_is_40402(client: TestClient) -> None:
    url = "/compatibility/subjects/nope/versions"
    assert error(client.post(f"{url}/1", json={"schema": V1})) == (404, 40402, "Version 1 not found.")
    # the version is looked up before the schema is parsed, as in Confluent
    assert error(client.post(f"{url}/1?verbose=true", json={"schema": "{bad"}))[:2] == (404, 40402)
    # latest, or all versions, of a subject without versions: nothing to be incompatible with
    assert client.post(f"{url}/latest", json={"schema": V1}).json() == {"is_compatible": True}
    assert client.post(url, json={"schema": V1}).json() == {"is_compatible": True}

    register(client, "s", V1, V2)
    client.delete("/subjects/s/versions/1")
    assert error(client.post("/compatibility/subjects/s/versions/1", json={"schema": V1}))[:2] == (404, 40402)


# -- 6. verbose with an invalid schema -------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/compatibility/subjects/s/versions/latest", "/compatibility/subjects/s/versions"])
def test_verbose_invalid_schema_is_an_answer(client: TestClient, route: str) -> None:
    register(client, "s", V1)
    invalid = {"schema": json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "nope"}]})}
    refused = client.post(route, json=invalid)
    status, code, message = error(refused)
    assert (status, code) == (422, 42201)  # without verbose Confluent throws invalidSchemaException
    answered = client.post(f"{route}?verbose=true", json=invalid)
    assert answered.status_code == 200
    assert answered.json() == {"is_compatible": False, "messages": [message]}
    not_json = client.post(f"{route}?verbose=true", json={"schema": "{bad"}).json()
    assert not_json["is_compatible"] is False
    assert not_json["messages"][0].startswith("Invalid schema of type AVRO, details: not JSON")


# -- 7. messages only with verbose -----------------------------------------------------------------------


def test_compatibility_messages_only_when_verbose(client: TestClient) -> None:
    register(client, "s", V1)
    url = "/compatibility/subjects/s/versions/latest"
    assert client.post(url, json={"schema": V2}).json() == {"is_compatible": True}
    assert client.post(url, json={"schema": REQUIRED}).json() == {"is_compatible": False}
    assert client.post(f"{url}?verbose=false", json={"schema": REQUIRED}).json() == {"is_compatible": False}
    assert client.post(f"{url}?verbose=true", json={"schema": V2}).json() == {"is_compatible": True, "messages": []}
    verbose = client.post(f"{url}?verbose=true", json={"schema": REQUIRED}).json()
    assert verbose["is_compatible"] is False and len(verbose["messages"]) == 1


# -- 8. a config update without a level -------------------------------------------------------------------


def test_config_update_without_a_level_changes_nothing(client: TestClient) -> None:
    # nothing stored: Confluent answers its stored config entity, empty (NON_NULL)
    assert (client.put("/config", json={}).status_code, client.put("/config", json={}).json()) == (200, {})
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD"}  # the default still applies
    assert client.put("/config", json={"compatibility": "FULL"}).json() == {"compatibility": "FULL"}
    assert client.put("/config", json={}).json() == {"compatibility": "FULL"}  # the old level is kept
    assert client.put("/config", json={"compatibility": None}).json() == {"compatibility": "FULL"}
    assert client.get("/config").json() == {"compatibilityLevel": "FULL"}

    response = client.put("/config/s", json={})
    assert (response.status_code, response.json()) == (200, {})
    assert error(client.get("/config/s"))[:2] == (404, 40408)  # no subject level was set
    assert client.put("/config/s", json={"compatibilityLevel": "NONE"}).json() == {"compatibility": "NONE"}
    assert client.put("/config/s", json={"compatibilityLevel": None}).json() == {"compatibility": "NONE"}
    assert client.get("/config/s").json() == {"compatibilityLevel": "NONE"}

    # a level that is there but not a level is still refused
    for bad in ("", "SIDEWAYS"):
        assert error(client.put("/config", json={"compatibility": bad}))[:2] == (422, 42203)
        assert error(client.put("/config/s", json={"compatibility": bad}))[:2] == (422, 42203)


# -- 9. the root resource ------------------------------------------------------------------------------------


def test_root_answers_an_empty_object(client: TestClient) -> None:
    """Confluent's RootResource answers ``GET /`` with 200 ``{}`` (a liveness probe); it was 404 here."""
    response = client.get("/")
    assert (response.status_code, response.json()) == (200, {})
    assert response.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
    head = client.head("/")
    assert (head.status_code, head.content) == (200, b"")
