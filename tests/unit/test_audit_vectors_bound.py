"""A ``POST /v1/vectors`` request holds the entity bound until every part's read has ended, a failed part
included: the entity bound counts reads in flight, so none may outlive the request's admission."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx

from registry.core.errors import StoreUnavailableError
from registry.live import LiveCatalog
from serving.online.app import create_app
from sinks.cassandra.reader import Stored
from tests.unit.test_overload import live

__all__ = ["live"]  # the fixture, used by name


class _OneFailsOneWaits:
    """Reads of ``bad`` fail at once, reads of ``slow`` wait until released, any other answers at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.failed = 0
        self.waiting = 0

    async def read_many_async(self, entity_type: str, entity_ids: Sequence[str]) -> list[Stored]:
        if "bad" in entity_ids:
            self.failed += 1
            raise StoreUnavailableError("online store read failed: NoHostAvailable")
        if "slow" in entity_ids:
            self.waiting += 1
            await self.release.wait()
        return [{} for _ in entity_ids]

    async def progress_async(self) -> dict[str, int]:
        return {}


def test_a_failed_part_keeps_the_bound_until_the_other_parts_reads_end(live: LiveCatalog) -> None:
    async def scenario() -> None:
        source = _OneFailsOneWaits()
        app = create_app(live, source, max_entities_in_flight=2, cache_ttl_ms=0)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            parts = [{"entity_type": "user", "entity_id": eid, "names": ["txn_count_1h"]} for eid in ("slow", "bad")]
            vectors = asyncio.create_task(client.post("/v1/vectors", json={"entities": parts}))
            while not (source.failed and source.waiting):
                await asyncio.sleep(0.001)
            for _ in range(100):  # let the request run on as far as it can (no wall-clock wait)
                await asyncio.sleep(0)
            assert not vectors.done()  # the slow part is still reading
            # 2 of 2 entities are still being read: another read is past the bound.
            other = await client.get("/v1/features/user/other?names=txn_count_1h")
            assert other.status_code == 503 and other.json()["error"] == "overloaded", other.text
            source.release.set()
            answer = await vectors
            assert answer.status_code == 503 and answer.json()["error"] == "store_unavailable", answer.text
            freed = await client.get("/v1/features/user/other?names=txn_count_1h")
            assert freed.status_code == 200, freed.text

    asyncio.run(asyncio.wait_for(scenario(), 30))
