"""Disorder, duplicates, lateness and bad input through the real job, against a brute-force reference."""

from __future__ import annotations

import base64
import io
import json
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import fastavro
import pytest
from confluent_kafka import Consumer

from jobs.produce import ensure_topics, make_producer
from registry.catalog import load_folder
from registry.definition_store import DefinitionStore
from registry.plan import apply
from registry.settings import Settings
from schemas import load_schema
from serving.online import OnlineReader
from sinks.factory import connect_cassandra, connect_iceberg
from sinks.offline_layout import TABLE
from tests.conftest import REPO, isolated, settings_env
from tests.integration.stream_reference import Record, Reference, simulate

pytestmark = pytest.mark.integration

MIN = 60_000
HOUR = 60 * MIN
BASE = time.time_ns() // 1_000_000 // HOUR * HOUR - 4 * HOUR
OUT_OF_ORDERNESS = 5_000
LATENESS = 30 * MIN


def _records(seed: int) -> list[Record]:
    """On-time events with small disorder, then late-but-allowed, too-late, duplicate and malformed ones."""
    rng = random.Random(seed)
    events = sorted(
        (
            Record(f"u{rng.randrange(5)}", BASE + rng.randrange(120 * MIN), f"e{i}", rng.randrange(1, 400) / 4)
            for i in range(150)
        ),
        key=lambda r: r.timestamp_ms,
    )
    for i in range(0, len(events) - 1, 3):  # swap neighbours: disorder well inside the 5 s bound? not always
        if events[i + 1].timestamp_ms - events[i].timestamp_ms < OUT_OF_ORDERNESS:
            events[i], events[i + 1] = events[i + 1], events[i]
    out: list[Record] = []
    for i, r in enumerate(events):
        out.append(r)
        newest = max(x.timestamp_ms for x in out)
        if i % 25 == 24:  # late but within the allowed lateness
            out.append(Record(f"u{rng.randrange(5)}", newest - rng.randrange(10_000, 25 * MIN), f"late{i}", 2.5))
        if i % 40 == 39:  # too late: behind the watermark by more than the allowed lateness
            out.append(Record(f"u{rng.randrange(5)}", newest - rng.randrange(40 * MIN, 60 * MIN), f"tooLate{i}", 9.0))
        if i % 15 == 14:  # a resend of an earlier event (same id, time and amount)
            out.append(out[rng.randrange(len(out) - 1)])
        if i in (50, 100):  # bytes that are not an event
            out.append(Record("u0", newest, None))
    return out


@pytest.fixture(scope="module")
def run(
    it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, str, Reference]]:
    settings = isolated(it_settings, "sem", tmp_path_factory.mktemp("sem"))
    topic = f"it_{run_id}_sem"
    toml = (REPO / "registry" / "features" / "user_transactions.toml").read_text()
    toml = toml.replace('topic = "card_transactions"', f'topic = "{topic}"').replace('ttl = "2h"', 'ttl = "1d"')
    toml = toml.replace('slide = "5m"', 'slide = "5m"\nallowed_lateness = "30m"')
    (settings.definitions_dir / "features.toml").write_text(toml)
    apply(DefinitionStore(settings.definitions_db), load_folder(settings.definitions_dir))
    ensure_topics(settings.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=1)
    records = _records(seed=5)
    producer = make_producer(settings)
    ctx = _ctx(topic)
    for r in records:
        if r.event_id is None:
            producer.send_raw(topic, r.key.encode(), b"\x07not an event", r.timestamp_ms)
            continue
        event = {"transaction_id": r.event_id, "user_id": r.key, "merchant_id": "m", "amount": r.amount,
                 "currency": "EUR", "event_time": r.timestamp_ms}  # fmt: skip
        producer.send_raw(topic, r.key.encode(), producer._serializer(event, ctx), r.timestamp_ms)
    producer.flush()
    job = subprocess.run(
        [sys.executable, "-m", "jobs.feature_job", "--bounded"],
        cwd=REPO, env=settings_env(settings), capture_output=True, text=True, timeout=420,
    )  # fmt: skip
    assert job.returncode == 0, f"{job.stdout[-3000:]}\n{job.stderr[-3000:]}"
    reference = simulate(records, out_of_orderness_ms=OUT_OF_ORDERNESS, lateness_ms=LATENESS)
    # The event set must exercise what it claims to: some late-but-accepted, some too late, some resent.
    assert any(r.event_id and r.event_id.startswith("late") for r in reference.accepted)
    assert any(r.event_id and r.event_id.startswith("tooLate") for r in reference.dead_letters)
    assert len({r.event_id for r in records if r.event_id}) < sum(1 for r in records if r.event_id)
    yield settings, topic, reference


