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
        assert prepare_stores(settings, [count_2, total], list(catalog)) == {count_2.key}
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
