"""Promoting a backfilled feature version under load, on the real stack (Cassandra, Iceberg, HTTP API).

v1 serves; v2 (a longer TTL: a new version) has been backfilled into both stores, as the stream
job's backfill leaves it. The real API (``create_app`` over a ``LiveCatalog`` and an
``OnlineReader`` on a private Cassandra keyspace, served by uvicorn) answers concurrent readers
while another thread promotes v2. Every response must be a 200 reporting exactly one version of
the feature with that version's value; per reader the version never goes back from 2 to 1; before
the switch everything is v1, after it (plus one catalog refresh) everything is v2. A refused or
failed promotion leaves v1 serving.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.core.definitions import FeatureDefinition
from registry.core.errors import UnknownFeatureError
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from serving.offline.promotion import PromotionRefusedError, promote, readiness
from serving.online.app import create_app
from sinks.cassandra.reader import OnlineReader
from sinks.cassandra.writer import OnlineWriter
from sinks.factory import connect_cassandra, connect_iceberg
from sinks.iceberg.writer import OfflineWriter, ensure_table
from sinks.records import FeatureRow
from tests.conftest import isolated
from tests.http_server import serving as serve_app

pytestmark = pytest.mark.integration

MIN = 60_000
ENTITIES = [f"p{i:03d}" for i in range(40)]
REFRESH_S = 0.05


def _definition(name: str, version: int, ttl: str) -> FeatureDefinition:
    return FeatureDefinition.model_validate(
        {
            "name": name,
            "entity": "user",
            "version": version,
            "owner": "it",
            "value_type": "long",
            "source": {
                "topic": "promo_events",
                "event_schema": "card_transaction",
                "subject": "promo_events-value",
                "entity_key": "user_id",
                "timestamp_field": "event_time",
            },
            "window": {"kind": "sliding", "size": "1h", "slide": "5m"},
            "aggregation": {"function": "count"},
            "freshness_slo": "1h",
            "ttl": ttl,
        }
    )


@dataclass
class Stack:
    settings: Settings
    store: DefinitionStore
    session: Any
    table: Any


@pytest.fixture(scope="module")
def stack(it_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = isolated(it_settings, "promo", tmp_path_factory.mktemp("promotion"))
    cluster, session = connect_cassandra(settings)
    table = ensure_table(connect_iceberg(settings), settings.iceberg_namespace)
    try:
        yield Stack(settings, DefinitionStore(settings.definitions_db), session, table)
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
        cluster.shutdown()


def backfill(
    stack: Stack,
    definitions: list[FeatureDefinition],
    value: int,
    *,
    windows: int = 3,
    behind: int = 0,
    offline_only: bool = False,
) -> None:
    """What a backfill leaves behind: offline rows, then online rows, for every entity (the last
    ``behind`` windows missing: a backfill that stopped short)."""
    now = time.time_ns() // 1_000_000
    last_end = now // (5 * MIN) * (5 * MIN)
    offline = OfflineWriter(stack.table)
    online = OnlineWriter(stack.session, stack.settings.cassandra_keyspace)
    for d in definitions:
        for i, entity in enumerate(ENTITIES):
            for w in range(windows):
                end = last_end - (w + behind) * 5 * MIN
                row = FeatureRow.of(d, entity, value * 1000 + d.version * 100 + i, end - 60 * MIN, end)
                offline.add(row)
                online.add(row)
    offline.flush()
    if not offline_only:
        online.flush()


@contextmanager
def serving(stack: Stack) -> Iterator[str]:
    app = create_app(
        LiveCatalog(stack.store, refresh_s=REFRESH_S),
        OnlineReader(stack.session, stack.settings.cassandra_keyspace, timeout_s=5.0),
    )
    with serve_app(app) as url:
        yield url


@dataclass(frozen=True)
class Read:
    started: float
    finished: float
    status: int
    entity: str
    version: int | None
    value: Any
    body: str


def read_loop(url: str, name: str, stop: threading.Event, out: list[Read], reader: int) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        n = 0
        while not stop.is_set():
            entity = ENTITIES[(reader * 7 + n) % len(ENTITIES)]
            n += 1
            started = time.monotonic()
            try:
                response = client.get(f"/v1/features/user/{entity}", params={"names": f"{name},other_count"})
            except httpx.HTTPError as exc:
                out.append(Read(started, time.monotonic(), 0, entity, None, None, repr(exc)))
                continue
            finished = time.monotonic()
            feature = response.json().get("features", {}).get(name, {}) if response.status_code == 200 else {}
            out.append(
                Read(
                    started,
                    finished,
                    response.status_code,
                    entity,
                    feature.get("version"),
                    feature.get("value"),
                    response.text[:300],
                )
            )


def expected_value(entity: str, version: int, value: int) -> int:
    return value * 1000 + version * 100 + ENTITIES.index(entity)


def test_promotion_under_load_has_no_failed_or_mixed_reads(stack: Stack) -> None:
    v1, v2 = _definition("promo_count", 1, "2h"), _definition("promo_count", 2, "3h")
    other = _definition("other_count", 1, "2h")
    for d in (v1, other, v2):
        stack.store.register(d)
    assert stack.store.catalog().get("user", "promo_count").version == 1  # registering v2 does not activate it
    backfill(stack, [v1, other], value=1)
    backfill(stack, [v2], value=1)  # the backfill of v2, while v1 serves
    assert readiness(stack.store, stack.table, "user", "promo_count", 2).ready

    reads: list[list[Read]] = [[] for _ in range(4)]
    stop = threading.Event()
    switch: dict[str, float] = {}
    with serving(stack) as url:
        threads = [threading.Thread(target=read_loop, args=(url, "promo_count", stop, reads[i], i)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        switch["start"] = time.monotonic()
        promote(stack.store, stack.table, "user", "promo_count", 2)
        switch["end"] = time.monotonic()
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join(timeout=30)
    everything = [r for per_reader in reads for r in per_reader]
    assert len(everything) > 50, f"only {len(everything)} reads"
    failed = [r for r in everything if r.status != 200]
    assert not failed, f"{len(failed)} failed reads, e.g. {failed[:3]}"
    for r in everything:  # one version, and that version's value: never v2's number on v1's value or back
        assert r.version in (1, 2), r
        assert r.value == expected_value(r.entity, r.version, 1), r
    for per_reader in reads:
        versions = [r.version for r in per_reader]
        first_v2 = versions.index(2) if 2 in versions else len(versions)
        assert all(v == 2 for v in versions[first_v2:]), f"a reader went back from v2 to v1: {versions}"
    assert all(r.version == 1 for r in everything if r.finished < switch["start"])
    settled = switch["end"] + REFRESH_S + 0.2
    assert all(r.version == 2 for r in everything if r.started > settled)
    assert {1, 2} <= {r.version for r in everything}
    assert stack.store.catalog().get("user", "promo_count").version == 2


def test_a_failed_promotion_leaves_the_active_version_serving(stack: Stack) -> None:
    v1, v2, v3 = (_definition("failing_count", v, ttl) for v, ttl in ((1, "2h"), (2, "3h"), (3, "4h")))
    for d in (v1, v2, v3):
        stack.store.register(d)
    backfill(stack, [v1], value=2)
    backfill(stack, [v2], value=2, behind=6, offline_only=True)  # a backfill that died half an hour short
    before = stack.store.change_seq()
    with pytest.raises(UnknownFeatureError):
        stack.store.activate("user", "failing_count", 9)  # a version that does not exist
    with pytest.raises(PromotionRefusedError, match="has not caught up"):
        promote(stack.store, stack.table, "user", "failing_count", 2, max_lag=None)
    with pytest.raises(PromotionRefusedError, match="no offline rows"):
        promote(stack.store, stack.table, "user", "failing_count", 3)
    assert stack.store.change_seq() == before
    with serving(stack) as url, httpx.Client(base_url=url, timeout=10) as client:
        for entity in ENTITIES[:5]:
            response = client.get(f"/v1/features/user/{entity}", params={"names": "failing_count"})
            assert response.status_code == 200, response.text
            feature = response.json()["features"]["failing_count"]
            assert (feature["version"], feature["value"]) == (1, expected_value(entity, 1, 2))


def test_readiness_report(stack: Stack, tmp_path: Path) -> None:
    d = _definition("report_count", 1, "2h")
    stack.store.register(d)
    ready = readiness(stack.store, stack.table, "user", "report_count", 1)
    assert ready.ready and ready.reach_ms is None and "no rows" in ready.describe()