def _ctx(topic: str) -> Any:
    from confluent_kafka.serialization import MessageField, SerializationContext

    return SerializationContext(topic, MessageField.VALUE)


def test_offline_holds_every_window_and_its_final_value(run: tuple[Settings, str, Reference]) -> None:
    settings, _, reference = run
    expected = reference.windows(HOUR, 5 * MIN)
    rows = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}").scan().to_arrow().to_pylist()
    identities = [(r["entity_id"], r["feature_name"], r["event_time"], r["revision"]) for r in rows]
    assert len(identities) == len(set(identities)), "a result was written twice"
    final: dict[tuple[str, int], dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["revision"]):
        end = int(r["event_time"].timestamp() * 1000)
        value = r["value_long"] if r["feature_name"] == "txn_count_1h" else r["value_double"]
        final.setdefault((r["entity_id"], end), {})[r["feature_name"]] = value
        final[(r["entity_id"], end)]["revision"] = r["revision"]
    assert {k: (v["txn_count_1h"], v["txn_amount_sum_1h"]) for k, v in final.items()} == expected
    assert all(v["revision"] == expected[k][0] for k, v in final.items())  # revision = events in the window
    assert max(v["revision"] for v in final.values()) > 1


def test_online_holds_each_entitys_latest_window(run: tuple[Settings, str, Reference]) -> None:
    settings, _, reference = run
    expected = reference.windows(HOUR, 5 * MIN)
    cluster, session = connect_cassandra(settings)
    try:
        reader = OnlineReader(session, settings.cassandra_keyspace)
        for user in sorted({k for k, _ in expected}):
            latest = max(end for (u, end) in expected if u == user)
            stored = reader.read("user", user)
            assert stored[("txn_count_1h", 1)].feature_ts_ms == latest
            assert stored[("txn_count_1h", 1)].value == expected[(user, latest)][0]
            assert stored[("txn_amount_sum_1h", 1)].value == expected[(user, latest)][1]
    finally:
        cluster.shutdown()


def test_dead_letters_are_exactly_the_too_late_and_malformed(run: tuple[Settings, str, Reference], run_id: str) -> None:
    settings, topic, reference = run
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"it-{run_id}-sem",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([f"{topic}.dlq"])
    letters: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        batch = consumer.consume(100, timeout=1)
        letters += [json.loads(m.value() or b"null") for m in batch if m.error() is None]
        if len(letters) >= len(reference.dead_letters) and not batch:
            break
    consumer.close()
    schema = fastavro.parse_schema(load_schema("card_transaction"))

    def event_id(letter: dict[str, Any]) -> str | None:
        raw = base64.b64decode(letter["payload_b64"])
        if letter["reason"] != "too_late":
            return None
        record: Any = fastavro.schemaless_reader(io.BytesIO(raw[5:]), schema)
        return str(record["transaction_id"])

    got = Counter((letter["reason"], event_id(letter)) for letter in letters)
    want = Counter(("too_late", r.event_id) if r.event_id else ("bad_magic", None) for r in reference.dead_letters)
    assert got == want
