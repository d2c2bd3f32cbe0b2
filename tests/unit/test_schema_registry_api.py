"""The schema registry's REST API (Confluent's dialect) through FastAPI's TestClient: reads, writes, config, deletes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry.schema_registry.api import CONTENT_TYPE, create_schema_registry_app
from registry.schema_registry.store import SchemaStore, normalize
from schemas import load_schema

SUBJECT = "card_transactions-value"


def _with_fields(*changes: tuple[str, Any]) -> str:
    """The card transaction schema with fields replaced (same name) or appended."""
    schema = load_schema("card_transaction")
    fields = {f["name"]: f for f in schema["fields"]}
    for name, field_type in changes:
        fields[name] = {**fields.get(name, {}), "name": name, "type": field_type}
        if isinstance(field_type, list) and field_type[0] == "null":
            fields[name]["default"] = None
    schema["fields"] = list(fields.values())
    return json.dumps(schema)


CARD = json.dumps(load_schema("card_transaction"))
CARD_V2 = _with_fields(("channel", ["null", "string"]))  # a new optional field with a default
CARD_V3 = _with_fields(("channel", ["null", "string"]), ("country", ["null", "string"]))
CARD_BAD = _with_fields(("amount", "string"))  # double -> string: no reader can cope
CARD_REQUIRED = _with_fields(("merchant_category", "string"))  # a new field without a default


def body(schema: str, **extra: Any) -> dict[str, Any]:
    return {"schema": schema, **extra}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "registry" / "schemas.db"


@pytest.fixture
def store(db: Path) -> SchemaStore:
    return SchemaStore(db, default_compatibility="BACKWARD")  # as `python -m registry.schema_registry` runs it


@pytest.fixture
def client(store: SchemaStore) -> TestClient:
    return TestClient(create_schema_registry_app(store), raise_server_exceptions=False)


def error(response: Any) -> tuple[int, int]:
    return response.status_code, response.json()["error_code"]


# ---------------------------------------------------------------------------------------------
# Reads and writes
# ---------------------------------------------------------------------------------------------


def test_register_lookup_and_fetch(client: TestClient) -> None:
    response = client.post(f"/subjects/{SUBJECT}/versions", json=body(CARD))
    assert (response.status_code, response.json()) == (200, {"id": 1})
    assert response.headers["content-type"] == CONTENT_TYPE
    assert client.post(f"/subjects/{SUBJECT}/versions", json=body(CARD_V2)).json() == {"id": 2}

    assert client.get("/subjects").json() == [SUBJECT]
    assert client.get(f"/subjects/{SUBJECT}/versions").json() == [1, 2]
    latest = {"subject": SUBJECT, "version": 2, "id": 2, "schema": normalize(CARD_V2)}
    assert client.get(f"/subjects/{SUBJECT}/versions/latest").json() == latest
    assert client.get(f"/subjects/{SUBJECT}/versions/-1").json() == latest
    assert client.get(f"/subjects/{SUBJECT}/versions/1").json()["schema"] == normalize(CARD)
    raw = client.get(f"/subjects/{SUBJECT}/versions/1/schema")
    assert raw.status_code == 200
    assert json.loads(raw.text) == json.loads(CARD)

    pretty = json.dumps(json.loads(CARD), indent=2)
    found = client.post(f"/subjects/{SUBJECT}", json=body(pretty)).json()
    assert found == {"subject": SUBJECT, "version": 1, "id": 1, "schema": normalize(CARD)}

    assert client.get("/schemas/ids/2").json() == {"schema": normalize(CARD_V2)}
    assert json.loads(client.get("/schemas/ids/2/schema").text) == json.loads(CARD_V2)
    assert client.get("/schemas/ids/1/subjects").json() == [SUBJECT]
    assert client.get("/schemas/ids/1/versions").json() == [{"subject": SUBJECT, "version": 1}]
    assert client.get("/schemas/types").json() == ["AVRO"]
    assert client.get("/mode").json() == {"mode": "READWRITE"}
    assert client.get(f"/mode/{SUBJECT}?defaultToGlobal=true").json() == {"mode": "READWRITE"}


def test_identical_schema_has_one_id_across_subjects(client: TestClient) -> None:
    client.post("/subjects/a/versions", json=body(CARD))
    assert client.post("/subjects/b/versions", json=body(json.dumps(json.loads(CARD), indent=4))).json() == {"id": 1}
    assert client.post("/subjects/a/versions", json=body(CARD)).json() == {"id": 1}  # no new version either
    assert client.get("/subjects/a/versions").json() == [1]
    assert client.get("/schemas/ids/1/subjects").json() == ["a", "b"]
    assert client.get("/schemas/ids/1/versions").json() == [
        {"subject": "a", "version": 1},
        {"subject": "b", "version": 1},
    ]


def test_not_found_codes(client: TestClient) -> None:
    assert error(client.get("/subjects/nope/versions")) == (404, 40401)
    assert error(client.get("/subjects/nope/versions/1")) == (404, 40401)
    assert error(client.get("/subjects/nope/versions/latest")) == (404, 40401)
    assert error(client.post("/subjects/nope", json=body(CARD))) == (404, 40401)
    client.post(f"/subjects/{SUBJECT}/versions", json=body(CARD))
    assert error(client.get(f"/subjects/{SUBJECT}/versions/7")) == (404, 40402)
    assert error(client.get(f"/subjects/{SUBJECT}/versions/7/schema")) == (404, 40402)
    assert error(client.post(f"/subjects/{SUBJECT}", json=body(CARD_V2))) == (404, 40403)
    assert error(client.get("/schemas/ids/99")) == (404, 40403)
    assert error(client.get("/schemas/ids/abc")) == (404, 40403)
    assert error(client.get("/schemas/ids/99/subjects")) == (404, 40403)
    assert error(client.get("/schemas/ids/99/versions")) == (404, 40403)
    for bad in ("0", "abc", "-2", str(2**31)):
        assert error(client.get(f"/subjects/{SUBJECT}/versions/{bad}")) == (422, 42202)
    assert error(client.get("/no/such/route")) == (404, 404)
    assert error(client.put("/subjects")) == (405, 405)


# ---------------------------------------------------------------------------------------------
# Compatibility and config
# ---------------------------------------------------------------------------------------------


def test_incompatible_schema_is_409_and_writes_nothing(client: TestClient) -> None:
    client.post(f"/subjects/{SUBJECT}/versions", json=body(CARD))
    response = client.post(f"/subjects/{SUBJECT}/versions", json=body(CARD_BAD))
    assert error(response) == (409, 409)
    assert "field `amount`: writer type double cannot be read as string" in response.json()["message"]
    assert "BACKWARD" in response.json()["message"]
    assert error(client.post(f"/subjects/{SUBJECT}/versions", json=body(CARD_REQUIRED))) == (409, 409)
    assert client.get(f"/subjects/{SUBJECT}/versions").json() == [1]
    # the refused schemas took no id: the next new schema gets 2
    assert client.post(f"/subjects/{SUBJECT}/versions", json=body(CARD_V2)).json() == {"id": 2}


def test_none_accepts_what_backward_refuses(client: TestClient) -> None:
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    client.post(f"/subjects/{SUBJECT}/versions", json=body(CARD))
    response = client.put("/config", json={"compatibility": "NONE"})
    assert response.json() == {"compatibility": "NONE"}
    assert client.get("/config").json() == {"compatibilityLevel": "NONE"}
    assert client.post(f"/subjects/{SUBJECT}/versions", json=body(CARD_BAD)).json() == {"id": 2}
    assert client.get(f"/subjects/{SUBJECT}/versions").json() == [1, 2]


def test_subject_config_overrides_global(client: TestClient) -> None:
    for subject in ("loose", "strict"):
        client.post(f"/subjects/{subject}/versions", json=body(CARD))
    assert error(client.get("/config/loose")) == (404, 40408)
    assert client.get("/config/loose?defaultToGlobal=true").json() == {"compatibilityLevel": "BACKWARD"}
    assert client.put("/config/loose", json={"compatibilityLevel": "none"}).json() == {"compatibility": "NONE"}
    assert client.get("/config/loose").json() == {"compatibilityLevel": "NONE"}
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD"}

    assert client.post("/subjects/loose/versions", json=body(CARD_BAD)).status_code == 200
    assert error(client.post("/subjects/strict/versions", json=body(CARD_BAD))) == (409, 409)

    # FORWARD on one subject: a new required field is fine there (old readers ignore it), not elsewhere
    client.put("/config/strict", json={"compatibility": "FORWARD"})
    assert client.post("/subjects/strict/versions", json=body(CARD_REQUIRED)).status_code == 200

    assert client.delete("/config/loose").json() == {"compatibilityLevel": "NONE"}
    assert error(client.delete("/config/loose")) == (404, 40401)
    assert client.get("/config/loose?defaultToGlobal=true").json() == {"compatibilityLevel": "BACKWARD"}
    assert error(client.post("/subjects/loose/versions", json=body(CARD_V2))) == (409, 409)  # back under BACKWARD


def test_invalid_compatibility_level_is_42203(client: TestClient) -> None:
    assert error(client.put("/config", json={"compatibility": "SIDEWAYS"})) == (422, 42203)
    assert error(client.put("/config/s", json={"compatibility": ""})) == (422, 42203)
    assert client.put("/config/s", json={}).json() == {}  # no level: nothing to refuse, nothing changed
    assert error(client.put("/config", json={"compatibility": "FULL", "colour": "red"})) == (422, 422)
    assert error(client.put("/config", content=b"{nope")) == (422, 42201)
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD"}


def test_transitive_level_checks_all_versions(client: TestClient) -> None:
    v1 = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]})
    v2 = json.dumps({"type": "record", "name": "R", "fields": [{"name": "b", "type": "string", "default": "x"}]})
    v3 = json.dumps({"type": "record", "name": "R", "fields": [{"name": "b", "type": "string"}]})
    for schema in (v1, v2):
        assert client.post("/subjects/s/versions", json=body(schema)).status_code == 200
    client.put("/config/s", json={"compatibility": "BACKWARD_TRANSITIVE"})
    response = client.post("/subjects/s/versions", json=body(v3))
    assert error(response) == (409, 409)
    assert "against version 1" in response.json()["message"]
    client.put("/config/s", json={"compatibility": "BACKWARD"})
    assert client.post("/subjects/s/versions", json=body(v3)).json() == {"id": 3}


def test_compatibility_endpoint(client: TestClient) -> None:
    url = f"/compatibility/subjects/{SUBJECT}/versions"
    # a subject without versions accepts anything against latest, and has no version 1 (40402, as Confluent)
    assert client.post(f"{url}/latest", json=body(CARD_BAD)).json() == {"is_compatible": True}
    assert error(client.post(f"{url}/1", json=body(CARD))) == (404, 40402)

    client.post(f"/subjects/{SUBJECT}/versions", json=body(CARD))
    # `messages` only with verbose=true, as Confluent's NON_NULL CompatibilityCheckResponse
    assert client.post(f"{url}/latest", json=body(CARD_V2)).json() == {"is_compatible": True}
    assert client.post(f"{url}/latest", json=body(CARD_BAD)).json() == {"is_compatible": False}
    verbose = client.post(f"{url}/1?verbose=true", json=body(CARD_BAD)).json()
    assert verbose["is_compatible"] is False
    assert verbose["messages"] == [
        "BACKWARD check against version 1: field `amount`: writer type double cannot be read as string"
    ]
    assert client.post(url, json=body(CARD_V2)).json()["is_compatible"] is True
    assert error(client.post(f"{url}/7", json=body(CARD))) == (404, 40402)
    assert error(client.post(f"{url}/zero", json=body(CARD))) == (422, 42202)
    assert error(client.post(f"{url}/latest", json=body("{"))) == (422, 42201)
    assert client.get(f"/subjects/{SUBJECT}/versions").json() == [1]  # checking registers nothing


# ---------------------------------------------------------------------------------------------
# Deletes
# ---------------------------------------------------------------------------------------------


def test_soft_then_hard_delete_of_a_version(client: TestClient) -> None:
    versions = f"/subjects/{SUBJECT}/versions"
    client.post(versions, json=body(CARD))
    client.post(versions, json=body(CARD_V2))
    assert error(client.delete(f"{versions}/2?permanent=true")) == (404, 40407)
    assert client.delete(f"{versions}/2").json() == 2
    assert error(client.delete(f"{versions}/2")) == (404, 40406)
    assert client.get(versions).json() == [1]
    assert client.get(f"{versions}?deleted=true").json() == [1, 2]
    assert error(client.get(f"{versions}/2")) == (404, 40402)
    assert client.get(f"{versions}/2?deleted=true").json()["id"] == 2
    assert client.get(f"{versions}/latest").json()["version"] == 1
    assert client.get("/schemas/ids/2").json() == {"schema": normalize(CARD_V2)}  # records on topics still decode
    assert client.get("/schemas/ids/2/versions").json() == []
    assert client.get("/schemas/ids/2/versions?deleted=true").json() == [{"subject": SUBJECT, "version": 2}]
    assert error(client.post(f"/subjects/{SUBJECT}", json=body(CARD_V2))) == (404, 40403)
    assert client.post(f"/subjects/{SUBJECT}?deleted=true", json=body(CARD_V2)).json()["version"] == 2

    # registering it again makes a new version with the same id and drops the soft-deleted one, as Confluent does
    assert client.post(versions, json=body(CARD_V2)).json() == {"id": 2}
    assert client.get(versions).json() == [1, 3]
    assert client.get(f"{versions}?deleted=true").json() == [1, 3]
    assert client.delete(f"{versions}/latest").json() == 3

    assert client.delete(f"{versions}/3?permanent=true").json() == 3
    assert client.get(f"{versions}?deleted=true").json() == [1]
    assert error(client.delete(f"{versions}/2?permanent=true")) == (404, 40402)
    assert error(client.delete(f"{versions}/3?permanent=true")) == (404, 40402)
    assert error(client.delete(f"{versions}/9")) == (404, 40402)
    assert error(client.delete("/subjects/nope/versions/1")) == (404, 40401)
    # no version holds id 2 any more: Confluent forgets it (InMemoryCache.schemaTombstoned), its reads are 40403
    assert error(client.get("/schemas/ids/2")) == (404, 40403)
    assert error(client.get("/schemas/ids/2/schema")) == (404, 40403)
    assert error(client.get("/schemas/ids/2/versions?deleted=true")) == (404, 40403)
    assert error(client.get("/schemas/ids/2/subjects?deleted=true")) == (404, 40403)
    assert client.get("/schemas/ids/1").status_code == 200  # version 1 holds it


def test_soft_then_hard_delete_of_a_subject(client: TestClient) -> None:
    client.post(f"/subjects/{SUBJECT}/versions", json=body(CARD))
    client.post(f"/subjects/{SUBJECT}/versions", json=body(CARD_V2))
    client.post("/subjects/other/versions", json=body(CARD))
    client.put(f"/config/{SUBJECT}", json={"compatibility": "NONE"})

    assert error(client.delete(f"/subjects/{SUBJECT}?permanent=true")) == (404, 40405)
    assert client.delete(f"/subjects/{SUBJECT}").json() == [1, 2]
    assert error(client.delete(f"/subjects/{SUBJECT}")) == (404, 40404)
    assert client.get("/subjects").json() == ["other"]
    assert client.get("/subjects?deleted=true").json() == [SUBJECT, "other"]
    assert client.get("/subjects?deletedOnly=true").json() == [SUBJECT]
    assert client.get("/subjects?deleted_only=true").json() == ["other"]  # Confluent reads deletedOnly only
    assert error(client.get(f"/subjects/{SUBJECT}/versions")) == (404, 40401)
    assert client.get(f"/subjects/{SUBJECT}/versions?deleted=true").json() == [1, 2]
    assert error(client.post(f"/subjects/{SUBJECT}", json=body(CARD))) == (404, 40401)
    assert client.post(f"/subjects/{SUBJECT}?deleted=true", json=body(CARD)).json()["version"] == 1
    # a soft delete keeps the subject's config, a permanent one drops it (Confluent's deleteSubject)
    assert client.get(f"/config/{SUBJECT}").json() == {"compatibilityLevel": "NONE"}

    assert client.delete(f"/subjects/{SUBJECT}?permanent=true").json() == [1, 2]
    assert error(client.get(f"/config/{SUBJECT}")) == (404, 40408)
    assert client.get("/subjects?deleted=true").json() == ["other"]
    assert error(client.delete(f"/subjects/{SUBJECT}?permanent=true")) == (404, 40401)
    assert error(client.get("/schemas/ids/2")) == (404, 40403)  # no version holds it
    assert client.get("/schemas/ids/1").status_code == 200  # "other" still holds it
    # the subject starts again from version 1; the schema keeps its id, readable again
    assert client.post(f"/subjects/{SUBJECT}/versions", json=body(CARD_V2)).json() == {"id": 2}
    assert client.get("/schemas/ids/2").json() == {"schema": normalize(CARD_V2)}
    assert client.get(f"/subjects/{SUBJECT}/versions").json() == [1]


# ---------------------------------------------------------------------------------------------
# Request bodies
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("empty", [None, False, "", [], {}])
def test_an_unsupported_field_sent_empty_is_taken_as_not_sent(client: TestClient, empty: Any) -> None:
    assert client.post(f"/subjects/{SUBJECT}/versions", json=body(CARD, metadata=empty)).status_code == 200
    assert client.put(f"/config/{SUBJECT}", json={"compatibility": "FULL", "alias": empty}).status_code == 200


@pytest.mark.parametrize(
    ("payload", "status", "code", "message"),
    [
        (body(CARD, schemaTyp="AVRO"), 422, 422, "unknown field(s) in request body: schemaTyp"),
        (body(CARD, foo=1, bar=2), 422, 422, "unknown field(s) in request body: bar, foo"),
        (
            body(CARD, references=[{"name": "x", "subject": "y", "version": 1}]),
            422,
            42201,
            'Invalid schema of type AVRO, details: No schema reference found for subject "y" and version 1',
        ),
        (
            body(CARD, references=[{"name": "x", "subject": "y"}]),
            422,
            42201,
            "Invalid schema of type AVRO, details: Invalid reference: {name='x', subject='y', version=null}",
        ),
        (body(CARD, metadata={"properties": {"owner": "me"}}), 422, 422, "field(s) metadata are not supported"),
        (body(CARD, ruleSet={"domainRules": []}), 422, 422, "field(s) ruleSet are not supported"),
        (body(CARD, schemaType="JSON"), 422, 42201, "Invalid schema type JSON"),
        ({"schema": 5}, 422, 42201, "request body needs a string field `schema`"),
        (body("{}"), 422, 42201, "Invalid schema of type AVRO, details: "),
        (body('{"type": "enum", "name": "E"}'), 422, 42201, "Invalid schema of type AVRO, details: "),
        (
            body('{"type": "record", "name": "R", "fields": [{"name": "a", "type": "Nope"}]}'),
            422,
            42201,
            '"Nope" is not a defined name. The type of the "a" field must be a defined name',
        ),
    ],
)
def test_bad_request_bodies(client: TestClient, payload: Any, status: int, code: int, message: str) -> None:
    for url in (
        f"/subjects/{SUBJECT}/versions",
        f"/subjects/{SUBJECT}",
        f"/compatibility/subjects/{SUBJECT}/versions/latest",
    ):
        response = client.post(url, json=payload)
        assert error(response) == (status, code), url
        assert message in response.json()["message"]
    assert client.get("/subjects?deleted=true").json() == []


def test_confluent_fields_that_are_null_or_empty_are_accepted(client: TestClient) -> None:
    payload = body(CARD, schemaType="AVRO", references=[], metadata=None, ruleSet=None)
    assert client.post(f"/subjects/{SUBJECT}/versions", json=payload).json() == {"id": 1}
    assert client.post(f"/subjects/{SUBJECT}", json=payload).json()["version"] == 1


def test_malformed_and_oversized_bodies(client: TestClient) -> None:
    assert error(client.post(f"/subjects/{SUBJECT}/versions", content=b"{nope")) == (422, 42201)
    assert error(client.post(f"/subjects/{SUBJECT}/versions", content=b"\xff\xfe")) == (422, 42201)
    big = json.dumps(body(CARD, padding="x" * (1 << 20))).encode()
    assert error(client.post(f"/subjects/{SUBJECT}/versions", content=big)) == (413, 41301)
    assert error(client.put("/config", content=big)) == (413, 41301)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap applies while streaming
        for _ in range(20):
            yield b" " * 65536

    assert error(client.post(f"/subjects/{SUBJECT}/versions", content=chunks())) == (413, 41301)
    assert client.get("/subjects").json() == []


# ---------------------------------------------------------------------------------------------
# Durability
# ---------------------------------------------------------------------------------------------


def test_state_survives_reopening(client: TestClient, db: Path) -> None:
    client.post(f"/subjects/{SUBJECT}/versions", json=body(CARD))
    client.post(f"/subjects/{SUBJECT}/versions", json=body(CARD_V2))
    client.post("/subjects/gone/versions", json=body(CARD_V3))
    client.delete("/subjects/gone")
    client.put("/config", json={"compatibility": "FULL"})
    client.put(f"/config/{SUBJECT}", json={"compatibility": "FORWARD_TRANSITIVE"})

    reopened = TestClient(create_schema_registry_app(SchemaStore(db, default_compatibility="BACKWARD")))
    assert reopened.get("/subjects").json() == [SUBJECT]
    assert reopened.get("/subjects?deleted=true").json() == [SUBJECT, "gone"]
    assert reopened.get(f"/subjects/{SUBJECT}/versions/latest").json()["id"] == 2
    assert reopened.get("/schemas/ids/3").json() == {"schema": normalize(CARD_V3)}
    assert reopened.get("/config").json() == {"compatibilityLevel": "FULL"}
    assert reopened.get(f"/config/{SUBJECT}").json() == {"compatibilityLevel": "FORWARD_TRANSITIVE"}
    assert reopened.post("/subjects/new/versions", json=body(CARD_REQUIRED)).json() == {"id": 4}


def test_bare_store_keeps_accepting_everything(tmp_path: Path) -> None:
    """SchemaStore(path) without a default keeps its original meaning: no compatibility enforced."""
    bare = TestClient(create_schema_registry_app(SchemaStore(tmp_path / "bare.db")))
    assert bare.get("/config").json() == {"compatibilityLevel": "NONE"}
    bare.post("/subjects/s/versions", json=body(CARD))
    assert bare.post("/subjects/s/versions", json=body(CARD_BAD)).json() == {"id": 2}
