"""Kafka topics and the Cassandra schema created by several processes at the same moment: all succeed.

The twin of tests/unit/test_concurrent_creation.py for the real services: entry points that start
together (a producer and a test, the API's workers, a job's client and a bench) each make sure of
the objects they need, and the loser of a "check, then create" race must see success.
"""

from __future__ import annotations

import traceback
import uuid
from multiprocessing.synchronize import Barrier
from typing import Any

import pytest

from registry.core.settings import Settings
from tests.processes import race

pytestmark = pytest.mark.integration

PROCESSES = 4


def _ensure_topics(settings: Settings, names: list[list[str]], barrier: Barrier, errors: Any) -> None:
    from jobs.produce import ensure_topics

    for topics in names:
        barrier.wait(timeout=120)
        try:
            ensure_topics(settings.kafka_bootstrap, topics, partitions=2)
        except BaseException:  # reported to the parent, which asserts on it
            errors.put(traceback.format_exc())


def _ensure_schema(settings: Settings, keyspaces: list[str], barrier: Barrier, errors: Any) -> None:
    from sinks.factory import connect_cassandra

    for keyspace in keyspaces:
        barrier.wait(timeout=120)
        try:
            cluster, session = connect_cassandra(settings.model_copy(update={"cassandra_keyspace": keyspace}))
            session.execute("SELECT * FROM online_vectors LIMIT 1", timeout=30)
            cluster.shutdown()
        except BaseException:
            errors.put(traceback.format_exc())


@pytest.mark.timeout(600)
def test_processes_creating_the_same_new_topics_together_all_succeed(it_settings: Settings) -> None:
    from confluent_kafka.admin import AdminClient

    rounds = [[f"race_{uuid.uuid4().hex[:8]}_{i}" for i in range(3)] for _ in range(5)]
    failures = race(_ensure_topics, it_settings, rounds, processes=PROCESSES)
    assert not failures, failures[0]
    admin = AdminClient({"bootstrap.servers": it_settings.kafka_bootstrap})
    topics = admin.list_topics(timeout=30).topics
    created = [t for batch in rounds for t in batch]
    assert all(len(topics[t].partitions) == 2 for t in created)
    for future in admin.delete_topics(created, operation_timeout=30).values():
        future.result(timeout=30)


@pytest.mark.timeout(600)
def test_processes_creating_the_same_new_keyspace_together_all_succeed(it_settings: Settings) -> None:
    from sinks.factory import connect_cassandra

    keyspaces = [f"{it_settings.cassandra_keyspace}_race{i}" for i in range(3)]
    failures = race(_ensure_schema, it_settings, keyspaces, processes=PROCESSES)
    cluster, session = connect_cassandra(it_settings)
    try:
        for keyspace in keyspaces:
            session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    finally:
        cluster.shutdown()
    assert not failures, failures[0]
