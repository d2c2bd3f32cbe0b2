"""Produce events to Kafka in the Confluent wire format, registering their schema on first use.

The Kafka message key is the entity key (all of one user's events land in one partition, in order)
and the message timestamp is the event time.
"""

from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the modules below load is the command's one line too, not a traceback
    from registry.core.interrupt import exit_on_ctrl_c

    exit_on_ctrl_c()

import argparse
import sys
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaException, Producer
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError

from jobs.registry_client import (
    AvroSerializer,
    SchemaRegistryClient,
    SchemaRegistryError,
    registry_client,
    require_registry,
)
from registry.core.arguments import ArgumentParser, whole
from registry.core.definitions import source_topic
from registry.core.errors import FeatureStoreError, SchemaError, StoreUnavailableError
from registry.core.settings import Settings, settings_for_command
from registry.core.shown import error_line
from schemas import schema_text
from sinks.topics import ensure_topics, require_reachable

__all__ = ["EventProducer", "ensure_topics", "make_producer", "producer_config"]


class EventProducer:
    """Serializes event dicts with the registered Avro schema and sends them keyed by entity."""

    def __init__(
        self, producer: Producer, registry: SchemaRegistryClient, schema_name: str, *, key_field: str, time_field: str
    ) -> None:
        self._producer = producer
        self._serializer = AvroSerializer(registry, schema_text(schema_name))
        self._key_field = key_field
        self._time_field = time_field
        self.errors: list[str] = []

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.errors.append(str(err))

    def _serialized(self, event: dict[str, Any], ctx: SerializationContext) -> bytes | None:
        """The event in Confluent's wire format; StoreUnavailableError naming the registry when it does not
        answer (or answers a 5xx) while the schema is registered or looked up, SchemaError naming the subject when it
        refuses it, or naming the topic when its answer cannot be read (not JSON, no schema id)."""
        import httpx

        try:
            return self._serializer(event, ctx)
        except httpx.TransportError as exc:
            raise StoreUnavailableError(
                f"schema registry unavailable: {type(exc).__name__}: {exc or 'no answer'}"
            ) from exc
        except SchemaRegistryError as exc:  # a refused schema (409 incompatible) or token (401, 403)
            if isinstance(exc.http_status_code, int) and exc.http_status_code >= 500:  # its store or a proxy failed
                raise StoreUnavailableError(f"schema registry unavailable: {exc}") from exc
            raise SchemaError(f"the schema registry refused the event schema for {ctx.topic}-value: {exc}") from exc
        # A 2xx answer that is not a registry's (not JSON, no id, another shape), which the client library's parsing
        # fails on with whichever of these; the call is the registry's answers and this event, nothing else.
        except (SerializationError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SchemaError(
                f"an event for {ctx.topic} could not be serialized (is the schema registry's answer a schema "
                f"registry's?): {type(exc).__name__}: {exc}"
            ) from exc

    def send(self, topic: str, events: Iterable[dict[str, Any]]) -> int:
        ctx = SerializationContext(topic, MessageField.VALUE)
        sent = 0
        for event in events:
            value = self._serialized(event, ctx)
            while True:
                try:
                    self._producer.produce(
                        topic,
                        key=str(event[self._key_field]).encode(),
                        value=value,
                        timestamp=int(event[self._time_field]),
                        on_delivery=self._delivered,
                    )
                    break
                except BufferError:
                    self._producer.poll(0.1)
                    self._stop_if_undelivered(sent)
                except KafkaException as exc:  # refused before sending: too large for message.max.bytes, for one
                    self._refused(topic, sent, len(value or b""), exc)
            sent += 1
            if sent % 10_000 == 0:
                self._producer.poll(0)
                self._stop_if_undelivered(sent)
        return sent

    def _refused(self, topic: str, sent: int, size: int, exc: KafkaException) -> None:
        """The event after ``sent`` was refused by the producer itself: FeatureStoreError naming it, once the events
        before it are delivered (StoreUnavailableError if some are not). Nothing after it is sent."""
        remaining = self._producer.flush(60)
        if remaining or self.errors:
            raise StoreUnavailableError(f"{self._undelivered(remaining)}; sending stopped after {sent} events") from exc
        raise FeatureStoreError(
            f"Kafka refused event {sent + 1} for {topic} ({size:,} bytes serialized): {exc.args[0] if exc.args else exc}; "
            f"the {sent} events before it were sent, it and the rest were not"
        ) from exc

    def _stop_if_undelivered(self, sent: int) -> None:
        """Once Kafka has failed a delivery (down past ``message.timeout.ms``), StoreUnavailableError after the queued
        events' fate is known: sending on would wait out the timeout again for every queue-full of events."""
        if self.errors:
            remaining = self._producer.flush(60)
            raise StoreUnavailableError(f"{self._undelivered(remaining)}; sending stopped after {sent} events")

    def _undelivered(self, remaining: int) -> str:
        return f"Kafka: {remaining + len(self.errors)} events undelivered (errors: {self.errors[:3]})"

    def send_raw(self, topic: str, key: bytes, value: bytes | None, timestamp_ms: int, partition: int = -1) -> None:
        """Send bytes as they are (tests use this for malformed records); partition -1 lets the key decide."""
        self._producer.produce(
            topic, key=key, value=value, timestamp=timestamp_ms, partition=partition, on_delivery=self._delivered
        )

    def serialize(self, topic: str, event: dict[str, Any]) -> bytes:
        """An event in the Confluent wire format, its schema registered under ``<topic>-value``."""
        return bytes(self._serialized(event, SerializationContext(topic, MessageField.VALUE)) or b"")

    def flush(self, timeout_s: float = 60) -> None:
        """Wait for every event's delivery; StoreUnavailableError naming Kafka and counting the events it did not confirm
        (still queued at ``timeout_s``, or reported failed, e.g. after ``message.timeout.ms``: one whose request was in
        flight then may have been written all the same, librdkafka cannot tell)."""
        remaining = self._producer.flush(timeout_s)
        if remaining or self.errors:
            raise StoreUnavailableError(self._undelivered(remaining))


def producer_config(settings: Settings) -> dict[str, Any]:
    """The event producer's settings: idempotent with acks=all (a retry after a broker failure never
    duplicates an event), reconnection attempts at most 1 s apart (librdkafka's default backs off to
    10 s), so sending resumes within about a second of the broker's return, and keys partitioned as Kafka's
    Java producer partitions them (murmur2; librdkafka's default is CRC32): a Java service writing the same
    topic puts one user's events in the same partition as this producer does, so they stay in order."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "partitioner": "murmur2_random",
        "linger.ms": 20,
        "acks": "all",
        "enable.idempotence": True,
        "message.timeout.ms": 30_000,
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 1000,
    }


def make_producer(settings: Settings) -> EventProducer:
    producer = Producer(producer_config(settings))
    registry = registry_client(settings.schema_registry_url, settings.token)
    return EventProducer(producer, registry, "card_transaction", key_field="user_id", time_field="event_time")


def _topic(value: str) -> str:
    """A Kafka topic name short enough for its dead-letter topic (``<topic>.dlq``) to be one too, for argparse."""
    try:
        return source_topic(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def main(argv: list[str] | None = None) -> int:
    from jobs.events import synthetic_transactions

    parser = ArgumentParser(prog="python -m jobs.produce", description=__doc__)
    # Bounded: the events and users are built in memory first, and a span must not reach before 1970.
    parser.add_argument("--events", type=whole(0, 10_000_000), default=5000, help="how many (0 to 10,000,000)")
    parser.add_argument(
        "--users", type=whole(1, 1_000_000), default=50, help="how many users send them (1 to 1,000,000)"
    )
    parser.add_argument(
        "--seed",
        type=whole(-(2**63), 2**63 - 1),
        default=7,
        help="seed of the generated events, a whole number (default 7)",
    )
    parser.add_argument(
        "--span-minutes",
        type=whole(1, 5_256_000),
        default=90,
        help="events spread over N minutes (1 to 5,256,000: ten years) that end a minute before now",
    )
    parser.add_argument(
        "--topic",
        type=_topic,
        default="card_transactions",
        help="the topic to send them to, created with its .dlq if missing (default card_transactions)",
    )
    args = parser.parse_args(argv)
    settings = settings_for_command()
    try:
        # Kafka and the registry first: a down service fails at once, not after building millions of events.
        # Nothing is created (no topic) before both answer.
        require_reachable(settings.kafka_bootstrap)
        require_registry(settings.schema_registry_url, settings.token)
        ensure_topics(settings.kafka_bootstrap, [args.topic, f"{args.topic}.dlq"])
        now_ms = time.time_ns() // 1_000_000
        events = synthetic_transactions(
            args.seed,
            users=args.users,
            events=args.events,
            start_ms=now_ms - (args.span_minutes + 1) * 60_000,
            span_ms=args.span_minutes * 60_000,
        )
        producer = make_producer(settings)
        sent = producer.send(args.topic, events)
        producer.flush()
    except FeatureStoreError as exc:  # Kafka or the schema registry down, a refused schema or token, ...
        print(error_line(exc), file=sys.stderr)
        return 1
    print(f"produced {sent} events to {args.topic}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from registry.core.interrupt import run_command

    sys.exit(run_command(main, None))
