"""Schema registry with auth on, at its edges: two ``Authorization`` headers and an empty one (audit J1)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from registry.access import Access
from registry.access_store import AccessStore
from registry.schema_registry.api import create_schema_registry_app
from registry.schema_registry.auth import token_of
from registry.schema_registry.store import SchemaStore

SCHEMA = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]})


@pytest.fixture
def tokens(tmp_path: Path) -> Iterator[tuple[TestClient, str, str]]:
    store = AccessStore(tmp_path / "definitions.db")
    alice = store.issue("alice", "team-a")
    bob = store.issue("bob", "team-b")
    access = Access(store, enabled=True, refresh_s=0)
    app = create_schema_registry_app(SchemaStore(tmp_path / "schemas.db"), access)
    with TestClient(app) as client:
        yield client, alice, bob
    access.close()


def test_two_authorization_headers_are_refused_whatever_they_hold(tokens: tuple[TestClient, str, str]) -> None:
    client, alice, bob = tokens
    both_good = [("Authorization", f"Bearer {alice}"), ("Authorization", f"Bearer {alice}")]
    answer = client.get("/subjects", headers=both_good)
    assert answer.status_code == 401
    assert answer.json()["error_code"] == 401
    assert answer.json()["message"].startswith("Unauthorized: 2 Authorization headers")
    assert alice.split("_", 2)[2] not in answer.text  # never a secret echoed
    # A good token first and another team's second: nothing registered, under nobody's name.
    mixed = [("Authorization", f"Bearer {alice}"), ("Authorization", f"Basic {_b64('u:' + bob)}")]
    answer = client.post("/subjects/s/versions", headers=mixed, json={"schema": SCHEMA})
    assert answer.status_code == 401
    assert client.get("/subjects", headers={"Authorization": f"Bearer {bob}"}).json() == []
    # One header still works; the subject is then claimed by that caller's team only.
    assert client.post("/subjects/s/versions", headers={"Authorization": f"Bearer {bob}"}, json={"schema": SCHEMA})
    refused = client.post("/subjects/s/versions", headers={"Authorization": f"Bearer {alice}"}, json={"schema": SCHEMA})
    assert refused.status_code == 403 and refused.json()["error_code"] == 40301


def test_an_empty_authorization_header_is_no_token(tokens: tuple[TestClient, str, str]) -> None:
    client, _, _ = tokens
    for value in ("", "   "):
        answer = client.get("/subjects", headers={"Authorization": value})
        assert answer.status_code == 401
        assert answer.json()["message"].startswith("Unauthorized: no API token")
    assert token_of("") is None and token_of(" ") is None


def test_basic_user_info_splits_at_the_first_colon(tokens: tuple[TestClient, str, str]) -> None:
    client, alice, _ = tokens
    assert client.get("/subjects", headers={"Authorization": f"Basic {_b64(':' + alice)}"}).status_code == 200
    # RFC 7617: a user id holds no colon, so "u:x:<token>" sends the password "x:<token>", not a known token.
    assert client.get("/subjects", headers={"Authorization": f"Basic {_b64('u:x:' + alice)}"}).status_code == 401


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
