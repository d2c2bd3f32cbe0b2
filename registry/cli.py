"""Definition registry commands: ``python -m registry.cli {plan,apply,activate,activate-all,list,gate}``.

``plan`` exits 0 when nothing would change and 2 when something would (like ``terraform plan
-detailed-exitcode``), so CI can tell; any other error exits 1 with a message. A usage error (an unknown option, a
bad value) exits 2 as argparse's do and prints nothing on stdout, so CI tells it from a plan by the last stdout line
(``N change(s)``).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sqlite3
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from registry.core.arguments import ArgumentParser, number, text, whole
from registry.core.catalog import FeatureCatalog, load_folder_at, load_request_folder_at
from registry.core.definitions import MAX_VERSION
from registry.core.durable import fsync_folder
from registry.core.durations import EPOCH, parse_duration, to_millis
from registry.core.errors import DefinitionError, FeatureStoreError, StoreUnavailableError
from registry.core.refs import parse_ref
from registry.core.request_features import RequestFeature
from registry.core.settings import Settings, http_url, settings_for_command
from registry.core.shown import error_line, flushed, shown
from registry.definition_store import DefinitionStore, Registered
from registry.plan import Change, RequestChange, apply_all, plan_all
from registry.sqlite_store import tables_of

if TYPE_CHECKING:
    from registry.gate import Guardrails

_T = TypeVar("_T")


def _pointer(text: str) -> tuple[str, str, int]:
    ref = parse_ref(text, with_entity=True)
    if ref is None or ref.entity is None or ref.version is None:
        raise DefinitionError(
            f"{shown(text, quoted=True)} is not a versioned feature reference like user.txn_count_1h@2"
        )
    return ref.entity, ref.name, ref.version


def _span(raw: str) -> str:
    """``--since``: a positive duration (``30m``, ``24h``), kept as written for the gate's messages;
    anything else is a usage error (exit 2), whether or not ``--guardrails`` reads it."""
    try:
        span = parse_duration(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"must be a positive duration like 30m or 24h: {exc}") from None
    if span <= timedelta(0):
        raise argparse.ArgumentTypeError(f"must be a positive duration like 30m or 24h, not {raw!r}")
    if span > datetime.now(UTC) - EPOCH:
        raise argparse.ArgumentTypeError(f"must be a positive duration reaching back no further than 1970, not {raw!r}")
    return raw


def _located(entries: list[tuple[_T, str]]) -> tuple[list[_T], list[str]]:
    """``load_folder_at``'s pairs as the definitions and, apart, where each is written."""
    return [entry for entry, _ in entries], [place for _, place in entries]


def _registry_url(raw: str) -> str:
    try:
        return http_url("--schema-registry", raw)
    except FeatureStoreError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--schema-registry ")) from None


# Commands that only read the definition store: a store that is not there is an error, not a new empty one.
_READS = frozenset({"plan", "list", "gate"})
# Commands that change pointers of registered features: the store must be there already.
_MOVES = frozenset({"activate", "activate-all"})


def _open_store(db: Path, command: str, default: Path, *, create: bool = True) -> DefinitionStore | None:
    """The definition store ``command`` works on; DefinitionError for a ``--db`` that cannot be one.

    ``apply`` creates the store; the configured location's folders too (a fresh checkout has no
    ``.state/``), but an explicit ``--db`` elsewhere needs an existing folder; ``create=False``: None where
    there is no store yet (``_apply`` makes it). Every other command only reads the store or moves its pointers:
    a missing file, an empty one or another program's database is refused with nothing created or changed there
    (``DefinitionStore.existing``).
    """
    where = f"--db {shown(db)}" + (" (FS_DEFINITIONS_DB)" if db == default else "")
    try:
        is_dir = db.is_dir()
    except OSError as exc:  # a name longer than the system takes: one line, not a traceback
        raise DefinitionError(f"{where}: {exc.strerror or exc}") from None
    if is_dir:
        raise DefinitionError(f"{where} is a directory, not a definition store (SQLite file)")
    if command in _READS or command in _MOVES:
        return DefinitionStore.existing(db, name=where)
    if not db.exists() and db != default and not db.parent.is_dir():
        raise DefinitionError(f"{where}: folder {db.parent} does not exist")
    if create:
        return DefinitionStore(db)
    # ``apply``: a file that holds no store yet (an empty file, a registry database of tokens only, another program's
    # database) is opened only once the folder was applied whole to a fresh store (``_apply``): opening it first
    # added the store's tables (and switched it to WAL), and a refused folder then left an empty store there.
    try:
        tables = tables_of(db)
    except sqlite3.DatabaseError:  # not SQLite: opening it names it, as before
        return DefinitionStore(db)
    return DefinitionStore(db) if tables is not None and "feature_versions" in tables else None


