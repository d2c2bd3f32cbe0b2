"""Reading history (design §5.7): the events of the archive and of the topic, decoded, "sorted by event time,
stably from partition-and-offset order, so of two records with one event id the earlier offset counts". The
topic's records come interleaved across partitions in whatever order Kafka delivers them; the order of equal
event times must not depend on that. Kafka, the archive table and the registry are stood in for here."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from jobs import history
from registry.core.errors import DecodeError
from registry.core.settings import Settings
from sinks import archive
from tests.unit.test_events_table import SOURCE

T = 1_700_000_000_000


class _Decoder:
    """Payloads are JSON events here; ``bad`` ones are refused as the stream's decoder would."""

    def decode_record(self, payload: bytes | None, record_ms: int) -> dict[str, Any]:
        event = json.loads(payload or b"{}")
        if "bad" in event:
            raise DecodeError("missing_field", "bad")
        assert event["event_time"] == record_ms
        return dict(event)


def _event(tid: str, amount: float, ms: int = T) -> bytes:
    return json.dumps(
        {
            "transaction_id": tid,
            "user_id": "u",
            "merchant_id": "m",
            "amount": amount,
            "currency": "EUR",
            "event_time": ms,
        }
    ).encode()


# (partition, offset, payload): partitions 0 and 1 archived below offset 2, the topic from there.
ARCHIVED = [
    (0, 0, _event("a", 1.0)),
    (0, 1, _event("x", 2.0, T - 1)),
    (1, 0, _event("dup", 3.0)),
    (1, 1, _event("b", 4.0)),
]
TOPIC = [(0, 2, _event("dup", 5.0)), (0, 3, _event("c", 6.0)), (1, 2, _event("d", 7.0)), (1, 3, b'{"bad": 1}')]


def _read(monkeypatch: pytest.MonkeyPatch, delivered: list[tuple[int, int, bytes]]) -> pa.Table:
    old = pa.table(
        {
            "partition": pa.array([p for p, _, _ in ARCHIVED], pa.int32()),
            "offset": pa.array([o for _, o, _ in ARCHIVED], pa.int64()),
            "kafka_timestamp": pa.array([json.loads(v)["event_time"] * 1000 for *_, v in ARCHIVED], pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "payload": pa.array([v for *_, v in ARCHIVED], pa.binary()),
        }
    )
    messages = [
        Message(
            topic="t",
            partition=p,
            offset=o,
            value=v,
            timestamp=(TIMESTAMP_CREATE_TIME, json.loads(v).get("event_time", T)),
        )
        for p, o, v in delivered
    ]
    table = SimpleNamespace(current_snapshot=lambda: SimpleNamespace(snapshot_id=1), name=lambda: ("ns", "archive"))
    monkeypatch.setattr("sinks.factory.connect_iceberg", lambda settings: None)
    monkeypatch.setattr(archive, "load_table", lambda *a: table)
    monkeypatch.setattr(archive, "next_offsets", lambda *a: {0: 2, 1: 2})
    monkeypatch.setattr(archive, "kafka_offsets", lambda *a: {0: (1, 4), 1: (0, 4)})
    monkeypatch.setattr(archive, "read_range", lambda *a, **k: iter(messages))
    monkeypatch.setattr("sinks.topics.require_reachable", lambda *a: None)
    monkeypatch.setattr("confluent_kafka.Consumer", lambda config: SimpleNamespace(close=lambda: None))
    monkeypatch.setattr(history, "_archived", lambda *a: old)
    monkeypatch.setattr(history, "_decoder", lambda *a: _Decoder())
    settings = Settings.from_env()
    events = history.read_history(settings, SOURCE, now_ms=T)
    assert events.rejected.select(["partition", "offset", "from_archive", "reason"]).to_pylist() == [
        {"partition": 1, "offset": 3, "from_archive": False, "reason": "missing_field"}
    ]
    return events.valid


def test_equal_event_times_keep_partition_and_offset_order_whatever_order_kafka_delivers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = ["x", "a", "dup", "c", "dup", "b", "d"]  # T - 1, then T by (partition, offset) over both sides
    rng = random.Random(5)
    for _ in range(6):
        # each partition in offset order, the two interleaved at random, as a consumer of both gets them
        queues = [[r for r in TOPIC if r[0] == p] for p in (0, 1)]
        delivered = []
        while any(queues):
            delivered.append(rng.choice([q for q in queues if q]).pop(0))
        valid = _read(monkeypatch, delivered)
        got = valid.column("transaction_id").to_pylist()
        assert got == expected, delivered
        # of the two records of "dup" at one time, the one of partition 0 (the earlier in partition order) is first
        assert valid.filter(pa.compute.equal(valid.column("transaction_id"), "dup")).column("amount").to_pylist() == [
            5.0,
            3.0,
        ]
