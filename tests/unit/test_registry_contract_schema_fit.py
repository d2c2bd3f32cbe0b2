"""A new definition version registered over HTTP is held to its reader schema whether or not it becomes active
(docs/design.md §4, "A new version is held to its reader schema"): an inactive version is what a backfill computes
and what an activation points at later, and ``plan``/``apply`` already refuse such a version from a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry.core.errors import DefinitionError
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from serving.online.app import create_app
from tests.unit.conftest import NoValues, definition_dict


@pytest.fixture
def store(tmp_path: Path) -> DefinitionStore:
    return DefinitionStore(tmp_path / "definitions.db")


@pytest.fixture
def client(store: DefinitionStore) -> TestClient:
    return TestClient(create_app(LiveCatalog(store), NoValues()))


_UNRUNNABLE: dict[str, dict[str, Any]] = {
    "no such field": {"aggregation": {"function": "sum", "field": "no_such_field"}, "value_type": "double"},
    "no such schema": {"source.event_schema": "no_such_schema"},
    "a string summed": {"aggregation": {"function": "sum", "field": "merchant_id"}, "value_type": "double"},
}


@pytest.mark.parametrize("change", _UNRUNNABLE.values(), ids=list(_UNRUNNABLE))
def test_an_inactive_version_the_job_cannot_compute_is_refused_like_an_active_one(
    client: TestClient, store: DefinitionStore, change: dict[str, Any]
) -> None:
    """Before: v2 (inactive, ``activate`` not given) was stored with a field its event schema lacks (201), and only
    its later activation (or a backfill of it) failed."""
    assert client.post("/v1/feature-definitions", json=definition_dict(name="f")).status_code == 201
    refused = client.post("/v1/feature-definitions", json=definition_dict(name="f", version=2, **change))
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"] == "invalid_definition"
    assert refused.json()["message"].startswith("user.f v2: ")
    assert [d.version for d in store.catalog().versions("user", "f")] == [1]  # nothing written
    active = client.post("/v1/feature-definitions?activate=true", json=definition_dict(name="f", version=2, **change))
    assert active.status_code == 422 and active.json()["message"] == refused.json()["message"]


def test_the_store_refuses_an_inactive_unrunnable_version_and_keeps_a_runnable_one(store: DefinitionStore) -> None:
    from tests.unit.conftest import build_definition

    store.register(build_definition(name="f"))
    with pytest.raises(DefinitionError, match=r"^user\.f v2: aggregation\.field: 'card_transaction' has no field"):
        store.register(build_definition(name="f", version=2, **_UNRUNNABLE["no such field"]))
    runnable = store.register(build_definition(name="f", version=2, ttl="3h"))  # another identity, runnable
    assert (runnable.action, runnable.active_version) == ("new_version", 1)
