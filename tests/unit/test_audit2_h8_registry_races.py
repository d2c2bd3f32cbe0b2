"""Audit H8: the registry's SQLite stores under concurrent writers and readers following them (docs/design.md §3.3,
§4 registry rows, §9 "HTTP definition registry": one transaction per write; readers reload the same model on change)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import registry.sqlite_store as sqlite_store
from registry.core.errors import StoreUnavailableError
from registry.definition_store import DefinitionStore
from registry.feature_services import FeatureService, FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from serving.online.app import create_app
from tests.unit.conftest import NoValues, build_definition


def _quick_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stores wait 30 s for the write lock; 50 ms here, so the test sees the lock's own error fast."""
    connect = sqlite_store.connect

    def quick(path: Path, pragmas: tuple[str, ...] = (), *, create: bool = True) -> sqlite3.Connection:
        conn = connect(path, pragmas, create=create)
        conn.execute("PRAGMA busy_timeout=50")
        return conn

    monkeypatch.setattr(sqlite_store, "connect", quick)


def test_a_write_lock_held_past_the_timeout_is_the_locked_error_not_a_rollback_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "registry.db"
    definitions, services = DefinitionStore(db), FeatureServiceStore(db)
    _quick_busy_timeout(monkeypatch)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing
    try:
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            definitions.register(build_definition())
        service = FeatureService.model_validate(
            {"name": "svc", "version": 1, "features": [{"entity": "user", "name": "txn_count_1h", "version": 1}]}
        )
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            services.register(service)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert definitions.register(build_definition()).action == "created"  # nothing half-written was left behind


def _replace(db: Path, name: str) -> None:
    """Another definition store put at ``db`` (built beside it, renamed over it), at the same change sequence."""
    fresh = db.with_name("fresh.db")
    DefinitionStore(fresh).register(build_definition(name=name))
    os.replace(fresh, db)


