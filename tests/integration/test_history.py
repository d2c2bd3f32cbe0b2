"""History older than Kafka: the events archive (sinks.archive) and a backfill across the archive/topic seam.

Real Kafka, Iceberg and Flink. The topic's first events are archived and then deleted from Kafka
(``delete_records``, as retention would); a backfill of a new version reads them from the archive and
the rest from the topic, and its windows equal a brute force over all the events: nothing missed or
counted twice at the seam, a resend across it counted once, a bad record refused with the stream's
reason. ``--since``/``--until`` give only the whole windows inside the range.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry

from jobs import backfill
from jobs.history import read_history
from jobs.produce import ensure_topics, make_producer
from registry.core.catalog import load_folder
from registry.core.definitions import Window
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.plan import apply
from sinks.archive import (
    NEXT_OFFSETS,
    ArchiveError,
    ArchiveMetrics,
    Archiver,
    consumer_config,
    ensure_table,
    kafka_offsets,
    next_offsets,
)
from sinks.factory import connect_iceberg
from sinks.iceberg.layout import TABLE
from tests.conftest import REPO, isolated, settings_env

pytestmark = pytest.mark.integration

MIN = 60_000
HOUR = 60 * MIN
BASE = time.time_ns() // 1_000_000 // HOUR * HOUR - 6 * HOUR
USERS = ("alice", "bob", "carol", "dave")


def _events(first: int, n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "transaction_id": f"t{first + i}",
            "user_id": rng.choice(USERS),
            "merchant_id": "m",
            "amount": 1.0,
            "currency": "EUR",
            "event_time": BASE + rng.randrange(0, 4 * HOUR) // MIN * MIN + rng.randrange(0, 3) * 1000,
        }
        for i in range(n)
    ]


JUNK = b"\x00\x7f\xff\xff\xf0junk"  # Confluent-framed, a schema id the registry does not have
MISMATCHED = [  # Kafka timestamps 1 ms after their event times: the stream dead-letters them as timestamp_mismatch
    {**e, "transaction_id": f"mm{i}", "event_time": BASE + (11 + i) * MIN}
    for i, e in enumerate(_events(900, 2, seed=9))
]
OLD = _events(0, 150, seed=1)  # archived, then deleted from Kafka
NEW = [  # only in Kafka: a resend of an archived event, and an event exactly at the range test's since
    *_events(150, 150, seed=2),
    {**OLD[7]},
    {**OLD[8], "transaction_id": "at_since", "user_id": "alice", "event_time": BASE + 60 * MIN},
]


def _windows(
    events: list[dict[str, Any]], size_min: int, since: int = 0, until: int = 2**62
) -> dict[tuple[str, int], int]:
    """Brute force: (user, window end ms) -> count, windows of size_min sliding by 5 min, each event id
    once per user, events in [since, until), windows inside [since, until]."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for e in events:
        seen.setdefault((e["user_id"], e["transaction_id"]), e)  # an id counts once per entity
    kept = [e for e in seen.values() if since <= int(e["event_time"]) < until]
    out: dict[tuple[str, int], int] = {}
    for end in range(BASE, BASE + 6 * HOUR, 5 * MIN):
        if end - size_min * MIN < since or end > until:
            continue
        for user in USERS:
            n = sum(1 for e in kept if e["user_id"] == user and end - size_min * MIN <= int(e["event_time"]) < end)
            if n:
                out[(user, end)] = n
    return out


def _offsets(settings: Settings, topic: str) -> dict[int, tuple[int, int]]:
    consumer = Consumer(consumer_config(settings.kafka_bootstrap))
    try:
        return kafka_offsets(consumer, topic)
    finally:
        consumer.close()


def _delete_before(settings: Settings, topic: str, offsets: dict[int, int]) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    futures = admin.delete_records([TopicPartition(topic, p, o) for p, o in offsets.items()], request_timeout=30)
    for future in futures.values():
        future.result(timeout=30)


