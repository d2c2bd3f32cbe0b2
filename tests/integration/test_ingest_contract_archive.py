"""An oracle of the events archive from design §5.7, against the running Kafka, schema registry and an Iceberg
catalog of this test: every record once, as it came (``kafka_timestamp``, ``partition``, ``offset``, ``key``,
``schema_id`` as the frame's unsigned id or null, ``payload`` byte for byte, ``archived_at``), a resend kept
as the second record it is, the next offsets committed with the append, a second ``--once`` adding nothing;
and a history read whose range keeps a record exactly at ``since`` and drops one exactly at ``until``, on
both sides of the archive/topic seam."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from jobs.history import read_history
from jobs.produce import ensure_topics, make_producer
from registry.core.definitions import Source
from registry.core.settings import Settings
from sinks.archive import NEXT_OFFSETS, ensure_table, table_name
from sinks.factory import connect_iceberg
from tests.conftest import isolated, run_module

pytestmark = pytest.mark.integration

MIN = 60_000
BASE = time.time_ns() // 1_000_000 // MIN * MIN - 120 * MIN


def _event(tid: str, user: str, ms: int) -> dict[str, Any]:
    return {
        "transaction_id": tid,
        "user_id": user,
        "merchant_id": "m",
        "amount": 1.5,
        "currency": "EUR",
        "event_time": ms,
    }


def _source(topic: str) -> Source:
    return Source(
        topic=topic,
        event_schema="card_transaction",
        subject=f"{topic}-value",
        entity_key="user_id",
        timestamp_field="event_time",
        event_id_field="transaction_id",
    )


def _archive_once(settings: Settings, topic: str) -> str:
    done = run_module(settings, "sinks.archive", "--topic", topic, "--once", "--max-wait-s", "1", timeout_s=180)
    assert done.returncode == 0, done.stderr
    return done.stderr.strip().splitlines()[-1]


def test_the_archive_holds_every_record_once_as_it_came(it_settings: Settings, run_id: str, tmp_path: Path) -> None:
    settings = isolated(it_settings, "icarch", tmp_path)
    topic = f"ic_{run_id}_archive"
    ensure_topics(settings.kafka_bootstrap, [topic], partitions=2)
    producer = make_producer(settings)
    framed = producer.serialize(topic, _event("t1", "alice", BASE))
    schema_id = int.from_bytes(framed[1:5], "big")
    high_id = b"\x00\xff\xff\xff\xfe" + b"junk"  # a frame whose id is above 2^31: unsigned, as the wire has it
    sent = [  # (partition, key, value, Kafka timestamp), in the order each partition gets them
        (0, b"alice", framed, BASE),
        (0, b"alice", framed, BASE),  # a resend: the same bytes again, a record of its own
        (1, b"bob", b"\x01not framed", BASE + 1),
        (1, None, None, 1),  # no key, no value, a timestamp 1 ms after 1970
        (0, b"carol", high_id, BASE + 2 * MIN),
    ]
    for partition, key, value, ms in sent:
        producer.send_raw(topic, key, value, ms, partition=partition)  # type: ignore[arg-type]
    producer.flush()
    started_us = time.time_ns() // 1000
    said = _archive_once(settings, topic)
    ended_us = time.time_ns() // 1000
    table = ensure_table(connect_iceberg(settings), settings.iceberg_namespace, topic)
    assert said == f"archived 5 records of {topic} to {settings.iceberg_namespace}.{table_name(topic)}"
    rows = table.scan().to_arrow().sort_by([("partition", "ascending"), ("offset", "ascending")]).to_pylist()
    expected = []
    offsets = {0: 0, 1: 0}
    for partition, key, value, ms in sorted(sent, key=lambda r: r[0]):  # stable: each partition's order
        expected.append(
            {
                "kafka_timestamp_ms": ms,
                "partition": partition,
                "offset": offsets[partition],
                "key": key,
                "schema_id": {framed: schema_id, high_id: 0xFFFFFFFE}.get(value) if value else None,
                "payload": value,
            }
        )
        offsets[partition] += 1
    got = [
        {
            "kafka_timestamp_ms": int(r["kafka_timestamp"].timestamp() * 1000),
            **{k: r[k] for k in ("partition", "offset", "key", "schema_id", "payload")},
        }
        for r in rows
    ]
    assert got == expected
    for r in rows:
        archived_us = int(r["archived_at"].timestamp() * 1_000_000)
        assert started_us - 1000 <= archived_us <= ended_us + 1000
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    assert json.loads(snapshot.summary.additional_properties[NEXT_OFFSETS]) == {"0": 3, "1": 2}
    # Again: the offsets Kafka has are all archived, nothing is appended twice.
    assert _archive_once(settings, topic).startswith("archived 0 records of ")
    assert table.refresh().scan().to_arrow().num_rows == 5


def test_a_history_range_keeps_since_and_drops_until_on_both_sides_of_the_seam(
    it_settings: Settings, run_id: str, tmp_path: Path
) -> None:
    settings = isolated(it_settings, "icseam", tmp_path)
    topic = f"ic_{run_id}_seam"
    ensure_topics(settings.kafka_bootstrap, [topic], partitions=1)
    producer = make_producer(settings)
    since, until = BASE + 10 * MIN, BASE + 20 * MIN
    archived = [_event(f"a{ms - since}", "alice", ms) for ms in (since - 1, since, since + 1, until - 1, until)]
    producer.send(topic, archived)
    producer.flush()
    _archive_once(settings, topic)
    live = [_event(f"k{ms - since}", "alice", ms) for ms in (since - 1, since, until - 1, until, until + 1)]
    producer.send(topic, live)
    producer.flush()
    events = read_history(settings, _source(topic), now_ms=time.time_ns() // 1_000_000, time_range_ms=(since, until))
    assert events.rejected.num_rows == 0
    got = list(
        zip(
            events.valid.column("transaction_id").to_pylist(),
            events.valid.column("event_time").to_pylist(),
            strict=True,
        )
    )
    assert got == [
        ("a0", since),
        ("k0", since),
        ("a1", since + 1),
        (f"a{until - 1 - since}", until - 1),
        (f"k{until - 1 - since}", until - 1),
    ]
    whole = read_history(settings, _source(topic), now_ms=time.time_ns() // 1_000_000)
    assert whole.valid.num_rows == len(archived) + len(live)
