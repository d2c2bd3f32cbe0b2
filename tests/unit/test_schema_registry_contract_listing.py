"""Confluent Schema Registry routes found missing or different by a contract review: ``GET /schemas``
(SchemasResource.getSchemas: ``subjectPrefix``, ``deleted``, ``latestOnly``, ``offset``, ``limit``) and
``GET /mode/{subject}`` (ModeResource.getMode: 40409 unless ``defaultToGlobal=true``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry.schema_registry.api import create_schema_registry_app
from registry.schema_registry.store import SchemaStore

V1 = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]})
V2 = json.dumps(
    {
        "type": "record",
        "name": "R",
        "fields": [{"name": "a", "type": "string"}, {"name": "b", "type": "long", "default": 0}],
    }
)


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    store = SchemaStore(tmp_path / "schemas.db", default_compatibility="BACKWARD")
    return TestClient(create_schema_registry_app(store), raise_server_exceptions=False)


def _error(response: Any) -> tuple[int, int, str]:
    return response.status_code, response.json()["error_code"], response.json()["message"]


def _pairs(response: Any) -> list[tuple[str, int, int]]:
    assert response.status_code == 200, response.text
    return [(s["subject"], s["version"], s["id"]) for s in response.json()]


def test_get_schemas_lists_every_live_version_by_subject_then_version(client: TestClient) -> None:
    assert client.get("/schemas").json() == []
    for subject in ("b-value", "a-value"):
        client.post(f"/subjects/{subject}/versions", json={"schema": V1})
        client.post(f"/subjects/{subject}/versions", json={"schema": V2})
    first = client.get("/schemas").json()[0]
    assert first == {
        "subject": "a-value",
        "version": 1,
        "id": 1,
        "schema": client.get("/schemas/ids/1").json()["schema"],
    }
    assert _pairs(client.get("/schemas")) == [
        ("a-value", 1, 1),
        ("a-value", 2, 2),
        ("b-value", 1, 1),
        ("b-value", 2, 2),
    ]
    assert _pairs(client.get("/schemas?subjectPrefix=b")) == [("b-value", 1, 1), ("b-value", 2, 2)]
    assert _pairs(client.get("/schemas?latestOnly=true")) == [("a-value", 2, 2), ("b-value", 2, 2)]
    assert _pairs(client.get("/schemas?offset=1&limit=2")) == [("a-value", 2, 2), ("b-value", 1, 1)]
    assert _pairs(client.get("/schemas?offset=3&limit=-1")) == [("b-value", 2, 2)]


def test_get_schemas_shows_soft_deleted_versions_only_with_deleted_true(client: TestClient) -> None:
    client.post("/subjects/s/versions", json={"schema": V1})
    client.post("/subjects/s/versions", json={"schema": V2})
    client.delete("/subjects/s/versions/2")
    assert _pairs(client.get("/schemas")) == [("s", 1, 1)]
    listed = client.get("/schemas?deleted=true").json()
    assert [(s["version"], s.get("deleted")) for s in listed] == [(1, None), (2, True)]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("1", False),
        (" true", False),
        ("yes", False),
        ("false", False),
        ("", False),
    ],
)
def test_a_flag_is_true_as_confluents_java_reads_it(client: TestClient, value: str, shown: bool) -> None:
    """``Boolean.valueOf``: ``true`` in any case, and nothing else (``?deleted=1`` was read as true here)."""
    client.post("/subjects/s/versions", json={"schema": V1})
    client.post("/subjects/s/versions", json={"schema": V2})
    client.delete("/subjects/s/versions/2")
    versions = client.get("/subjects/s/versions", params={"deleted": value}).json()
    assert versions == ([1, 2] if shown else [1])
    # given twice, the first counts
    twice = client.get("/subjects/s/versions", params=[("deleted", value), ("deleted", "false" if shown else "true")])
    assert twice.json() == ([1, 2] if shown else [1])


def test_subject_mode_without_an_override_is_40409_unless_default_to_global(client: TestClient) -> None:
    assert client.get("/mode").json() == {"mode": "READWRITE"}
    assert _error(client.get("/mode/s")) == (404, 40409, "Subject 's' does not have subject-level mode configured")
    assert client.get("/mode/s?defaultToGlobal=true").json() == {"mode": "READWRITE"}


@pytest.mark.parametrize(("method", "path"), [("PUT", "/mode"), ("PUT", "/mode/s"), ("DELETE", "/mode/s")])
def test_the_mode_cannot_be_set_even_to_readwrite(client: TestClient, method: str, path: str) -> None:
    """README: the mode cannot be set: 405 with ``Allow: GET, HEAD``, and GET still answers READWRITE."""
    answer = client.request(method, path, json={"mode": "READWRITE"})
    assert _error(answer) == (405, 405, "HTTP 405 Method Not Allowed")
    assert answer.headers["allow"] == "GET, HEAD"
    assert client.get("/mode").json() == {"mode": "READWRITE"}


def test_every_list_route_pages_with_offset_and_limit_as_confluent_clients_send_them(client: TestClient) -> None:
    """confluent-kafka-python sends ``offset`` and ``limit`` on get_subjects, get_versions, get_referenced_by,
    and the id's subjects and versions; Confluent skips ``offset`` and caps at a positive ``limit``."""
    for subject in ("a", "b", "c"):
        client.post(f"/subjects/{subject}/versions", json={"schema": V1})
    client.post("/subjects/a/versions", json={"schema": V2})
    assert client.get("/subjects?offset=1&limit=1").json() == ["b"]
    assert client.get("/subjects?offset=1&limit=-1").json() == ["b", "c"]
    assert client.get("/subjects?offset=0&limit=0").json() == ["a", "b", "c"]
    assert client.get("/subjects/a/versions?offset=1&limit=5").json() == [2]
    assert client.get("/schemas/ids/1/subjects?offset=1&limit=1").json() == ["b"]
    assert client.get("/schemas/ids/1/versions?offset=2&limit=-1").json() == [{"subject": "c", "version": 1}]
    assert client.get("/subjects/a/versions/1/referencedby?offset=0&limit=-1").json() == []


