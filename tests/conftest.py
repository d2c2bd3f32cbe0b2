"""Shared fixtures. Integration tests get a real local stack, started here if it is not running."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infra import stack
from infra.settings import StackSettings
from registry.core.definitions import FeatureDefinition
from registry.core.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that pause, kill or restart the shared services run last (in their own order): a Cassandra
    busy replaying its commit log after a restart must not eat into another test's 100 ms budget."""
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)


@pytest.fixture
def frozen_heap() -> Iterator[None]:
    """The test process's heap kept out of full collections while a test times a request, as the API
    process keeps its start-up heap (``gc.freeze`` in ``serving/online/__main__.py``).

    The suite's own heap (every module imported, every fixture alive) is what a full collection walks in
    this process, not the API's: measured with a CPU-bound process beside the suite on 2 cores, one took
    0.32-0.35 s, more than a timing bound's slack, and it fell inside a timed request once (CI run 65)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.fixture(scope="session")
def local_stack() -> Iterator[StackSettings]:
    """Kafka, Cassandra and the schema registry, up for the whole session.

    Services that were already running (``make up``) are reused and left running; the ones this
    fixture started are stopped at the end.
    """
    settings = StackSettings.from_env()
    started = stack.up(settings, ["kafka", "cassandra", "registry"])
    try:
        yield settings
    finally:
        stack.down(settings, started)


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def it_settings(
    local_stack: StackSettings, run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Settings with a keyspace, Iceberg catalog and definitions folder of this test session only."""
    base = Settings.from_env()
    iceberg = tmp_path_factory.mktemp("iceberg")
    definitions = tmp_path_factory.mktemp("definitions")
    settings = base.model_copy(
        update={
            "cassandra_keyspace": f"it_{run_id}",
            "iceberg_catalog_uri": f"sqlite:///{iceberg / 'catalog.db'}",
            "iceberg_warehouse": (iceberg / "warehouse").as_uri(),
            "iceberg_namespace": f"it_{run_id}",
            "definitions_dir": definitions,
            "definitions_db": definitions / "definitions.db",
        }
    )
    yield settings
    from sinks.factory import connect_cassandra

    cluster, session = connect_cassandra(settings)
    session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
    cluster.shutdown()
    shutil.rmtree(iceberg, ignore_errors=True)


def isolated(settings: Settings, name: str, folder: Path) -> Settings:
    """A copy of ``settings`` with its own keyspace, Iceberg namespace and definitions (for one test module)."""
    folder.mkdir(parents=True, exist_ok=True)
    return settings.model_copy(
        update={
            "cassandra_keyspace": f"{settings.cassandra_keyspace}_{name}",
            "iceberg_namespace": f"{settings.iceberg_namespace}_{name}",
            "definitions_dir": folder,
            "definitions_db": folder / "definitions.db",
        }
    )


def shipped_features_on(settings: Settings, topic: str, edit: Callable[[str], str] = lambda toml: toml) -> None:
    """The shipped user features reading ``topic``, kept a day (``ttl``: events of hours ago are still served) and
    changed by ``edit``, applied to ``settings``' definitions; ``topic`` and its dead-letter topic made (2 partitions)."""
    from jobs.produce import ensure_topics
    from registry.core.catalog import load_folder
    from registry.definition_store import DefinitionStore
    from registry.plan import apply

    toml = (REPO / "registry" / "features" / "user_transactions.toml").read_text()
    toml = edit(toml.replace('topic = "card_transactions"', f'topic = "{topic}"').replace('ttl = "2h"', 'ttl = "1d"'))
    (settings.definitions_dir / "user_transactions.toml").write_text(toml)
    apply(DefinitionStore(settings.definitions_db), load_folder(settings.definitions_dir))
    ensure_topics(settings.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=2)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process (the Flink job) use these settings."""
    return {**os.environ, **settings.to_env()}


def run_module(settings: Settings, module: str, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m <module> <args>`` with these settings, its output captured (it may fail)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def run_feature_job(settings: Settings, *args: str, timeout_s: float = 420) -> subprocess.CompletedProcess[str]:
    """``python -m jobs.feature_job --metrics-port 0 <args>`` with these settings; it must succeed."""
    job = run_module(settings, "jobs.feature_job", "--metrics-port", "0", *args, timeout_s=timeout_s)
    assert job.returncode == 0, f"job failed:\n{job.stdout[-3000:]}\n{job.stderr[-3000:]}"
    return job


def keyspace_existed(settings: Settings, keyspace: str) -> bool:
    """Whether Cassandra (at ``settings``) has ``keyspace``; dropped either way, so a test that checks a command
    created none leaves none behind."""
    from sinks.factory import connect_cassandra

    cluster, session = connect_cassandra(settings)
    try:
        found = list(
            session.execute("SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,))
        )
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    finally:
        cluster.shutdown()
    return bool(found)


def string_feature(name: str) -> FeatureDefinition:
    """A shipped-like feature of value type string (the last merchant id a user paid, over txn_amount_sum_1h's
    window): no shipped definition has that type."""
    from registry.core.catalog import FeatureCatalog

    shipped = FeatureCatalog.from_folder()
    count, total = shipped.get("user", "txn_count_1h"), shipped.get("user", "txn_amount_sum_1h")
    return total.model_copy(
        update={
            "name": name,
            "value_type": "string",
            "aggregation": count.aggregation.model_copy(update={"function": "last", "field": "merchant_id"}),
        }
    )


class PreparedCql(str):
    """A fake session's prepared statement: its text, with the attributes a reader sets on one (``fetch_size``)."""

    fetch_size: int | None = 5_000
