"""Audit of hot-key protection on the read side (docs/design.md §2.2 "Hot keys", §3.3, §6): the vector cache's
TTL against a wall clock that is set back, and a shared read whose first requester went away."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence
from typing import Any

from registry.core.errors import StoreUnavailableError
from serving.online.cache import VectorCache
from sinks.cassandra.reader import Stored
from tests.unit.test_audit_cache import NOW, Clock, Source, T, sum_row

REF = ("txn_amount_sum_1h", 1)


def test_a_clock_set_back_does_not_keep_a_cached_vector_past_its_ttl() -> None:
    """'reused while less than 1 s has passed since they were read' and 'cannot hide a change for longer than one
    second' (§2.2): the API's clock is the wall clock, which NTP can set back. An entry read at a clock that now
    lies ahead of it was kept until the clock caught up again (an hour here); it is read again, and that read's
    answer is cached and reused as any other."""

    async def scenario() -> tuple[list[object], int]:
        source = Source({"a": sum_row(T, 1.0)})
        clock = Clock(NOW * 1000)
        cache = VectorCache(source, clock_ms=lambda: clock() // 1000, clock_us=clock, ttl_ms=1000)
        await cache.get_many("user", ["a"])
        clock.us -= 3_600_000_000  # the wall clock is set back an hour
        source.values["a"] = sum_row(T, 2.0)
        served: list[object] = []
        for _ in range(3):
            clock.us += 400_000  # 1.2 s in all: the new value is read once, then reused from the cache
            (snapshot,) = await cache.get_many("user", ["a"])
            served.append(snapshot.stored[REF][0])
        return served, len(source.reads)

    assert asyncio.run(scenario()) == ([2.0, 2.0, 2.0], 2)


def test_a_failed_read_whose_sender_went_away_fails_its_waiters_without_an_unretrieved_error() -> None:
    """A requester that goes away (client gone) does not cancel the shared read for the others (§3.3). When that
    read then fails, its waiters get the failure, and nothing is left over: asyncio logged 'Task exception was never
    retrieved' with a traceback for the read task nobody awaited any more, once per abandoned read (a store outage,
    when clients give up, is exactly when that happens)."""

    # The read fails when the test says so, not after a 20 ms timer: with 5 ms sleeps between the steps, a loaded
    # machine's late wake-up let the read fail before the waiters joined it (they then sent a read of their own).
    fail_now = asyncio.Event()

    class Failing(Source):
        async def read_many_async(self, entity_type: str, entity_ids: Sequence[str]) -> list[Stored]:
            self.reads.append(("many", tuple(entity_ids)))
            await fail_now.wait()
            raise StoreUnavailableError("no answer within the request budget")

    async def scenario() -> tuple[list[object], list[dict[str, Any]]]:
        unhandled: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: unhandled.append(context))
        source = Failing()
        cache = VectorCache(source, clock_ms=lambda: NOW, ttl_ms=1000)
        sender = asyncio.ensure_future(cache.get_many("user", ["hot"]))
        while not source.reads:  # the read is sent
            await asyncio.sleep(0)
        waiters = [asyncio.ensure_future(cache.get_many("user", ["hot"])) for _ in range(3)]
        while cache.coalesced < 3:  # they wait on it
            await asyncio.sleep(0)
        sender.cancel()  # its sender goes away while the read is in flight
        while not sender.done():
            await asyncio.sleep(0)
        fail_now.set()
        outcomes: list[object] = list(await asyncio.gather(*waiters, return_exceptions=True))
        outcomes.append(len(source.reads))
        del sender, waiters
        gc.collect()
        await asyncio.sleep(0)
        return outcomes, unhandled

    outcomes, unhandled = asyncio.run(scenario())
    assert [type(o) for o in outcomes[:3]] == [StoreUnavailableError] * 3
    assert outcomes[3] == 1  # one shared read
    assert unhandled == []
