"""The serving log: a sample of what the API served, sent to Kafka without ever slowing or failing a read.

Each sampled request logs one record per entity served (JSON, keyed by entity id), columns aligned
with the request's features::

    {"request_id", "served_at" (epoch ms), "caller", "feature_service", "model_name", "model_version",
     "entity_type", "entity_id", "names", "versions", "values", "feature_timestamps" (ISO 8601 or null),
     "statuses"}

``caller``, ``model_name`` and ``model_version`` come from the request headers ``x-caller``,
``x-model-name`` and ``x-model-version`` (null when absent); ``request_id`` from ``x-request-id`` when it
is 1-128 visible ASCII characters (``!`` to ``~``) given once, else (absent, malformed or repeated) a fresh
UUID: a request id is never cut, and a bad one never fails the read. Entities whose read failed in a batch are
not logged (nothing was served for them).

Sending is librdkafka's: ``produce`` only appends to the producer's in-memory queue and returns; the
broker is reached by its own thread. When the queue is full (Kafka slow or down) the record is
dropped and counted (``fs_serving_log_dropped_total{reason="queue_full"}``); a record the producer
could not deliver within ``message.timeout.ms`` is counted with ``reason="delivery"``. Sampling is
per request: ``sample`` 0 logs nothing, 1 logs every request; in between, each request is logged with
that probability. ``sinks.serving_log`` lands the topic in an Iceberg table.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from prometheus_client import CollectorRegistry, Counter

if TYPE_CHECKING:
    from confluent_kafka import Producer

DEFAULT_TOPIC = "fs_serving_log"
DEFAULT_SAMPLE = 0.01
HEADERS = {
    b"x-request-id": "request_id",
    b"x-caller": "caller",
    b"x-model-name": "model_name",
    b"x-model-version": "model_version",
}
_MAX_HEADER = 256
_REQUEST_ID = re.compile(rb"[!-~]{1,128}\Z")  # visible ASCII; match() anchors the start, \Z the very end
REQUEST_ID_RULE = "1-128 visible ASCII characters (! to ~)"


def well_formed_request_id(value: bytes) -> bool:
    """Whether ``value`` is an ``x-request-id`` the log takes as given (``REQUEST_ID_RULE``)."""
    return _REQUEST_ID.match(value) is not None


class Sink(Protocol):
    """Where records go: ``KafkaSink`` in the service, a list in unit tests."""

    def send(self, key: bytes, value: bytes) -> None: ...


def _text(value: bytes) -> str:
    """A header's text: UTF-8, as clients send non-ASCII today, else Latin-1 byte for byte (HTTP's old default)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def request_context(headers: Sequence[tuple[bytes, bytes]], feature_service: str | None) -> dict[str, Any]:
    """The logged request fields from ASGI headers (lower-case names), each cut to 256 characters (UTF-8 text, or
    Latin-1 when not UTF-8); the request id taken only when well-formed and given once (a fresh UUID otherwise)."""
    context: dict[str, Any] = {"request_id": None, "caller": None, "model_name": None, "model_version": None}
    ids = 0
    for name, value in headers:
        field = HEADERS.get(name)
        if field is None:
            continue
        if field == "request_id":
            ids += 1
            context[field] = value.decode("ascii") if well_formed_request_id(value) else None
        else:
            context[field] = _text(value)[:_MAX_HEADER]
    if context["request_id"] is None or ids > 1:
        context["request_id"] = str(uuid.uuid4())
    context["feature_service"] = feature_service
    return context


class ServingLog:
    """Samples requests and hands their records to a sink; the counters say what was logged or dropped."""

    def __init__(
        self,
        sink: Sink,
        sample: float,
        registry: CollectorRegistry,
        *,
        draw: Callable[[], float] = random.random,
    ) -> None:
        if not 0.0 <= sample <= 1.0:
            raise ValueError(f"serving log sample must be within [0, 1], not {sample}")
        self._sink = sink
        self.sample = sample
        self._draw = draw
        self.logged = Counter(
            "fs_serving_log_records", "Served entity vectors sent to the serving log", registry=registry
        )
        self.dropped = Counter(
            "fs_serving_log_dropped",
            "Serving-log records dropped (the read was served regardless)",
            ["reason"],
            registry=registry,
        )

    def sampled(self) -> bool:
        """Whether this request is logged (decided once per request)."""
        return self.sample >= 1.0 or (self.sample > 0.0 and self._draw() < self.sample)

    def log(
        self,
        context: dict[str, Any],
        served_at_ms: int,
        entity_type: str,
        names: Sequence[str],
        versions: Sequence[int],
        vectors: Sequence[tuple[str, Sequence[Any], Sequence[str | None], Sequence[str]]],
    ) -> None:
        """One record per ``(entity_id, values, feature_timestamps, statuses)``; never raises."""
        for entity_id, values, timestamps, statuses in vectors:
            try:
                record = orjson.dumps(
                    {
                        **context,
                        "served_at": served_at_ms,
                        "entity_type": entity_type,
                        "entity_id": entity_id,
                        "names": names,
                        "versions": versions,
                        "values": values,
                        "feature_timestamps": timestamps,
                        "statuses": statuses,
                    }
                )
                self._sink.send(entity_id.encode(), record)
            except BufferError:
                self.dropped.labels("queue_full").inc()
            except Exception:
                self.dropped.labels("error").inc()
            else:
                self.logged.inc()

    def delivery_failed(self) -> None:
        self.dropped.labels("delivery").inc()

    def serve_reports(self) -> None:
        """Count the delivery reports that have come in (a sink with reports to serve): a scrape of ``/metrics``
        calls it, so a record given up is counted by then even when no request has been logged since."""
        serve = getattr(self._sink, "serve_reports", None)
        if serve is not None:
            serve()


class KafkaSink:
    """``Producer.produce`` to the log topic; ``poll(0)`` serves delivery reports without waiting."""

    def __init__(self, producer: Producer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self.on_failure: Callable[[], None] = lambda: None

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self.on_failure()

    def send(self, key: bytes, value: bytes) -> None:
        # Delivery reports first, whether or not this record fits: librdkafka frees a record's room in its queue
        # only once its report is served, so a full queue that stopped serving them would stay full for good.
        self._producer.poll(0)
        self._producer.produce(self._topic, value, key, on_delivery=self._delivered)

    def serve_reports(self) -> None:
        self._producer.poll(0)

    def close(self, timeout_s: float = 5.0) -> None:
        self._producer.flush(timeout_s)


def producer_config(bootstrap: str) -> dict[str, Any]:
    """A producer that never blocks a read: a bounded queue, short linger, records given up after 30 s."""
    return {
        "bootstrap.servers": bootstrap,
        "client.id": "fs-serving-log",
        "linger.ms": 50,
        "queue.buffering.max.messages": 100_000,
        "queue.buffering.max.kbytes": 65_536,
        "message.timeout.ms": 30_000,
        "reconnect.backoff.max.ms": 1000,
        "compression.type": "lz4",
        "acks": 1,
        # A broker that is down or a topic not created yet: the delivery reports count it; librdkafka's
        # own error callback and log lines would only repeat it on the API's stderr.
        "error_cb": lambda error: None,
        "log_level": 0,
    }
