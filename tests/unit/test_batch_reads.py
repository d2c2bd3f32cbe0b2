"""Batch reads: every entity in flight at once within the batch budget, per-entity errors instead of a
failed batch, and a 503 only when no entity could be read."""

from __future__ import annotations

import asyncio
import itertools
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
from tests.conftest import PreparedCql

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
        return PreparedCql(cql)

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
    assert 0.3 <= elapsed < 0.3 + 2.0  # the batch budget, not the single read's (slack for a loaded machine)
    assert set(session.timeouts) == {0.3}


def test_a_store_that_answers_nothing_fails_the_batch_at_the_request_budget() -> None:
    session = _Session({"a": "never", "b": "never"})
    reader = OnlineReader(session, "ks", timeout_s=0.1, batch_timeout_s=5.0)  # type: ignore[arg-type]
    started = time.perf_counter()
    results = asyncio.run(reader.read_each_async("user", ["a", "b"]))
    assert time.perf_counter() - started < 0.1 + 2.0  # not the 5 s batch budget (slack for a loaded machine)
    assert all(isinstance(r, StoreUnavailableError) and "within 100 ms" in str(r) for r in results)


def test_a_bug_fails_the_whole_batch() -> None:
    reader = OnlineReader(_Session({"a": ROWS, "b": TypeError("bad bind")}), "ks")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bad bind"):
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


class _Statement:
    def __init__(self, name: str) -> None:
        self.name = name

    def bind(self, timeout: float) -> _Bound:
        return _Bound(self.name, timeout)


class _Bound:
    def __init__(self, name: str, timeout: float) -> None:
        self.name, self.timeout, self.params = name, timeout, list[Any]()

    def bind_list(self, params: list[Any]) -> None:
        self.params = params


class _Row:
    def __init__(self, *values: Any) -> None:
        self.values = values

    def column_value_by_index(self, i: int) -> Any:
        return self.values[i]


class _Result(list[Any]):
    def has_more_pages(self) -> bool:
        return False


