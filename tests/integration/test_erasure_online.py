"""The online half of an erasure on the real Cassandra: every cell the entity holds when it runs is deleted,
whatever its write time, and a replay of those windows stays deleted.

A cell's write time is its window end plus its revision (the window's event count, capped below the next
window's end): a window that ended less than its revision's microseconds before ``erased_at`` is written above
``erased_at`` µs + 999, where the tombstone used to lie, and was served until its TTL after the erasure.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registry.core.catalog import load_folder
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.erasures import ErasureStore
from registry.plan import apply
from serving.offline.erasure import erase_online
from sinks.cassandra.reader import OnlineReader
from sinks.cassandra.writer import OnlineWriter, ensure_schema, write_timestamp_us
from sinks.factory import connect_cassandra
from sinks.records import FeatureRow
from tests.conftest import isolated, keyspace_existed, run_module

pytestmark = pytest.mark.integration

MIN = 60_000


@pytest.fixture(scope="module")
def online(it_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Any]]:
    settings = isolated(it_settings, "erase_online", Path(tmp_path_factory.mktemp("erase_online")))
    apply(DefinitionStore(settings.definitions_db), load_folder())
    cluster, session = connect_cassandra(settings)
    try:
        ensure_schema(session, settings.cassandra_keyspace)
        yield settings, session
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
        cluster.shutdown()


def test_a_window_written_above_erased_at_by_its_revision_is_erased_and_stays_erased(
    online: tuple[Settings, Any],
) -> None:
    settings, session = online
    keyspace = settings.cassandra_keyspace
    catalog = DefinitionStore(settings.definitions_db).catalog()
    count, total = catalog.get("user", "txn_count_1h"), catalog.get("user", "txn_amount_sum_1h")
    erased_at_ms = time.time_ns() // 1_000_000 // MIN * MIN - MIN  # a whole minute: no clock of the writer ahead
    end = erased_at_ms - 1  # ended 1 ms before the erasure, with 2,000 events: written 1 µs above erased_at + 999
    rows = [
        FeatureRow.of(count, "eve", 2000, end - 60 * MIN, end, revision=2000),
        FeatureRow.of(total, "eve", 99.5, end - 60 * MIN - 5 * MIN, end - 5 * MIN, revision=3),
        FeatureRow.of(count, "frank", 1, end - 60 * MIN, end, revision=2000),  # another user: untouched
    ]
    assert write_timestamp_us(count, rows[0]) == erased_at_ms * 1000 + 1000  # the case, exactly

    def write() -> None:
        writer = OnlineWriter(session, keyspace)
        for row in rows:
            writer.add(row)
        writer.flush()

    reader = OnlineReader(session, keyspace, timeout_s=10)
    write()
    assert len(reader.read("user", "eve")) == 2 and len(reader.read("user", "frank")) == 1
    assert erase_online(session, keyspace, "user", "eve", erased_at_ms) == 2  # both values counted
    assert reader.read("user", "eve") == {}
    write()  # a replay of the same windows (the writers also drop them): the tombstone keeps them deleted
    assert reader.read("user", "eve") == {}
    assert len(reader.read("user", "frank")) == 1


def test_ids_at_and_past_the_partition_keys_limit_are_erased_without_an_error(online: tuple[Settings, Any]) -> None:
    """Cassandra holds a partition key of at most 65,535 bytes, each part counted with 3 bytes more: with ``user``,
    an id of 65,525 bytes is the longest. One at it is stored and erased; one a byte past, or past what the driver
    can route (65,536), has no partition and erases as nothing (Cassandra refused it, the driver raised
    ``struct.error``: the erasure stopped with a traceback after being recorded, audit 2026-12-07)."""
    settings, session = online
    keyspace = settings.cassandra_keyspace
    count = DefinitionStore(settings.definitions_db).catalog().get("user", "txn_count_1h")
    erased_at_ms = time.time_ns() // 1_000_000 // MIN * MIN
    longest = "é" + "x" * 65_523  # 65,525 bytes, 65,524 characters: counted in bytes
    writer = OnlineWriter(session, keyspace)
    writer.add(FeatureRow.of(count, longest, 3, erased_at_ms - 61 * MIN, erased_at_ms - MIN))
    writer.flush()
    reader = OnlineReader(session, keyspace, timeout_s=10)
    assert len(reader.read("user", longest)) == 1
    assert erase_online(session, keyspace, "user", longest, erased_at_ms) == 1
    assert reader.read("user", longest) == {}
    for past in (longest + "x", "x" * 65_536, "x" * 70_000):
        assert erase_online(session, keyspace, "user", past, erased_at_ms) == 0


def test_an_erasure_in_a_keyspace_that_does_not_exist_fails_naming_it_and_creates_nothing(
    it_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A mistyped ``FS_CASSANDRA_KEYSPACE`` must not pass as an online store with nothing in it: the erasure would
    report success while the real keyspace keeps the entity's values. One error line naming the keyspace, exit 1,
    no keyspace created, no erasure recorded."""
    folder = Path(tmp_path_factory.mktemp("erase_nosuch"))
    fresh = folder / "fresh"  # an Iceberg catalog not opened yet: the refusal comes before it is (audit, 2026-12-07)
    settings = isolated(it_settings, "erase_nosuch", folder).model_copy(
        update={
            "iceberg_catalog_uri": f"sqlite:///{fresh}/catalog.db",
            "iceberg_warehouse": (fresh / "warehouse").as_uri(),
        }
    )
    apply(DefinitionStore(settings.definitions_db), load_folder())
    ks = settings.cassandra_keyspace
    done = run_module(settings, "serving.offline.erasure", "--entity-type", "user", "--entity-id", "eve", timeout_s=120)
    created = keyspace_existed(it_settings, ks)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: no keyspace '{ks}' (FS_CASSANDRA_KEYSPACE) in Cassandra at "), done.stderr
    assert "nothing erased, nothing created" in done.stderr and done.stderr.count("\n") == 1
    assert not created
    assert ErasureStore(settings.definitions_db).get("user", "eve") is None
    assert not fresh.exists()  # "nothing created": no catalog file, no warehouse folder
