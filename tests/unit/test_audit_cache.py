"""Audit of the vector cache against docs/design.md §3.3 and §6 (hot key, read side) and README "Online
serving": the TTL boundary to the microsecond, statuses decided at serve time for cached rows, a definition
activated while rows are cached, a cached absent entity, the bound at exactly N, and a single vector's
budget when its entity is already being read by a batch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import SettingsError, StoreUnavailableError
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from serving.online.app import create_app
from serving.online.cache import VectorCache
from serving.online.options import ApiOptions
from sinks.cassandra.reader import Stored, StoredValue

MIN = 60_000
HOUR = 60 * MIN
T = 1_700_000_100_000  # a 5-minute window end
NOW = T + 90_000
STREAM = "card_transactions/user/sliding(1h/5m)"


class Source:
    """Stored vectors in memory; ``slow`` entities answer a batch read only after ``slow_s``, failed."""

    def __init__(self, values: dict[str, Stored] | None = None) -> None:
        self.values = values or {}
        self.reads: list[tuple[str, tuple[str, ...]]] = []
        self.slow: set[str] = set()
        self.slow_s = 0.0

    async def progress_async(self) -> dict[str, int]:
        return {STREAM: T}

    async def read_many_async(self, entity_type: str, entity_ids: Sequence[str]) -> list[Stored]:
        self.reads.append(("many", tuple(entity_ids)))
        await asyncio.sleep(0.01)
        if self.slow.intersection(entity_ids):
            raise StoreUnavailableError("no answer within the request budget")
        return [dict(self.values.get(eid, {})) for eid in entity_ids]

    async def read_each_async(
        self, entity_type: str, entity_ids: Sequence[str]
    ) -> list[Stored | StoreUnavailableError]:
        self.reads.append(("each", tuple(entity_ids)))
        await asyncio.sleep(0.01)
        if self.slow.intersection(entity_ids):
            await asyncio.sleep(self.slow_s)  # the batch budget
        return [
            StoreUnavailableError("no answer within the batch budget")
            if eid in self.slow
            else dict(self.values.get(eid, {}))
            for eid in entity_ids
        ]


class Clock:
    def __init__(self, us: int) -> None:
        self.us = us

    def __call__(self) -> int:
        return self.us


@pytest.fixture
def store(tmp_path: Path, shipped_catalog: FeatureCatalog) -> DefinitionStore:
    store = DefinitionStore(tmp_path / "definitions.db")
    for d in shipped_catalog:
        store.register(d)
    return store


def client_for(store: DefinitionStore, source: Source, clock: Callable[[], int]) -> TestClient:
    app = create_app(LiveCatalog(store), source, clock_us=clock, cache_ttl_ms=1000)
    return TestClient(app, raise_server_exceptions=False)


def sum_row(ts: int, value: float) -> Stored:
    return {("txn_amount_sum_1h", 1): StoredValue(value, ts)}


@pytest.mark.parametrize(("after_us", "reads"), [(999_999, 1), (1_000_000, 2)])
def test_cache_ttl_is_measured_to_the_microsecond(after_us: int, reads: int) -> None:
    """'reused while less than 1 s has passed since they were read (at exactly 1 s they are read again)':
    a read at a clock that is not a whole millisecond is still reused 999,999 µs later."""

    async def scenario() -> int:
        source = Source()
        clock = Clock(NOW * 1000 + 500)
        cache = VectorCache(source, clock_ms=lambda: clock() // 1000, clock_us=clock, ttl_ms=1000)
        await cache.get_many("user", ["a"])
        clock.us += after_us
        await cache.get_many("user", ["a"])
        return len(source.reads)

    assert asyncio.run(scenario()) == reads


def test_the_api_measures_the_cache_ttl_to_the_microsecond(store: DefinitionStore) -> None:
    """The API hands the cache its microsecond clock: a read at ...000.500 ms is reused 999,999 µs later."""
    clock = Clock(NOW * 1000 + 500)
    source = Source({"u1": sum_row(T, 4.0)})
    client = client_for(store, source, clock)
    url = "/v1/features/user/u1?names=txn_amount_sum_1h"
    assert client.get(url).status_code == 200
    clock.us += 999_999
    assert client.get(url).status_code == 200
    assert len(source.reads) == 1
    clock.us += 1
    assert client.get(url).status_code == 200
    assert len(source.reads) == 2


def test_a_value_whose_ttl_ends_while_cached_is_served_expired(store: DefinitionStore) -> None:
    """Statuses are decided at serve time: a cached row past its TTL is `expired`, never served as present."""
    clock = Clock(NOW * 1000)
    stored_at = NOW - 2 * HOUR + 500  # txn_amount_sum_1h's TTL is 2 h: 0.5 s of it left at the read
    source = Source({"u1": sum_row(stored_at, 4.0)})
    client = client_for(store, source, clock)
    first = client.get("/v1/features/user/u1?names=txn_amount_sum_1h").json()["features"]["txn_amount_sum_1h"]
    assert first["status"] != "expired"
    clock.us += 600_000
    second = client.get("/v1/features/user/u1?names=txn_amount_sum_1h").json()["features"]["txn_amount_sum_1h"]
    assert len(source.reads) == 1  # from the cache
    assert (second["status"], second["value"]) == ("expired", None)
    assert second["age_seconds"] == (NOW + 600 - stored_at) / 1000


def test_a_cached_absent_entity_is_missing_and_a_write_shows_after_the_ttl(store: DefinitionStore) -> None:
    clock = Clock(NOW * 1000)
    source = Source()
    client = client_for(store, source, clock)
    url = "/v1/features/user/new?names=txn_amount_sum_1h"
    assert client.get(url).json()["features"]["txn_amount_sum_1h"]["status"] == "missing"
    source.values["new"] = sum_row(T, 3.0)
    clock.us += 999_999
    assert client.get(url).json()["features"]["txn_amount_sum_1h"]["status"] == "missing"
    clock.us += 1
    assert client.get(url).json()["features"]["txn_amount_sum_1h"]["value"] == 3.0
    assert len(source.reads) == 2


def test_a_version_activated_while_cached_is_served_from_the_cached_row(
    store: DefinitionStore, shipped_catalog: FeatureCatalog, make_definition: Callable[..., FeatureDefinition]
) -> None:
    clock = Clock(NOW * 1000)
    values: dict[str, Stored] = {
        "u1": {("txn_count_1h", 1): StoredValue(5, T), ("txn_count_1h", 2): StoredValue(50, T)}
    }
    source = Source(values)
    shipped = shipped_catalog.get("user", "txn_count_1h", 1)
    store.register(make_definition(version=2, ttl="3h", source=shipped.source.model_dump(mode="json")))
    live = LiveCatalog(store)
    client = TestClient(create_app(live, source, clock_us=clock, cache_ttl_ms=1000), raise_server_exceptions=False)
    url = "/v1/features/user/u1?names=txn_count_1h"
    assert client.get(url).json()["features"]["txn_count_1h"]["value"] == 5
    store.activate("user", "txn_count_1h", 2)
    live.invalidate()  # the catalog's own refresh (at most 1 s) is not the cache's business
    clock.us += 1_000  # within the cache's TTL
    body = client.get(url).json()["features"]["txn_count_1h"]
    assert (body["version"], body["value"]) == (2, 50)
    assert len(source.reads) == 1


def test_exactly_max_entries_are_kept() -> None:
    async def scenario() -> tuple[int, int]:
        source = Source()
        cache = VectorCache(source, clock_ms=lambda: NOW, ttl_ms=60_000, max_entries=3)
        await cache.get_many("user", ["a", "b", "c"])
        await cache.get_many("user", ["a", "b", "c"])
        return len(cache), len(source.reads)

    assert asyncio.run(scenario()) == (3, 1)


def test_a_single_read_does_not_wait_on_a_batchs_longer_budget() -> None:
    """A GET fails at its request budget (§3.3, §6): joining a batch's read of its entity would make it
    wait for the batch budget instead."""

    async def scenario() -> tuple[float, list[tuple[str, tuple[str, ...]]]]:
        source = Source()
        source.slow, source.slow_s = {"hot"}, 1.0
        cache = VectorCache(source, clock_ms=lambda: NOW, ttl_ms=1000)
        loop = asyncio.get_running_loop()
        batch = asyncio.ensure_future(cache.get_each("user", ["x", "hot"]))
        await asyncio.sleep(0)
        started = loop.time()
        with pytest.raises(StoreUnavailableError):
            await cache.get_many("user", ["hot"])
        waited = loop.time() - started
        results = await batch
        assert isinstance(results[1], StoreUnavailableError)
        return waited, source.reads

    waited, reads = asyncio.run(scenario())
    assert waited < 0.5
    assert reads == [("each", ("x", "hot")), ("many", ("hot",))]


def test_a_batch_still_joins_a_single_read_in_flight_and_gets_coalesce() -> None:
    async def scenario() -> list[tuple[str, tuple[str, ...]]]:
        source = Source({"hot": sum_row(T, 1.0)})
        cache = VectorCache(source, clock_ms=lambda: NOW, ttl_ms=0)
        gets = [asyncio.ensure_future(cache.get_many("user", ["hot"])) for _ in range(20)]
        await asyncio.sleep(0)
        batch = await cache.get_each("user", ["hot", "hot"])
        await asyncio.gather(*gets)
        assert all(not isinstance(s, StoreUnavailableError) for s in batch)
        return source.reads

    assert asyncio.run(scenario()) == [("many", ("hot",))]


def test_a_get_whose_read_fails_is_a_503_store_unavailable(store: DefinitionStore) -> None:
    source = Source()
    source.slow = {"u1"}
    response = client_for(store, source, Clock(NOW * 1000)).get("/v1/features/user/u1")
    assert response.status_code == 503
    assert response.json()["error"] == "store_unavailable"
    assert set(response.json()) == {"error", "message"}


@pytest.mark.parametrize(
    "name", ["FS_CACHE_TTL_MS", "FS_CACHE_MAX_ENTRIES", "FS_REQUEST_BUDGET_MS", "FS_MAX_ENTITIES_IN_FLIGHT"]
)
@pytest.mark.parametrize("raw", ["9" * 5000, "-" + "9" * 5000])
def test_a_setting_of_thousands_of_digits_is_a_settings_error(name: str, raw: str) -> None:
    """'... or anything else stops the process with a SettingsError naming the variable' (§2.6): Python's
    int() refuses more than 4,300 digits with a bare ValueError, which would be a traceback."""
    with pytest.raises(SettingsError, match=name):
        ApiOptions.from_env({name: raw})


@pytest.mark.parametrize(
    ("name", "raw", "value"),
    [
        ("FS_CACHE_TTL_MS", "0" * 5000 + "1000", 1000),
        ("FS_CACHE_TTL_MS", "3600000", 3_600_000),
        ("FS_CACHE_TTL_MS", "-0", 0),
        ("FS_CACHE_MAX_ENTRIES", "+10000000", 10_000_000),
        ("FS_REQUEST_BUDGET_MS", "60000", 60_000),
    ],
)
def test_settings_at_their_limits_and_with_leading_zeros_are_accepted(name: str, raw: str, value: int) -> None:
    assert getattr(ApiOptions.from_env({name: raw}), _FIELD[name]) == value


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("FS_CACHE_TTL_MS", "3600001"),
        ("FS_CACHE_TTL_MS", "-1"),
        ("FS_CACHE_MAX_ENTRIES", "0"),
        ("FS_CACHE_MAX_ENTRIES", "10000001"),
        ("FS_REQUEST_BUDGET_MS", "0"),
        ("FS_REQUEST_BUDGET_MS", "0" * 10 + "60001"),
    ],
)
def test_settings_past_their_limits_are_refused(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=f"{name} must be from"):
        ApiOptions.from_env({name: raw})


_FIELD = {
    "FS_CACHE_TTL_MS": "cache_ttl_ms",
    "FS_CACHE_MAX_ENTRIES": "cache_max_entries",
    "FS_REQUEST_BUDGET_MS": "budget_ms",
}


def test_a_batch_read_sent_before_a_single_one_never_replaces_its_newer_entry() -> None:
    """A GET no longer joins a batch's read: when its own later read ends first, the batch's older answer must not
    replace it in the cache (a value once served would be taken back for the rest of the TTL)."""

    class Racing(Source):
        async def read_each_async(
            self, entity_type: str, entity_ids: Sequence[str]
        ) -> list[Stored | StoreUnavailableError]:
            self.reads.append(("each", tuple(entity_ids)))
            answer: list[Stored | StoreUnavailableError] = [dict(self.values.get(e, {})) for e in entity_ids]
            await asyncio.sleep(0.2)  # read when sent, answered late
            return answer

    ref = ("txn_amount_sum_1h", 1)

    async def scenario() -> tuple[object, object, object, int]:
        source = Racing({"hot": sum_row(T, 1.0)})
        clock = Clock(NOW * 1000)
        cache = VectorCache(source, clock_ms=lambda: clock() // 1000, clock_us=clock, ttl_ms=1000)
        batch = asyncio.ensure_future(cache.get_each("user", ["hot"]))
        while not source.reads:  # the batch's read is sent
            await asyncio.sleep(0)
        source.values["hot"] = sum_row(T, 2.0)
        clock.us += 1_000
        (single,) = await cache.get_many("user", ["hot"])
        (older,) = await batch
        clock.us += 1_000
        (cached,) = await cache.get_many("user", ["hot"])
        assert not isinstance(older, StoreUnavailableError)
        return single.stored[ref][0], older.stored[ref][0], cached.stored[ref][0], len(source.reads)

    assert asyncio.run(scenario()) == (2.0, 1.0, 2.0, 2)
