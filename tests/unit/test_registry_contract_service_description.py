"""A feature service's ``description`` is bounded as a definition's (docs/design.md §4: "at most 4,096 characters,
line feed and tab its only control characters"). Before, any length up to the body limit and any control character
(NUL, carriage return, NEL) were stored and served back."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import load_folder
from registry.definition_store import DefinitionStore
from registry.feature_services import MAX_DESCRIPTION, FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from registry.plan import apply
from serving.online.app import create_app
from tests.unit.conftest import NoValues

_PIN = [{"entity": "user", "name": "txn_count_1h", "version": 1}]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    apply(DefinitionStore(tmp_path / "d.db"), load_folder())
    return tmp_path / "d.db"


@pytest.fixture
def client(db: Path) -> TestClient:
    services = LiveFeatureServices(FeatureServiceStore(db), refresh_s=0.0)  # a row written behind its back is seen
    return TestClient(create_app(LiveCatalog(DefinitionStore(db)), NoValues(), services=services))


def test_the_bound_is_the_definitions_bound() -> None:
    assert MAX_DESCRIPTION == 4096


@pytest.mark.parametrize(
    "description",
    ["x" * 4096, "é" * 4096, "two lines\nand\ttabs", ""],
    ids=["exactly 4096", "4096 two-byte characters", "line feed and tab", "empty"],
)
def test_a_description_within_the_bound_is_registered_and_served_back(client: TestClient, description: str) -> None:
    answer = client.post("/v1/feature-services", json={"name": "fraud", "features": _PIN, "description": description})
    assert answer.status_code == 201, answer.text
    assert client.get("/v1/feature-services/fraud").json()["description"] == description


@pytest.mark.parametrize(
    ("description", "says"),
    [
        ("x" * 4097, "must be at most 4096 characters, not 4097"),
        ("x" * 200_000, "must be at most 4096 characters, not 200000"),
        ("a\rb", "control characters"),
        ("a\x00b", "control characters"),
        ("a\x85b", "control characters"),  # NEL, a C1 control
        ("a\x7fb", "control characters"),
    ],
    ids=["4097", "200000", "carriage return", "NUL", "NEL", "DEL"],
)
def test_a_description_past_the_bound_is_422_naming_it_and_nothing_is_stored(
    client: TestClient, db: Path, description: str, says: str
) -> None:
    answer = client.post("/v1/feature-services", json={"name": "fraud", "features": _PIN, "description": description})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_feature_service"
    assert answer.json()["message"].startswith("description: ") and says in answer.json()["message"]
    assert FeatureServiceStore(db).all() == []


def test_the_openapi_body_schema_states_the_bound(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/v1/feature-services"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["description"]["maxLength"] == MAX_DESCRIPTION


def test_a_version_stored_before_the_bound_stays_readable_and_servable(client: TestClient, db: Path) -> None:
    """A bound added later must not make a registered service (and every route reading services) fail to load."""
    spec = {"name": "legacy", "version": 1, "description": "y" * 5000 + "\r", "features": _PIN}
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO feature_services VALUES (?, ?, ?, ?)", ("legacy", 1, json.dumps(spec), "2026-01-01"))
    conn.commit()
    conn.close()
    assert client.get("/v1/feature-services/legacy").json()["description"] == spec["description"]
    served = client.get("/v1/features/user/u1", params={"feature_service": "legacy@1"})
    assert served.status_code == 200, served.text
    registered = client.post("/v1/feature-services", json={"name": "legacy", "features": _PIN, "description": "new"})
    assert (registered.status_code, registered.json()["feature_service"]["version"]) == (201, 2)
