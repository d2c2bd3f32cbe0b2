"""Kafka topics the feature store creates itself (the broker does not create topics on first use)."""

from __future__ import annotations

import socket
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from registry.core.errors import StoreUnavailableError


def _addresses(bootstrap: str) -> list[tuple[str, int]] | None:
    """``host:port`` pairs of a bootstrap list (``PLAINTEXT://`` prefixes and ``[v6]`` brackets allowed);
    None if one cannot be read (librdkafka then judges the list itself)."""
    out = []
    for item in bootstrap.split(","):
        host, sep, port = item.strip().rpartition("://")[2].rpartition(":")
        if not sep or not port.isascii() or not port.isdigit() or not host:
            return None
        out.append((host.removeprefix("[").removesuffix("]"), int(port)))
    return out


def require_reachable(bootstrap: str, timeout_s: float = 3.0) -> None:
    """Fail fast, naming Kafka, when no bootstrap server accepts a TCP connection.

    librdkafka retries a refused connection until its request's timeout (30 s for a topic listing);
    a command against a stopped broker should say so at once. One server that accepts is enough (the
    client then learns the others from it). This is not a health check: a broker that accepts and then
    does not answer still meets the client's own timeouts.
    """
    addresses = _addresses(bootstrap)
    if addresses is None:
        return
    reasons = []
    for host, port in addresses:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            return
        except OSError as exc:
            reasons.append(f"{host}:{port}: {exc.strerror or exc}")
    raise StoreUnavailableError(
        f"Kafka at {bootstrap} unavailable: no bootstrap server accepts a connection ({'; '.join(reasons)})"
    )


def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    *,
    partitions: int = 3,
    config: dict[str, str] | None = None,
    timeout_s: float = 30,
) -> None:
    """Create the topics that do not exist yet (idempotent), with topic-level ``config`` if given.

    Safe from several processes at once: a topic another process created between the listing and
    the creation answers TOPIC_ALREADY_EXISTS, which counts as success.
    """
    require_reachable(bootstrap)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise StoreUnavailableError(f"Kafka at {bootstrap} unavailable: {exc}") from exc
    missing = [
        NewTopic(t, num_partitions=partitions, replication_factor=1, config=dict(config or {}))
        for t in topics
        if t not in existing
    ]
    if not missing:
        return
    for topic, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not (isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                raise StoreUnavailableError(f"could not create topic {topic}: {exc}") from exc
