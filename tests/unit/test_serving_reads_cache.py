"""The vector cache (true age, single-flight, bound) and the online reader's request budget."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from registry.core.errors import StoreUnavailableError
from registry.live import LiveCatalog
from serving.online.app import create_app
from serving.online.cache import VectorCache
from sinks.cassandra.reader import OnlineReader
from tests.conftest import PreparedCql
from tests.unit.test_serving_reads import MIN, NOW, STREAM, Clock, Source, T, app_for, db, iso, live, rows

__all__ = ["db", "live"]  # the fixtures, used by name


# --- cache: true age, single-flight, bound ---------------------------------------------------------


def test_cached_vector_reports_its_true_age(live: LiveCatalog) -> None:
    clock = Clock()
    source = Source({"u1": rows(count_v2=(T, 7))})
    client = app_for(live, source, clock, cache_ttl_ms=1000)
    ages = []
    for step_ms in (0, 400, 500):  # 0, 400 and 900 ms after the read: all within the TTL
        clock.ms += step_ms
        ages.append(
            client.get("/v1/features/user/u1?names=txn_count_1h").json()["features"]["txn_count_1h"]["age_seconds"]
        )
    assert ages == [90.0, 90.4, 90.9]
    assert len(source.reads) == 1
    clock.ms += 100  # 1 s after the read: the entry has expired
    client.get("/v1/features/user/u1?names=txn_count_1h")
    assert len(source.reads) == 2
    metrics = client.get("/metrics").text
    assert 'fs_cache_requests_total{result="hit"} 2.0' in metrics
    assert 'fs_cache_requests_total{result="miss"} 2.0' in metrics


def test_cached_vector_keeps_the_progress_read_before_it(live: LiveCatalog) -> None:
    """A window closing after the read must not turn the cached row into a false empty window."""
    clock = Clock()
    source = Source({"u1": rows(count_v2=(T, 7))})
    client = app_for(live, source, clock, cache_ttl_ms=1000)
    client.get("/v1/features/user/u1")
    source.progress_ms = {STREAM: T + 5 * MIN}  # the next window closed (its rows are newer than the cache)
    clock.ms += 500
    feature = client.get("/v1/features/user/u1").json()["features"]["txn_count_1h"]
    assert (feature["value"], feature["feature_timestamp"]) == (7, iso(T))


def test_concurrent_misses_share_one_read(live: LiveCatalog) -> None:
    async def scenario() -> tuple[list[int], list[tuple[str, ...]]]:
        source = Source({"hot": rows(count_v2=(T, 7))})
        source.gate = asyncio.Event()
        app = create_app(live, source, clock_us=lambda: NOW * 1000, cache_ttl_ms=0)  # single-flight without caching
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            pending = [asyncio.ensure_future(client.get("/v1/features/user/hot")) for _ in range(50)]
            # The read is let go once the 49 others wait on it (not after a fixed 50 ms: the 50 requests took 12-35 ms
            # to get there beside a CPU burner, 159 ms cold; one arriving after the read ended would send its own).
            deadline = time.monotonic() + 10
            while app.state.cache.coalesced < 49:
                assert time.monotonic() < deadline, f"{app.state.cache.coalesced} of 49 requests joined the read"
                await asyncio.sleep(0.001)
            source.gate.set()
            responses = await asyncio.gather(*pending)
        return [r.status_code for r in responses], source.reads

    statuses, reads = asyncio.run(scenario())
    assert statuses == [200] * 50
    assert reads == [("hot",)]


def test_a_failed_shared_read_fails_every_waiter_and_is_not_cached() -> None:
    async def scenario() -> list[BaseException | list[Any]]:
        source = Source()
        source.gate = asyncio.Event()
        source.fail = StoreUnavailableError("down")
        cache = VectorCache(source, clock_ms=lambda: NOW, ttl_ms=1000)
        pending = [asyncio.ensure_future(cache.get_many("user", ["x"])) for _ in range(5)]
        await asyncio.sleep(0.01)
        source.gate.set()
        results = await asyncio.gather(*pending, return_exceptions=True)
        source.fail = None
        results.append(await cache.get_many("user", ["x"]))
        assert len(source.reads) == 2
        return results

    results = asyncio.run(scenario())
    assert all(isinstance(r, StoreUnavailableError) for r in results[:5])
    assert isinstance(results[5], list)


def test_cache_is_bounded_least_recently_used_out() -> None:
    async def scenario() -> tuple[int, int]:
        source = Source()
        cache = VectorCache(source, clock_ms=lambda: NOW, ttl_ms=60_000, max_entries=3)
        for eid in ["a", "b", "c", "a", "d"]:  # "a" is used again, so "b" is the least recently used
            await cache.get_many("user", [eid])
        before = len(source.reads)
        await cache.get_many("user", ["a", "c", "d"])
        hits_kept = len(source.reads) == before
        await cache.get_many("user", ["b"])
        return len(cache), int(hits_kept) + (len(source.reads) - before)

    size, outcome = asyncio.run(scenario())
    assert size == 3
    assert outcome == 2  # a, c, d were all cached; b had been evicted and was read again


# --- the request budget ----------------------------------------------------------------------------


class _SilentFuture:
    def add_callbacks(self, *_: Any, **__: Any) -> None:  # never answers, as a dead node would not
        pass


class _SilentSession:
    def prepare(self, query: str) -> str:
        return PreparedCql(query)

    def execute_async(self, *_: Any, **__: Any) -> _SilentFuture:
        return _SilentFuture()


def test_reader_answers_within_its_budget_when_the_store_is_silent() -> None:
    reader = OnlineReader(_SilentSession(), "ks", timeout_s=0.05)  # type: ignore[arg-type]

    async def read() -> float:
        started = time.perf_counter()
        with pytest.raises(StoreUnavailableError, match="no answer within 50 ms"):
            await reader.read_many_async("user", ["a", "b"])
        return time.perf_counter() - started

    assert asyncio.run(read()) < 0.3