def _apply_folder(
    store: DefinitionStore, folder: Path
) -> tuple[list[Registered], list[RequestChange], list[RequestFeature]]:
    """``folder`` read (its features first, then its request features, as ``plan`` reads it: one folder, one
    refusal) and applied to ``store``: what happened to each definition, the request features' changes, and the
    request features."""
    definitions, places = _located(load_folder_at(folder, store.holds))
    requests, request_places = _located(load_request_folder_at(folder))
    results, request_changes = apply_all(store, definitions, requests, places=places, request_places=request_places)
    return results, request_changes, requests


def _apply(
    store: DefinitionStore | None, db: Path, folder: Path
) -> tuple[list[Registered], list[RequestChange], list[RequestFeature]]:
    """``apply`` of ``folder``: all of it or nothing, a store included. Where there is no store yet (``store`` is
    None), the folder is applied to a new one in a temporary folder, which is then put at ``db`` whole: a folder
    refused leaves no file (nor folder) there. Another ``apply`` that made ``db`` meanwhile keeps its store, and
    the folder is applied to that one; so is a file at ``db`` that held no store (an empty file, another program's
    database), once the folder was applied whole to the fresh one: refused, it is left as it was."""
    if store is not None:
        return _apply_folder(store, folder)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "definitions.db"
        outcome = _apply_folder(DefinitionStore(fresh), folder)
        conn = sqlite3.connect(fresh)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every write in the file itself
        finally:
            conn.close()
        db.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=db.parent, prefix=f".{db.name}.", suffix=".new")  # unique, beside db
        staged = Path(name)
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(handle, 0o666 & ~umask)  # as a file made in place would be (mkstemp makes it 0600: others' readers)
        try:
            with open(handle, "wb") as out, fresh.open("rb") as source:
                shutil.copyfileobj(source, out)
                out.flush()
                os.fsync(out.fileno())  # whole on disk before it is linked in: never an empty store after a crash
            try:
                os.link(staged, db)  # never over a store made meanwhile
            except FileExistsError:  # another apply made it meanwhile: apply to that store
                return _apply_folder(DefinitionStore(db), folder)
            except OSError:  # no hard links on this filesystem: the folder, already checked whole, applied in place
                return _apply_folder(DefinitionStore(db), folder)
            fsync_folder(db.parent)
        finally:
            staged.unlink(missing_ok=True)
    return outcome


def _plan_folder(store: DefinitionStore, folder: Path) -> tuple[list[Change], list[RequestChange]]:
    """``folder`` read as ``_apply_folder`` reads it and planned against ``store``: what ``apply`` would change;
    DefinitionError (a conflict: DefinitionConflictError) naming what it would refuse."""
    definitions, places = _located(load_folder_at(folder, store.holds))
    requests, request_places = _located(load_request_folder_at(folder))
    return plan_all(store, definitions, requests, places=places, request_places=request_places)


def main(argv: list[str] | None = None) -> int:
    """The command; a reader that stopped reading (``list | head -1``) is one ``error:`` line, exit 1."""
    return flushed(_command, argv)


