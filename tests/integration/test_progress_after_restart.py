"""What serving says of versions a restarted job does not write yet, or at all (design §3.8, §6 "no false zeros").

A job started in a new consumer group after a promotion replays its topic: the stream's progress, moved on by the
job before it, says windows are written that this job has not written yet. A version judged by that progress serves
its absent windows as empty (0 for a count, ``present``): the promoted version whose backfill's own key the job
deleted at its start, until the replay passed the backfill's end, and the older version a feature service pins,
which no job computes any more, from the job's next window on until its TTL (audit: 23 s of zeros for every
entity; a count of 0 beside a sum over ~30 events). No Flink here: the stores as the jobs leave them, the job's
start (``prepare_stores``), and the API."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from jobs.feature_job import prepare_stores
from registry.core.catalog import load_folder
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.feature_services import FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from registry.plan import apply
from serving.online.app import create_app
from sinks.cassandra.layout import version_stream
from sinks.cassandra.reader import OnlineReader
from sinks.cassandra.writer import OnlineWriter
from sinks.factory import connect_cassandra
from sinks.records import FeatureRow
from tests.conftest import isolated
from tests.integration.test_follow import ADDED, COUNT, COUNT_V2, HEAD, SUM

pytestmark = pytest.mark.integration

COUNT_V3 = COUNT_V2.replace("version = 2", "version = 3").replace('"2h"', '"3h"')
STEP_MS = 2_000  # the features' slide


def test_a_restarted_job_serves_no_false_zero_of_the_promoted_or_the_pinned_version(
    it_settings: Settings, tmp_path: Path
) -> None:
    settings = isolated(it_settings, "carry", tmp_path)
    (settings.definitions_dir / "features.toml").write_text(HEAD.format(topic="it_carry") + ADDED + COUNT_V2 + COUNT_V3)
    store = DefinitionStore(settings.definitions_db)
    apply(store, load_folder(settings.definitions_dir))
    catalog = store.catalog()
    count_1, count_2, total = catalog.get("user", COUNT, 1), catalog.get("user", COUNT, 2), catalog.get("user", SUM, 1)
    count_3 = catalog.get("user", COUNT, 3)  # registered, computed by no job
    stream = count_1.stream
    end_1 = time.time_ns() // 1_000_000 // STEP_MS * STEP_MS - 2 * STEP_MS  # the old job's last window
    end_b = end_1 - 2 * STEP_MS  # the backfill of v2 ended two steps before
    cluster, session = connect_cassandra(settings)
    try:
        writer = OnlineWriter(session, settings.cassandra_keyspace, writer_id=None)
        for d, value, end in ((count_1, 5, end_1), (total, 31.0, end_1), (count_2, 7, end_b)):
            writer.add(FeatureRow.of(d, "u", value, end - 10_000, end))
        writer.flush()
        writer.record_progress(stream, end_1, "0", 3_600_000)  # the old job: count v1 and sum v1
        writer.record_progress(version_stream(stream, *count_2.key), end_b, "0", 7_200_000)  # the backfill
        # v2 promoted; the job restarted in a new group computes v2 and the sum: its start, then its first progress
        # (the replay's windows are older: the stream's rows, written at their window ends, do not move back).
        assert prepare_stores(settings, [count_2, total], list(catalog)).carried == {count_2.key}
        writer.record_progress(stream, end_1 + 2 * STEP_MS, "0", 3_600_000)  # live windows after a quick replay
        # Then a backfill of v3 up to a window before that start: its rows decide, not the moment of the start.
        end_3 = end_1 - 3 * STEP_MS
        writer.add(FeatureRow.of(count_3, "u", 9, end_3 - 10_000, end_3))
        writer.flush()
        writer.record_progress(version_stream(stream, *count_3.key), end_3, "0", 10_800_000)
        client = TestClient(
            create_app(
                LiveCatalog(store),
                OnlineReader(session, settings.cassandra_keyspace, timeout_s=5.0, progress_ttl_s=0),
                services=LiveFeatureServices(FeatureServiceStore(settings.definitions_db)),
            )
        )
        for name, version in (("old", 1), ("new", 2), ("third", 3)):
            pins = [
                {"entity": "user", "name": COUNT, "version": version},
                {"entity": "user", "name": SUM, "version": 1},
            ]
            created = client.post("/v1/feature-services", json={"name": name, "version": 1, "features": pins})
            assert created.status_code == 201, created.text

        def served(service: str) -> dict[str, Any]:
            response = client.get("/v1/features/user/u", params={"feature_service": f"{service}@1"})
            assert response.status_code == 200, response.text
            return dict(response.json()["features"][COUNT])

        new, old, third = served("new"), served("old"), served("third")
        assert (new["value"], new["version"]) == (7, 2), new  # the backfill's window, not an inferred empty one
        assert (old["value"], old["version"]) == (5, 1), old  # the old job's last window, not 0
        assert (third["value"], third["version"]) == (9, 3), third
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
        cluster.shutdown()


def test_a_job_with_more_writers_than_the_one_before_never_moves_a_key_back(
    it_settings: Settings, tmp_path: Path
) -> None:
    """Design §3.8, §4: a key's progress only moves forward. Readers take the minimum over a key's writers' rows and a
    row's write time only stops its own writer going back: a job with a writer the jobs before it did not have (a
    batch run at parallelism 2 beside a live job at 1, the follower's fold at a higher parallelism) wrote that
    writer's first row at its replay's point, and the key went back by the replay (audit: an hour): a quiet entity
    was served its last window's count (3, ``present``) instead of the empty window after it (0), for a day if no
    later job had that writer. Its start now gives its new writers rows at the key's point."""
    from sinks.cassandra.layout import LAST_KNOWN_WRITER, PROGRESS_TABLE, own_progress_cql
    from tests.integration.test_follow import _progress

    settings = isolated(it_settings, "morewriters", tmp_path)
    (settings.definitions_dir / "features.toml").write_text(HEAD.format(topic="it_more_writers") + ADDED + COUNT_V2)
    store = DefinitionStore(settings.definitions_db)
    apply(store, load_folder(settings.definitions_dir))
    catalog = store.catalog()
    count_1, count_2, total = catalog.get("user", COUNT, 1), catalog.get("user", COUNT, 2), catalog.get("user", SUM, 1)
    stream, ks = count_1.stream, settings.cassandra_keyspace
    own_2, own_sum = version_stream(stream, *count_2.key), version_stream(stream, *total.key)
    live = time.time_ns() // 1_000_000 // STEP_MS * STEP_MS - 2 * STEP_MS  # where the live job (one writer) is
    replay = live - 3_600_000  # where a new job's writers start
    cluster, session = connect_cassandra(settings)
    try:
        writer = OnlineWriter(session, ks, writer_id=None)
        writer.add(FeatureRow.of(count_1, "quiet", 3, live - 3 * STEP_MS - 10_000, live - 3 * STEP_MS))
        writer.flush()
        writer.record_progress(stream, live, "0", 3_600_000)
        writer.record_progress(own_2, live - STEP_MS, "0", 7_200_000)  # a backfill of v2: carried by the job
        # a batch run of the active versions at parallelism 2 (progress per stream) starts, then writes its replay
        assert prepare_stores(settings, [count_1, total], list(catalog), writers=("0", "1")).carried == frozenset()
        for bucket in ("0", "1"):
            writer.record_progress(stream, replay, bucket, 3_600_000)
        assert _progress(session, settings)[stream] == live  # went back to `replay` before
        reader = OnlineReader(session, ks, timeout_s=5.0, progress_ttl_s=0)
        client = TestClient(create_app(LiveCatalog(store), reader))
        quiet = client.get("/v1/features/user/quiet", params={"features": COUNT})
        assert quiet.status_code == 200, quiet.text
        served = quiet.json()["features"][COUNT]
        assert (served["value"], served["status"]) == (0, "present"), served  # 3, `present` before
        for bucket in ("0", "1"):  # the new writers' rows decide once they pass the key's point
            writer.record_progress(stream, live + STEP_MS, bucket, 3_600_000)
        assert _progress(session, settings)[stream] == live + STEP_MS
        # one computing v2 (promoted) at parallelism 2: v2's own key, carried, holds too
        assert prepare_stores(settings, [count_2, total], list(catalog), writers=("0", "1")).carried == {count_2.key}
        writer.record_progress(own_2, replay, "1", 3_600_000)
        assert _progress(session, settings)[own_2] == live - STEP_MS

        # A job of versions alone (progress per version) at parallelism 3 over a version whose key a job wrote.
        writer.record_progress(own_sum, live, "0", 3_600_000)
        prepare_stores(settings, [total], list(catalog), per_version=True, writers=("0", "1", "2"))
        writer.record_progress(own_sum, replay, "2", 3_600_000)
        assert _progress(session, settings)[own_sum] == live
        # Writers' rows expired (a day without progress): the stream's last-known row is its point, and it holds too.
        session.execute(f"TRUNCATE {ks}.{PROGRESS_TABLE}", timeout=60)
        insert = session.prepare(own_progress_cql(ks))
        at = datetime.fromtimestamp(live / 1000, tz=UTC)
        session.execute(insert, (stream, LAST_KNOWN_WRITER, at, at, live * 1000, 86_400))
        # ... and a version's key given at a job's start (its last-known row alone) is left for its first writer.
        session.execute(insert, (own_2, LAST_KNOWN_WRITER, at, at, live * 1000, 86_400))
        ended = prepare_stores(settings, [count_1, total], list(catalog), writers=("0", "1"), bounded=True)
        assert ended.silent == frozenset() and set(_rows(session, ks, stream)) == {LAST_KNOWN_WRITER}  # as before
        prepare_stores(settings, [count_1, total], list(catalog), writers=("0",))
        prepare_stores(settings, [count_2], list(catalog), per_version=True, writers=("0", "1"))
        writer.record_progress(stream, replay, "0", 3_600_000)
        writer.record_progress(own_2, replay, "0", 3_600_000)
        seen = _progress(session, settings)
        assert (seen[stream], seen[own_2]) == (live, replay)

        # A stopped job's writer holds the minimum, its row expiring in 2 minutes: a seed lives no longer than the
        # row its point comes from (a day, it held the key a day past that writer's end).
        behind = datetime.fromtimestamp(replay / 1000, tz=UTC)
        session.execute(insert, (stream, "1", behind, behind, replay * 1000, 120))
        prepare_stores(settings, [count_1, total], list(catalog), writers=("0", "1", "2"))
        closed, ttl_s = _rows(session, ks, stream)["2"]
        assert closed == replay and ttl_s is not None and 0 < ttl_s <= 120
        # A run that ends seeds nothing: its writers new to a key with writers' rows record none (the key is the
        # live job's; a seed, or the run's own rows, held it a day after the run, as no live job has those writers).
        ended = prepare_stores(settings, [count_1, total], list(catalog), writers=("0", "1", "2", "3"), bounded=True)
        assert ended.silent == {(stream, "3")} and "3" not in _rows(session, ks, stream)
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=60)
        cluster.shutdown()


def _rows(session: Any, keyspace: str, key: str) -> dict[str, tuple[int, int | None]]:
    """A progress key's rows: writer -> (closed_through ms, remaining TTL s)."""
    from sinks.cassandra.layout import select_progress_ttl_cql

    return {
        row[1]: (int(row[2]), row[3]) for row in session.execute(select_progress_ttl_cql(keyspace)) if row[0] == key
    }
