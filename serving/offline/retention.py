"""Offline retention: each feature version's ``offline_retention`` applied to the offline table.

``python -m serving.offline.retention [--dry-run] [--pin-days 30] [--expire-pinned] [--orphans-older-than 1d]``

1. **Rows.** A row of feature version *f* whose window end (``event_time``) is earlier than
   ``now - f.offline_retention`` is deleted; a row exactly at that instant is kept. Rows of feature
   versions the registry does not define are kept. Deletes are Iceberg
   copy-on-write: files wholly past retention are dropped, the others rewritten without those rows.
2. **Time travel.** Every older snapshot is then expired, and the files only they reached deleted,
   so no snapshot that can still be read holds a row past retention, except the snapshots that a
   training-set manifest recorded in the last ``--pin-days`` days pins (so it can be rebuilt byte for
   byte). Those are kept and named, with the rows past retention they still hold, until their pin
   lapses; ``--expire-pinned`` expires them too and names the manifests it invalidates (a rebuild of
   one then fails with "no snapshot ... any more"). Manifests older than the pin window lose their
   snapshot on the next run and are named as invalidated.
3. **Orphans.** Files under the table's location that no snapshot reaches and that are older than
   ``--orphans-older-than`` (default 1 day: younger ones may belong to a commit in progress) are deleted;
   likewise under the serving-log table's and the events archives' locations, where an erasure may have
   left a file it could not delete.

It prints the report as JSON: rows removed per feature version, snapshots expired and kept, files
deleted, manifests kept and invalidated. ``--dry-run`` counts the rows and names the snapshots without
changing anything. Online retention stays each feature's TTL (Cassandra expires the cells).
"""

from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the modules below load is the command's one line too, not a traceback
    from registry.core.interrupt import exit_on_ctrl_c

    exit_on_ctrl_c()

import argparse
import json
import math
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from registry.core.arguments import ArgumentParser
from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import StoreUnavailableError
from registry.core.timeline import retention_cutoff_us
from registry.training_sets import TrainingSetStore
from sinks.iceberg.as_of import iso_us
from sinks.iceberg.maintenance import expire_snapshots, one_line, remove_orphan_files

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table

    from registry.core.settings import Settings

DEFAULT_PIN_DAYS = 30.0


@dataclass(frozen=True)
class Pins:
    """Training-set manifests by the offline snapshot they pin: still pinning, or lapsed."""

    kept: dict[int, list[str]] = field(default_factory=dict)  # snapshot id -> manifest ids
    lapsed: dict[int, list[str]] = field(default_factory=dict)


def manifest_pins(training_sets: TrainingSetStore, table: Table, *, now: datetime, pin_days: float) -> Pins:
    """The snapshots of ``table`` that manifests recorded within ``pin_days`` of ``now`` pin (``kept``),
    and those only older manifests pin (``lapsed``)."""
    identifier = ".".join(table.name())
    try:
        since = now - timedelta(days=pin_days)
    except OverflowError:  # pin_days = inf: every manifest pins
        since = datetime.min.replace(tzinfo=UTC)
    pins = Pins()
    for training_set_id in training_sets.ids():
        manifest = training_sets.get(training_set_id).manifest
        if manifest.snapshot_id is None or manifest.offline_table != identifier:
            continue
        created = datetime.fromisoformat(manifest.created_at)
        target = pins.kept if created >= since else pins.lapsed
        target.setdefault(manifest.snapshot_id, []).append(manifest.id)
    for snapshot_id in pins.kept:
        pins.lapsed.pop(snapshot_id, None)  # a snapshot a recent manifest pins stays, whoever else pins it
    return pins


def invalidated(pins: Pins, expired: Iterable[int]) -> list[str]:
    """Manifests whose pinned snapshot was expired (they can no longer be rebuilt)."""
    gone = set(expired)
    return sorted({m for s, ms in (*pins.kept.items(), *pins.lapsed.items()) if s in gone for m in ms})


_EARLIEST_US = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z, the earliest time a timestamp column writes


