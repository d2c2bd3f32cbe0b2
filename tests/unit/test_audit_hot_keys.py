"""Audit of hot-key protection on the read side (docs/design.md §2.2 "Hot keys", §3.3, §6): the vector cache's
TTL against a wall clock that is set back."""

from __future__ import annotations

import asyncio

from serving.online.cache import VectorCache
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
