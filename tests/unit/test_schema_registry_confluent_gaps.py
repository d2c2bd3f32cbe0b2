"""Differences from Confluent Schema Registry found by replaying its own server tests (confluentinc/schema-registry,
``core/src/test/java/io/confluent/kafka/schemaregistry/rest/RestApiTest.java``): the ``deleted`` flag of a
soft-deleted version, invalid subjects (42208), ``normalize=true`` with references in another order, a soft
subject delete keeping the compatibility override, and Avro's wording for an undefined type name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from registry.schema_registry.api import create_schema_registry_app
from registry.schema_registry.store import SchemaReference, SchemaStore


def _record(name: str, *fields: tuple[str, Any], namespace: str | None = None) -> str:
    schema: dict[str, Any] = {"type": "record", "name": name, "fields": [{"name": n, "type": t} for n, t in fields]}
    if namespace is not None:
        schema["namespace"] = namespace
    return json.dumps(schema)


V1 = _record("R", ("a", "string"))
V2 = json.dumps({**json.loads(V1), "fields": [*json.loads(V1)["fields"], {"name": "b", "type": "long", "default": 0}]})


@pytest.fixture
def store(tmp_path: Path) -> SchemaStore:
    return SchemaStore(tmp_path / "schemas.db", default_compatibility="BACKWARD")


@pytest.fixture
def client(store: SchemaStore) -> TestClient:
    return TestClient(create_schema_registry_app(store), raise_server_exceptions=False)


def _error(response: Any) -> tuple[int, int, str]:
    return response.status_code, response.json()["error_code"], response.json()["message"]


# -- 1. "deleted": true on a soft-deleted version (RestApiTest.testDeleteSchemaVersionBasic) ---------------


def test_soft_deleted_version_read_with_deleted_true_says_so(client: TestClient, store: SchemaStore) -> None:
    assert client.post("/subjects/s/versions", json={"schema": V1}).json() == {"id": 1}
    assert client.post("/subjects/s/versions", json={"schema": V2}).json() == {"id": 2}
    assert client.delete("/subjects/s/versions/2").json() == 2

    deleted = client.get("/subjects/s/versions/2?deleted=true").json()
    assert (deleted["version"], deleted["id"], deleted["deleted"]) == (2, 2, True)
    assert "deleted" not in client.get("/subjects/s/versions/1?deleted=true").json()  # live: left out
    assert "deleted" not in client.get("/subjects/s/versions/1").json()
    # a lookup that finds the soft-deleted version says so too; the raw text route is only the text
    assert client.post("/subjects/s?deleted=true", json={"schema": V2}).json()["deleted"] is True
    assert client.get("/subjects/s/versions/2/schema?deleted=true").json() == json.loads(store.by_id(2))

    assert store.version("s", 2, deleted=True).deleted is True
    assert store.version("s", 1, deleted=True).deleted is False


# -- 2. invalid subjects (RestApiTest.testRegisterInvalidSubject) -----------------------------------------


@pytest.mark.parametrize("subject", ["\rbad\nsubject\t", "__GLOBAL", "__EMPTY", "a\x00b", "a\x7fb", "a\x85b"])
def test_register_under_an_invalid_subject_is_42208(client: TestClient, subject: str) -> None:
    response = client.post(f"/subjects/{quote(subject, safe='')}/versions", json={"schema": V1})
    assert _error(response) == (422, 42208, f"The specified subject '{subject}' is not a valid.")
    assert client.get("/subjects?deleted=true").json() == []


@pytest.mark.parametrize("subject", ["__GLOBAL", "__EMPTY", "a\x00b", "a\x85b"])
def test_a_compatibility_override_on_an_invalid_subject_is_42208(client: TestClient, subject: str) -> None:
    """Confluent's ``updateSubjectLevelConfig`` refuses the subjects it refuses to register under, after the level."""
    route = f"/config/{quote(subject, safe='')}"
    invalid = (422, 42208, f"The specified subject '{subject}' is not a valid.")
    assert _error(client.put(route, json={"compatibility": "NONE"})) == invalid
    assert _error(client.put(route, json={})) == invalid
    assert _error(client.put(route, json={"compatibility": "BOGUS"}))[:2] == (422, 42203)
    assert client.get(f"{route}?defaultToGlobal=false").status_code == 404  # nothing was stored
    assert client.put("/config/__GLOBALS", json={"compatibility": "NONE"}).json() == {"compatibility": "NONE"}


def test_subjects_near_the_reserved_names_are_valid(client: TestClient) -> None:
    for subject in ("__GLOBALS", "x__EMPTY", "*", "caf\u00e9 value"):
        assert client.post(f"/subjects/{quote(subject, safe='')}/versions", json={"schema": V1}).json() == {"id": 1}