def past_retention(definitions: Sequence[FeatureDefinition], now_us: int) -> BooleanExpression:
    """Rows of ``definitions`` whose window ended before ``now - offline_retention`` of their version.

    One term per entity type, version and cutoff (its feature names as one ``In``), the terms joined as a balanced
    tree: pyiceberg nests ``Or(a, b, c, ...)`` one level per term and walks it recursively, and one term per version
    ended in a RecursionError at about 500 registered versions."""
    from pyiceberg.expressions import AlwaysFalse, And, EqualTo, In, LessThan

    names: dict[tuple[str, int, int], set[str]] = {}
    for d in definitions:
        cutoff_us = retention_cutoff_us(d, now_us)
        if cutoff_us > _EARLIEST_US:  # a retention reaching back before year 1: no stored row can be past it
            names.setdefault((d.entity, d.version, cutoff_us), set()).add(d.name)
    terms: list[BooleanExpression] = [
        And(
            EqualTo("entity_type", entity),
            In("feature_name", sorted(group)),
            EqualTo("feature_version", version),
            LessThan("event_time", iso_us(cutoff_us)),
        )
        for (entity, version, cutoff_us), group in sorted(names.items())
    ]
    return _any_of(terms) if terms else AlwaysFalse()


def _any_of(terms: Sequence[BooleanExpression]) -> BooleanExpression:
    """``terms`` joined by ``Or`` two halves at a time: a tree as deep as the logarithm of their number."""
    from pyiceberg.expressions import Or

    if len(terms) == 1:
        return terms[0]
    half = len(terms) // 2
    return Or(_any_of(terms[:half]), _any_of(terms[half:]))


def count_rows(table: Table, where: BooleanExpression, snapshot_id: int | None = None) -> Counter[str]:
    """Rows matching ``where`` per ``entity/name@version`` (reads only the key columns of the files it plans)."""
    import pyarrow as pa

    if table.current_snapshot() is None:
        return Counter()
    scan = table.scan(
        row_filter=where,
        selected_fields=("entity_type", "feature_name", "feature_version"),
        snapshot_id=snapshot_id,
    )
    counts: Counter[str] = Counter()
    for batch in scan.to_arrow_batch_reader():
        grouped = (
            pa.Table.from_batches([batch])
            .group_by(["entity_type", "feature_name", "feature_version"])
            .aggregate([("feature_name", "count")])
        )
        for row in grouped.to_pylist():
            counts[f"{row['entity_type']}/{row['feature_name']}@{row['feature_version']}"] += row["feature_name_count"]
    return counts


