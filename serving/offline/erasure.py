"""Per-entity erasure: one entity removed from every store, time travel included, for good.

``python -m serving.offline.erasure --entity-type user --entity-id X [--requested-by WHO]``
``python -m serving.offline.erasure --entity-type user_merchant --key user_id=X`` (a composite key's field)

In this order, at one instant ``erased_at`` (now, epoch ms):

1. **Record** the erasure in the registry (``registry.erasures``), then wait ``SETTLE_S`` (2 s): the
   stream job's writers and the serving-log landing reload the record within 1 s and check it for
   every row they write, so from then on nothing of the entity that reaches back before ``erased_at``
   (a window *starting* before it, a vector *served* at or before it: step 2) is written again, by the live job, a
   restart, a replay of the topic or a backfill.
2. **Online** (Cassandra): the entity's partition is deleted ``USING TIMESTAMP`` ``erased_at`` in µs
   (+999): every stored value had an older write time (window end plus revision), and so would a
   replayed old window, which the tombstone keeps deleted (for Cassandra's ``gc_grace_seconds``, 10
   days by default, longer than the 7-day Kafka retention it would replay from; and the writers
   drop such rows anyway). Until this delete ends (and from its cache for ``FS_CACHE_TTL_MS`` after) the API
   serves the old values: that instant plus the TTL is recorded (``online_gone_at_ms``), and the landing drops
   the entity's vectors served at or before the later of it and ``erased_at`` (the serving cutoff, whole ms).
3. **Offline** (Iceberg) and the **serving log** table (its rows served at or before the serving cutoff,
   once the landing has had ``SETTLE_S`` to reload the record): the entity's rows are deleted
   (copy-on-write), then every snapshot but the new current one is expired and the files only they
   reached deleted (``sinks.iceberg.maintenance``): no snapshot that can still be read holds the
   entity. Training-set manifests whose snapshot is thereby expired are named as invalidated (they can
   no longer be rebuilt byte for byte). A file only expired snapshots reached that cannot be deleted is
   said in the report's ``files_left`` and the erasure goes on (exit 1 at its end): no snapshot reaches it,
   and retention deletes it as an orphan file.
4. **Events archives** (``sinks.archive``) of those source topics: the records whose Kafka key is the
   entity id are deleted (producers key a topic's records by its sources' entity key), and the
   archive's older snapshots expired, as in 3. A record of the entity under another key (a topic
   keyed by another field) is not found this way.
5. **What it cannot erase** is named with when it ages out: the entity's events in each Kafka topic
   that may hold them (the sources of the entity type's features, their ``.dlq`` topics and the
   serving-log topic) are deleted by Kafka's retention, at the latest ``now + retention.ms + segment.ms +
   message.timestamp.after.max.ms + log.retention.check.interval.ms + file.delete.delay.ms`` (Kafka deletes whole
   segments by their newest record timestamp, which a producer may set up to an hour ahead: ``kafka_horizon``), or
   ``never``: ``retention.ms = -1``, a date past the year 9999, or a ``cleanup.policy`` without ``delete``
   (compaction keeps each key's latest record).

The report (JSON) gives per store the rows removed, the snapshots expired and files deleted, the
manifests invalidated and what is left with its date. A re-run finds nothing (and moves ``erased_at``
forward, so it also erases what the entity did between the two runs). With ``FS_AUTH=on`` only an
admin token may erase, and the erasure is audited (target ``entity:<type>/<id>``, or
``entity:<type>/<field>=<value>``), a failed one too (its outcome and error line). An erasure no store can
hold anything for (an entity type no feature is defined for, an id of a composite-keyed type that does not
encode its key) and a registry database (``FS_DEFINITIONS_DB``) that is not there are refused before anything
is touched.

**By key field** (``--key``, ``erase_by_key``; a composite-keyed type only): every entity of the type
whose key field has the value, e.g. each ``user_merchant`` pair of user ``u1``. Step 1 records the key
(``registry.erasures``), so the writers drop results of *any* matching entity that reach back before
``erased_at``, pairs not written yet included; steps 2 and 3 erase each matching entity found in the
offline table and the serving log (``entities_matched`` in the report; the online store cannot be
searched by a key field, and every entity written online is written offline first). Step 4 does not
apply: archived records are keyed by the topic's key (erase that entity, e.g. ``--entity-type user
--entity-id u1``, for them).
"""

