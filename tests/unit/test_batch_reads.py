"""Batch reads: every entity in flight at once within the batch budget, per-entity errors instead of a
failed batch, and a 503 only when no entity could be read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cassandra import OperationTimedOut
from fastapi.testclient import TestClient

from registry.core.catalog import load_folder
from registry.core.errors import StoreUnavailableError
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from registry.plan import apply
from serving.online.app import create_app
from serving.online.client import FeatureClient
from sinks.cassandra.layout import cell_key, encode_cell
from sinks.cassandra.reader import OnlineReader, Stored

END_MS = 1_700_000_000_000


class _Future:
    def __init__(self, outcome: Any) -> None:
        self._outcome = outcome

    def add_callbacks(
        self, callback: Any, errback: Any, callback_args: tuple[Any, ...] = (), errback_args: tuple[Any, ...] = ()
    ) -> None:
        if self._outcome == "never":
            return
        if isinstance(self._outcome, BaseException):
            errback(self._outcome, *errback_args)
        else:
            callback(self._outcome, *callback_args)


class _Session:
    """Answers each entity as ``outcomes`` says: rows, an exception, or "never"."""

    def __init__(self, outcomes: dict[str, Any]) -> None:
        self.outcomes = outcomes
        self.timeouts: list[float] = []

    def prepare(self, cql: str) -> str:
        return cql

    def execute_async(self, statement: Any, params: Any = None, timeout: float | None = None) -> _Future:
        assert timeout is not None
        self.timeouts.append(timeout)
        return _Future(self.outcomes[params[1]])


ROWS = [({cell_key("txn_count_1h", 1, "long"): encode_cell("long", 7, END_MS)},)]  # the entity's one row


def test_each_entity_answers_for_itself_within_the_batch_budget() -> None:
    session = _Session({"a": ROWS, "b": OperationTimedOut("slow"), "c": "never"})
    reader = OnlineReader(session, "ks", timeout_s=0.1, batch_timeout_s=0.3)  # type: ignore[arg-type]
    started = time.perf_counter()
    a, b, c = asyncio.run(reader.read_each_async("user", ["a", "b", "c"]))
    elapsed = time.perf_counter() - started
    assert a == {("txn_count_1h", 1): (7, END_MS)}
    assert isinstance(b, StoreUnavailableError) and "OperationTimedOut" in str(b)
    assert isinstance(c, StoreUnavailableError) and "300 ms" in str(c)
    assert 0.3 <= elapsed < 0.3 + 0.5  # the batch budget, not the single read's
    assert set(session.timeouts) == {0.3}


def test_a_store_that_answers_nothing_fails_the_batch_at_the_request_budget() -> None:
    session = _Session({"a": "never", "b": "never"})
    reader = OnlineReader(session, "ks", timeout_s=0.1, batch_timeout_s=5.0)  # type: ignore[arg-type]
    started = time.perf_counter()
    results = asyncio.run(reader.read_each_async("user", ["a", "b"]))
    assert time.perf_counter() - started < 0.1 + 0.5  # not the 5 s batch budget
    assert all(isinstance(r, StoreUnavailableError) and "within 100 ms" in str(r) for r in results)


def test_a_bug_fails_the_whole_batch() -> None:
    reader = OnlineReader(_Session({"a": ROWS, "b": TypeError("bad bind")}), "ks")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        asyncio.run(reader.read_each_async("user", ["a", "b"]))


class _Source:
    """An async vector source failing the entities in ``down``."""

    def __init__(self, down: set[str]) -> None:
        self.down = down

    async def read_many_async(self, entity_type: str, entity_ids: Sequence[str]) -> list[Stored]:
        if self.down & set(entity_ids):
            raise StoreUnavailableError("online store read failed: down")
        return [{("txn_count_1h", 1): (7, END_MS)} for _ in entity_ids]

    async def read_each_async(
        self, entity_type: str, entity_ids: Sequence[str]
    ) -> list[Stored | StoreUnavailableError]:
        return [
            StoreUnavailableError("online store read failed: down")
            if e in self.down
            else {("txn_count_1h", 1): (7, END_MS)}
            for e in entity_ids
        ]

    async def progress_async(self) -> dict[str, int]:
        return {}


@pytest.fixture
def live(tmp_path: Path) -> LiveCatalog:
    store = DefinitionStore(tmp_path / "d.db")
    apply(store, load_folder())
    return LiveCatalog(store)


def test_a_batch_serves_the_entities_it_could_read_and_names_the_others(live: LiveCatalog) -> None:
    api = TestClient(create_app(live, _Source({"b"}), clock_us=lambda: (END_MS + 60_000) * 1000, cache_ttl_ms=0))
    response = api.post("/v1/features/user/batch", json={"entity_ids": ["a", "b", "c"], "names": ["txn_count_1h"]})
    assert response.status_code == 200, response.text
    a, b, c = response.json()["results"]
    assert a["values"] == c["values"] == [7]
    assert b["entity_id"] == "b" and b["error"] == "store_unavailable" and "down" in b["message"]
    assert "values" not in b
    client = FeatureClient(client=api)
    reshaped = client.get_features_batch("user", ["a", "b"], ["txn_count_1h"])
    assert reshaped[0]["features"]["txn_count_1h"]["value"] == 7
    assert reshaped[1] == {"entity_id": "b", "error": "store_unavailable", "message": b["message"]}
    # A single read of a failing entity is still a 503, as is a batch of which no entity could be read.
    assert api.get("/v1/features/user/b").status_code == 503
    none = api.post("/v1/features/user/batch", json={"entity_ids": ["b"], "names": ["txn_count_1h"]})
    assert none.status_code == 503 and none.json()["error"] == "store_unavailable"