@dataclass
class RetentionReport:
    now: str
    dry_run: bool
    rows_removed: dict[str, int]
    rows_removed_total: int
    snapshots_expired: list[int]
    snapshots_kept: list[int]
    files_deleted: int
    orphan_files_deleted: int
    manifests_keeping_snapshots: dict[str, list[str]]
    rows_past_retention_in_kept_snapshots: dict[str, int]
    manifests_invalidated: list[str]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def apply_retention(
    table: Table,
    catalog: FeatureCatalog,
    training_sets: TrainingSetStore,
    *,
    now: datetime | None = None,
    pin_days: float = DEFAULT_PIN_DAYS,
    expire_pinned: bool = False,
    orphans_older_than_s: float = 86_400.0,
    dry_run: bool = False,
) -> RetentionReport:
    """Apply every defined feature version's ``offline_retention`` to ``table`` (see the module doc)."""
    from sinks.iceberg.maintenance import delete_rows

    now = now if now is not None else datetime.now(UTC)
    now_us = (now - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    definitions = list(catalog)
    where = past_retention(definitions, now_us)
    counts = count_rows(table, where)
    pins = manifest_pins(training_sets, table, now=now, pin_days=pin_days)
    keep = [] if expire_pinned else list(pins.kept)
    if dry_run:
        current = table.current_snapshot()
        # As the run: a pin on a snapshot that is gone already (erased, or expired on purpose) keeps nothing.
        keep = [s for s in keep if table.snapshot_by_id(s) is not None]
        # A run that deletes rows commits a new current snapshot first: the current one then expires like any
        # other (unless a training set pins it); one that deletes nothing keeps it.
        would_keep = set(keep) if counts or current is None else {current.snapshot_id, *keep}
        expiring = [s.snapshot_id for s in table.metadata.snapshots if s.snapshot_id not in would_keep]
        return RetentionReport(
            now.isoformat(),
            True,
            dict(sorted(counts.items())),
            sum(counts.values()),
            expiring,
            sorted(would_keep),
            0,
            0,
            {str(s): ms for s, ms in pins.kept.items() if s in would_keep},
            # As the run: the pinned snapshots other than the one current after it (the current one stays
            # current when there is nothing to delete).
            _still_held(table, where, [s for s in keep if counts or current is None or s != current.snapshot_id]),
            invalidated(pins, expiring),
        )
    removed = 0
    if counts:
        table = delete_rows(table, where)
        left = count_rows(table, where)
        if left:
            raise StoreUnavailableError(f"rows past retention still there after the delete: {dict(left)}")
        removed = sum(counts.values())
    table, expired = expire_snapshots(table, keep)
    orphans = remove_orphan_files(table, older_than_s=orphans_older_than_s)
    current = table.current_snapshot()
    pinned_kept = [s for s in expired.kept if current is None or s != current.snapshot_id]
    return RetentionReport(
        now.isoformat(),
        False,
        dict(sorted(counts.items())),
        removed,
        list(expired.snapshot_ids),
        list(expired.kept),
        expired.files_deleted,
        orphans,
        {str(s): ms for s, ms in pins.kept.items() if s in expired.kept},
        _still_held(table, where, pinned_kept),
        invalidated(pins, expired.snapshot_ids),
    )


def erased_tables(iceberg: Catalog, namespace: str, catalog: FeatureCatalog) -> list[Table]:
    """The other tables an erasure deletes from, which exist: the serving log and the events archive of
    every source topic. A file an erasure could not delete is left there unreachable, and only retention's
    orphan pass removes it (docs/design.md §9, "Per-entity erasure", step 3)."""
    from sinks.archive import table_name
    from sinks.serving_log import TABLE as LOG_TABLE

    names = [LOG_TABLE, *sorted({table_name(d.source.topic) for d in catalog})]
    return [iceberg.load_table(f"{namespace}.{name}") for name in names if iceberg.table_exists(f"{namespace}.{name}")]


def _still_held(table: Table, where: BooleanExpression, snapshot_ids: Iterable[int]) -> dict[str, int]:
    """Rows past retention that kept (pinned) snapshots still hold, per snapshot id."""
    return {str(s): sum(count_rows(table, where, s).values()) for s in snapshot_ids}


def _duration_s(text: str) -> float:
    """An argparse type: a duration (``registry.core.durations``), in seconds; malformed is a usage error."""
    from registry.core.durations import parse_duration

    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _pin_days(raw: str) -> float:
    """An argparse type: days of 0 or more (``inf``: every manifest pins; not NaN), written as the commands'
    other numbers are (``registry.core.arguments.number``: ``30``, ``0.5``, ``1e3``; ``1_0`` or `` 30`` refused)."""
    from registry.core.arguments import number

    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of days, not {raw!r}") from None
    if not value >= 0:  # False for NaN too
        raise argparse.ArgumentTypeError(f"must be 0 or more days, not {raw!r}")
    if raw.lower() == "inf":
        return value
    try:
        return number(0.0, math.inf)(raw)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a number of days (like 30, 0.5 or inf), not {raw!r}") from None


def main(argv: list[str] | None = None) -> int:
    from registry.access import INTERRUPTED_STATUS, Access, failure_status, interruption_line
    from registry.access_store import Caller
    from registry.core.errors import FeatureStoreError
    from registry.core.settings import settings_for_command
    from registry.core.shown import error_line
    from registry.definition_store import DefinitionStore
    from sinks.factory import connect_iceberg
    from sinks.iceberg.maintenance import unreadable_table_errors
    from sinks.iceberg.writer import load_table

    parser = ArgumentParser(prog="python -m serving.offline.retention", description=__doc__)
    parser.add_argument("--dry-run", action="store_true", help="count and name, change nothing")
    parser.add_argument(
        "--pin-days", type=_pin_days, default=DEFAULT_PIN_DAYS, help="how long a manifest pins its snapshot"
    )
    parser.add_argument(
        "--expire-pinned", action="store_true", help="expire pinned snapshots too (names the manifests)"
    )
    parser.add_argument(
        "--orphans-older-than",
        type=_duration_s,
        default="1d",
        help="age of unreachable files to delete (a duration; default 1d)",
    )
    args = parser.parse_args(argv)
    settings = settings_for_command()
    started = time.monotonic()
    action, target = ("retention_dry_run" if args.dry_run else "retention"), f"table:{settings.iceberg_namespace}"
    access: Access | None = None
    caller: Caller | None = None
    one_line_failures: tuple[type[BaseException], ...] = (
        FeatureStoreError,
        ValueError,
        sqlite3.Error,
        *unreadable_table_errors(),
    )
    try:
        # before Access.of, which would create it, and before the catalog: a missing registry is named, nothing made
        require_registry(settings, "retention")
        # It deletes every team's rows and snapshots: with FS_AUTH=on it needs an admin token (FS_TOKEN), as
        # erasure does; a dry run too (it names every feature's rows). Audited either way, failed runs too.
        access = Access.of(settings, buffered_audit=False)
        caller = access.authenticate_command(settings.token)
        if access.enabled and not caller.admin:
            note = access.command_audited(caller, action, target, 403)
            print(error_line(f"{caller.who} may not apply retention: it needs an admin token{note}"), file=sys.stderr)
            return 1
        iceberg = connect_iceberg(settings)
        table = load_table(iceberg, settings.iceberg_namespace)
        catalog = DefinitionStore(settings.definitions_db).catalog()
        report = apply_retention(
            table,
            catalog,
            TrainingSetStore(settings.definitions_db),
            pin_days=args.pin_days,
            expire_pinned=args.expire_pinned,
            orphans_older_than_s=args.orphans_older_than,
            dry_run=args.dry_run,
        )
        if not args.dry_run:
            for erased in erased_tables(iceberg, settings.iceberg_namespace, catalog):
                report.orphan_files_deleted += remove_orphan_files(erased, older_than_s=args.orphans_older_than)
    except one_line_failures as exc:
        # One line (an OSError: a file of a table missing or unreadable; sqlite3: the registry's database),
        # audited with its outcome once the caller is known (a run that failed half way changed the table).
        line = failure_line("retention", settings, exc)
        note = "" if access is None else access.command_audited(caller, action, target, failure_status(exc), line)
        print(error_line(f"{line}{note}"), file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: audited (500) like any failed run, then its traceback
        if access is not None:
            access.command_audited(caller, action, target, 500, failure_line("retention", settings, exc))
        raise
    except (KeyboardInterrupt, SystemExit) as exc:  # stopped half way (Ctrl-C, SIGTERM): audited, then it ends
        if access is not None:
            access.command_audited(caller, action, target, INTERRUPTED_STATUS, interruption_line("retention", exc))
        raise
    note = access.command_audited(caller, action, target, 200)
    from serving.offline.report_command import print_report

    if not print_report(report.to_json()):  # its reader stopped reading (`| head -1`): one error line, not a traceback
        return 1
    if note:  # the run is done and its report printed: only its record is missing
        print(error_line(f"retention {'dry run ' if args.dry_run else ''}completed{note}"), file=sys.stderr)
        return 1
    done = "dry run (nothing changed)" if args.dry_run else "applied"
    print(f"retention {done} in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


def require_registry(settings: Settings, command: str) -> None:
    """SettingsError unless FS_DEFINITIONS_DB is a file holding the registry (read without writing anything): a
    missing one would be created empty, and so would the registry's tables in an empty file or another program's
    database; retention would then keep no training set's pin (and apply no retention), erasure record what no
    writer reads. A file that is not SQLite is ``sqlite3.DatabaseError``."""
    from registry.access import REGISTRY_TABLES
    from registry.core.errors import SettingsError
    from registry.sqlite_store import tables_of

    db = settings.definitions_db
    what = "is a directory" if db.is_dir() else "does not exist"
    if db.is_file():
        tables = tables_of(db)
        if tables is None or tables & REGISTRY_TABLES:  # None: not openable here, the store says why
            return
        what = "holds no registry (an empty file, or another program's database)"
    raise SettingsError(
        f"registry database {db} (FS_DEFINITIONS_DB) {what}: {command} needs the registry the stream job and "
        "the training sets use"
    )


def failure_line(command: str, settings: Settings, exc: BaseException) -> str:
    """A failed retention or erasure run's error, as one line (without ``error: ``)."""
    if isinstance(exc, sqlite3.Error):
        return f"registry database {settings.definitions_db} (FS_DEFINITIONS_DB) not usable: {one_line(exc)}"
    if isinstance(exc, OSError):
        return f"{command} stopped: {one_line(exc)}"
    return " ".join(line.strip() for line in str(exc).strip().splitlines()) or type(exc).__name__


if __name__ == "__main__":
    from registry.core.interrupt import run_command

    sys.exit(run_command(main, None))