from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the modules below load is the command's one line too, not a traceback
    from registry.core.interrupt import exit_on_ctrl_c

    exit_on_ctrl_c()

import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from registry.core.arguments import ArgumentParser
from registry.core.catalog import FeatureCatalog
from registry.core.errors import StoreUnavailableError
from registry.erasures import ErasureStore
from registry.training_sets import TrainingSetStore
from serving.offline.erasure_targets import check_entity, check_requester, key_fields, matching_ids
from serving.offline.kafka_horizon import kafka_horizon
from serving.offline.retention import failure_line, invalidated, manifest_pins, require_registry
from sinks.cassandra import layout as online_layout
from sinks.cassandra.migrate import legacy_exists
from sinks.iceberg.maintenance import (
    Expired,
    FilesLeft,
    delete_rows,
    expire_snapshots,
    one_line,
    unreadable_table_errors,
)

if TYPE_CHECKING:
    from cassandra.cluster import Session
    from pyiceberg.table import Table

SETTLE_S = 2.0  # > the writers' 1 s reload of the erasure record, plus a flush in progress
API_CACHE_TTL_MS = 1000  # serving.online.cache.DEFAULT_TTL_MS: FS_CACHE_TTL_MS when the API's env does not set it


@dataclass
class OnlineErased:
    rows_removed: int = 0  # cells (feature versions) the entity's partition held


@dataclass
class StoreErased:
    rows_removed: int = 0
    snapshots_expired: int = 0
    files_deleted: int = 0


@dataclass
class ErasureReport:
    entity_type: str
    entity_id: str
    erased_at: str
    requested_by: str
    online: OnlineErased = field(default_factory=OnlineErased)
    offline: StoreErased = field(default_factory=StoreErased)
    serving_log: StoreErased | None = None  # None: no serving-log table
    archives: dict[str, StoreErased] = field(default_factory=dict)  # topic -> its events archive
    manifests_invalidated: list[str] = field(default_factory=list)
    not_erased: list[dict[str, str]] = field(default_factory=list)
    entities_matched: list[str] | None = None  # an erasure by key field: the ids it found and erased
    files_left: list[str] = field(default_factory=list)  # files no snapshot reaches that could not be deleted

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


@contextmanager
def _recording(target: str, *, final: bool, online_only: bool = False) -> Iterator[None]:
    """A registry that cannot take the erasure record: one StoreUnavailableError saying what was erased."""
    try:
        yield
    except sqlite3.Error as exc:
        if online_only:  # after step 2: the landing keeps the cutoff ``erased_at``
            raise StoreUnavailableError(
                f"{target} was erased online, but the end of that delete could not be recorded in the registry "
                f"({one_line(exc)}): the offline table, the serving log and the archives were not erased; run it again"
            ) from exc
        if not final:  # step 1 comes first: nothing was touched
            raise StoreUnavailableError(
                f"cannot record the erasure of {target} in the registry ({one_line(exc)}): nothing was erased"
            ) from exc
        raise StoreUnavailableError(
            f"{target} was erased from every store, but the report could not be recorded in the registry "
            f"({one_line(exc)}); the erasure itself was recorded first, so the writers keep dropping its old data: "
            "run it again to record a report"
        ) from exc


