"""``/v1/feature-definitions`` (and the feature-service registration) held to the API's rules (README "Online
serving", docs/design.md §3.3): a query parameter given more than once is a 400 ``bad_request`` naming it, and a body
member given more than once a 422 naming it, never one of its values picked; a former name (alias) answers as the
feature it names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from registry.definition_store import DefinitionStore
from registry.feature_services import FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from serving.online.app import create_app
from tests.unit.conftest import NoValues, definition_dict


@pytest.fixture
def store(tmp_path: Path) -> DefinitionStore:
    return DefinitionStore(tmp_path / "definitions.db")


@pytest.fixture
def client(store: DefinitionStore, tmp_path: Path) -> TestClient:
    services = LiveFeatureServices(FeatureServiceStore(tmp_path / "definitions.db"), refresh_s=0.0)
    client = TestClient(create_app(LiveCatalog(store, refresh_s=0.0), NoValues(), services=services))
    assert client.post("/v1/feature-definitions", json=definition_dict(name="f", aliases=["old_f"])).status_code == 201
    v2 = definition_dict(name="f", version=2, ttl="3h", aliases=["old_f"])
    assert client.post("/v1/feature-definitions", json=v2).status_code == 201  # inactive
    return client


def _refused_twice(answer: Response, parameter: str) -> None:
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == "bad_request" and f"`{parameter}` is given more than once" in body["message"]


def test_an_activation_with_version_given_twice_is_400_and_moves_nothing(
    client: TestClient, store: DefinitionStore
) -> None:
    """Before: ``?version=1&version=2`` activated v2 (the last value picked), a pointer move nobody asked for whole."""
    changes = len(store.history("user", "f"))
    _refused_twice(client.post("/v1/feature-definitions/user/f/activate?version=1&version=2"), "version")
    assert store.catalog().get("user", "f").version == 1
    assert len(store.history("user", "f")) == changes


def test_a_definition_read_with_version_given_twice_is_400(client: TestClient) -> None:
    _refused_twice(client.get("/v1/feature-definitions/user/f?version=1&version=2"), "version")
    assert client.get("/v1/feature-definitions/user/f?version=2").json()["version"] == 2


def test_a_registration_with_activate_given_twice_is_400_and_registers_nothing(
    client: TestClient, store: DefinitionStore
) -> None:
    body = definition_dict(name="f", version=3, ttl="4h", aliases=["old_f"])
    _refused_twice(client.post("/v1/feature-definitions?activate=true&activate=false", json=body), "activate")
    assert [d.version for d in store.catalog().versions("user", "f")] == [1, 2]


def test_the_history_of_a_former_name_is_the_features_history(client: TestClient) -> None:
    """Before: ``GET .../user/old_f`` answered the feature but ``.../user/old_f/history`` answered ``[]``."""
    own = client.get("/v1/feature-definitions/user/f/history")
    former = client.get("/v1/feature-definitions/user/old_f/history")
    assert own.status_code == former.status_code == 200
    assert [c["action"] for c in own.json()] == ["created", "activated", "new_version"]
    assert former.json() == own.json()
    assert client.get("/v1/feature-definitions/user/no_such/history").status_code == 404


def _raw(body: dict[str, Any], member: str, repeated: str) -> str:
    """``body`` as JSON text with ``member: repeated`` (raw JSON) written again right after its first member."""
    text = json.dumps(body)
    return text[:-1] + f', "{member}": {repeated}}}'


def test_a_definition_member_given_twice_is_422_naming_it_and_nothing_is_registered(
    client: TestClient, store: DefinitionStore
) -> None:
    """Before: ``"ttl"`` given twice kept the last value (JSON parsers do), registering a version nobody wrote whole."""
    body = definition_dict(name="g", ttl="1h")
    answer = client.post("/v1/feature-definitions", content=_raw(body, "ttl", '"7300d"'))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_definition" and "['ttl'] given more than once" in answer.json()["message"]
    nested = json.dumps(body).replace('"topic": "card_transactions"', '"topic": "card_transactions", "topic": "other"')
    answer = client.post("/v1/feature-definitions", content=nested)
    assert answer.status_code == 422 and "['source.topic'] given more than once" in answer.json()["message"]
    assert "g" not in {d.name for d in store.catalog()}
    escaped = json.dumps({**body, "description": 'a "quoted" word'})  # an escape: read again, nothing repeated
    assert client.post("/v1/feature-definitions", content=escaped).status_code == 201


def test_a_feature_service_member_given_twice_is_422_naming_it(client: TestClient) -> None:
    body = {"name": "svc", "features": [{"entity": "user", "name": "f", "version": 1}]}
    answer = client.post("/v1/feature-services", content=_raw(body, "name", '"other"'))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_feature_service"
    assert "['name'] given more than once" in answer.json()["message"]
    pinned_twice = json.dumps(body).replace('"version": 1', '"version": 1, "version": 2')
    answer = client.post("/v1/feature-services", content=pinned_twice)
    assert answer.status_code == 422 and "['features.0.version'] given more than once" in answer.json()["message"]
    assert client.get("/v1/feature-services").json() == []
    assert client.post("/v1/feature-services", content=json.dumps(body)).status_code == 201


@pytest.mark.parametrize("raw", ["2.0", "+2", "02", " 2", "2 ", "2e0"])
def test_a_version_not_written_as_an_integer_is_400_and_activates_nothing(
    client: TestClient, store: DefinitionStore, raw: str
) -> None:
    """Before: ``?version=2.0`` (or ``+2``, ``02``, `` 2``) was taken as 2, and ``/activate`` moved the pointer to v2;
    a definition's own ``version`` refuses ``7.0`` and ``"7"`` rather than converting them (docs/design.md §4)."""
    for answer in (
        client.get("/v1/feature-definitions/user/f", params={"version": raw}),
        client.post("/v1/feature-definitions/user/f/activate", params={"version": raw}),
    ):
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "bad_request" and "version" in answer.json()["message"]
    assert store.catalog().get("user", "f").version == 1


@pytest.mark.parametrize("raw", ["0", "-1", "3", "2147483648"])
def test_a_well_formed_version_no_feature_has_stays_404(client: TestClient, raw: str) -> None:
    for answer in (
        client.get("/v1/feature-definitions/user/f", params={"version": raw}),
        client.post("/v1/feature-definitions/user/f/activate", params={"version": raw}),
    ):
        assert (answer.status_code, answer.json()["error"]) == (404, "unknown_feature"), answer.text


@pytest.mark.parametrize("parameter", ["entity", "owner", "tag", "q"])
def test_a_search_with_a_filter_given_twice_is_400(client: TestClient, parameter: str) -> None:
    """Before: the last value was taken quietly (``?entity=a&entity=user`` listed user's features)."""
    _refused_twice(client.get(f"/v1/feature-definitions?{parameter}=a&{parameter}=user"), parameter)
    assert client.get("/v1/feature-definitions?entity=user").status_code == 200
