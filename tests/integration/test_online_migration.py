"""Moving online values from the layout before (one row per feature version) into today's (one map cell
per feature version): ``python -m sinks.cassandra.migrate`` on the real Cassandra.

Every value arrives with its window end, write time and TTL: a write the job makes after the move wins
or loses exactly as against the old row; a value-less row takes its type from the registry, or is
reported when no definition names it; a second run changes nothing; ``--drop-legacy`` drops the table.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from sinks.cassandra import layout
from sinks.cassandra.migrate import migrate
from sinks.cassandra.reader import OnlineReader
from sinks.cassandra.writer import OnlineWriter
from sinks.factory import connect_cassandra
from sinks.records import FeatureRow
from tests.conftest import isolated, keyspace_existed, run_module

pytestmark = pytest.mark.integration

MIN = 60_000
T0 = (1_900_000_000_000 // (60 * MIN)) * 60 * MIN  # years ahead: TTLs from the wall clock stay positive


@pytest.fixture
def legacy(it_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Any]]:
    settings = isolated(it_settings, "migrate", tmp_path_factory.mktemp("migrate"))
    shipped = FeatureCatalog.from_folder()
    DefinitionStore(settings.definitions_db).register(shipped.get("user", "txn_amount_sum_1h"))
    cluster, session = connect_cassandra(settings)
    session.execute(layout.legacy_table_ddl(settings.cassandra_keyspace), timeout=30)
    try:
        yield settings, session
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
        cluster.shutdown()


def _insert(
    session: Any,
    keyspace: str,
    entity: str,
    name: str,
    column: str | None,
    value: Any,
    end_ms: int,
    written_us: int,
    ttl_s: int,
) -> None:
    columns = f", {column}" if column else ""
    session.execute(
        f"INSERT INTO {keyspace}.{layout.LEGACY_TABLE} (entity_type, entity_id, feature_name, feature_version{columns}, "
        f"feature_ts, window_start) VALUES (%s, %s, %s, 1{', %s' if column else ''}, %s, %s) USING TIMESTAMP %s AND TTL %s",
        (
            "user",
            entity,
            name,
            *([value] if column else []),
            datetime.fromtimestamp(end_ms / 1000, UTC),
            datetime.fromtimestamp((end_ms - MIN) / 1000, UTC),
            written_us,
            ttl_s,
        ),
        timeout=30,
    )


def _cell_ttls(session: Any, keyspace: str, entity: str) -> dict[str, tuple[int, int]]:
    """Each cell of an entity's row: its write time (µs) and its remaining TTL (s)."""
    where = f"FROM {keyspace}.{layout.TABLE} WHERE entity_type = 'user' AND entity_id = %s"
    (cells,) = session.execute(f"SELECT cells {where}", (entity,), timeout=30).one()
    out = {}
    for key in cells:  # no quote in a cell key
        out[key] = tuple(
            session.execute(f"SELECT WRITETIME(cells['{key}']), TTL(cells['{key}']) {where}", (entity,)).one()
        )
    return out


def _within(ttls: dict[str, tuple[int, int]], expected: dict[str, tuple[int, int]]) -> bool:
    """The write times as expected and each TTL at most ten seconds (the test's own) below the expected one."""
    return ttls.keys() == expected.keys() and all(
        ttls[k][0] == expected[k][0] and expected[k][1] - 10 <= ttls[k][1] <= expected[k][1] for k in expected
    )