@contextmanager
def _step(target: str, store: str, done: list[str]) -> Iterator[None]:
    """One store's part of steps 3 and 4: a failure there (a table file missing or unreadable, a refused commit) is
    one StoreUnavailableError naming the store and saying where the entity is erased already (``done``, which
    the store joins once its part is done): the online delete and the erasure record are done by then."""
    failures: tuple[type[BaseException], ...] = (StoreUnavailableError, *unreadable_table_errors())
    try:
        yield
    except failures as exc:
        cause = str(exc) if isinstance(exc, StoreUnavailableError) else one_line(exc)
        raise StoreUnavailableError(
            f"{target}: erasing it from {store} failed: {cause}; it is erased {', '.join(done)} and its erasure "
            "recorded (the writers drop its old data), but not the rest: run it again"
        ) from exc
    done.append(f"from {store}")


def erase_online(session: Session, keyspace: str, entity_type: str, entity_id: str, erased_at_ms: int) -> int:
    """Delete the entity's partition at ``erased_at``; the cells it held. The table of the layout before packs
    (``online_feature_values``), where a keyspace not migrated yet still has it, loses the entity's partition
    the same way (and its rows count): it holds the entity's values too, and a later migration would copy
    them back once the tombstones are gone (after ``gc_grace_seconds``).

    The tombstones' write time is ``erased_at`` µs + 999, or the newest write time among the cells (and legacy
    rows) the entity holds when it is later: a cell's write time is its window end plus its revision (the
    window's event count, ``sinks.cassandra.writer.write_timestamp_us``), so a window that ended less than its
    revision's microseconds before ``erased_at`` was written above ``erased_at`` µs + 999 and a tombstone there
    left it served until its TTL.

    An entity whose partition key Cassandra could not hold (``online_layout.partition_key_fits``: an id of about
    64 KB) has no cell: 0, and no statement is sent (Cassandra would refuse it; the driver raised a ``struct.error``)."""
    if not online_layout.partition_key_fits(entity_type, entity_id):
        return 0
    key = (entity_type, entity_id)
    select = session.prepare(online_layout.select_vector_cql(keyspace))
    held = online_layout.count_values(session.execute(select, key, timeout=30))
    newest = session.execute(session.prepare(online_layout.newest_write_cql(keyspace)), key, timeout=30)
    write_times = [erased_at_ms * 1000 + 999, *(wt for (wt,) in newest if wt is not None)]
    legacy = legacy_exists(session, keyspace)
    if legacy:
        rows = list(session.execute(session.prepare(online_layout.legacy_entity_rows_cql(keyspace)), key, timeout=30))
        held += len(rows)
        write_times += [wt for _, wt in rows if wt is not None]
    at_us = max(write_times)
    session.execute(session.prepare(online_layout.erase_entity_cql(keyspace)), (at_us, *key), timeout=30)
    if legacy:
        session.execute(session.prepare(online_layout.legacy_erase_entity_cql(keyspace)), (at_us, *key), timeout=30)
    return held


def erase_table(
    table: Table,
    entity_type: str,
    entity_id: str | Sequence[str],
    files_left: list[str] | None = None,
    served_until_ms: int | None = None,
) -> tuple[Table, StoreErased, list[int]]:
    """Delete the entity's (or entities') rows (of the serving log, with ``served_until_ms``: those served at or
    before it, epoch ms), then expire every snapshot but the current one; the expired ids too. Files the expiry
    could not delete are said in ``files_left`` (FilesLeft without it)."""
    from pyiceberg.expressions import AlwaysFalse, And, BooleanExpression, EqualTo, In, LessThan

    from sinks.iceberg.as_of import iso_us

    ids = [entity_id] if isinstance(entity_id, str) else list(entity_id)
    which: BooleanExpression = (
        AlwaysFalse() if not ids else EqualTo("entity_id", ids[0]) if len(ids) == 1 else In("entity_id", ids)
    )
    where = And(EqualTo("entity_type", entity_type), which)
    if served_until_ms is not None:  # the landing's rule: whole ms, the cutoff's own included
        where = And(where, LessThan("served_at", iso_us((served_until_ms + 1) * 1000)))
    rows = _rows(table, where) if ids else 0
    if rows:
        table = delete_rows(table, where)
        left = _rows(table, where)
        if left:
            raise StoreUnavailableError(f"{left} rows of {entity_type}/{entity_id} still in {table.name()}")
    table, expired = _expire(table, files_left)
    return table, StoreErased(rows, len(expired.snapshot_ids), expired.files_deleted), list(expired.snapshot_ids)


