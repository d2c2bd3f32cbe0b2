"""Past its in-flight bound an API process answers 503 ``overloaded`` at once instead of queueing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.core.catalog import load_folder
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from registry.plan import apply
from serving.online.app import create_app
from sinks.cassandra.reader import Stored


class _Held:
    """An async vector source whose reads wait until released: requests stay in flight."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.reads = 0

    async def read_many_async(self, entity_type: str, entity_ids: Sequence[str]) -> list[Stored]:
        self.reads += 1
        await self.release.wait()
        return [{} for _ in entity_ids]

    async def progress_async(self) -> dict[str, int]:
        return {}


@pytest.fixture
def live(tmp_path: Path) -> LiveCatalog:
    store = DefinitionStore(tmp_path / "d.db")
    apply(store, load_folder())
    return LiveCatalog(store)


def test_requests_past_the_bound_are_shed_at_once_and_the_admitted_ones_answer(live: LiveCatalog) -> None:
    async def scenario() -> None:
        source = _Held()
        app = create_app(live, source, max_in_flight=3, cache_ttl_ms=0)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            admitted = [asyncio.create_task(client.get(f"/v1/features/user/u{i}")) for i in range(3)]
            while source.reads < 3:
                await asyncio.sleep(0.001)
            loop = asyncio.get_running_loop()
            started = loop.time()
            shed = await asyncio.gather(*(client.get(f"/v1/features/user/x{i}") for i in range(5)))
            assert loop.time() - started < 0.5  # answered without waiting for the held reads
            for response in shed:
                assert response.status_code == 503
                assert response.json()["error"] == "overloaded"
                assert response.headers["retry-after"] == "1"
            assert (await client.get("/health")).status_code == 200  # never shed
            metrics = (await client.get("/metrics")).text
            assert 'status="503"' in metrics  # shed requests are counted
            source.release.set()
            for response in await asyncio.gather(*admitted):
                assert response.status_code == 200, response.text
            assert (await client.get("/v1/features/user/again")).status_code == 200  # the bound frees up

    asyncio.run(scenario())


def test_the_bound_must_admit_something(live: LiveCatalog) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        create_app(live, _Held(), max_in_flight=0)


def _batch(client: httpx.AsyncClient, ids: Sequence[str]) -> Any:
    return client.post("/v1/features/user/batch", json={"entity_ids": list(ids), "names": ["txn_count_1h"]})


def test_entities_in_flight_are_bounded_exactly_at_the_limit(live: LiveCatalog) -> None:
    """A read of n entities is admitted while in flight + n <= the bound (exactly the bound included),
    refused at once past it, admitted alone whatever its size, and the bound frees up when reads end."""

    async def scenario() -> None:
        source = _Held()
        app = create_app(live, source, max_entities_in_flight=10, cache_ttl_ms=0)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            first = asyncio.create_task(_batch(client, [f"a{i}" for i in range(6)]))
            while source.reads < 1:
                await asyncio.sleep(0.001)
            past = await _batch(client, [f"b{i}" for i in range(5)])  # 6 + 5 = 11 > 10
            assert past.status_code == 503, past.text
            assert past.json()["error"] == "overloaded"
            assert past.headers["retry-after"] == "1"
            exact = asyncio.create_task(_batch(client, [f"d{i}" for i in range(3)]))  # 6 + 3 = 9
            while source.reads < 2:
                await asyncio.sleep(0.001)
            last = asyncio.create_task(client.get("/v1/features/user/e0?names=txn_count_1h"))  # 9 + 1 = 10: in
            while source.reads < 3:
                await asyncio.sleep(0.001)
            full = await client.get("/v1/features/user/f0?names=txn_count_1h")  # 10 + 1 > 10: refused
            assert full.status_code == 503 and full.json()["error"] == "overloaded"
            vectors = await client.post(
                "/v1/vectors",
                json={"entities": [{"entity_type": "user", "entity_id": "g0", "names": ["txn_count_1h"]}]},
            )
            assert vectors.status_code == 503 and vectors.json()["error"] == "overloaded"
            source.release.set()
            for task in (first, exact, last):
                assert (await task).status_code == 200
            source.release.clear()
            alone = asyncio.create_task(_batch(client, [f"h{i}" for i in range(25)]))  # larger than the bound
            while source.reads < 4:
                await asyncio.sleep(0.001)
            assert (await client.get("/v1/features/user/i0?names=txn_count_1h")).status_code == 503
            source.release.set()
            response = await alone
            assert response.status_code == 200 and len(response.json()["results"]) == 25
            assert (await _batch(client, [f"j{i}" for i in range(10)])).status_code == 200  # the bound freed up

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_the_entity_bound_must_admit_something(live: LiveCatalog) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        create_app(live, _Held(), max_entities_in_flight=0)


def test_at_the_bound_reads_are_refused_before_routing_and_counted_under_their_route(live: LiveCatalog) -> None:
    """While the entity bound is reached every feature read is 503 ``overloaded`` before it is routed or validated
    (one that would be 404 or 400 too), other routes are not refused, and the refusals are counted under the
    read's route template; below the bound the same requests get their own answers."""

    async def scenario() -> None:
        source = _Held()
        app = create_app(live, source, max_entities_in_flight=2, cache_ttl_ms=0)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            assert (await client.get("/v1/features/no_such_type/x")).status_code == 404  # below the bound
            bad = await client.post("/v1/features/user/batch", content=b"{not json")
            assert bad.status_code == 400
            held = asyncio.create_task(_batch(client, ["a0", "a1"]))  # 2 of 2: the bound is reached
            while source.reads < 1:
                await asyncio.sleep(0.001)
            refused = [
                await client.get("/v1/features/no_such_type/x"),
                await client.post("/v1/features/user/batch", content=b"{not json"),
                await client.get("/v1/features/user?user_id=u1"),
                await client.post("/v1/vectors", content=b"[]"),
            ]
            for response in refused:
                assert response.status_code == 503, response.text
                assert response.json()["error"] == "overloaded"
                assert response.headers["retry-after"] == "1"
            assert (await client.get("/v1/feature-definitions")).status_code == 200  # not a feature read
            assert (await client.get("/v1/nothing/here")).status_code == 404  # not a feature read either
            metrics = (await client.get("/metrics")).text
            assert 'fs_requests_total{route="/v1/features/{entity_type}/batch",status="503"} 1.0' in metrics
            assert 'fs_requests_total{route="/v1/features/{entity_type}/{entity_id}",status="503"} 1.0' in metrics
            assert 'fs_requests_total{route="/v1/vectors",status="503"} 1.0' in metrics
            assert 'fs_errors_total{class="overloaded"} 4.0' in metrics
            source.release.set()
            assert (await held).status_code == 200
            assert (await client.get("/v1/features/no_such_type/x")).status_code == 404  # the bound freed up

    asyncio.run(asyncio.wait_for(scenario(), 30))
