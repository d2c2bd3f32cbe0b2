"""Kafka topics the feature store creates itself (the broker does not create topics on first use)."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from registry.core.errors import StoreUnavailableError


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