def _expire(table: Table, files_left: list[str] | None) -> tuple[Table, Expired]:
    """``expire_snapshots``; with ``files_left``, files it could not delete are said there, not raised: the
    expiry is done (no snapshot reaches them) and the erasure goes on to the other stores."""
    try:
        return expire_snapshots(table)
    except FilesLeft as left:
        if files_left is None:
            raise
        files_left.append(str(left))
        return left.table, left.expired


def _rows(table: Table, where: Any, column: str = "entity_id") -> int:
    if table.current_snapshot() is None:
        return 0
    return int(table.scan(row_filter=where, selected_fields=(column,)).to_arrow().num_rows)


def erase_archive(table: Table, entity_id: str, files_left: list[str] | None = None) -> tuple[Table, StoreErased]:
    """Delete an events archive's records keyed by the entity id, then expire every snapshot but the
    current one (an archiver appending meanwhile reloads the table and goes on)."""
    from pyiceberg.expressions import EqualTo

    from sinks.archive_offsets import carried_offsets

    where = EqualTo("key", entity_id.encode())
    rows = _rows(table, where, "key")
    if rows:
        table = delete_rows(table, where, carry=carried_offsets)
        left = _rows(table, where, "key")
        if left:
            raise StoreUnavailableError(f"{left} records keyed {entity_id!r} still in {table.name()}")
    table, expired = _expire(table, files_left)
    return table, StoreErased(rows, len(expired.snapshot_ids), expired.files_deleted)


def _erase_stores(
    report: ErasureReport,
    ids: Sequence[str],
    session: Session,
    keyspace: str,
    offline: Table,
    serving_log: Table | None,
    training_sets: TrainingSetStore,
    now: datetime,
    erased_at_ms: int,
    gone: Callable[[int], None],
    cache_ttl_ms: int,
    settle_s: float,
) -> list[str]:
    """Steps 2 and 3 for the entities ``ids`` of ``report``'s type, counted into ``report``; ``gone`` records the
    instant the API serves none of their online data any more (the delete's end plus its cache TTL, epoch ms).
    Where the entities are erased (for ``_step``)."""
    from sinks.cassandra.reader import store_errors

    entity_type = report.entity_type
    erased_online = 0
    try:
        for entity_id in ids:
            report.online.rows_removed += erase_online(session, keyspace, entity_type, entity_id, erased_at_ms)
            erased_online += 1
    except store_errors() as exc:  # the store failed after connecting (down, paused, timing out): say what is done
        online = (
            "not (or only in part) erased online"
            if report.entities_matched is None
            else f"erased online for {erased_online} of the {len(ids)} matching entities"
        )
        raise StoreUnavailableError(
            f"online store (Cassandra) failed erasing {entity_type}/{report.entity_id}: {one_line(exc)}; the erasure "
            f"is recorded (the writers drop its old data), but it is {online}, and not from the offline table, the "
            "serving log or the archives: run it again"
        ) from exc
    gone_ms = time.time_ns() // 1_000_000 + cache_ttl_ms  # served_at (whole ms) of a vector read before: not later
    with _recording(f"{entity_type}/{report.entity_id}", final=False, online_only=True):
        gone(gone_ms)
    recorded = time.monotonic()
    target, done = f"{entity_type}/{report.entity_id}", ["online"]
    with _step(target, "the offline table", done):
        pins = manifest_pins(training_sets, offline, now=now, pin_days=float("inf"))
        _, report.offline, expired = erase_table(offline, entity_type, ids, report.files_left)
        report.manifests_invalidated = invalidated(pins, expired)
    if serving_log is not None:  # the landing drops by the cutoff once reloaded: then what it landed is deleted
        time.sleep(max(0.0, settle_s - (time.monotonic() - recorded)))
        cutoff = max(erased_at_ms, gone_ms)
        with _step(target, "the serving log", done):
            _, report.serving_log, _ = erase_table(serving_log, entity_type, ids, report.files_left, cutoff)
    return done


