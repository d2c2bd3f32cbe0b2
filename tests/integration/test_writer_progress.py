"""A running job's writers record their progress from the watermark (#12 item 4, design §5.5).

An unbounded job at parallelism 2 (its two writer buckets in writer subtasks of their own) reads alice's events
(bucket 1) and one of bob's (bucket 0). Bob's last window ends at BASE+60m; alice's events go on to BASE+131m,
whose watermark closes her window at BASE+130m. Bob's bucket has nothing to write after BASE+60m, yet its
``stream_progress`` row must reach the stream's reach, BASE+130m, as alice's does: were it left at his last
window (a writer's progress taken from what it wrote), it would hold the whole stream back, and bob would be
served his stored BASE+60m window where the offline table reads the empty window at BASE+130m (0).
No final watermark here (the job does not end): only the periodic watermarks move the writers.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from jobs.produce import ensure_topics, make_producer
from registry.core.catalog import load_folder
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from registry.plan import apply
from serving.online.app import create_app
from sinks.cassandra import layout as online_layout
from sinks.cassandra.reader import OnlineReader
from sinks.factory import connect_cassandra
from tests.conftest import REPO, isolated, run_feature_job
from tests.integration.stream_io import BASE, MIN, job_output, kill_job, payload, start_job
from tests.integration.stream_reference import Record

pytestmark = pytest.mark.integration

EVENTS = [("alice", 1), ("bob", 3), ("alice", 7), ("alice", 70), ("alice", 131)]  # (user, minutes after BASE)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _progress(settings: Settings) -> dict[str, dict[str, int]]:
    cluster, session = connect_cassandra(settings)
    try:
        rows = session.execute(online_layout.select_progress_ms_cql(settings.cassandra_keyspace))
        out: dict[str, dict[str, int]] = {}
        for stream, writer, closed in rows:
            out.setdefault(stream, {})[writer] = int(closed)
        return out
    finally:
        cluster.shutdown()


def test_a_writer_with_quiet_entities_keeps_up_with_the_stream(
    it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import zlib

    assert [zlib.crc32(u.encode()) % 2 for u in ("bob", "alice")] == [0, 1]  # one bucket each
    settings = isolated(it_settings, "progress", tmp_path_factory.mktemp("progress"))
    topic = f"it_{run_id}_progress"
    toml = (REPO / "registry" / "features" / "user_transactions.toml").read_text()
    # Kept a day online; one partition for two source subtasks: the one that reads none is idle after 1 s.
    toml = toml.replace('topic = "card_transactions"', f'topic = "{topic}"').replace('ttl = "2h"', 'ttl = "1d"')
    toml = toml.replace('max_out_of_orderness = "5s"', 'max_out_of_orderness = "5s"\nidle_timeout = "1s"')
    (settings.definitions_dir / "features.toml").write_text(toml)
    apply(DefinitionStore(settings.definitions_db), load_folder(settings.definitions_dir))
    ensure_topics(settings.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=1)
    producer = make_producer(settings)
    for i, (user, minute) in enumerate(EVENTS):
        r = Record(user, BASE + minute * MIN, f"e{i}", amount=1.0)
        producer.send_raw(topic, user.encode(), payload(producer, topic, r), r.timestamp_ms)
    producer.flush()

    stream = f"{topic}/user/sliding(1h/5m)"
    reach = BASE + 130 * MIN  # alice's window [70m, 130m): the latest window closed by the watermark at 131m - 5s
    job = start_job(settings, f"it-{run_id}-progress", "--parallelism", "2")
    try:
        deadline = time.monotonic() + 240
        while _progress(settings).get(stream, {}) != {"0": reach, "1": reach, "*": reach}:
            assert job.poll() is None, job_output(job)
            assert time.monotonic() < deadline, f"progress after 240 s: {_progress(settings)}"
            time.sleep(1)
        live = LiveCatalog(DefinitionStore(settings.definitions_db))
        cluster, session = connect_cassandra(settings)
        try:
            client = TestClient(create_app(live, OnlineReader(session, settings.cassandra_keyspace, timeout_s=5.0)))
            served = {
                u: client.get(f"/v1/features/user/{u}", params={"names": "txn_count_1h"}) for u in ("alice", "bob")
            }
        finally:
            cluster.shutdown()
    finally:
        kill_job(job)
        job.wait()
    got = {
        u: (r.json()["features"]["txn_count_1h"]["value"], r.json()["features"]["txn_count_1h"]["feature_timestamp"])
        for u, r in served.items()
    }
    # bob: the window closed at 130m held none of his events (his last, at 3m, left his windows at 60m)
    assert got == {"alice": (1, _iso(reach)), "bob": (0, _iso(reach))}

    # A batch run beside it (here after it) at parallelism 3, over alice's first events: her bucket is now 2, a writer
    # the stream's key did not have. Its row (at her last window then, 65m) moved the key back from 130m and held it
    # there a day, as no live job has a writer 2 (design §3.8, "New writers"): a run that ends records none for it.
    assert zlib.crc32(b"alice") % 3 == 2
    early = [e for e in EVENTS if e[0] == "alice" and e[1] < 60]
    events = pa.table(
        {
            "transaction_id": [f"b{i}" for i in range(len(early))],
            "user_id": [user for user, _ in early],
            "merchant_id": ["m"] * len(early),
            "amount": [1.0] * len(early),
            "currency": ["EUR"] * len(early),
            "event_time": pa.array([BASE + minute * MIN for _, minute in early], pa.timestamp("ms", tz="UTC")),
        }
    )
    folder = tmp_path_factory.mktemp("batch")
    pq.write_table(events, folder / "early.parquet")
    run_feature_job(
        settings,
        "--events",
        str(folder / "early.parquet"),
        "--rejected",
        str(folder / "rejected.parquet"),
        "--parallelism",
        "3",
    )
    assert _progress(settings)[stream] == {"0": reach, "1": reach, "*": reach}  # "2": BASE+65m, the key's minimum
