"""Subjects that hold a ``/``: Confluent's clients send it percent-encoded (confluent-kafka-python's
``_urlencode`` is ``quote(subject, safe='')``; Java's ``UriBuilder`` does the same), and Confluent's server
answers them as any subject (protobuf import paths such as ``a/b/c.proto`` are the common case). The
routes and the write check of the auth middleware both read such a segment as one subject."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from registry.schema_registry.api import create_schema_registry_app
from registry.schema_registry.auth import write_of
from registry.schema_registry.paths import escaped_path
from registry.schema_registry.store import SchemaStore

V1 = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]})


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    store = SchemaStore(tmp_path / "schemas.db", default_compatibility="BACKWARD")
    return TestClient(create_schema_registry_app(store), raise_server_exceptions=False)


@pytest.mark.parametrize("subject", ["a/b/c.proto", "x/versions", "caf\u00e9/v", "p%2Fq", "100%"])
def test_a_subject_with_a_slash_is_one_subject_on_every_route(client: TestClient, subject: str) -> None:
    s = quote(subject, safe="")
    assert client.post(f"/subjects/{s}/versions", json={"schema": V1}).json() == {"id": 1}
    assert client.get("/subjects").json() == [subject]
    assert client.get(f"/subjects/{s}/versions").json() == [1]
    assert client.get(f"/subjects/{s}/versions/latest").json()["subject"] == subject
    assert client.get(f"/subjects/{s}/versions/1/schema").status_code == 200
    assert client.get(f"/subjects/{s}/versions/1/referencedby").json() == []
    assert client.post(f"/subjects/{s}", json={"schema": V1}).json()["subject"] == subject
    assert client.post(f"/compatibility/subjects/{s}/versions/latest", json={"schema": V1}).json() == {
        "is_compatible": True
    }
    assert client.put(f"/config/{s}", json={"compatibility": "FULL"}).json() == {"compatibility": "FULL"}
    assert client.get(f"/config/{s}").json() == {"compatibilityLevel": "FULL"}
    assert client.get("/schemas/ids/1/versions").json() == [{"subject": subject, "version": 1}]
    assert client.delete(f"/subjects/{s}/versions/1").json() == 1
    assert client.delete(f"/subjects/{s}?permanent=true").json() == [1]


def test_an_unencoded_slash_still_separates_segments(client: TestClient) -> None:
    client.post("/subjects/a%2Fb/versions", json={"schema": V1})
    assert client.get("/subjects/a/b/versions").json() == {"error_code": 404, "message": "HTTP 404 Not Found"}


@pytest.mark.parametrize(
    ("method", "raw", "write"),
    [
        ("POST", b"/subjects/a%2Fb/versions", ("register_schema", "a/b")),
        ("POST", b"/subjects/a%2Fversions", None),  # a lookup of subject "a/versions", not a registration
        ("DELETE", b"/subjects/a%2Fb", ("delete_subject", "a/b")),
        ("DELETE", b"/subjects/a%2Fb/versions/1", ("delete_schema_version", "a/b")),
        ("PUT", b"/config/a%2Fb", ("put_subject_config", "a/b")),
        ("DELETE", b"/config/100%25", ("delete_subject_config", "100%")),
    ],
)
def test_auth_tells_the_write_and_its_subject_from_the_encoded_path(
    method: str, raw: bytes, write: tuple[str, str | None] | None
) -> None:
    from urllib.parse import unquote

    scope = {"type": "http", "method": method, "path": unquote(raw.decode()), "raw_path": raw, "root_path": ""}
    assert write_of(method, escaped_path(scope)) == write


def test_with_auth_on_a_slashed_subject_is_owned_and_guarded_as_one_subject(tmp_path: Path) -> None:
    """Over uvicorn, with Confluent's own client (it sends ``a%2Fb%2Fc.proto``)."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError

    from registry.access import Access
    from registry.access_store import AccessStore
    from tests.http_server import serving

    access_store = AccessStore(tmp_path / "definitions.db")
    access = Access(access_store, enabled=True, refresh_s=0)
    risk_token, fraud_token = access_store.issue("risk-bot", "risk-team"), access_store.issue("fraud-bot", "fraud-team")
    with serving(create_schema_registry_app(SchemaStore(tmp_path / "schemas.db"), access)) as base:
        risk = SchemaRegistryClient({"url": base, "basic.auth.user.info": f"x:{risk_token}"})
        fraud = SchemaRegistryClient({"url": base, "basic.auth.user.info": f"x:{fraud_token}"})
        assert risk.register_schema("a/b/c.proto", Schema(V1, "AVRO")) == 1
        assert access_store.owner("subject", "a/b/c.proto") == "risk-team"
        for call in (
            lambda: fraud.delete_subject("a/b/c.proto"),
            lambda: fraud.delete_version("a/b/c.proto", 1),
            lambda: fraud.set_compatibility("a/b/c.proto", "NONE"),
        ):
            with pytest.raises(SchemaRegistryError) as caught:
                call()
            assert (caught.value.http_status_code, caught.value.error_code) == (403, 40301)
        assert fraud.get_versions("a/b/c.proto") == [1]
        assert risk.get_latest_version("a/b/c.proto").subject == "a/b/c.proto"
    access.close()