def _topics(catalog: FeatureCatalog, entity_type: str, serving_log_topic: str) -> list[str]:
    """The Kafka topics that may hold an entity type's events: its sources', their dead letters, the serving log."""
    topics = sorted({d.source.topic for d in catalog if d.entity == entity_type})
    return [*topics, *(f"{t}.dlq" for t in topics), serving_log_topic]


def erase(
    entity_type: str,
    entity_id: str,
    *,
    session: Session,
    keyspace: str,
    offline: Table,
    serving_log: Table | None,
    catalog: FeatureCatalog,
    archives: dict[str, Table] | None = None,
    erasures: ErasureStore,
    training_sets: TrainingSetStore,
    kafka_bootstrap: str | None,
    serving_log_topic: str,
    requested_by: str = "cli",
    settle_s: float = SETTLE_S,
    now: datetime | None = None,
    cache_ttl_ms: int = API_CACHE_TTL_MS,
) -> ErasureReport:
    """Erase one entity from every store (see the module doc); the report. ``cache_ttl_ms``: the API's
    ``FS_CACHE_TTL_MS`` (its vector cache may serve the entity's old values that long after the online delete)."""
    if not entity_type or not entity_id:
        raise ValueError("give an entity type and an entity id")
    now = now if now is not None else datetime.now(UTC)
    erased_at_ms = int(now.timestamp() * 1000)
    report = ErasureReport(entity_type, entity_id, now.isoformat(timespec="milliseconds"), requested_by)
    with _recording(f"{entity_type}/{entity_id}", final=False):
        erasures.record(entity_type, entity_id, erased_at_ms, requested_by, "{}")
    time.sleep(settle_s)

    def gone(at_ms: int) -> None:
        erasures.record_online_gone(entity_type, entity_id, at_ms)

    stores = (session, keyspace, offline, serving_log, training_sets, now, erased_at_ms)
    done = _erase_stores(report, [entity_id], *stores, gone, cache_ttl_ms, settle_s)
    for topic, archive in sorted((archives or {}).items()):
        with _step(f"{entity_type}/{entity_id}", f"the events archive of {topic}", done):
            _, report.archives[topic] = erase_archive(archive, entity_id, report.files_left)
    if kafka_bootstrap is not None:
        report.not_erased = kafka_horizon(kafka_bootstrap, _topics(catalog, entity_type, serving_log_topic), now)
    with _recording(f"{entity_type}/{entity_id}", final=True):
        erasures.record(entity_type, entity_id, erased_at_ms, requested_by, report.to_json())
    return report