def _command(argv: list[str] | None) -> int:
    settings = settings_for_command()
    parser = ArgumentParser(prog="python -m registry.cli", description=__doc__)
    parser.add_argument("--db", type=Path, default=settings.definitions_db, help="definition store (SQLite)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("plan", "apply"):
        cmd = sub.add_parser(name, help=f"{name} a folder of definition files")
        cmd.add_argument(
            "folder", type=Path, nargs="?", default=settings.definitions_dir, help="default: FS_DEFINITIONS_DIR"
        )
    act = sub.add_parser("activate", help="move a feature's serving pointer to a version")
    act.add_argument("entity", type=text)
    act.add_argument("name", type=text)
    act.add_argument("version", type=whole(1, MAX_VERSION))
    act_all = sub.add_parser("activate-all", help="move several serving pointers at once (all or none)")
    act_all.add_argument("refs", nargs="+", metavar="entity.name@N")
    sub.add_parser("list", help="registered features, versions and which one serves")
    gate = sub.add_parser("gate", help="refuse a model whose pinned features are missing, changed or deprecated")
    gate.add_argument("model", type=Path, help="TOML file with the model's pinned features")
    gate.add_argument(
        "--schema-registry",
        type=_registry_url,
        default=settings.schema_registry_url,
        help="where the reader schemas are checked (default FS_SCHEMA_REGISTRY_URL)",
    )
    gate.add_argument("--no-schema-check", action="store_true", help="skip the schema registry check")
    gate.add_argument(
        "--guardrails",
        action="store_true",
        help="also refuse features the serving log shows stale or skewed, or that drifted (reads the Iceberg tables)",
    )
    gate.add_argument(
        "--since", type=_span, default="24h", help="the serving log's span for --guardrails (default 24h)"
    )
    share = number(0.0, 1.0)
    gate.add_argument("--max-stale-share", type=share, default=0.01, help="share of values served stale (default 0.01)")
    gate.add_argument("--max-parity-ratio", type=share, default=0.001, help="mismatch or missing ratio (default 0.001)")
    gate.add_argument(
        "--max-psi", type=number(0.0, math.inf), default=0.25, help="drift score against a training set (default 0.25)"
    )
    args = parser.parse_args(argv)
    try:
        maybe = _open_store(args.db, args.command, settings.definitions_db, create=args.command != "apply")
        if args.command == "apply":
            results, request_changes, requests = _apply(maybe, args.db, args.folder)
            for r in results:
                print(
                    f"{r.action:16} {r.definition.entity}.{r.definition.name} v{r.definition.version}"
                    f" (active v{r.active_version})"
                )
            changed = {c.feature.key: c.kind for c in request_changes}
            for q in {q.key: q for q in requests}.values():  # an identical repeat is one feature (plan_all)
                action = {"create": "created", "update_metadata": "metadata_updated"}.get(
                    changed.get(q.key, ""), "unchanged"
                )
                print(f"{action:16} request feature {q.entity}.{q.name} v{q.version} ({q.function})")
            return 0
        if maybe is None:  # only `apply` is left without a store (it makes one)
            raise AssertionError(f"{args.command}: no definition store opened")
        store = maybe
        if args.command == "plan":
            stored, requested = _plan_folder(store, args.folder)
            changes = [str(c) for c in stored] + [str(c) for c in requested]
            for change in changes:
                print(change)
            print(f"{len(changes)} change(s)" if changes else "no changes")
            return 2 if changes else 0
        if args.command == "activate":
            store.activate(args.entity, args.name, args.version)
            print(f"{args.entity}.{args.name}: v{args.version} is active")
            return 0
        if args.command == "activate-all":
            pointers = [_pointer(ref) for ref in args.refs]
            store.activate_all(pointers)
            for entity, name, version in dict.fromkeys(pointers):
                print(f"{entity}.{name}: v{version} is active")
            return 0
        if args.command == "list":
            catalog = store.catalog()
            for d in sorted(catalog.active(), key=lambda d: d.key):
                versions = ",".join(str(v.version) for v in catalog.versions(d.entity, d.name))
                print(f"{d.entity}.{d.name}  active v{d.version}  versions [{versions}]  owner {d.owner}  {d.status}")
            for q in sorted(catalog.request_features(), key=lambda q: q.key):
                print(
                    f"{q.entity}.{q.name}  request feature v{q.version}  {q.function} @{q.function_hash}  owner {q.owner}"
                )
            return 0
        from registry.gate import check_model, load_model

        catalog = store.catalog()
        guardrails = _guardrails(settings, catalog, args) if args.guardrails else None
        problems = check_model(
            load_model(args.model),
            catalog,
            None if args.no_schema_check else args.schema_registry,
            guardrails=guardrails,
            token=settings.token,
        )
        for problem in problems:
            print(f"REFUSED: {problem}", file=sys.stderr)
        if not problems:
            print(f"{args.model}: every pinned feature is present, unchanged and not deprecated")
        return 1 if problems else 0
    except FeatureStoreError as exc:
        print(error_line(exc), file=sys.stderr)
        return 1
    except sqlite3.DatabaseError as exc:  # a file that is not SQLite, or one that cannot be opened
        print(error_line(f"--db {shown(args.db)}: not a usable definition store (SQLite): {exc}"), file=sys.stderr)
        return 1


def _guardrails(settings: Settings, catalog: FeatureCatalog, args: argparse.Namespace) -> Guardrails:
    """The serving log's health of the last ``--since``: this entry point composes the offline side."""
    import time

    import pyarrow as pa

    from registry.gate import Guardrails
    from registry.quality import QualityStore
    from serving.offline.parity import parity_report
    from sinks.factory import connect_iceberg
    from sinks.iceberg.writer import load_table
    from sinks.serving_log import ensure_log_table

    span_ms = to_millis(parse_duration(args.since))  # checked by argparse (``_span``)
    iceberg = connect_iceberg(settings)
    # The offline table first, as parity reads it: a gate with nothing to judge stops (one error line), and
    # creates no table (it created both, then passed).
    offline = load_table(iceberg, settings.iceberg_namespace)
    log = ensure_log_table(iceberg, settings.iceberg_namespace)
    now_us = time.time_ns() // 1000
    try:
        report = parity_report(log, offline, catalog, now_us - span_ms * 1000, now_us + 1)
    except (OSError, pa.ArrowException) as exc:  # a table's file gone or unreadable: one error line, not a traceback
        raise StoreUnavailableError(str(exc)) from exc
    drift = QualityStore(Path(args.db)).worst_drift(datetime.now(UTC) - timedelta(milliseconds=span_ms))
    return Guardrails(report.health(), args.since, args.max_stale_share, args.max_parity_ratio, drift, args.max_psi)


if __name__ == "__main__":
    sys.exit(main())