def _archive(settings: Settings, topic: str, metrics: ArchiveMetrics | None = None) -> int:
    table = ensure_table(connect_iceberg(settings), settings.iceberg_namespace, topic)
    consumer = Consumer(consumer_config(settings.kafka_bootstrap))
    try:
        return Archiver(consumer, table, topic, max_wait_s=1.0, metrics=metrics).run(once=True, timeout_s=60)
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def history(it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """OLD archived then deleted from Kafka, plus one undecodable record; NEW only in Kafka."""
    settings = isolated(it_settings, "hist", tmp_path_factory.mktemp("hist"))
    topic = f"it_{run_id}_hist"
    toml = (REPO / "registry" / "features" / "user_transactions.toml").read_text()
    (settings.definitions_dir / "f.toml").write_text(
        toml.replace('topic = "card_transactions"', f'topic = "{topic}"').replace('ttl = "2h"', 'ttl = "1d"')
    )
    store = DefinitionStore(settings.definitions_db)
    apply(store, load_folder(settings.definitions_dir))
    v1 = store.catalog().get("user", "txn_count_1h")
    for version, size in ((2, 30), (3, 15), (4, 20)):
        store.register(
            v1.model_copy(
                update={
                    "version": version,
                    "window": Window(kind="sliding", size=timedelta(minutes=size), slide=timedelta(minutes=5)),
                }
            )
        )
    ensure_topics(settings.kafka_bootstrap, [topic, f"{topic}.dlq"])
    producer = make_producer(settings)
    producer.send(topic, OLD)
    producer.send_raw(topic, b"alice", JUNK, BASE + 3 * MIN, partition=0)
    producer.send_raw(topic, b"alice", producer.serialize(topic, MISMATCHED[0]), BASE + 11 * MIN + 1, partition=1)
    producer.flush()
    assert _archive(settings, topic) == len(OLD) + 2
    archived = {p: high for p, (_, high) in _offsets(settings, topic).items()}
    producer.send(topic, NEW)
    producer.send_raw(topic, b"bob", producer.serialize(topic, MISMATCHED[1]), BASE + 12 * MIN + 1, partition=1)
    producer.flush()
    _delete_before(settings, topic, archived)
    assert {p: low for p, (low, _) in _offsets(settings, topic).items()} == archived  # Kafka holds NEW only
    yield settings


def test_the_archive_holds_each_record_once_and_resumes_from_its_own_offsets(history: Settings, run_id: str) -> None:
    settings = history
    topic = f"it_{run_id}_hist"
    table = ensure_table(connect_iceberg(settings), settings.iceberg_namespace, topic)
    rows = table.scan().to_arrow()
    assert rows.num_rows == len(OLD) + 2
    assert table.properties["commit.manifest-merge.enabled"] == "true"  # appends for good: manifests merged
    pairs = set(zip(rows.column("partition").to_pylist(), rows.column("offset").to_pylist(), strict=True))
    assert len(pairs) == rows.num_rows  # each (partition, offset) once
    junk = rows.filter(pc.equal(rows.column("payload"), JUNK)).to_pylist()
    assert [(r["partition"], r["schema_id"]) for r in junk] == [(0, 0x7FFFFFF0)]  # bytes as they came, id read
    assert rows.column("schema_id").null_count == 0  # every other record framed, with its writer schema id


def test_archivers_never_duplicate_a_record_and_a_gap_behind_retention_is_named(
    it_settings: Settings, run_id: str, tmp_path: Path
) -> None:
    settings = isolated(it_settings, "arch", tmp_path)
    topic = f"it_{run_id}_arch"
    ensure_topics(settings.kafka_bootstrap, [topic], partitions=1)
    producer = make_producer(settings)
    producer.send(topic, _events(0, 10, seed=3))
    producer.flush()
    assert _archive(settings, topic) == 10
    # A second archiver on a stale view of the table (loaded before the first one's next commit) cannot
    # append from it: its commit is refused, and it goes on from what the table holds.
    catalog = connect_iceberg(settings)
    stale = ensure_table(catalog, settings.iceberg_namespace, topic)
    producer.send(topic, _events(10, 5, seed=4))
    producer.flush()
    registry = CollectorRegistry()
    archived = _archive(settings, topic, ArchiveMetrics(registry))
    assert archived == 5  # a new archiver resumes at offset 10: nothing twice
    one = {"topic": topic, "partition": "0"}
    assert registry.get_sample_value("fs_archive_records_total", {"topic": topic}) == 5
    assert [
        registry.get_sample_value(name, one)
        for name in ("fs_archive_kafka_first_offset", "fs_archive_next_offset", "fs_archive_kafka_end_offset")
    ] == [0, 15, 15]
    assert (
        registry.get_sample_value("fs_archive_last_commit_ms", {"topic": topic}) or 0
    ) >= time.time() * 1000 - 60_000
    table = ensure_table(catalog, settings.iceberg_namespace, topic)
    assert next_offsets(table) == {0: 15} and table.scan().to_arrow().num_rows == 15
    producer.send(topic, _events(15, 5, seed=5))
    producer.flush()
    consumer = Consumer(consumer_config(settings.kafka_bootstrap))
    try:
        rival = Archiver(consumer, stale, topic, max_wait_s=1.0)
        assert rival.run(once=True, timeout_s=60) == 5  # its first batch (from offset 10) refused, then 15..19
        assert rival.conflicts == 1
    finally:
        consumer.close()
    rows = ensure_table(catalog, settings.iceberg_namespace, topic).scan().to_arrow()
    assert sorted(rows.column("offset").to_pylist()) == list(range(20))  # each record once
    assert set(rows.column("key").to_pylist()) <= {u.encode() for u in USERS}  # the record keys: the users
    # Retention: records older than 4 h (Kafka timestamps) are deleted, the offsets carried.
    kept_from_ms = time.time() * 1000 - 4 * HOUR
    table = ensure_table(catalog, settings.iceberg_namespace, topic)
    consumer = Consumer(consumer_config(settings.kafka_bootstrap))
    try:
        Archiver(consumer, table, topic, retention=timedelta(hours=4)).run(once=True, timeout_s=60)
    finally:
        consumer.close()
    table = ensure_table(catalog, settings.iceberg_namespace, topic)
    times = [int(t.timestamp() * 1000) for t in table.scan().to_arrow().column("kafka_timestamp").to_pylist()]
    old = [int(t.timestamp() * 1000) for t in rows.column("kafka_timestamp").to_pylist()]
    assert 0 < len(times) < len(old)  # some records were old enough, some not
    assert all(t >= kept_from_ms - 60_000 for t in times)
    assert sorted(times) == sorted(t for t in old if t >= min(times))  # the newer ones all kept
    after_retention = table.current_snapshot()
    assert after_retention is not None and after_retention.summary is not None
    assert after_retention.summary.additional_properties[NEXT_OFFSETS] == '{"0": 20}'  # carried by the delete
    # A delete that does not carry the offsets (another tool's): the nearest ancestor's hold.
    from pyiceberg.expressions import GreaterThanOrEqual

    from sinks.iceberg.maintenance import delete_rows

    table = delete_rows(table, GreaterThanOrEqual("offset", 0))
    current = table.current_snapshot()
    assert current is not None and current.summary is not None
    assert NEXT_OFFSETS not in current.summary.additional_properties
    assert table.scan().to_arrow().num_rows == 0 and next_offsets(table) == {0: 20}
    # Kafka deletes offsets 20..22 before they are archived: a named gap, not a silent jump.
    producer.send(topic, _events(20, 5, seed=8))
    producer.flush()
    _delete_before(settings, topic, {0: 23})
    with pytest.raises(ArchiveError, match=r"partition 0: offsets 20\.\.22 are neither archived nor in Kafka"):
        _archive(settings, topic)


def test_a_backfill_across_the_archive_and_topic_seam_equals_the_brute_force(
    history: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = history
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)  # the backfill's job subprocess reads its settings from FS_*
    backfill.run(settings, ["user.txn_count_1h@2"], events="archive", progress_every_s=1)
    got = _offline(settings, 2)
    assert got == _windows([*OLD, *NEW], 30)
    assert len(got) > 100
    rejected = list(settings.definitions_db.parent.glob("batch-rejected-*.parquet"))
    assert len(rejected) == 1
    refused = pq.read_table(rejected[0]).to_pylist()
    assert sorted((r["partition"], r["from_archive"], r["reason"]) for r in refused) == [
        (0, True, "unknown_schema_id"),
        (1, False, "timestamp_mismatch"),
        (1, True, "timestamp_mismatch"),
    ]


def test_since_and_until_give_only_whole_windows_inside_the_range(
    history: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = history
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    since, until = BASE + 60 * MIN, BASE + 3 * HOUR  # NEW has an event exactly at since: it counts
    backfill.run(
        settings,
        ["user.txn_count_1h@3"],
        events="archive",
        since=_iso(since),
        until=str(until),
        progress_every_s=1,
    )
    got = _offline(settings, 3)
    assert got == _windows([*OLD, *NEW], 15, since, until)
    assert min(end for _, end in got) == since + 15 * MIN and max(end for _, end in got) <= until
    assert got[("alice", since + 15 * MIN)] == _windows([*OLD, *NEW[:-1]], 15).get(("alice", since + 15 * MIN), 0) + 1
    backfill.run(settings, ["user.txn_count_1h@4"], events="archive", since=str(since), progress_every_s=1)
    assert _offline(settings, 4) == _windows([*OLD, *NEW], 20, since)  # an open end: every window from since on


def test_history_decodes_like_the_stream_and_orders_by_time(history: Settings) -> None:
    settings = history
    store = DefinitionStore(settings.definitions_db)
    source = store.catalog().get("user", "txn_count_1h").source
    events = read_history(settings, source, now_ms=time.time_ns() // 1_000_000)
    assert events.valid.num_rows == len(OLD) + len(NEW)  # the resend is deduplicated later, by the job
    times = events.valid.column("event_time").to_pylist()
    assert times == sorted(times)
    assert sorted(events.valid.column("transaction_id").to_pylist()) == sorted(
        str(e["transaction_id"]) for e in [*OLD, *NEW]
    )
    assert events.reasons() == {"unknown_schema_id": 1, "timestamp_mismatch": 2}
    ranged = read_history(
        settings, source, now_ms=time.time_ns() // 1_000_000, time_range_ms=(BASE + 60 * MIN, BASE + 2 * HOUR)
    )
    in_range = [e for e in [*OLD, *NEW] if BASE + 60 * MIN <= e["event_time"] < BASE + 2 * HOUR]
    assert sorted(ranged.valid.column("transaction_id").to_pylist()) == sorted(e["transaction_id"] for e in in_range)
    assert ranged.reasons() == {}  # the refused records' Kafka timestamps are all before the range


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _offline(settings: Settings, version: int) -> dict[tuple[str, int], int]:
    rows = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}").scan().to_arrow().to_pylist()
    return {
        (r["entity_id"], int(r["event_time"].timestamp() * 1000)): r["value_long"]
        for r in rows
        if r["feature_name"] == "txn_count_1h" and r["feature_version"] == version
    }


def test_a_gap_between_the_archive_and_the_topic_is_named(it_settings: Settings, run_id: str, tmp_path: Path) -> None:
    settings = isolated(it_settings, "gap", tmp_path)
    topic = f"it_{run_id}_gap"
    (settings.definitions_dir / "f.toml").write_text(
        (REPO / "registry" / "features" / "user_transactions.toml")
        .read_text()
        .replace('topic = "card_transactions"', f'topic = "{topic}"')
    )
    store = DefinitionStore(settings.definitions_db)
    apply(store, load_folder(settings.definitions_dir))
    ensure_topics(settings.kafka_bootstrap, [topic], partitions=1)
    producer = make_producer(settings)
    producer.send(topic, _events(0, 4, seed=6))
    producer.flush()
    _archive(settings, topic)
    producer.send(topic, _events(4, 4, seed=7))
    producer.flush()
    _delete_before(settings, topic, {0: 6})  # offsets 4 and 5: neither archived nor in Kafka
    source = store.catalog().get("user", "txn_count_1h").source
    with pytest.raises(ArchiveError, match=r"partition 0: offsets 4\.\.5 are neither archived nor in Kafka"):
        read_history(settings, source, now_ms=time.time_ns() // 1_000_000)


def test_erasure_removes_the_entitys_records_from_the_archive(history: Settings, run_id: str) -> None:
    """Last in this module: it erases alice from the archive the other tests read."""
    from serving.offline.erasure import erase_archive

    settings = history
    topic = f"it_{run_id}_hist"
    table = ensure_table(connect_iceberg(settings), settings.iceberg_namespace, topic)
    before = table.scan().to_arrow()
    keyed = pc.equal(before.column("key"), b"alice")
    alice = pc.sum(keyed).as_py()
    assert alice == sum(1 for e in OLD if e["user_id"] == "alice") + 2  # + the junk and one mismatched, keyed alice
    table, erased = erase_archive(table, "alice")
    assert erased.rows_removed == alice and erased.snapshots_expired >= 1
    after = table.scan().to_arrow()
    assert b"alice" not in after.column("key").to_pylist()
    assert after.num_rows == before.num_rows - alice  # the others untouched
    current = table.current_snapshot()
    assert current is not None and [s.snapshot_id for s in table.metadata.snapshots] == [current.snapshot_id]
    assert current.summary is not None and NEXT_OFFSETS in current.summary.additional_properties  # carried
    assert next_offsets(table) == {p: low for p, (low, _) in _offsets(settings, topic).items()}  # offsets kept
