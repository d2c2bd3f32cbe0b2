"""Schemas registered before the parser refused them (a field name with ``-``, an int default out of range,
a duplicate in a union): they keep their ids and are read as they are, and the subject is not stuck.

As Confluent does (``AvroSchema.getParser``: a schema it already holds is parsed with
``NameValidator.NO_VALIDATION`` and without default validation, ``validateAsNew`` false), a compatibility check
parses the versions it compares against, and a lookup the schema it looks for, without checking names or
defaults; a new schema is still checked in full. A stored version that does not parse even so is a 422 (42201)
naming that version, never a 500; the way past it is the subject's compatibility set to NONE for the
registration (or that version deleted).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry.schema_registry.api import create_schema_registry_app
from registry.schema_registry.store import SchemaStore


def _record(*fields: dict[str, Any]) -> str:
    """A record schema in the compact text the registry keeps (Avro Java's ``toString``)."""
    return json.dumps({"type": "record", "name": "R", "fields": list(fields)}, separators=(",", ":"))


V1 = _record({"name": "a", "type": "int"})
# what an older registry accepted and Avro 1.12 Java's parser refuses as a new schema
LEGACY_NAMES = _record({"name": "a", "type": "int"}, {"name": "b-c", "type": "int", "default": 2**31})
LEGACY_UNION = _record({"name": "a", "type": ["int", "int"]})
COMPATIBLE = _record({"name": "a", "type": "int"}, {"name": "z", "type": "string", "default": ""})
INCOMPATIBLE = _record({"name": "a", "type": "string"})


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "schemas.db"


@pytest.fixture
def client(db: Path) -> TestClient:
    store = SchemaStore(db, default_compatibility="BACKWARD")
    return TestClient(create_schema_registry_app(store), raise_server_exceptions=False)


def _stored_as(client: TestClient, db: Path, legacy: str) -> None:
    """Version 1 of subject ``s`` (id 1) holding ``legacy``, as a store written by an older registry holds it."""
    assert client.post("/subjects/s/versions", json={"schema": V1}).json() == {"id": 1}
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schemas SET normalized = ? WHERE id = 1", (legacy,))
    assert client.post("/subjects/s/versions", json={"schema": legacy}).status_code == 422  # refused as new


def test_a_stored_schema_with_names_and_defaults_refused_now_is_read_and_compared(client: TestClient, db: Path) -> None:
    _stored_as(client, db, LEGACY_NAMES)
    assert client.get("/schemas/ids/1").json() == {"schema": LEGACY_NAMES}
    assert client.get("/subjects/s/versions/1").json()["schema"] == LEGACY_NAMES
    check = client.post("/compatibility/subjects/s/versions/latest?verbose=true", json={"schema": COMPATIBLE})
    assert check.json() == {"is_compatible": True, "messages": []}
    refused = client.post("/subjects/s/versions", json={"schema": INCOMPATIBLE})
    assert (refused.status_code, refused.json()["error_code"]) == (409, 409)
    assert "{oldSchemaVersion: 1}" in refused.json()["message"]
    assert client.post("/subjects/s/versions", json={"schema": COMPATIBLE}).json() == {"id": 2}


def test_a_lookup_finds_a_stored_schema_the_parser_refuses_now(client: TestClient, db: Path) -> None:
    """A producer that does not auto-register looks its schema up (Confluent's lookup does not check names or
    defaults): it is found, not refused."""
    _stored_as(client, db, LEGACY_NAMES)
    found = client.post("/subjects/s", json={"schema": LEGACY_NAMES})
    assert (found.status_code, found.json()) == (
        200,
        {"subject": "s", "version": 1, "id": 1, "schema": LEGACY_NAMES},
    )
    missing = client.post("/subjects/s", json={"schema": _record({"name": "x", "type": "int", "default": "no"})})
    assert (missing.status_code, missing.json()["error_code"]) == (404, 40403)


def test_a_stored_version_that_does_not_parse_is_a_422_naming_it_and_none_gets_past_it(
    client: TestClient, db: Path
) -> None:
    _stored_as(client, db, LEGACY_UNION)
    assert client.get("/schemas/ids/1").json() == {"schema": LEGACY_UNION}
    message = (
        "Invalid schema of type AVRO, details: version 1 (already registered) does not parse: Duplicate in union:int"
    )
    refused = client.post("/subjects/s/versions", json={"schema": COMPATIBLE})
    assert (refused.status_code, refused.json()) == (422, {"error_code": 42201, "message": message})
    check = client.post("/compatibility/subjects/s/versions/1?verbose=true", json={"schema": COMPATIBLE})
    assert (check.status_code, check.json()) == (200, {"is_compatible": False, "messages": [message]})

    assert client.put("/config/s", json={"compatibility": "NONE"}).status_code == 200
    assert client.post("/subjects/s/versions", json={"schema": COMPATIBLE}).json() == {"id": 2}
    assert client.delete("/config/s").status_code == 200
    # the latest version now parses: BACKWARD checks it, not version 1
    assert client.post("/subjects/s/versions", json={"schema": V1}).status_code == 200


def test_deleting_the_version_that_does_not_parse_gets_past_it(client: TestClient, db: Path) -> None:
    _stored_as(client, db, LEGACY_UNION)
    assert client.delete("/subjects/s/versions/1").json() == 1
    assert client.post("/subjects/s/versions", json={"schema": COMPATIBLE}).json() == {"id": 2}
