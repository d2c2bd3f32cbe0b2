"""The schema registry's REST API (Confluent's dialect), through FastAPI's TestClient and through
confluent-kafka's own SchemaRegistryClient and Avro serdes against a real uvicorn server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from fastapi.testclient import TestClient

from registry.schema_registry.api import CONTENT_TYPE, create_schema_registry_app
from registry.schema_registry.store import SchemaStore, normalize
from schemas import load_schema
from tests.http_server import serving

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

    # registering it again makes a new version with the same id, as Confluent does
    assert client.post(versions, json=body(CARD_V2)).json() == {"id": 2}
    assert client.get(versions).json() == [1, 3]
    assert client.delete(f"{versions}/latest").json() == 3

    assert client.delete(f"{versions}/2?permanent=true").json() == 2
    assert client.get(f"{versions}?deleted=true").json() == [1, 3]
    assert error(client.delete(f"{versions}/2?permanent=true")) == (404, 40402)
    assert error(client.delete(f"{versions}/9")) == (404, 40402)
    assert error(client.delete("/subjects/nope/versions/1")) == (404, 40401)
    assert client.get("/schemas/ids/2").status_code == 200


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
    assert client.get("/subjects?deleted_only=true").json() == [SUBJECT]
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
    assert client.get("/schemas/ids/2").status_code == 200
    # the subject starts again from version 1; the schema keeps its id
    assert client.post(f"/subjects/{SUBJECT}/versions", json=body(CARD_V2)).json() == {"id": 2}
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


# ---------------------------------------------------------------------------------------------
# confluent-kafka's own client and Avro serdes against a real server
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def registry_url(store: SchemaStore) -> Iterator[str]:
    with serving(create_schema_registry_app(store)) as url:
        yield url


TXN = {
    "transaction_id": "t-1",
    "user_id": "u-1",
    "merchant_id": "m-1",
    "amount": 12.5,
    "currency": "EUR",
    "event_time": datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=UTC),
}


def test_confluent_serdes_round_trip_and_evolution(registry_url: str) -> None:
    client = SchemaRegistryClient({"url": registry_url})
    ctx = SerializationContext("card_transactions", MessageField.VALUE)

    written_v1 = AvroSerializer(client, CARD)(TXN, ctx)
    assert written_v1 is not None and written_v1[:5] == b"\x00\x00\x00\x00\x01"  # magic byte + schema id 1
    assert AvroDeserializer(client)(written_v1, ctx) == TXN

    written_v2 = AvroSerializer(client, CARD_V2)({**TXN, "channel": "web"}, ctx)
    assert written_v2 is not None and written_v2[:5] == b"\x00\x00\x00\x00\x02"
    assert client.get_versions(SUBJECT) == [1, 2]
    # a consumer pinned to the old reader schema keeps reading what the new producer writes
    assert AvroDeserializer(client, CARD)(written_v2, ctx) == TXN
    # and a consumer on the new schema reads old records, filling the default
    assert AvroDeserializer(client, CARD_V2)(written_v1, ctx) == {**TXN, "channel": None}

    with pytest.raises(SchemaRegistryError) as refused:
        AvroSerializer(client, CARD_BAD)({**TXN, "amount": "12.5"}, ctx)
    assert (refused.value.http_status_code, refused.value.error_code) == (409, 409)
    assert "field `amount`" in refused.value.error_message
    assert client.get_versions(SUBJECT) == [1, 2]


def test_confluent_client_admin_calls(registry_url: str) -> None:
    client = SchemaRegistryClient({"url": registry_url})
    assert client.register_schema(SUBJECT, Schema(CARD, "AVRO")) == 1
    assert client.get_schema_types() == ["AVRO"]
    assert client.lookup_schema(SUBJECT, Schema(CARD, "AVRO")).version == 1
    assert client.get_latest_version(SUBJECT).schema_id == 1
    assert json.loads(client.get_version(SUBJECT, 1).schema.schema_str or "") == json.loads(CARD)

    assert client.test_compatibility(SUBJECT, Schema(CARD_V2, "AVRO")) is True
    assert client.test_compatibility(SUBJECT, Schema(CARD_BAD, "AVRO")) is False
    assert client.test_compatibility(SUBJECT, Schema(CARD_BAD, "AVRO"), version=1, verbose=True) is False
    assert client.test_compatibility_all_versions(SUBJECT, Schema(CARD_V2, "AVRO")) is True

    assert client.get_compatibility() == "BACKWARD"
    assert client.set_compatibility(SUBJECT, "none") == {"compatibility": "NONE"}
    assert client.get_compatibility(SUBJECT) == "NONE"
    assert client.get_compatibility() == "BACKWARD"
    assert client.set_compatibility(level="FULL") == {"compatibility": "FULL"}
    assert client.get_compatibility() == "FULL"
    with pytest.raises(SchemaRegistryError) as invalid:
        client.set_compatibility(level="SIDEWAYS")
    assert (invalid.value.http_status_code, invalid.value.error_code) == (422, 42203)

    assert client.register_schema(SUBJECT, Schema(CARD_BAD, "AVRO")) == 2  # NONE on this subject
    assert client.get_subjects() == [SUBJECT]
    assert client.get_subjects_by_schema_id(2) == [SUBJECT]
    assert [(v.subject, v.version) for v in client.get_schema_versions(1)] == [(SUBJECT, 1)]

    assert client.delete_version(SUBJECT, 2) == 2
    assert client.delete_subject(SUBJECT) == [1]
    assert client.get_subjects() == []
    assert client.get_subjects(deleted=True) == [SUBJECT]
    assert client.delete_subject(SUBJECT, permanent=True) == [1, 2]
    with pytest.raises(SchemaRegistryError) as gone:
        client.get_versions(SUBJECT)
    assert (gone.value.http_status_code, gone.value.error_code) == (404, 40401)
    fresh = SchemaRegistryClient({"url": registry_url})  # no cache: ids stay resolvable after deletes
    assert json.loads(fresh.get_schema(2).schema_str or "") == json.loads(CARD_BAD)


# ---------------------------------------------------------------------------------------------
# Schema references (Confluent's `references: [{name, subject, version}]`)
# ---------------------------------------------------------------------------------------------

MONEY = json.dumps(
    {
        "type": "record",
        "name": "Money",
        "namespace": "fs.common",
        "fields": [{"name": "amount", "type": "double"}, {"name": "currency", "type": "string"}],
    }
)
MONEY_V2 = json.dumps(
    {
        "type": "record",
        "name": "Money",
        "namespace": "fs.common",
        "fields": [
            {"name": "amount", "type": "double"},
            {"name": "currency", "type": "string"},
            {"name": "scale", "type": "int", "default": 2},
        ],
    }
)
PAYMENT = json.dumps(
    {
        "type": "record",
        "name": "Payment",
        "fields": [{"name": "id", "type": "string"}, {"name": "price", "type": "fs.common.Money"}],
    }
)
MONEY_REF = {"name": "fs.common.Money", "subject": "money-value", "version": 1}


def test_references_register_resolve_and_read_back(client: TestClient) -> None:
    assert client.post("/subjects/money-value/versions", json=body(MONEY)).json() == {"id": 1}
    # without its reference the named type is unknown
    unresolved = client.post("/subjects/payments-value/versions", json=body(PAYMENT))
    assert error(unresolved) == (422, 42201)
    assert unresolved.json()["message"] == (
        'Invalid schema of type AVRO, details: "fs.common.Money" is not a defined name. '
        'The type of the "price" field must be a defined name or a {"type": ...} expression.'
    )

    assert client.post("/subjects/payments-value/versions", json=body(PAYMENT, references=[MONEY_REF])).json() == {
        "id": 2
    }
    expected = {"schema": normalize(PAYMENT, [MONEY]), "references": [MONEY_REF]}
    assert client.get("/schemas/ids/2").json() == expected
    assert client.get("/schemas/ids/1").json() == {"schema": normalize(MONEY)}  # no empty `references`
    version = client.get("/subjects/payments-value/versions/1").json()
    assert version == {"subject": "payments-value", "version": 1, "id": 2, **expected}
    assert client.get("/subjects/payments-value/versions/latest").json() == version
    assert client.post("/subjects/payments-value", json=body(PAYMENT, references=[MONEY_REF])).json() == version
    # the same text without the reference is not the same schema
    assert error(client.post("/subjects/payments-value", json=body(PAYMENT))) == (422, 42201)
    assert client.get("/subjects/money-value/versions/1/referencedby").json() == [2]
    assert client.get("/subjects/money-value/versions/latest/referencedby").json() == [2]
    assert error(client.get("/subjects/money-value/versions/2/referencedby")) == (404, 40402)
    assert error(client.get("/subjects/nope/versions/1/referencedby")) == (404, 40401)


def test_reference_identity_follows_confluent(client: TestClient) -> None:
    """Same text and same references: same id, in any subject. Same text, other references: a new id."""
    client.post("/subjects/money-value/versions", json=body(MONEY))
    client.put("/config/money-value", json={"compatibility": "NONE"})
    client.post("/subjects/money-value/versions", json=body(MONEY_V2))
    first = client.post("/subjects/a-value/versions", json=body(PAYMENT, references=[MONEY_REF])).json()
    assert client.post("/subjects/b-value/versions", json=body(PAYMENT, references=[MONEY_REF])).json() == first
    assert client.post("/subjects/a-value/versions", json=body(PAYMENT, references=[MONEY_REF])).json() == first
    assert client.get("/subjects/a-value/versions").json() == [1]
    on_v2 = {**MONEY_REF, "version": 2}
    second = client.post("/subjects/a-value/versions", json=body(PAYMENT, references=[on_v2])).json()
    assert second["id"] != first["id"]
    assert client.get(f"/schemas/ids/{second['id']}").json()["references"] == [on_v2]
    # version -1 is resolved to the latest version when registering, and stored resolved
    latest = client.post("/subjects/c-value/versions", json=body(PAYMENT, references=[{**MONEY_REF, "version": -1}]))
    assert latest.json() == second
    assert sorted(client.get("/subjects/money-value/versions/1/referencedby").json()) == [first["id"]]
    assert client.get("/subjects/money-value/versions/2/referencedby").json() == [second["id"]]


def test_referenced_version_cannot_be_deleted(client: TestClient) -> None:
    client.post("/subjects/money-value/versions", json=body(MONEY))
    client.post("/subjects/payments-value/versions", json=body(PAYMENT, references=[MONEY_REF]))
    refused = client.delete("/subjects/money-value/versions/1")
    assert error(refused) == (422, 42206)
    assert refused.json()["message"] == (
        "One or more references exist to the schema {magic=1,keytype=SCHEMA,subject=money-value,version=1}."
    )
    assert error(client.delete("/subjects/money-value")) == (422, 42206)
    assert client.get("/subjects/money-value/versions").json() == [1]

    # once the referrer is only soft-deleted, a soft delete of the target is allowed, a permanent one is not
    assert client.delete("/subjects/payments-value").json() == [1]
    assert client.get("/subjects/money-value/versions/1/referencedby").json() == []
    assert client.get("/subjects/money-value/versions/1/referencedby?deleted=true").json() == [2]
    assert client.delete("/subjects/money-value/versions/1").json() == 1
    assert error(client.delete("/subjects/money-value/versions/1?permanent=true")) == (422, 42206)
    # the referrer still parses (its reference resolves to the soft-deleted version) and still decodes
    assert client.get("/schemas/ids/2").json()["references"] == [MONEY_REF]
    assert client.delete("/subjects/payments-value?permanent=true").json() == [1]
    assert client.delete("/subjects/money-value/versions/1?permanent=true").json() == 1


def test_compatibility_resolves_referenced_types(client: TestClient) -> None:
    """A change inside a referenced type is checked like an inline one: BACKWARD refuses a reference to a
    Money whose `amount` became a string, and accepts one that gained a defaulted field."""
    client.put("/config/money-value", json={"compatibility": "NONE"})
    client.post("/subjects/money-value/versions", json=body(MONEY))
    client.post("/subjects/money-value/versions", json=body(MONEY_V2))
    broken = json.loads(MONEY)
    broken["fields"][0]["type"] = "string"
    client.post("/subjects/money-value/versions", json=body(json.dumps(broken)))
    assert client.post("/subjects/payments-value/versions", json=body(PAYMENT, references=[MONEY_REF])).json() == {
        "id": 4
    }

    url = "/compatibility/subjects/payments-value/versions/latest?verbose=true"
    ok = client.post(url, json=body(PAYMENT, references=[{**MONEY_REF, "version": 2}])).json()
    assert ok == {"is_compatible": True, "messages": []}
    bad = client.post(url, json=body(PAYMENT, references=[{**MONEY_REF, "version": 3}])).json()
    assert bad["is_compatible"] is False
    assert bad["messages"] == [
        "BACKWARD check against version 1: field `price.amount`: writer type double cannot be read as string"
    ]
    refused = client.post(
        "/subjects/payments-value/versions", json=body(PAYMENT, references=[{**MONEY_REF, "version": 3}])
    )
    assert error(refused) == (409, 409)
    assert client.post(
        "/subjects/payments-value/versions", json=body(PAYMENT, references=[{**MONEY_REF, "version": 2}])
    ).json() == {"id": 5}


def test_references_nest_and_survive_a_reopen(client: TestClient, db: Path) -> None:
    """A reference's own references are resolved too (depth first), and the store keeps them across a restart."""
    client.post("/subjects/money-value/versions", json=body(MONEY))
    client.post("/subjects/payments-value/versions", json=body(PAYMENT, references=[MONEY_REF]))
    refund = json.dumps({"type": "record", "name": "Refund", "fields": [{"name": "of", "type": "Payment"}]})
    payment_ref = {"name": "Payment", "subject": "payments-value", "version": 1}
    assert client.post("/subjects/refunds-value/versions", json=body(refund, references=[payment_ref])).json() == {
        "id": 3
    }
    reopened = TestClient(create_schema_registry_app(SchemaStore(db, default_compatibility="BACKWARD")))
    assert reopened.get("/schemas/ids/3").json() == {
        "schema": normalize(refund, [MONEY, PAYMENT]),
        "references": [payment_ref],
    }
    assert reopened.get("/subjects/payments-value/versions/1/referencedby").json() == [3]


def test_a_store_from_before_references_is_migrated(tmp_path: Path) -> None:
    """A database whose `schemas` table has `normalized` unique on its own keeps its ids and accepts references."""
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE schemas (id INTEGER PRIMARY KEY AUTOINCREMENT, normalized TEXT NOT NULL UNIQUE,
                                  schema_type TEXT NOT NULL DEFAULT 'AVRO');
            CREATE TABLE subject_versions (subject TEXT NOT NULL, version INTEGER NOT NULL,
                                           schema_id INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,
                                           PRIMARY KEY (subject, version));
            """
        )
        conn.execute("INSERT INTO schemas (id, normalized) VALUES (7, ?)", (normalize(MONEY),))
        conn.execute("INSERT INTO subject_versions VALUES ('money-value', 1, 7, 0)")
    client = TestClient(create_schema_registry_app(SchemaStore(path)))
    assert client.get("/schemas/ids/7").json() == {"schema": normalize(MONEY)}
    assert client.post("/subjects/money-value/versions", json=body(MONEY)).json() == {"id": 7}
    ref = {**MONEY_REF, "version": 1}
    assert client.post("/subjects/p-value/versions", json=body(PAYMENT, references=[ref])).json() == {"id": 8}
