"""Kafka topics the feature store creates itself (the broker does not create topics on first use)."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from registry.core.errors import FeatureStoreError, StoreUnavailableError


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


# A Kafka ApiVersions request, version 0 (every broker answers it, an unsupported version with an error
# response): size, api key 18, version 0, correlation id 1, client id "fs-probe", no body.
_CLIENT_ID = b"fs-probe"
_API_VERSIONS = struct.pack(">hhih", 18, 0, 1, len(_CLIENT_ID)) + _CLIENT_ID
_API_VERSIONS = struct.pack(">i", len(_API_VERSIONS)) + _API_VERSIONS


def _silence(connection: socket.socket, timeout_s: float) -> str | None:
    """None if the server at the other end of ``connection`` answers an ApiVersions request within
    ``timeout_s`` (any bytes: every broker answers it); else why not. A server that closes the connection
    instead (a process shutting down, a proxy whose backend is gone) has not answered: the project's clients
    speak plain Kafka to it, and librdkafka would retry it for 30 s."""
    connection.settimeout(timeout_s)
    try:
        connection.sendall(_API_VERSIONS)
        if connection.recv(4):
            return None
    except TimeoutError:
        return f"accepted a connection but sent no answer within {timeout_s:g} s"
    except OSError:  # reset, or closed before the request was sent
        pass
    return "accepted a connection but closed it without an answer"


def require_reachable(bootstrap: str, timeout_s: float = 3.0) -> None:
    """Fail fast, naming Kafka, when no bootstrap server accepts a TCP connection and answers a request.

    librdkafka retries a refused or unanswered connection until its request's timeout (30 s for a topic
    listing, or a produce's delivery timeout); a command against a stopped or hung broker (a paused
    process still has the kernel accept its connections) should say so at once. Each server gets
    ``timeout_s`` to accept and as long again to answer an ApiVersions request; one that answers is
    enough (the client then learns the others from it). A broker that answers and then stops meets
    the client's own timeouts.
    """
    addresses = _addresses(bootstrap)
    if addresses is None:
        return
    reasons = []
    silent = False
    for host, port in addresses:
        try:
            with socket.create_connection((host, port), timeout=timeout_s) as connection:
                why = _silence(connection, timeout_s)
                if why is None:
                    return
        except OSError as exc:
            reasons.append(f"{host}:{port}: {exc.strerror or exc}")
            continue
        silent = True
        reasons.append(f"{host}:{port}: {why}")
    what = "answers" if silent else "accepts a connection"
    raise StoreUnavailableError(f"Kafka at {bootstrap} unavailable: no bootstrap server {what} ({'; '.join(reasons)})")


def _existing_topics(bootstrap: str, timeout_s: float) -> tuple[AdminClient, set[str]]:
    """An admin client of a reachable cluster (named as unavailable otherwise), and the topics it has."""
    require_reachable(bootstrap)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        return admin, set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise StoreUnavailableError(f"Kafka at {bootstrap} unavailable: {exc}") from exc


# Answers a group's coordinator gives while it moves or loads (a broker's first group creates __consumer_offsets):
# committed() does not retry them itself, so the caller asks again until its deadline.
_COORDINATOR_MOVING = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)


def committed_offsets(
    bootstrap: str, group_id: str, topics: Iterable[str], *, timeout_s: float = 30
) -> dict[str, dict[int, int]]:
    """The offsets consumer group ``group_id`` has committed on ``topics``: topic -> partition -> offset, only the
    partitions with one (a group that never committed, or does not exist, gives ``{}``; a topic the cluster does not
    have, none). Asked through a consumer of the group that joins nothing (``committed``), not the admin API:
    librdkafka's ``list_consumer_group_offsets`` crashed the process (SIGSEGV in its main thread) when the group's
    coordinator answered ``NOT_COORDINATOR``, as a group never seen before can (confluent-kafka-python #1982).
    ``NOT_COORDINATOR`` and the coordinator's loading or unavailable answers are asked again (0.1 s apart, rising to
    1 s) until ``timeout_s`` has passed since the call; then, as for any other Kafka error, StoreUnavailableError."""
    from confluent_kafka import Consumer, TopicPartition

    deadline = time.monotonic() + timeout_s
    admin, existing = _existing_topics(bootstrap, timeout_s)
    wanted = sorted(set(topics) & existing)
    if not wanted:
        return {}
    try:
        metadata = admin.list_topics(timeout=timeout_s).topics
        partitions = [TopicPartition(t, p) for t in wanted for p in sorted(metadata[t].partitions)]
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id, "enable.auto.commit": False})
        try:
            answer = _ask_committed(consumer, partitions, deadline)
        finally:
            consumer.close()
    except KafkaException as exc:
        raise StoreUnavailableError(f"Kafka at {bootstrap} unavailable: {exc}") from exc
    found: dict[str, dict[int, int]] = {}
    for tp in answer:
        if tp.offset >= 0:
            found.setdefault(tp.topic, {})[tp.partition] = tp.offset
    return found


def _ask_committed(consumer: Any, partitions: list[Any], deadline: float) -> list[Any]:
    """``consumer.committed(partitions)``, asked again while the coordinator moves or loads (whole call or any
    partition) until ``deadline`` (monotonic); a partition's other error raises, as the call's own do: a partition
    whose answer is an error has not answered "nothing committed"."""
    pause_s = 0.1
    while True:
        try:
            answer = consumer.committed(partitions, timeout=max(deadline - time.monotonic(), 0.1))
            errors = [tp.error for tp in answer if tp.error is not None]
        except KafkaException as exc:
            errors = [exc.args[0] if exc.args else KafkaError(KafkaError._FAIL)]
        if not errors:
            return list(answer)
        moving = all(isinstance(e, KafkaError) and e.code() in _COORDINATOR_MOVING for e in errors)
        if not moving or time.monotonic() + pause_s > deadline:
            raise KafkaException(errors[0])
        time.sleep(pause_s)
        pause_s = min(pause_s * 2, 1.0)


def require_topics(bootstrap: str, topics: Iterable[str], *, timeout_s: float = 30) -> None:
    """FeatureStoreError naming the first of ``topics`` the cluster does not have (the broker creates no topic on
    first use: a reader of a missing topic would fail inside its job, or wait, without naming it)."""
    _, existing = _existing_topics(bootstrap, timeout_s)
    for topic in topics:
        if topic not in existing:
            raise FeatureStoreError(
                f"topic {topic!r} is not in Kafka at {bootstrap} (the broker creates no topic on first use)"
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
    admin, existing = _existing_topics(bootstrap, timeout_s)
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
        except TimeoutError as exc:  # the broker took the request and did not answer it
            raise StoreUnavailableError(
                f"Kafka at {bootstrap} unavailable: creating topic {topic} did not end within {timeout_s:g} s"
            ) from exc
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not (isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                raise StoreUnavailableError(f"could not create topic {topic}: {exc}") from exc
