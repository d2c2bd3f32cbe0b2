"""Card transactions for the stream benchmark, made and sent fast: ``bench.stream`` uses it.

Payloads are Avro-encoded by hand in the Confluent wire format (``card_transaction`` schema, its
registry id taken from one event serialized by the project's ``EventProducer``), because
``AvroSerializer`` costs ~15 us per event; ``check_encoding`` decodes a sample with fastavro and
the schema to prove the bytes are what the serializer would write.

``python -m bench.stream_events live SPEC.json`` is the live producer of the latency phase, run in
its own process so that it shares no GIL with the bench's poller: it sends events whose event time
is the wall clock at a steady rate and prints one JSON line of what it achieved.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

CURRENCIES = ("EUR", "USD", "GBP")
MERCHANTS = 200
_DOUBLE = struct.Struct("<d").pack


def _varint(n: int) -> bytes:
    """An Avro long: zig-zag, then base-128 little-endian."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode()
    return _varint(len(raw)) + raw


def user_id(rank: int) -> str:
    return f"user_{rank:05d}"


@dataclass
class Events:
    """Columns of a generated stream, time-ordered: user ranks, merchant, currency, amount, event ms."""

    users: np.ndarray
    merchants: np.ndarray
    currencies: np.ndarray
    amounts: np.ndarray
    times: np.ndarray

    def __len__(self) -> int:
        return len(self.times)


def user_weights(users: int) -> np.ndarray:
    """Skewed activity as in ``jobs.events``: user of rank r has weight 1 / (r + 1)."""
    w = 1.0 / np.arange(1, users + 1, dtype=np.float64)
    return np.asarray(w / w.sum())


def generate(seed: int, *, events: int, users: int, start_ms: int, span_ms: int) -> Events:
    """``events`` transactions uniformly over [start_ms, start_ms + span_ms), sorted by time."""
    rng = np.random.default_rng(seed)
    times = np.sort(start_ms + rng.integers(0, span_ms, size=events, dtype=np.int64))
    return Events(
        users=rng.choice(users, size=events, p=user_weights(users)),
        merchants=rng.integers(0, MERCHANTS, size=events),
        currencies=rng.integers(0, len(CURRENCIES), size=events),
        amounts=np.round(rng.lognormal(3.0, 1.0, size=events), 2),
        times=times,
    )


class Encoder:
    """Framed Avro payloads of ``card_transaction`` events; field order is the schema's."""

    def __init__(self, header: bytes, users: int, id_prefix: str) -> None:
        self._header = header
        self.users = [_string(user_id(u)) for u in range(users)]
        self.keys = [user_id(u).encode() for u in range(users)]
        self._merchants = [_string(f"merchant_{m:04d}") for m in range(MERCHANTS)]
        self._currencies = [_string(c) for c in CURRENCIES]
        self._prefix = id_prefix
        self._id_header = _varint(len(id_prefix) + 9)

    def transaction_id(self, i: int) -> str:
        return f"{self._prefix}{i:09d}"

    def payload(self, i: int, user: int, merchant: int, currency: int, amount: float, time_ms: int) -> bytes:
        return b"".join(
            (
                self._header,
                self._id_header,
                f"{self._prefix}{i:09d}".encode(),
                self.users[user],
                self._merchants[merchant],
                _DOUBLE(amount),
                self._currencies[currency],
                _varint(time_ms),
            )
        )


def wire_header(settings: Any, topic: str) -> bytes:
    """The 5-byte Confluent header of ``<topic>-value``, registering the schema as the job's producers do."""
    from jobs.produce import make_producer

    sample = {
        "transaction_id": "x",
        "user_id": "u",
        "merchant_id": "m",
        "amount": 1.0,
        "currency": "EUR",
        "event_time": 0,
    }
    return make_producer(settings).serialize(topic, sample)[:5]


def check_encoding(encoder: Encoder, events: Events, sample: int = 200) -> None:
    """Decode ``sample`` payloads with fastavro and the schema; AssertionError if any differs."""
    import fastavro

    from schemas import load_schema

    schema = fastavro.parse_schema(load_schema("card_transaction"))
    step = max(1, len(events) // sample)
    for i in range(0, len(events), step):
        u, m, c = int(events.users[i]), int(events.merchants[i]), int(events.currencies[i])
        a, t = float(events.amounts[i]), int(events.times[i])
        payload = encoder.payload(i, u, m, c, a, t)
        record = fastavro.schemaless_reader(io.BytesIO(payload[5:]), schema, schema)
        assert isinstance(record, dict)
        when = record["event_time"]
        ms = when if isinstance(when, int) else int(when.timestamp() * 1000)
        expected = (encoder.transaction_id(i), user_id(u), f"merchant_{m:04d}", a, CURRENCIES[c], t)
        got = (
            record["transaction_id"],
            record["user_id"],
            record["merchant_id"],
            record["amount"],
            record["currency"],
            ms,
        )
        assert got == expected, f"hand-encoded event {i} decodes as {got}, not {expected}"


def producer(bootstrap: str, *, linger_ms: int) -> Any:
    from confluent_kafka import Producer

    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": linger_ms,
            "acks": "all",
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "batch.num.messages": 100_000,
            "batch.size": 4_000_000,
            "compression.type": "lz4",
            "message.timeout.ms": 120_000,
        }
    )