def test_migration_keeps_values_write_times_and_ttls(legacy: tuple[Settings, Any]) -> None:
    settings, session = legacy
    ks = settings.cassandra_keyspace
    written = T0 * 1000 + 3
    _insert(session, ks, "u1", "txn_count_1h", "value_long", -7, T0, written, 86_400)
    _insert(session, ks, "u1", "txn_amount_sum_1h", "value_double", 12.25, T0 - 5 * MIN, written, 86_400)
    _insert(session, ks, "u1", "last_merchant", "value_string", "m\u00fc|7", T0, written, 86_400)
    _insert(session, ks, "u1", "is_foreign", "value_boolean", False, T0, written, 86_400)
    _insert(session, ks, "u2", "txn_amount_sum_1h", None, None, T0, written, 86_400)  # no value: the registry's type
    _insert(session, ks, "u2", "gone_feature", None, None, T0, written, 86_400)  # no value, no definition
    _insert(session, ks, "u3", "txn_count_1h", "value_long", 1, T0, written, 3)  # about to expire

    catalog = DefinitionStore(settings.definitions_db).catalog()
    report = migrate(session, ks, lambda e, n, v: catalog.get(e, n, v).value_type if n != "gone_feature" else None)
    assert (report.copied, report.unknown, report.legacy_table) == (6, ["user/gone_feature@1"], "kept")

    reader = OnlineReader(session, ks, timeout_s=10)
    assert reader.read("user", "u1") == {
        ("txn_count_1h", 1): (-7, T0),
        ("txn_amount_sum_1h", 1): (12.25, T0 - 5 * MIN),
        ("last_merchant", 1): ("m\u00fc|7", T0),
        ("is_foreign", 1): (False, T0),
    }
    assert reader.read("user", "u2") == {("txn_amount_sum_1h", 1): (None, T0)}
    assert reader.read("user", "u3") == {("txn_count_1h", 1): (1, T0)}
    # TTLs kept, plus the hour every online cell outlives its value's TTL (EXPIRED_GRACE_S, design §5.2): u3's
    # value, three seconds from its TTL, is still stored past it (served `expired`, not `missing`).
    grace = layout.EXPIRED_GRACE_S
    u1 = {"txn_count_1h": "l", "txn_amount_sum_1h": "d", "last_merchant": "s", "is_foreign": "b"}
    u1_ttls = _cell_ttls(session, ks, "u1")
    assert _within(u1_ttls, {f"*{n}@1:{t}": (written, 86_400 + grace) for n, t in u1.items()}), u1_ttls
    u3_ttls = _cell_ttls(session, ks, "u3")
    assert _within(u3_ttls, {"*txn_count_1h@1:l": (written, 3 + grace)}), u3_ttls

    # Write times kept: the same window at a lower revision loses, a later window wins.
    count = FeatureCatalog.from_folder().get("user", "txn_count_1h")
    writer = OnlineWriter(session, ks)
    writer.add(FeatureRow.of(count, "u1", 100, T0 - 5 * MIN, T0, 2))
    writer.flush()
    assert reader.read("user", "u1")[("txn_count_1h", 1)] == (-7, T0)
    writer.add(FeatureRow.of(count, "u1", 200, T0, T0 + 5 * MIN, 0))
    writer.flush()
    assert reader.read("user", "u1")[("txn_count_1h", 1)] == (200, T0 + 5 * MIN)

    time.sleep(4)  # past u3's legacy TTL: its value is still stored, for the rule to call `expired`
    assert reader.read("user", "u3") == {("txn_count_1h", 1): (1, T0)}

    # A second run changes nothing (the same write times); the CLI drops the table only once nothing is unknown.
    again = migrate(session, ks, lambda e, n, v: catalog.get(e, n, v).value_type if n != "gone_feature" else None)
    assert again.copied == 5 and reader.read("user", "u1")[("txn_count_1h", 1)] == (200, T0 + 5 * MIN)
    refused = run_module(settings, "sinks.cassandra.migrate", "--drop-legacy")
    assert refused.returncode == 1, refused.stderr
    assert json.loads(refused.stdout)["legacy_table"] == "kept"
    session.execute(
        f"DELETE FROM {ks}.{layout.LEGACY_TABLE} USING TIMESTAMP %s WHERE entity_type = 'user' AND entity_id = 'u2'",
        (written + 1,),  # the rows were written at a window end years ahead
        timeout=30,
    )
    dropped = run_module(settings, "sinks.cassandra.migrate", "--drop-legacy")
    assert dropped.returncode == 0, dropped.stderr
    assert json.loads(dropped.stdout) == {"keyspace": ks, "legacy_table": "dropped", "copied": 4, "unknown": []}
    assert json.loads(run_module(settings, "sinks.cassandra.migrate").stdout)["legacy_table"] == "absent"
    assert reader.read("user", "u1")[("txn_count_1h", 1)] == (200, T0 + 5 * MIN)


def test_migration_of_a_keyspace_that_does_not_exist_fails_naming_it_and_creates_nothing(
    it_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = isolated(it_settings, "nosuch", tmp_path_factory.mktemp("nosuch"))
    DefinitionStore(settings.definitions_db)
    ks = settings.cassandra_keyspace
    done = run_module(settings, "sinks.cassandra.migrate", timeout_s=60)
    created = keyspace_existed(it_settings, ks)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: no keyspace '{ks}' (FS_CASSANDRA_KEYSPACE) in Cassandra at "), done.stderr
    assert done.stderr.count("\n") == 1
    assert not created