# -- 3. normalize=true: references in another order (RestApiTest.testSchemaNormalization) -----------------

SUB1 = _record("Subrecord1", ("field1", "string"), namespace="otherns")
SUB2 = _record("Subrecord2", ("field2", "string"), namespace="otherns")
REF1: dict[str, Any] = {"name": "otherns.Subrecord1", "subject": "ref1", "version": 1}
REF2: dict[str, Any] = {"name": "otherns.Subrecord2", "subject": "ref2", "version": 1}
MAIN = _record(
    "myrecord", ("field0", {"type": "int"}), ("field1", "otherns.Subrecord1"), ("field2", "otherns.Subrecord2")
)
MAIN_SPELLED_APART = _record(
    "myrecord", ("field0", "int"), ("field1", "otherns.Subrecord1"), ("field2", "otherns.Subrecord2")
)


def test_normalize_compares_references_in_any_order(client: TestClient, store: SchemaStore) -> None:
    assert client.post("/subjects/ref1/versions", json={"schema": SUB1}).json() == {"id": 1}
    assert client.post("/subjects/ref2/versions", json={"schema": SUB2}).json() == {"id": 2}

    registered = client.post("/subjects/s/versions?normalize=true", json={"schema": MAIN, "references": [REF2, REF1]})
    assert registered.json() == {"id": 3}
    # stored in Confluent's normalized order (subject, then version)
    assert client.get("/subjects/s/versions/1").json()["references"] == [REF1, REF2]

    for refs in ([REF1, REF2], [REF2, REF1]):
        found = client.post("/subjects/s?normalize=true", json={"schema": MAIN_SPELLED_APART, "references": refs})
        assert (found.json()["version"], found.json()["id"]) == (1, 3), refs
        again = client.post("/subjects/s/versions?normalize=true", json={"schema": MAIN, "references": refs})
        assert again.json() == {"id": 3}, refs
    assert client.get("/subjects/s/versions").json() == [1]

    # without normalize the order is part of the identity, as in Confluent
    unsorted = client.post("/subjects/s?normalize=false", json={"schema": MAIN, "references": [REF2, REF1]})
    assert _error(unsorted)[:2] == (404, 40403)
    backwards = [SchemaReference(**REF2), SchemaReference(**REF1)]
    assert store.lookup("s", MAIN, backwards, normalize_references=True).version == 1
    assert store.register("t", MAIN, backwards, normalize_references=True).references == tuple(reversed(backwards))


# -- 4. a soft subject delete keeps the subject's compatibility override (KafkaSchemaRegistry.deleteSubject) -


def test_soft_subject_delete_keeps_the_override_permanent_drops_it(client: TestClient, store: SchemaStore) -> None:
    assert client.post("/subjects/s/versions", json={"schema": V1}).json() == {"id": 1}
    assert client.put("/config/s", json={"compatibility": "NONE"}).json() == {"compatibility": "NONE"}

    assert client.delete("/subjects/s").json() == [1]
    assert client.get("/config/s").json() == {"compatibilityLevel": "NONE"}
    assert store.subject_compatibility("s") is not None

    assert client.delete("/subjects/s?permanent=true").json() == [1]
    assert _error(client.get("/config/s")) == (
        404,
        40408,
        "Subject 's' does not have subject-level compatibility configured",
    )
    assert store.subject_compatibility("s") is None


def test_override_kept_through_a_soft_delete_still_governs_registration(client: TestClient) -> None:
    assert client.post("/subjects/s/versions", json={"schema": V1}).json() == {"id": 1}
    assert client.put("/config/s", json={"compatibility": "NONE"}).json() == {"compatibility": "NONE"}
    assert client.delete("/subjects/s").json() == [1]
    # a soft-deleted subject has no live version: anything registers; the override stays NONE
    assert client.post("/subjects/s/versions", json={"schema": _record("R", ("a", "int"))}).status_code == 200
    assert client.post("/subjects/s/versions", json={"schema": _record("R", ("z", "long"))}).status_code == 200
    assert client.get("/config/s").json() == {"compatibilityLevel": "NONE"}


# -- 4b. Re-registering a soft-deleted schema (RestApiTest.testSameIdTombstone...) ---------------------------


