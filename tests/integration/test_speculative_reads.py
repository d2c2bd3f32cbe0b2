"""Speculative retry on a real two-node Cassandra cluster (#19 item 4, ``FS_SPECULATIVE_DELAY_MS``).

Two nodes of their own (127.0.0.2 and 127.0.0.3, each the other's seed, beside the suite's one node on
127.0.0.1), a keyspace with replication factor 2, every entity's vector on both. One node is then
stalled (SIGSTOP: its connections stay open, it answers nothing, as a node in a long GC pause or on a
dead disk does). Reads through the native reader, one entity per query, whose token-aware plan starts
at the stalled node:

- without speculation wait for the budget and fail (``StoreUnavailableError``): about half of them;
- with ``speculative_delay_ms`` the driver sends each such read to the other replica after the delay,
  and every read answers, with the same vector as before the stall, well within the budget.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra import stack
from infra.process import PidFile
from infra.settings import StackSettings
from registry.core.catalog import FeatureCatalog
from registry.core.errors import StoreUnavailableError
from registry.core.settings import Settings
from sinks.cassandra import layout as online_layout
from sinks.cassandra.native_reader import NativeOnlineReader
from sinks.cassandra.writer import OnlineWriter
from sinks.factory import connect_cassandra
from sinks.records import FeatureRow
from tests.processes import pause

pytestmark = pytest.mark.integration

HOSTS = ("127.0.0.2", "127.0.0.3")
KEYSPACE = "fs_speculative"
BUDGET_S = 2.0  # generous: the stalled reads take all of it, the speculative ones must not come near it
ENTITIES = 40
MIN = 60_000


def _peers_up(node: StackSettings) -> int:
    """Nodes of the cluster that ``node`` reports, itself included, as seen over CQL."""
    from cassandra.cluster import Cluster

    cluster = Cluster([node.host], port=node.cassandra_port, connect_timeout=5, protocol_version=5)
    try:
        session = cluster.connect()
        return 1 + len(list(session.execute("SELECT peer FROM system.peers_v2", timeout=5)))
    except Exception:
        return 0
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[StackSettings]]:
    base = StackSettings.from_env()
    root = Path(tmp_path_factory.mktemp("pair"))
    seeds = ",".join(f"{h}:{base.cassandra_storage_port}" for h in HOSTS)
    nodes = [
        dataclasses.replace(base, host=h, state_dir=root / h, cassandra_heap="512M", cassandra_seeds=seeds)
        for h in HOSTS
    ]
    try:
        for node in nodes:
            stack.up(node, ["cassandra"])
        deadline = time.monotonic() + 120
        while not all(_peers_up(n) == 2 for n in nodes):
            assert time.monotonic() < deadline, "the two nodes did not see each other within 120 s"
            time.sleep(1)
        yield nodes
    finally:
        for node in nodes:
            pid = _pid(node)
            if pid is not None:
                os.kill(pid, signal.SIGCONT)  # a stopped JVM cannot take the TERM that stops it
            stack.down(node, ["cassandra"])


def _pid(node: StackSettings) -> int | None:
    return PidFile(node.service_dir("cassandra") / "pid").read()  # where ``infra.stack`` keeps it


def test_a_stalled_replica_is_read_around_only_with_speculation(pair: list[StackSettings]) -> None:
    first, second = pair
    from cassandra import ConsistencyLevel
    from cassandra.cluster import Cluster
    from cassandra.query import SimpleStatement, tuple_factory

    admin = Cluster([first.host], port=first.cassandra_port, protocol_version=5)
    try:  # replication factor 2 first: the schema step below keeps an existing keyspace as it is
        admin.connect().execute(online_layout.keyspace_ddl(KEYSPACE, replication_factor=2), timeout=60)
    finally:
        admin.shutdown()
    settings = Settings(cassandra_hosts=(first.host,), cassandra_port=first.cassandra_port, cassandra_keyspace=KEYSPACE)
    cluster, session = connect_cassandra(settings)
    session.row_factory = tuple_factory
    count = FeatureCatalog.from_folder().get("user", "txn_count_1h")
    end = time.time_ns() // 1_000_000 // (5 * MIN) * 5 * MIN
    ids = [f"s{e:03d}" for e in range(ENTITIES)]
    writer = OnlineWriter(session, KEYSPACE)
    for e, eid in enumerate(ids):
        writer.add(FeatureRow.of(count, eid, e, end - 60 * MIN, end, e + 1))
    writer.flush()
    every = SimpleStatement(f"SELECT * FROM {KEYSPACE}.{online_layout.TABLE}", consistency_level=ConsistencyLevel.ALL)
    assert len({row[1] for row in session.execute(every, timeout=30)}) == ENTITIES  # on both replicas

    def reader(delay_ms: int) -> NativeOnlineReader:
        return NativeOnlineReader(
            [first.host],
            first.cassandra_port,
            KEYSPACE,
            timeout_s=BUDGET_S,
            partitions_per_read=1,
            speculative_delay_ms=delay_ms,
            speculative_executions=1,
        )

    async def scenario() -> tuple[Any, ...]:
        plain, speculative = reader(0), reader(50)
        try:
            before = await plain.read_many_async("user", ids)  # both sessions open, to both nodes
            assert await speculative.read_many_async("user", ids) == before
            stalled = _pid(second)
            assert stalled is not None
            pause(stalled)
            try:

                async def one(source: NativeOnlineReader, eid: str) -> tuple[Any, float]:
                    started = time.monotonic()
                    try:
                        (vector,) = await source.read_many_async("user", [eid])
                    except StoreUnavailableError as exc:
                        return exc, time.monotonic() - started
                    return vector, time.monotonic() - started

                # Which node a plain read goes to first is the driver's choice: on a loaded machine a whole round
                # can go to the live node, so rounds repeat (a round of only live reads is quick) until one fails.
                for _ in range(5):
                    stalled_plain = await asyncio.gather(*(one(plain, eid) for eid in ids))
                    if any(isinstance(answer, Exception) for answer, _ in stalled_plain):
                        break
                stalled_speculative = await asyncio.gather(*(one(speculative, eid) for eid in ids))
            finally:
                os.kill(stalled, signal.SIGCONT)
            return before, stalled_plain, stalled_speculative
        finally:
            await plain.close()
            await speculative.close()

    try:
        before, stalled_plain, stalled_speculative = asyncio.run(asyncio.wait_for(scenario(), 120))
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}", timeout=60)
        cluster.shutdown()
    assert all(len(vector) == 1 for vector in before)
    failed = [eid for eid, (answer, _) in zip(ids, stalled_plain, strict=True) if isinstance(answer, Exception)]
    assert failed, "no read went to the stalled node first: the test proves nothing"
    assert all(took >= BUDGET_S * 0.9 for answer, took in stalled_plain if isinstance(answer, Exception))
    answers = [answer for answer, _ in stalled_speculative]
    assert answers == before, [a for a in answers if isinstance(a, Exception)][:3]
    assert max(took for _, took in stalled_speculative) < BUDGET_S