def test_subjects_and_versions_of_an_unknown_id_say_schema_not_found_without_the_id(client: TestClient) -> None:
    """SchemasResource.getSubjects / getVersions throw ``Errors.schemaNotFoundException()`` (no id); only
    ``GET /schemas/ids/{id}`` and ``/schema`` name the id."""
    assert _error(client.get("/schemas/ids/7/subjects")) == (404, 40403, "Schema not found")
    assert _error(client.get("/schemas/ids/7/versions")) == (404, 40403, "Schema not found")
    assert _error(client.get("/schemas/ids/7")) == (404, 40403, "Schema 7 not found")
    assert _error(client.get("/schemas/ids/7/schema")) == (404, 40403, "Schema 7 not found")


def test_the_context_wildcard_prefix_lists_every_subject(client: TestClient) -> None:
    """``:*:`` is the default ``subjectPrefix`` of Confluent's ``GET /subjects`` (QualifiedSubject.CONTEXT_WILDCARD)
    and what the Confluent CLI sends unless told otherwise: every subject, of every context (here, the one)."""
    for subject in ("a", "b"):
        client.post(f"/subjects/{subject}/versions", json={"schema": V1})
    assert client.get("/subjects?subjectPrefix=:*:").json() == ["a", "b"]
    assert _pairs(client.get("/schemas?subjectPrefix=:*:")) == [("a", 1, 1), ("b", 1, 1)]
    assert client.get("/subjects?subjectPrefix=b").json() == ["b"]


def test_contexts_lists_the_default_context_only(client: TestClient) -> None:
    """``GET /contexts`` (confluent-kafka-python's get_contexts): Confluent lists its DEFAULT_CONTEXT, ``"."``,
    first; this registry has that one only."""
    assert client.get("/contexts?offset=0&limit=-1").json() == ["."]
    assert client.get("/contexts?offset=1").json() == []