def test_reregistering_a_soft_deleted_schema_drops_its_soft_deleted_versions(client: TestClient) -> None:
    assert client.put("/config/s", json={"compatibility": "NONE"}).status_code == 200
    assert client.post("/subjects/s/versions", json={"schema": V1}).json() == {"id": 1}
    assert client.post("/subjects/s/versions", json={"schema": V2}).json() == {"id": 2}
    assert client.delete("/subjects/s/versions/1").json() == 1
    assert client.delete("/subjects/s/versions/2").json() == 2

    assert client.post("/subjects/s/versions", json={"schema": V2}).json() == {"id": 2}
    assert client.get("/subjects/s/versions/3").json()["id"] == 2
    # the soft-deleted version of the same id is gone for good; one of another id stays soft-deleted
    assert _error(client.get("/subjects/s/versions/2?deleted=true"))[:2] == (404, 40402)
    assert client.get("/subjects/s/versions?deleted=true").json() == [1, 3]
    assert client.get("/subjects/s/versions/1?deleted=true").json()["deleted"] is True
    assert client.get("/schemas/ids/2/versions?deleted=true").json() == [{"subject": "s", "version": 3}]


def test_reregistering_keeps_a_soft_deleted_version_that_a_schema_references(client: TestClient) -> None:
    user = _record("User", ("id", "long"), namespace="ns")
    order = _record("Order", ("buyer", "ns.User"), namespace="ns")
    assert client.post("/subjects/user/versions", json={"schema": user}).json() == {"id": 1}
    reference = [{"name": "ns.User", "subject": "user", "version": 1}]
    assert client.post("/subjects/order/versions", json={"schema": order, "references": reference}).json() == {"id": 2}
    assert client.delete("/subjects/order/versions/1").json() == 1
    assert client.delete("/subjects/user/versions/1").json() == 1

    assert client.post("/subjects/user/versions", json={"schema": user}).json() == {"id": 1}
    assert client.get("/subjects/user/versions?deleted=true").json() == [1, 2]
    assert client.get("/subjects/user/versions/1/referencedby?deleted=true").json() == [2]


# -- 5. Avro's wording for an undefined type name in a record field -----------------------------------------


def test_undefined_type_name_of_a_field_in_avro_words(client: TestClient) -> None:
    schema = _record("R", ("field1", "str"))
    for url in ("/subjects/s/versions", "/subjects/s", "/compatibility/subjects/s/versions/latest"):
        assert _error(client.post(url, json={"schema": schema})) == (
            422,
            42201,
            'Invalid schema of type AVRO, details: "str" is not a defined name. The type of the "field1" field '
            'must be a defined name or a {"type": ...} expression.',
        ), url
    # the enclosing namespace is searched first, as Avro does: a name it resolves is no error
    nested = _record("R", ("inner", json.loads(_record("Inner", ("x", "int")))), ("again", "Inner"), namespace="ns")
    assert client.post("/subjects/s/versions", json={"schema": nested}).json() == {"id": 1}
    # an undefined name elsewhere (in a union) keeps this registry's wording
    union = _record("U", ("f", ["null", "str"]))
    assert _error(client.post("/subjects/u/versions", json={"schema": union}))[:2] == (422, 42201)


_LONE = "\\ud800"  # a JSON escape of half a UTF-16 pair, alone


@pytest.mark.parametrize(
    "body",
    [
        '{"schema": "{\\"type\\":\\"record\\",\\"name\\":\\"R\\",\\"doc\\":\\"'
        + _LONE.replace("\\", "\\\\")
        + '\\",\\"fields\\":[]}"}',
        '{"schema": "\\"string\\"", "schemaType": "' + _LONE + '"}',
        '{"schema": "\\"string\\"", "schemaTyp' + _LONE + '": 1}',
        '{"schema": "\\"string\\"", "references": [{"name": "a", "subject": "' + _LONE + '", "version": 1}]}',
    ],
)
@pytest.mark.parametrize("route", ["/subjects/y/versions", "/subjects/y", "/compatibility/subjects/y/versions/latest"])
def test_a_lone_surrogate_anywhere_in_a_body_is_42201_not_a_500(client: TestClient, body: str, route: str) -> None:
    """Python keeps ``\\ud800`` as a lone surrogate that SQLite and the JSON answer cannot encode: these were bare
    ``text/plain`` 500s (and the same schema 200 on the compatibility route)."""
    client.post("/subjects/y/versions", json={"schema": '"string"'})
    response = client.post(route, content=body, headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    status, code, message = _error(response)
    assert (status, code) == (422, 42201), message
    assert "unpaired surrogate (\\ud800)" in message


def test_a_bug_is_a_500_in_confluents_shape(
    client: TestClient, store: SchemaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No handler covered other exceptions: Starlette's plain-text page, where clients parse ``error_code``."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(store, "register", broken)
    response = client.post("/subjects/z/versions", json={"schema": '"string"'})
    status, code, message = _error(response)
    assert (status, code) == (500, 50001)
    assert "RuntimeError" in message and "a bug" not in message
    assert response.headers["content-type"].startswith("application/vnd.schemaregistry.v1+json")
