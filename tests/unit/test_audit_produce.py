"""Audit of ``python -m jobs.produce`` against docs/design.md §5.3 and §8 ("Kafka down", "Schema registry down"):
a stopped broker or registry fails at once with one named line, exit 1, before any event is built; and what is
sent is keyed by the entity with the event time as the record timestamp, in the Confluent wire format."""

from __future__ import annotations

import io
import json
import struct
import time
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest

from jobs import events, produce
from jobs.events import synthetic_transactions
from registry.core.errors import SchemaError, StoreUnavailableError
from schemas import schema_text


def _never_built(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    raise AssertionError("events were built before Kafka and the schema registry were checked")


def test_a_stopped_broker_fails_at_once_before_any_event_is_built(
    closed_port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ``--events 10000000`` the events took ~80 s and ~6 GB to build before the down broker was named."""
    monkeypatch.setenv("FS_KAFKA_BOOTSTRAP", f"127.0.0.1:{closed_port}")
    monkeypatch.setattr(events, "synthetic_transactions", _never_built)
    started = time.monotonic()
    assert produce.main(["--events", "10000000", "--users", "1000000"]) == 1
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: Kafka at 127.0.0.1:{closed_port} unavailable: no bootstrap server accepts a connection "
        f"(127.0.0.1:{closed_port}: Connection refused)"
    ]


def test_a_stopped_registry_fails_before_any_event_is_built(
    closed_port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FS_SCHEMA_REGISTRY_URL", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setattr(produce, "require_reachable", lambda *a, **k: None)  # Kafka up
    monkeypatch.setattr(produce, "ensure_topics", lambda *a, **k: None)
    monkeypatch.setattr(events, "synthetic_transactions", _never_built)
    assert produce.main(["--events", "10000000"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"error: schema registry at http://127.0.0.1:{closed_port} unavailable: ConnectError")


class _Recorder:
    """A Kafka producer double that records what ``produce`` was asked."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def produce(self, topic: str, **kwargs: Any) -> None:
        self.sent.append({"topic": topic, **kwargs})

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


class _WireSerializer:
    """Confluent's wire format with schema id 1, as the registry's serializer writes it (no registry needed)."""

    def __init__(self, registry: Any, schema: str) -> None:
        self._schema = fastavro.parse_schema(json.loads(schema))

    def __call__(self, event: dict[str, Any], ctx: Any) -> bytes:
        out = io.BytesIO()
        out.write(b"\x00" + struct.pack(">I", 1))
        fastavro.schemaless_writer(out, self._schema, event)
        return out.getvalue()


def test_each_event_is_keyed_by_its_user_and_stamped_with_its_event_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(produce, "AvroSerializer", _WireSerializer)
    kafka = _Recorder()
    producer = produce.EventProducer(
        kafka,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        "card_transaction",
        key_field="user_id",
        time_field="event_time",
    )
    sent = synthetic_transactions(3, users=4, events=50, start_ms=1_700_000_000_000, span_ms=60_000)
    assert producer.send("card_transactions", sent) == 50
    producer.flush()
    schema = fastavro.parse_schema(json.loads(schema_text("card_transaction")))
    for event, record in zip(sent, kafka.sent, strict=True):
        assert record["topic"] == "card_transactions"
        assert record["key"] == event["user_id"].encode()
        assert record["timestamp"] == event["event_time"]
        assert record["value"][:1] == b"\x00" and struct.unpack(">I", record["value"][1:5]) == (1,)
        decoded = fastavro.schemaless_reader(io.BytesIO(record["value"][5:]), schema, schema)
        assert isinstance(decoded, dict)
        assert decoded.pop("event_time") == datetime.fromtimestamp(event["event_time"] / 1000, UTC)  # timestamp-millis
        assert decoded == {k: v for k, v in event.items() if k != "event_time"}


@pytest.mark.parametrize(("users", "span_ms"), [(1, 60_000), (1_000, 5_256_000 * 60_000)])
def test_the_generator_keeps_to_its_users_and_span(users: int, span_ms: int) -> None:
    start_ms = 1_800_000_000_000 - span_ms - 60_000
    out = synthetic_transactions(11, users=users, events=2000, start_ms=start_ms, span_ms=span_ms)
    assert len(out) == 2000
    assert all(start_ms <= e["event_time"] < start_ms + span_ms for e in out)
    assert {e["user_id"] for e in out} <= {f"user_{i:05d}" for i in range(users)}
    assert len({e["transaction_id"] for e in out}) == 2000
    assert [e["event_time"] for e in out] == sorted(e["event_time"] for e in out)
    schema = fastavro.parse_schema(json.loads(schema_text("card_transaction")))
    assert all(fastavro.validate(e, schema, raise_errors=False) for e in out)
    assert synthetic_transactions(11, users=users, events=0, start_ms=start_ms, span_ms=span_ms) == []


class _Sent:
    """``make_producer``'s double: records the topic and events ``main`` sends."""

    def __init__(self) -> None:
        self.topics: list[str] = []
        self.events = 0

    def send(self, topic: str, events: list[dict[str, Any]]) -> int:
        self.topics.append(topic)
        self.events += len(events)
        return len(events)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize(("argv", "topic"), [([], "card_transactions"), (["--topic", "my.events_2"], "my.events_2")])
def test_the_topic_is_card_transactions_unless_given(
    argv: list[str], topic: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sent, created = _Sent(), []
    monkeypatch.setattr(produce, "require_reachable", lambda *a, **k: None)
    monkeypatch.setattr(produce, "require_registry", lambda *a, **k: None)
    monkeypatch.setattr(produce, "ensure_topics", lambda bootstrap, topics: created.extend(topics))
    monkeypatch.setattr(produce, "make_producer", lambda settings: sent)
    assert produce.main(["--events", "3", *argv]) == 0
    assert created == [topic, f"{topic}.dlq"] and sent.topics == [topic] and sent.events == 3
    assert capsys.readouterr().err.strip() == f"produced 3 events to {topic}"


@pytest.mark.parametrize("topic", ["", "a b", "..", "x" * 246, "tö"])
def test_a_topic_that_kafka_or_its_dead_letter_topic_cannot_have_is_refused(
    topic: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        produce.main(["--topic", topic])
    assert refused.value.code == 2
    assert "argument --topic: topic" in capsys.readouterr().err


def test_a_schema_the_registry_refuses_is_one_error_line(
    closed_port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 409 (incompatible) or 401/403 (FS_AUTH=on) from the schema registry ended in a SchemaRegistryError traceback."""
    from jobs.registry_client import SchemaRegistryError

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise SchemaRegistryError(409, 409, "Schema being registered is incompatible with an earlier schema")

    monkeypatch.setenv("FS_SCHEMA_REGISTRY_URL", f"http://127.0.0.1:{closed_port}")  # no running registry needed
    monkeypatch.setenv("FS_KAFKA_BOOTSTRAP", f"127.0.0.1:{closed_port}")
    monkeypatch.setattr(produce, "require_reachable", lambda *args, **kwargs: None)
    monkeypatch.setattr(produce, "require_registry", lambda *args, **kwargs: None)
    monkeypatch.setattr(produce, "ensure_topics", lambda *args, **kwargs: None)
    # Where the serializer meets the registry's refusal (it registers or looks the schema up on the first event).
    monkeypatch.setattr(produce.AvroSerializer, "__call__", refuse)
    assert produce.main(["--events", "3"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: the schema registry refused the event schema for card_transactions-value: ")
    assert "incompatible" in line


class _Undelivered(_Recorder):
    """A Kafka producer double whose broker never takes an event: each delivery report is an error on flush."""

    def flush(self, timeout: float) -> int:
        for record in self.sent:
            record["on_delivery"]("Local: Message timed out", None)
        return 0


def test_events_kafka_did_not_take_are_counted_and_kafka_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/design.md §8 "Kafka down": after ``message.timeout.ms`` the producer reports the undelivered events.
    Every event failed its delivery and the error said ``0 events undelivered``, naming no Kafka."""
    monkeypatch.setattr(produce, "AvroSerializer", _WireSerializer)
    kafka = _Undelivered()
    producer = produce.EventProducer(
        kafka,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        "card_transaction",
        key_field="user_id",
        time_field="event_time",
    )
    sent = synthetic_transactions(3, users=2, events=3, start_ms=1_700_000_000_000, span_ms=60_000)
    assert producer.send("card_transactions", sent) == 3
    with pytest.raises(StoreUnavailableError, match=r"^Kafka: 3 events undelivered \(errors: .*Message timed out"):
        producer.flush()


def test_a_schema_the_registry_refuses_is_a_feature_store_error_of_the_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """``jobs.demo`` sends with ``make_producer`` and prints one line for a ``FeatureStoreError``: a 401/403
    (FS_AUTH=on, a token without the subject) or 409 from the registry escaped it as a SchemaRegistryError traceback."""
    from jobs.registry_client import SchemaRegistryError

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise SchemaRegistryError(401, 401, "Unauthorized: no token")

    monkeypatch.setattr(produce.AvroSerializer, "__call__", refuse)
    producer = produce.EventProducer(
        _Recorder(),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        "card_transaction",
        key_field="user_id",
        time_field="event_time",
    )
    sent = synthetic_transactions(3, users=2, events=1, start_ms=1_700_000_000_000, span_ms=60_000)
    with pytest.raises(
        SchemaError, match=r"^the schema registry refused the event schema for my_topic-value: Unauthorized: no token"
    ):
        producer.send("my_topic", sent)


class _DeadBroker(_Recorder):
    """A Kafka producer double whose queue holds 5 events and whose broker is gone: a poll reports each queued
    event failed (as librdkafka does once ``message.timeout.ms`` has passed), freeing the queue."""

    def __init__(self) -> None:
        super().__init__()
        self.queued: list[dict[str, Any]] = []

    def produce(self, topic: str, **kwargs: Any) -> None:
        if len(self.queued) >= 5:
            raise BufferError("Local: Queue full")
        super().produce(topic, **kwargs)
        self.queued.append(kwargs)

    def poll(self, timeout: float) -> int:
        failed, self.queued = self.queued, []
        for record in failed:
            record["on_delivery"]("Local: Message timed out", None)
        return len(failed)

    def flush(self, timeout: float) -> int:
        self.poll(timeout)
        return 0


def test_sending_stops_once_kafka_fails_deliveries(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/design.md §8 "Kafka down": producers retry for 30 s, then report undelivered events. A broker gone
    mid-run had every queue-full of events (100,000 by default) wait out the 30 s again: ``--events 10000000``
    took ~50 minutes to fail."""
    monkeypatch.setattr(produce, "AvroSerializer", _WireSerializer)
    kafka = _DeadBroker()
    producer = produce.EventProducer(
        kafka,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        "card_transaction",
        key_field="user_id",
        time_field="event_time",
    )
    sent = synthetic_transactions(3, users=2, events=100, start_ms=1_700_000_000_000, span_ms=60_000)
    with pytest.raises(
        StoreUnavailableError,
        match=r"^Kafka: 5 events undelivered \(errors: .*Message timed out.*\); sending stopped after 5 events$",
    ):
        producer.send("card_transactions", sent)
    assert len(kafka.sent) == 5


def test_a_registry_failing_with_a_5xx_is_named_unavailable_not_a_refused_schema(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/design.md §8 "Schema registry down": the producer names a registry that stops answering
    ``schema registry unavailable: ...``. A 503 (a proxy whose registry is gone) or 500 50002 (its store locked) was
    reported as "the schema registry refused the event schema", sending the producer to look at its schema."""
    from jobs.registry_client import SchemaRegistryError

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise SchemaRegistryError(503, -1, "Unknown Schema Registry Error: b'<html>503 Service Unavailable</html>'")

    monkeypatch.setattr(produce.AvroSerializer, "__call__", fail)
    producer = produce.EventProducer(
        _Recorder(),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        "card_transaction",
        key_field="user_id",
        time_field="event_time",
    )
    sent = synthetic_transactions(3, users=2, events=1, start_ms=1_700_000_000_000, span_ms=60_000)
    with pytest.raises(StoreUnavailableError, match=r"^schema registry unavailable: .*HTTP status code 503"):
        producer.send("card_transactions", sent)


def test_an_event_over_the_producers_size_limit_is_one_named_error_after_the_events_before_it() -> None:
    """librdkafka refuses a record over ``message.max.bytes`` in ``produce()`` itself: the KafkaException escaped
    ``send`` (a traceback from ``jobs.produce``), and the events queued before it were never flushed."""
    from confluent_kafka import Producer

    from registry.core.errors import FeatureStoreError

    kafka = Producer({"bootstrap.servers": "127.0.0.1:1", "message.max.bytes": 1_000, "message.timeout.ms": 1_000})
    producer = produce.EventProducer(
        kafka,
        None,  # type: ignore[arg-type]
        "card_transaction",
        key_field="user_id",
        time_field="event_time",
    )
    producer._serializer = lambda event, ctx: json.dumps(event).encode()  # type: ignore[assignment,method-assign]
    big = {"user_id": "u1", "event_time": 1_700_000_000_000, "note": "x" * 2_000}
    with pytest.raises(FeatureStoreError, match=r"^Kafka refused event 1 for t \(2,\d{3} bytes serialized\): .*") as e:
        producer.send("t", [big, {"user_id": "u2", "event_time": 1_700_000_000_000}])
    assert "MSG_SIZE_TOO_LARGE" in str(e.value) and "the 0 events before it were sent" in str(e.value)
    # events queued before it are flushed first: a broker that cannot take them is named as undelivered
    small = {"user_id": "u1", "event_time": 1_700_000_000_000}
    with pytest.raises(
        StoreUnavailableError, match=r"^Kafka: 1 events undelivered .*; sending stopped after 1 events$"
    ):
        producer.send("t", [small, big])


@pytest.mark.parametrize(
    ("body", "media_type"),
    [(b"<html>ok</html>", "text/html"), (b'{"idx": "x"}', "application/json")],
    ids=["not JSON", "no schema id"],
)
def test_a_registration_answer_that_is_not_a_registrys_is_one_named_error(body: bytes, media_type: str) -> None:
    """A 2xx answer to the schema's registration that cannot be read (HTML from a proxy, JSON without an id) escaped
    as confluent-kafka's JSONDecodeError or SerializationError traceback; it is a SchemaError naming the topic."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from jobs.registry_client import SchemaRegistryClient
    from tests.http_server import serving

    async def register(request: Any) -> Response:
        return Response(body, media_type=media_type)

    async def nothing(request: Any) -> Response:  # any lookup: Confluent's "not found"
        return Response(b'{"error_code": 40401, "message": "Subject not found."}', 404, media_type="application/json")

    app = Starlette(
        routes=[
            Route("/subjects/{subject}/versions", register, methods=["POST"]),
            Route("/{path:path}", nothing, methods=["GET", "POST"]),
        ]
    )
    with serving(app) as url:
        producer = produce.EventProducer(
            _Recorder(),  # type: ignore[arg-type]
            SchemaRegistryClient({"url": url}),
            "card_transaction",
            key_field="user_id",
            time_field="event_time",
        )
        sent = synthetic_transactions(3, users=2, events=1, start_ms=1_700_000_000_000, span_ms=60_000)
        with pytest.raises(SchemaError, match=r"^an event for my_topic could not be serialized \(is the schema regis"):
            producer.send("my_topic", sent)
