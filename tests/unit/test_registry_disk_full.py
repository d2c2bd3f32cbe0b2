"""A registry store whose disk fills (or fails) part-way through a write: the write fails as the store unavailable
(the API's 503 ``store_unavailable``, a command's one ``error:`` line), nothing of it is kept, and the store works
again once there is room. Before, only opening and ``BEGIN`` were named: a statement or ``COMMIT`` failing with
"database or disk is full" escaped as a raw ``sqlite3.OperationalError``, a 500 from the API and a traceback from
`training build` (which records its set in the registry after writing it)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry.core.errors import StoreUnavailableError
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from serving.online.app import create_app
from tests.unit.conftest import NoValues, build_definition, definition_dict


def _full(db: Path) -> DefinitionStore:
    """The store at ``db`` as on a disk with no room left: SQLite may not grow the file past its pages now."""
    pages = sqlite3.connect(db).execute("PRAGMA page_count").fetchone()[0]

    class Full(DefinitionStore):
        PRAGMAS = (*DefinitionStore.PRAGMAS, f"max_page_count={pages}")

    return Full(db)


def test_a_write_that_fills_the_disk_is_the_store_unavailable_and_keeps_nothing(tmp_path: Path) -> None:
    db = tmp_path / "definitions.db"
    DefinitionStore(db).register(build_definition(name="kept"))
    full = _full(db)
    with pytest.raises(StoreUnavailableError, match=f"registry store {db} unavailable: database or disk is full"):
        full.register(build_definition(name="other", description="d" * 4096))
    again = DefinitionStore(db)
    assert [d.name for d in again.catalog().active()] == ["kept"]
    again.register(build_definition(name="other", description="d" * 4096))  # room again: the same write succeeds
    assert sorted(d.name for d in again.catalog().active()) == ["kept", "other"]


def test_the_api_answers_a_full_disk_with_a_503_not_a_500(tmp_path: Path) -> None:
    db = tmp_path / "definitions.db"
    DefinitionStore(db).register(build_definition(name="kept"))
    client = TestClient(create_app(LiveCatalog(_full(db), refresh_s=0.0), NoValues()), raise_server_exceptions=False)
    answer = client.post("/v1/feature-definitions", json=definition_dict(name="other", description="d" * 4096))
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "store_unavailable"
    assert "database or disk is full" in answer.json()["message"]


def test_a_statements_own_mistake_is_not_the_store_unavailable(tmp_path: Path) -> None:
    """SQLITE_ERROR (a table that is not there, a malformed statement) is a bug's error, raised as SQLite's: a 503
    would tell a client to retry what can never succeed."""
    store = DefinitionStore(tmp_path / "definitions.db")
    with pytest.raises(sqlite3.OperationalError, match="no such table") as caught, store._tx() as conn:
        conn.execute("INSERT INTO no_such_table VALUES (1)")
    assert not isinstance(caught.value, StoreUnavailableError)