def erase_by_key(
    entity_type: str,
    key_field: str,
    key_value: str,
    *,
    session: Session,
    keyspace: str,
    offline: Table,
    serving_log: Table | None,
    catalog: FeatureCatalog,
    erasures: ErasureStore,
    training_sets: TrainingSetStore,
    kafka_bootstrap: str | None,
    serving_log_topic: str,
    requested_by: str = "cli",
    settle_s: float = SETTLE_S,
    now: datetime | None = None,
    cache_ttl_ms: int = API_CACHE_TTL_MS,
) -> ErasureReport:
    """Erase every entity of a composite-keyed type whose key field ``key_field`` is ``key_value`` (every
    ``user_merchant`` pair of user ``u1``): recorded first, so the writers drop the matching entities'
    old results from then on, those found now included and those not yet written alike; then each
    found entity is erased online, offline and from the serving log as ``erase`` does."""
    fields = key_fields(catalog, entity_type, key_field, key_value)
    now = now if now is not None else datetime.now(UTC)
    erased_at_ms = int(now.timestamp() * 1000)
    report = ErasureReport(
        entity_type, f"{key_field}={key_value}", now.isoformat(timespec="milliseconds"), requested_by
    )
    with _recording(f"{entity_type}/{key_field}={key_value}", final=False):
        erasures.record_key(entity_type, fields, key_field, key_value, erased_at_ms, requested_by, "{}")
    time.sleep(settle_s)
    ids = matching_ids([offline, serving_log], entity_type, fields, key_field, key_value)
    report.entities_matched = ids

    def gone(at_ms: int) -> None:
        erasures.record_key_online_gone(entity_type, key_field, key_value, at_ms)

    stores = (session, keyspace, offline, serving_log, training_sets, now, erased_at_ms)
    _erase_stores(report, ids, *stores, gone, cache_ttl_ms, settle_s)
    if kafka_bootstrap is not None:
        report.not_erased = kafka_horizon(kafka_bootstrap, _topics(catalog, entity_type, serving_log_topic), now)
    with _recording(f"{entity_type}/{key_field}={key_value}", final=True):
        erasures.record_key(entity_type, fields, key_field, key_value, erased_at_ms, requested_by, report.to_json())
    return report


