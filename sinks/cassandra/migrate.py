"""Move online values from the layout before (one row per feature version, ``online_feature_values``)
into today's (one row per entity, ``online_vectors``, each value in a map cell): ``python -m sinks.cassandra.migrate``.

Each value becomes a pack of one (``layout.Pack``) and keeps its write time (``WRITETIME``, also stored in
the pack, where readers compare it) and its expiry: the cell's TTL is the row's remaining TTL plus the hour every
online cell outlives its value's TTL (``layout.EXPIRED_GRACE_S``; the rows, written before that hour existed,
expire with their value), so serving reads a migrated value as ``expired`` for that hour, as any other, not as
``missing``. The never-older-over-newer rule holds across the move: a value the running job writes meanwhile
wins or loses exactly as it would have against the old row, and running the migration twice (or again after one
stopped half-way) changes nothing. A row's value type is the value
column that is set; a row without a value takes it from its definition in the registry (``--definitions-db``),
and is left out (``unknown``) when no definition names it. Rows whose TTL has run out are gone already.
``--drop-legacy`` drops the old table once every row was copied. Prints a JSON report; exits 1 when a row
could not be copied.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.core.arguments import ArgumentParser
from registry.core.errors import FeatureStoreError, StoreUnavailableError
from registry.core.value_types import VALUE_TYPES, ValueType
from sinks.cassandra import layout
from sinks.factory import connect_existing_keyspace

if TYPE_CHECKING:
    from cassandra.cluster import Cluster, Session

    from registry.core.settings import Settings


TypeOf = Callable[[str, str, int], "ValueType | None"]


@dataclass
class Migrated:
    keyspace: str
    legacy_table: str = "absent"  # absent, kept or dropped
    copied: int = 0
    unknown: list[str] = field(default_factory=list)  # entity_type/name@version of value-less rows no definition names


def cell_ttl_s(row_ttl_s: int | None, now_ms: int | None = None) -> int:
    """A migrated cell's Cassandra TTL: the legacy row's remaining TTL (which ends with its value's) plus
    ``layout.EXPIRED_GRACE_S``, at most the longest Cassandra takes at ``now_ms`` (default: this clock;
    ``layout.ttl_cap_s``); 0 (none) for a row written without a TTL."""
    if not row_ttl_s:
        return 0
    if now_ms is None:
        now_ms = time.time_ns() // 1_000_000
    return min(row_ttl_s + layout.EXPIRED_GRACE_S, layout.ttl_cap_s(now_ms))


def legacy_exists(session: Session, keyspace: str) -> bool:
    """Whether the keyspace still has the online table of the layout before packs (not migrated yet)."""
    rows = session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s AND table_name = %s",
        (keyspace, layout.LEGACY_TABLE),
        timeout=30,
    )
    return bool(list(rows))


def migrate(session: Session, keyspace: str, type_of: TypeOf, *, drop_legacy: bool = False) -> Migrated:
    """Copy every legacy row (see the module); StoreUnavailableError, saying how far it got, when Cassandra fails
    on the way (a re-run copies the same cells again)."""
    from sinks.cassandra.reader import store_errors

    report = Migrated(keyspace)
    try:
        return _migrate(session, keyspace, type_of, drop_legacy, report)
    except store_errors() as exc:
        raise StoreUnavailableError(
            f"Cassandra failed during the migration of keyspace {keyspace!r}, {report.copied} values copied: "
            f"{type(exc).__name__}: {exc}; run it again (a value copied twice is the same cell)"
        ) from exc


def _migrate(session: Session, keyspace: str, type_of: TypeOf, drop_legacy: bool, report: Migrated) -> Migrated:
    from cassandra.concurrent import execute_concurrent_with_args

    if not legacy_exists(session, keyspace):
        return report
    update = session.prepare(layout.update_cells_cql(keyspace))
    unknown: set[str] = set()
    pending: list[tuple[Any, ...]] = []

    def write() -> None:
        execute_concurrent_with_args(session, update, pending, concurrency=64, raise_on_first_error=True)
        report.copied += len(pending)
        pending.clear()

    for row in session.execute(layout.legacy_select_cql(keyspace), timeout=60):
        entity_type, entity_id, name, version, *values, end_ms, written_us, ttl_s = row
        set_types = [t for t, v in zip(VALUE_TYPES, values, strict=True) if v is not None]
        value_type = set_types[0] if set_types else type_of(entity_type, name, version)
        if value_type is None:
            unknown.add(f"{entity_type}/{name}@{version}")
            continue
        value = values[VALUE_TYPES.index(value_type)]
        one = layout.pack(((name, version, value_type),))  # a pack of one, with the row's own write time
        cells = {one.key: one.encode(written_us, end_ms, [value])}
        pending.append((written_us, cell_ttl_s(ttl_s), cells, entity_type, entity_id))
        if len(pending) >= 5000:
            write()
    if pending:
        write()
    report.unknown = sorted(unknown)
    report.legacy_table = "kept"
    if drop_legacy and not unknown:
        session.execute(f"DROP TABLE IF EXISTS {keyspace}.{layout.LEGACY_TABLE}", timeout=60)
        report.legacy_table = "dropped"
    return report


def _connect(settings: Settings) -> tuple[Cluster, Session]:
    """A session on the keyspace ``FS_CASSANDRA_KEYSPACE`` names, with today's tables in it; StoreUnavailableError
    when Cassandra is down, MissingKeyspaceError when it has no such keyspace (created by no migration)."""
    return connect_existing_keyspace(settings, nothing_done="nothing migrated, nothing created")


def main(argv: list[str] | None = None) -> int:
    from registry.core.errors import UnknownFeatureError
    from registry.core.settings import settings_for_command
    from registry.core.shown import error_line, shown
    from registry.definition_store import DefinitionStore

    settings = settings_for_command()
    parser = ArgumentParser(prog="python -m sinks.cassandra.migrate", description=__doc__)
    parser.add_argument(
        "--definitions-db",
        default=str(settings.definitions_db),
        help="the registry's definition store (SQLite; default FS_DEFINITIONS_DB): types of rows without a value",
    )
    parser.add_argument("--drop-legacy", action="store_true", help="drop the old table once every row was copied")
    args = parser.parse_args(argv)
    db = Path(args.definitions_db)
    try:
        is_file = db.is_file()
    except OSError as exc:  # a name longer than the system takes
        print(error_line(f"--definitions-db {shown(db)}: {exc.strerror or exc}"), file=sys.stderr)
        return 1
    if not is_file:  # read only: a path that is not a store must not become a new empty one
        print(error_line(f"--definitions-db {shown(db)}: no definition store there"), file=sys.stderr)
        return 1
    try:
        # read only: an empty file or another program's database is refused, never given a registry's tables
        catalog = DefinitionStore.existing(db, name=f"--definitions-db {shown(db)}").catalog()

        def type_of(entity: str, name: str, version: int) -> ValueType | None:
            try:
                return catalog.get(entity, name, version).value_type
            except UnknownFeatureError:
                return None

        cluster, session = _connect(settings)
        try:
            report = migrate(session, settings.cassandra_keyspace, type_of, drop_legacy=args.drop_legacy)
        finally:
            cluster.shutdown()
    except FeatureStoreError as exc:
        print(error_line(exc), file=sys.stderr)
        return 1
    print(json.dumps(asdict(report), indent=2))
    return 1 if report.unknown else 0


if __name__ == "__main__":
    from registry.core.shown import flushed

    sys.exit(flushed(main, None))  # a reader that stopped reading (`| head -1`): one error line, not a traceback