class _NativeSession:
    """acsylla's session as the reader uses it: a query of the one statement or the ``IN`` statement, its
    answer the rows of the ids bound, an error when one of them is in ``failing``, never when in ``hung``."""

    def __init__(self, failing: set[str] = frozenset(), hung: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.failing, self.hung = failing, hung
        self.queries: list[_Bound] = []

    async def execute(self, bound: _Bound) -> _Result:
        from acsylla import errors

        self.queries.append(bound)
        entity_type, *ids = bound.params
        assert entity_type == "user"
        if self.hung & set(ids):
            await asyncio.sleep(60)
        if self.failing & set(ids):
            raise errors.CassErrorServerReadTimeout("read timed out")
        rows = {eid: {cell_key("txn_count_1h", 1, "long"): encode_cell("long", ord(eid[0]), END_MS)} for eid in ids}
        if bound.name == "one":
            return _Result([_Row(rows[ids[0]])] if ids[0] != "none" else [])
        return _Result(_Row(eid, cells) for eid, cells in rows.items() if eid != "none")


def _native(session: _NativeSession, partitions: int, timeout_s: float = 0.1, batch_timeout_s: float = 1.0) -> Any:
    from sinks.cassandra.native_reader import NativeOnlineReader

    reader = NativeOnlineReader(
        ["127.0.0.1"], 9042, "ks", partitions_per_read=partitions, timeout_s=timeout_s, batch_timeout_s=batch_timeout_s
    )
    reader._session, reader._select, reader._select_many = session, _Statement("one"), _Statement("in")
    return reader


def _opened(reader: Any) -> None:  # the fake session belongs to the running loop
    reader._loop = asyncio.get_running_loop()


def test_native_batches_read_several_entities_per_query_in_the_callers_order() -> None:
    session = _NativeSession()
    reader = _native(session, 3, timeout_s=1.0, batch_timeout_s=1.0)
    ids = ["e", "a", "none", "d", "a"]

    async def run() -> tuple[Any, Any]:
        _opened(reader)
        return await reader.read_each_async("user", ids), await reader.read_many_async("user", ids)

    each, many = asyncio.run(run())
    assert each == many
    assert [v.get(("txn_count_1h", 1)) for v in each] == [
        (101, END_MS),
        (97, END_MS),
        None,
        (100, END_MS),
        (97, END_MS),
    ]
    assert each[2] == {}
    # Groups of three in the order asked; the last group of two padded with its last id to the prepared size.
    assert [(q.name, q.params[1:]) for q in session.queries[:2]] == [
        ("in", ["e", "a", "none"]),
        ("in", ["d", "a", "a"]),
    ]
    assert {q.timeout for q in session.queries[:2]} == {1.0}


def test_native_single_entities_and_partitions_per_read_1_use_the_single_partition_read() -> None:
    session = _NativeSession()

    async def run() -> tuple[Any, Any]:
        one, each = _native(session, 25), _native(session, 1)
        _opened(one)
        _opened(each)
        return await one.read_many_async("user", ["a"]), await each.read_each_async("user", ["a", "b"])

    single, pair = asyncio.run(run())
    assert single == [{("txn_count_1h", 1): (97, END_MS)}] and pair[1] == {("txn_count_1h", 1): (98, END_MS)}
    assert [(q.name, q.params) for q in session.queries] == [
        ("one", ["user", "a"]),
        ("one", ["user", "a"]),
        ("one", ["user", "b"]),
    ]


def test_a_native_group_that_fails_or_misses_the_budget_fails_its_entities_only() -> None:
    session = _NativeSession(failing={"c"}, hung={"e"})
    reader = _native(session, 2, timeout_s=0.1, batch_timeout_s=0.3)

    async def run() -> Any:
        _opened(reader)
        return await reader.read_each_async("user", ["a", "b", "c", "d", "e", "f", "g"])

    started = time.perf_counter()
    a, b, c, d, e, f, g = asyncio.run(run())
    assert 0.3 <= time.perf_counter() - started < 0.3 + 2.0  # the batch budget (slack for a loaded machine)
    assert a == {("txn_count_1h", 1): (97, END_MS)} and b and g == {("txn_count_1h", 1): (103, END_MS)}
    assert isinstance(c, StoreUnavailableError) and c is d and "CassErrorServerReadTimeout" in str(c)
    assert isinstance(e, StoreUnavailableError) and e is f and "300 ms" in str(e)


def test_a_native_batch_of_a_store_that_answers_nothing_fails_at_the_request_budget() -> None:
    session = _NativeSession(hung={"a", "c"})
    reader = _native(session, 2, timeout_s=0.1, batch_timeout_s=5.0)

    async def run() -> Any:
        _opened(reader)
        return await reader.read_each_async("user", ["a", "b", "c"])

    started = time.perf_counter()
    results = asyncio.run(run())
    assert time.perf_counter() - started < 0.1 + 2.0  # not the 5 s batch budget
    assert all(isinstance(r, StoreUnavailableError) and "within 100 ms" in str(r) for r in results)


def test_failing_reads_get_a_fresh_session_in_the_background_without_another_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After an outage the store's first requests failed for as long as the fresh session took to open, since
    only a request started one: now the reader keeps trying in the background, one attempt at a time and at most
    one per REOPEN_AFTER_S, from REOPEN_AFTER_S after the first failure, and stops once one opens."""
    from sinks.cassandra import native_reader

    monkeypatch.setattr(native_reader, "REOPEN_AFTER_S", 0.2)
    monkeypatch.setattr(native_reader, "LOOK_EVERY_S", 0.02, raising=False)  # new with the fix
    attempts: list[float] = []
    fresh = _NativeSession()

    class Reader(native_reader.NativeOnlineReader):
        async def _open(self) -> None:  # the store refuses twice, then takes a session
            attempts.append(time.monotonic())
            if len(attempts) < 3:
                raise StoreUnavailableError("Cassandra at 127.0.0.1:9042 unavailable: connection refused")
            self._session, self._failing_since = fresh, None

    reader = Reader(["127.0.0.1"], 9042, "ks", timeout_s=0.1)

    async def run() -> tuple[float, Any]:
        reader._session, reader._select = _NativeSession(failing={"a"}), _Statement("one")
        _opened(reader)
        with pytest.raises(StoreUnavailableError):
            await reader.read_many_async("user", ["a"])
        failed_at = time.monotonic()
        deadline = failed_at + 10
        while len(attempts) < 3 and time.monotonic() < deadline:  # no request meanwhile
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)  # and none after the one that opened
        return failed_at, await reader.read_many_async("user", ["a"])

    failed_at, served = asyncio.run(run())
    assert len(attempts) == 3, attempts
    assert attempts[0] - failed_at >= 0.2 - 0.01
    assert all(later - earlier >= 0.2 - 0.01 for earlier, later in itertools.pairwise(attempts))
    assert reader._session is fresh and served == [{("txn_count_1h", 1): (97, END_MS)}]


def test_api_settings_are_integers_within_their_bounds() -> None:
    from registry.core.errors import FeatureStoreError
    from serving.online.options import int_setting

    assert int_setting({}, "FS_X", 25, 1, 100) == 25
    assert (
        int_setting({"FS_X": "1"}, "FS_X", 25, 1, 100) == 1 and int_setting({"FS_X": "100"}, "FS_X", 25, 1, 100) == 100
    )
    for bad in ("0", "101", "-3", "2.5", "", "many"):
        with pytest.raises(FeatureStoreError, match="FS_X"):
            int_setting({"FS_X": bad}, "FS_X", 25, 1, 100)
    with pytest.raises(ValueError, match="from 1 to 100"):
        _native(_NativeSession(), 101)


def test_reads_after_the_progress_have_what_it_left_of_the_budget() -> None:
    """README: a request's budget runs from its start. The progress read, then the vectors' read, each had a whole
    budget (audit: 200s, and 503s, at twice the budget behind a store answering each read in 92 ms). Inside
    ``reads_from`` a read gets what is left of its budget, in both readers, and none is sent once nothing is; a
    batch's entities still have the request budget for a first answer from when they are sent (the store answered
    the progress read: a batch whose progress read took most of the request budget failed whole at 100 ms)."""
    from sinks.cassandra.budget import reads_from

    python = _Session({"a": ROWS})
    reader = OnlineReader(python, "ks", timeout_s=0.3, batch_timeout_s=1.0)  # type: ignore[arg-type]
    native_session = _NativeSession()
    native = _native(native_session, 1, timeout_s=0.3, batch_timeout_s=1.0)

    async def run() -> list[Any]:
        _opened(native)
        now = asyncio.get_running_loop().time()
        out: list[Any] = []
        with reads_from(now - 0.2):  # the progress took 0.2 s of 0.3
            out.append(await reader.read_many_async("user", ["a"]))
            out.append(await reader.read_each_async("user", ["a"]))
            out.append(await native.read_many_async("user", ["a"]))
            out.append(await native.read_each_async("user", ["a"]))
        with reads_from(now - 0.31):  # all of the request budget: a single read fails unsent, a batch goes on
            for read in (reader.read_many_async, native.read_many_async):
                with pytest.raises(StoreUnavailableError, match="no answer within 300 ms"):
                    await read("user", ["a"])
            out.append(await reader.read_each_async("user", ["a"]))
            out.append(await native.read_each_async("user", ["a"]))
        with reads_from(now - 1.01):  # all of the batch budget too
            out.append(await reader.read_each_async("user", ["a"]))
            out.append(await native.read_each_async("user", ["a"]))
        out.append(await reader.read_many_async("user", ["a"]))  # outside: the whole budget
        return out

    many, each, native_many, native_each, late, native_late, spent, native_spent, whole = asyncio.run(run())
    served = [{("txn_count_1h", 1): (7, END_MS)}]
    assert many == each == late == whole == served
    assert native_many == native_each == native_late == [{("txn_count_1h", 1): (97, END_MS)}]
    # the Python driver's timeouts: the request's 0.1 s left, the batch's 0.8 s, then 0.69 s, then the whole 0.3 s
    short, batch, batch_later, whole_s = python.timeouts
    assert 0.0 < short <= 0.1 and 0.6 < batch <= 0.8 and 0.49 < batch_later <= 0.69 and whole_s == 0.3
    assert all(q.timeout <= limit for q, limit in zip(native_session.queries, (0.1, 0.8, 0.69), strict=True))
    assert all(q.timeout >= 0.001 for q in native_session.queries)
    for failed in (*spent, *native_spent):  # nothing left of either: late, none sent
        assert isinstance(failed, StoreUnavailableError) and "no answer within 1000 ms" in str(failed)


def test_the_native_driver_is_never_given_a_timeout_it_reads_as_none() -> None:
    """acsylla truncates a timeout to whole milliseconds and the C++ driver takes 0 ms for no timeout: what is left of
    a budget, 0.4 ms, reached it as no timeout at all (a read of a hung store then held its connection for good)."""
    reader = _native(_NativeSession(), 1)
    assert [reader._bound(_Statement("one"), [], t).timeout for t in (0.0004, 0.001, 0.0011, 0.1)] == [
        0.001,
        0.001,
        0.002,
        0.1,
    ]