def main(argv: list[str] | None = None) -> int:
    from registry.access import INTERRUPTED_STATUS, Access, failure_status, interruption_line
    from registry.access_store import Caller
    from registry.core.errors import FeatureStoreError
    from registry.core.settings import settings_for_command
    from registry.core.shown import error_line
    from registry.definition_store import DefinitionStore
    from serving.online.options import int_setting
    from sinks.archive import table_name as archive_table_name
    from sinks.factory import connect_existing_keyspace, connect_iceberg
    from sinks.iceberg.writer import load_table
    from sinks.serving_log import TABLE as LOG_TABLE
    from sinks.serving_log import topic_from_env

    parser = ArgumentParser(prog="python -m serving.offline.erasure", description=__doc__)
    parser.add_argument("--entity-type", required=True, help="the entity type (e.g. user, or a composite-keyed one)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--entity-id", help="the entity (a composite key's encoded id, e.g. 'u1|m7')")
    which.add_argument(
        "--key",
        metavar="FIELD=VALUE",
        help="every entity of a composite-keyed type whose key field FIELD is VALUE (e.g. user_id=u1)",
    )
    parser.add_argument(
        "--requested-by",
        default="cli",
        help="who asked (kept with the erasure record; with FS_AUTH=on the token's principal is kept instead)",
    )
    args = parser.parse_args(argv)
    if args.key is not None and "=" not in args.key:
        parser.error("--key takes FIELD=VALUE")
    settings = settings_for_command()
    target = f"entity:{args.entity_type}/{args.entity_id if args.key is None else args.key}"
    access: Access | None = None
    caller: Caller | None = None
    one_line_failures: tuple[type[BaseException], ...] = (
        FeatureStoreError,
        ValueError,
        sqlite3.Error,
        *unreadable_table_errors(),
    )
    try:
        require_registry(settings, "erasure")
        log_topic = topic_from_env(os.environ)  # the API's (FS_SERVING_LOG_TOPIC): where served vectors are logged
        cache_ttl_ms = int_setting(os.environ, "FS_CACHE_TTL_MS", API_CACHE_TTL_MS, 0, 3_600_000)  # the API's too
        access = Access.of(settings, buffered_audit=False)
        caller = access.authenticate_command(settings.token)
        if access.enabled and not caller.admin:
            note = access.command_audited(caller, "erase", target, 403)
            print(error_line(f"{caller.who} may not erase entities: it needs an admin token{note}"), file=sys.stderr)
            return 1
        catalog = DefinitionStore(settings.definitions_db).catalog()
        if args.key is not None:  # refused before any store is reached (a down Cassandra would hide why)
            key_fields(catalog, args.entity_type, *args.key.partition("=")[::2])
        else:
            check_entity(catalog, args.entity_type, args.entity_id)
        if not access.enabled:  # kept with the erasure record (with auth on, the caller's principal is)
            check_requester(args.requested_by)
        # the keyspace first: a mistyped one is refused before the Iceberg catalog (a SQL catalog's file) is opened,
        # which would create it and its warehouse folder
        cluster, session = connect_existing_keyspace(settings, nothing_done="nothing erased, nothing created")
        try:
            iceberg = connect_iceberg(settings)
            log_table: Any = None
            identifier = f"{settings.iceberg_namespace}.{LOG_TABLE}"
            if iceberg.table_exists(identifier):
                log_table = iceberg.load_table(identifier)
            archives = {}
            for topic in sorted({d.source.topic for d in catalog if d.entity == args.entity_type}):
                name = f"{settings.iceberg_namespace}.{archive_table_name(topic)}"
                if iceberg.table_exists(name):
                    archives[topic] = iceberg.load_table(name)
            common: dict[str, Any] = {
                "session": session,
                "keyspace": settings.cassandra_keyspace,
                "offline": load_table(iceberg, settings.iceberg_namespace),
                "serving_log": log_table,
                "catalog": catalog,
                "erasures": ErasureStore(settings.definitions_db),
                "training_sets": TrainingSetStore(settings.definitions_db),
                "kafka_bootstrap": settings.kafka_bootstrap,
                "serving_log_topic": log_topic,
                "requested_by": args.requested_by if not access.enabled else caller.principal,
                "cache_ttl_ms": cache_ttl_ms,
            }
            if args.key is not None:
                key_field, _, key_value = args.key.partition("=")
                report = erase_by_key(args.entity_type, key_field, key_value, **common)
            else:
                report = erase(args.entity_type, args.entity_id, archives=archives, **common)
        finally:
            cluster.shutdown()
    except one_line_failures as exc:
        # One line, audited with its outcome once the caller is known: an erasure that failed half way may
        # have erased some stores already (its record, step 1, makes the writers drop the entity's old data).
        line = failure_line("erasure", settings, exc)
        note = "" if access is None else access.command_audited(caller, "erase", target, failure_status(exc), line)
        print(error_line(f"{line}{note}"), file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: audited (500) like any failed run, then its traceback
        if access is not None:
            access.command_audited(caller, "erase", target, 500, failure_line("erasure", settings, exc))
        raise
    except (KeyboardInterrupt, SystemExit) as exc:  # stopped half way (Ctrl-C, SIGTERM): audited, then it ends
        if access is not None:
            access.command_audited(caller, "erase", target, INTERRUPTED_STATUS, interruption_line("erasure", exc))
        raise
    note = access.command_audited(caller, "erase", target, 200)
    from serving.offline.report_command import print_report

    printed = print_report(report.to_json())  # False: its reader stopped reading (one error line, not a traceback)
    if report.files_left:  # erased from every store: only files no snapshot reaches are left on disk
        print(
            error_line(
                f"{target.removeprefix('entity:')} was erased from every store (no snapshot that can be read holds "
                f"it), but files could not be deleted: {'; '.join(report.files_left)}{note}"
            ),
            file=sys.stderr,
        )
        return 1
    if note:  # the entity is erased and the report printed (and recorded with the erasure): only the audit is missing
        print(error_line(f"erasure completed{note}"), file=sys.stderr)
        return 1
    return 0 if printed else 1


if __name__ == "__main__":
    from registry.core.interrupt import run_command

    sys.exit(run_command(main, None))