def test_a_store_replaced_under_a_reader_is_reloaded_even_at_the_same_change_sequence(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    store = DefinitionStore(db)
    store.register(build_definition(name="old_feature"))
    live = LiveCatalog(store, refresh_s=0.0)
    assert [d.name for d in live.current().active()] == ["old_feature"]
    seen = store.change_seq()
    _replace(db, "new_feature")
    assert store.change_seq() == seen  # the same number the reader last saw
    assert [d.name for d in live.current().active()] == ["new_feature"]  # never a feature the file does not hold


def test_a_deleted_store_is_a_named_store_unavailable_and_no_file_is_created(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    store = DefinitionStore(db)
    store.register(build_definition())
    live = LiveCatalog(store, refresh_s=0.0)
    services = LiveFeatureServices(FeatureServiceStore(db), refresh_s=0.0)
    db.unlink()
    for following in (live, services):
        with pytest.raises(StoreUnavailableError, match=f"registry store {db} unavailable"):
            following.current()
    assert not db.exists()


def test_the_api_answers_a_deleted_store_with_a_503_not_a_500(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    store = DefinitionStore(db)
    store.register(build_definition())
    client = TestClient(create_app(LiveCatalog(store, refresh_s=0.0), NoValues()), raise_server_exceptions=False)
    assert client.get("/v1/features/user/u1").status_code == 200
    db.unlink()
    for path in ("/v1/features/user/u1", "/v1/feature-definitions"):
        answer = client.get(path)
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == "store_unavailable"
    assert client.get("/health").status_code == 200
    assert not db.exists()


def test_a_write_to_a_deleted_store_is_a_named_store_unavailable_and_no_empty_file_is_left(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    definitions, services = DefinitionStore(db), FeatureServiceStore(db)
    definitions.register(build_definition())
    db.unlink()
    with pytest.raises(StoreUnavailableError, match=f"registry store {db} unavailable"):
        definitions.register(build_definition(name="other"))
    with pytest.raises(StoreUnavailableError, match=f"registry store {db} unavailable"):
        definitions.activate("user", "txn_count_1h", 1)
    service = FeatureService.model_validate(
        {"name": "svc", "version": 1, "features": [{"entity": "user", "name": "txn_count_1h", "version": 1}]}
    )
    with pytest.raises(StoreUnavailableError, match=f"registry store {db} unavailable"):
        services.register(service)
    assert not db.exists()  # a store made again later (`registry.cli apply`) is not preempted by an empty file


def test_the_api_answers_a_write_to_a_deleted_store_with_a_503(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    store = DefinitionStore(db)
    store.register(build_definition())
    client = TestClient(create_app(LiveCatalog(store, refresh_s=60.0), NoValues()), raise_server_exceptions=False)
    db.unlink()
    body = build_definition(name="other").model_dump(mode="json")
    for answer in (
        client.post("/v1/feature-definitions", json=body),
        client.post("/v1/feature-definitions/user/txn_count_1h/activate", params={"version": 1}),
    ):
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == "store_unavailable"
    assert not db.exists()


def test_the_api_answers_a_write_locked_past_the_timeout_with_a_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A register while another writer holds the store's write lock past the busy timeout was a 500 with a traceback;
    it is 503 ``store_unavailable`` naming the lock (and still the sqlite3 error best-effort recorders catch)."""
    db = tmp_path / "registry.db"
    store = DefinitionStore(db)
    store.register(build_definition())
    client = TestClient(create_app(LiveCatalog(store, refresh_s=60.0), NoValues()), raise_server_exceptions=False)
    _quick_busy_timeout(monkeypatch)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        answer = client.post("/v1/feature-definitions", json=build_definition(name="other").model_dump(mode="json"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "store_unavailable" and "database is locked" in answer.json()["message"]


def test_a_write_to_another_table_of_the_file_does_not_reload_the_catalog(tmp_path: Path) -> None:
    """Readers reload on a change sequence that moved or another file at the path, not on every write to the file:
    the audit log, statistics and tokens share it, and a reload of a large catalog would stall its readers."""
    from registry.access_store import AccessStore

    db = tmp_path / "registry.db"
    store = DefinitionStore(db)
    store.register(build_definition())
    loads = 0
    original = store.catalog

    def counted() -> object:
        nonlocal loads
        loads += 1
        return original()

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(store, "catalog", counted)
    try:
        live = LiveCatalog(store, refresh_s=0.0)
        for i in range(5):
            AccessStore(db).issue(f"p{i}", "team")  # a write to the same file, another table
            live.current()
    finally:
        monkeypatch.undo()
    assert loads == 1  # the first load only


@pytest.mark.parametrize("route", ["/v1/feature-definitions", "/v1/feature-services"])
def test_reads_go_on_while_a_registration_waits_for_the_write_lock(tmp_path: Path, route: str) -> None:
    """A registration waits for SQLite's write lock (up to 30 s) in the thread pool, not on the event loop: while
    another writer holds the lock, the API still answers reads at once (they waited behind the registration)."""
    import asyncio

    import httpx

    db = tmp_path / "registry.db"
    store = DefinitionStore(db)
    store.register(build_definition())
    app = create_app(
        LiveCatalog(store, refresh_s=60.0),
        NoValues(),
        services=LiveFeatureServices(FeatureServiceStore(db), refresh_s=60.0),
    )
    body = (
        build_definition(name="other").model_dump(mode="json")
        if route == "/v1/feature-definitions"
        else {"name": "svc", "version": 1, "features": [{"entity": "user", "name": "txn_count_1h", "version": 1}]}
    )
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, until the read has been answered

    async def run() -> tuple[httpx.Response, bool, httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            registration = asyncio.create_task(client.post(route, json=body))
            await asyncio.sleep(0.3)  # the registration is waiting for the lock (a blocked loop wakes this late)
            read = await client.get("/v1/features/user/u1")
            waiting = not registration.done()  # the read was answered while the registration still waited
            holder.execute("ROLLBACK")  # the lock is free only now: no timer racing a loaded machine
            return await registration, waiting, read

    try:
        registered, waiting, read = asyncio.run(run())
    finally:
        holder.close()
    assert read.status_code == 200 and waiting  # answered before the lock's release, not behind the registration
    assert registered.status_code == 201, registered.text  # and the registration went through once the lock was free