def send_backlog(bootstrap: str, topic: str, encoder: Encoder, events: Events) -> None:
    """Produce every event (key: user id, timestamp: event time) and wait until all are acknowledged."""
    p = producer(bootstrap, linger_ms=50)
    produce, poll, payload, keys = p.produce, p.poll, encoder.payload, encoder.keys
    columns = zip(
        events.users.tolist(),
        events.merchants.tolist(),
        events.currencies.tolist(),
        events.amounts.tolist(),
        events.times.tolist(),
        strict=True,
    )
    for i, (u, m, c, a, t) in enumerate(columns):
        value = payload(i, u, m, c, a, t)
        while True:
            try:
                produce(topic, value, keys[u], timestamp=t)
                break
            except BufferError:
                poll(0.05)
        if i % 20_000 == 0:
            poll(0)
    remaining = p.flush(120)
    if remaining:
        raise RuntimeError(f"{remaining} events still undelivered after 120 s")


def topic_size(bootstrap: str, topic: str, timeout_s: float = 30) -> int:
    """Records in a topic: the sum of its partitions' end offsets (the bench's topics start empty)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-stream-size", "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s)
        total = 0
        for partition in meta.topics[topic].partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
            total += high
        return total
    finally:
        consumer.close()


STOP_CHECK_S = 0.2  # how often the live producer looks for its stop file, whatever its rate


def live(spec: dict[str, Any]) -> dict[str, Any]:
    """Send ``rate`` events/s with event time = now for ``seconds``; stop early if ``stop_file`` appears (looked
    for every ``STOP_CHECK_S`` seconds)."""
    from pathlib import Path

    rate, seconds, users = float(spec["rate"]), float(spec["seconds"]), int(spec["users"])
    encoder = Encoder(bytes.fromhex(spec["header_hex"]), users, spec["id_prefix"])
    rng = np.random.default_rng(int(spec["seed"]))
    pool = 1 << 20  # random columns drawn once, used round-robin
    user_col = rng.choice(users, size=pool, p=user_weights(users)).tolist()
    merchant_col = rng.integers(0, MERCHANTS, size=pool).tolist()
    currency_col = rng.integers(0, len(CURRENCIES), size=pool).tolist()
    amount_col = np.round(rng.lognormal(3.0, 1.0, size=pool), 2).tolist()
    p = producer(spec["bootstrap"], linger_ms=int(spec.get("linger_ms", 5)))
    produce, poll, payload, keys, topic = p.produce, p.poll, encoder.payload, encoder.keys, spec["topic"]
    stop_file = Path(spec["stop_file"])
    sent, behind_max, full = 0, 0, 0
    start = time.monotonic()
    end = start + seconds
    stop_checked = start - STOP_CHECK_S  # the stop file is looked for at once, then every STOP_CHECK_S
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now - stop_checked >= STOP_CHECK_S:
            stop_checked = now
            if stop_file.exists():
                break
        due = int((now - start) * rate)
        behind_max = max(behind_max, due - sent)
        if due <= sent:
            time.sleep(0.001)
            continue
        t_ms = time.time_ns() // 1_000_000
        for i in range(sent, due):
            k = i % pool
            u = user_col[k]
            value = payload(i, u, merchant_col[k], currency_col[k], amount_col[k], t_ms)
            try:
                produce(topic, value, keys[u], timestamp=t_ms)
            except BufferError:
                full += 1
                poll(0.01)
                produce(topic, value, keys[u], timestamp=t_ms)
        sent = due
        poll(0)
    elapsed = time.monotonic() - start
    remaining = p.flush(30)
    return {
        "sent": sent,
        "seconds": elapsed,
        "rate": sent / elapsed if elapsed else 0.0,
        "undelivered": remaining,
        "max_behind": behind_max,
        "buffer_full": full,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "live":
        print("usage: python -m bench.stream_events live SPEC.json", file=sys.stderr)
        return 2
    with open(args[1]) as f:
        spec = json.load(f)
    print(json.dumps(live(spec)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
