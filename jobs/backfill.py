"""Backfill: recompute feature versions from a Kafka replay while the active versions keep serving.

``python -m jobs.backfill user.txn_count_1h@2 [--promote]`` runs the stream job itself (the same
definition, SQL and writer as streaming, so the same values) bounded over what the topic retains,
computing only the named versions. Their rows go to both stores under their own version number;
nothing serves them until promotion moves the registry pointer. With ``--events LOCATION`` the
events come from a table (Parquet files or ``iceberg:<namespace>.<table>``, ``jobs.events_table``)
instead of the topic: history the topic no longer holds; ``--events archive`` reads the topic's
archive (``sinks.archive``) and then the topic from where the archive ends (``jobs.history``), and
``--since``/``--until`` limit it to the events and whole windows of a time range. The active version is never a
target (a backfill must not rewrite what models read), and a failed backfill leaves it untouched.
Progress (rows committed to the offline table since the backfill started, a stream job's meanwhile included,
and elapsed time; with ``--events`` also the events read) is printed
every few seconds.
"""

from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the modules below load is the command's one line too, not a traceback
    from registry.core.interrupt import exit_on_ctrl_c

    exit_on_ctrl_c()

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jobs.batch_input import check_since, window_range
from jobs.feature_job import resolve_ref, version_refs
from registry.access import Access, guard_catalog
from registry.core.arguments import ArgumentParser, instant, location
from registry.core.errors import DefinitionError, FeatureStoreError
from registry.core.settings import Settings, absolute, settings_for_command
from registry.core.shown import error_line, shown
from registry.definition_store import DefinitionStore

_REPO = Path(__file__).resolve().parent.parent


def _committed_rows(settings: Settings, since_snapshot: int | None) -> int:
    """Rows appended to the offline table since ``since_snapshot`` (from snapshot metadata only)."""
    from pyiceberg.exceptions import NoSuchTableError

    from sinks.factory import connect_iceberg
    from sinks.iceberg.layout import TABLE

    try:
        table = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}")
    except NoSuchTableError:
        return 0
    total, seen_start = 0, since_snapshot is None
    for entry in table.history():
        if seen_start:
            snapshot = table.snapshot_by_id(entry.snapshot_id)
            if snapshot is not None and snapshot.summary is not None:
                total += int(snapshot.summary.additional_properties.get("added-records", 0))
        seen_start = seen_start or entry.snapshot_id == since_snapshot
    return total


def _current_snapshot(settings: Settings) -> int | None:
    from pyiceberg.exceptions import NoSuchTableError

    from sinks.factory import connect_iceberg
    from sinks.iceberg.layout import TABLE

    try:
        snapshot = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}").current_snapshot()
    except NoSuchTableError:
        return None
    return snapshot.snapshot_id if snapshot else None


def _echo_progress(log: Path, echoed: int) -> int:
    """Echo the job's reading progress (its ``[events]`` and ``[history]`` lines) written to ``log``
    after byte ``echoed``; returns the new position."""
    with log.open("rb") as f:
        f.seek(echoed)
        chunk = f.read()
    complete = chunk[: chunk.rfind(b"\n") + 1]
    for line in complete.decode(errors="replace").splitlines():
        if line.startswith(("[events]", "[history]")):
            print(line, file=sys.stderr, flush=True)
    return echoed + len(complete)


def job_error(log: Path, start: int = 0) -> str:
    """What the failed job said about it, in one line: its last ``error:`` line (the job ends with one), else
    the last line it wrote; ``start``: the byte of ``log`` where its run began (a log appended to run after run).
    A log that cannot be read (removed meanwhile) is said so, never an OSError out of the error being reported."""
    try:
        with log.open("rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
    except OSError as exc:
        return f"its log cannot be read ({exc.strerror or exc})"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    said = [line.removeprefix("error:").strip() for line in lines if line.startswith("error:")]
    return said[-1] if said else (lines[-1] if lines else "it wrote nothing")


def run(
    settings: Settings,
    refs: list[str],
    *,
    events: str | None = None,
    since: str | None = None,
    until: str | None = None,
    progress_every_s: float = 5.0,
    timeout_s: float = 6 * 3600,
) -> None:
    """Run the backfill job for ``refs``, over the topic or the table of events at ``events``
    (``archive``: the topic's archive, then the topic); with ``since``/``until`` (ISO-8601 with a zone
    or epoch ms; ``events`` needed) only the events and the whole windows in that range.
    FeatureStoreError (active versions untouched) if it fails."""
    db = settings.definitions_db
    # reads and moves pointers: never a new store
    store = DefinitionStore.existing(db, name=f"FS_DEFINITIONS_DB={shown(db)}")
    catalog = guard_catalog(store.catalog(), settings, action="backfill")
    resolved = [(ref, resolve_ref(catalog, ref)) for ref in refs]
    # A backfill computes and writes the features' values: the same grant as a read, checked together (the
    # refusal names every version without a grant; a version named twice is one read, one audit record).
    catalog.check_read([d for _, d in resolved])
    unique: dict[tuple[str, str, int], str] = {}  # a version named twice (user.a@2,user.a@v2) is computed once
    for ref, d in resolved:
        if catalog.get(d.entity, d.name).version == d.version:
            raise DefinitionError(f"{ref} is the active version: backfill into a new version, then promote it")
        unique.setdefault((d.entity, d.name, d.version), ref)
    check_since([resolve_ref(catalog, ref) for ref in unique.values()], since)
    if events == "archive":  # the job reads the registry and Kafka: either one down is named now, before a job starts
        from jobs.registry_client import require_registry
        from sinks.topics import require_reachable

        require_registry(settings.schema_registry_url, settings.token)
        require_reachable(settings.kafka_bootstrap)
    start_snapshot = _current_snapshot(settings)
    if events is not None and events != "archive" and not events.startswith("iceberg:"):
        events = str(Path(events).resolve())  # the job runs in the repository: a path is the caller's, not its
    cmd = [
        sys.executable,
        "-m",
        "jobs.feature_job",
        "--bounded",
        "--versions",
        ",".join(unique.values()),
        "--group-id",
        f"backfill-{uuid.uuid4().hex[:8]}",
        "--metrics-port",
        "0",
        *(["--events", events] if events is not None else []),
        *(["--since", since] if since is not None else []),
        *(["--until", until] if until is not None else []),
    ]
    started = time.monotonic()
    # Its own file: two backfills started in one second shared (and truncated) one log, and named each other's error.
    log = settings.definitions_db.parent / f"backfill-{int(time.time())}-{os.getpid()}.log"
    with log.open("w") as out:
        env = {**os.environ, **absolute(settings).to_env()}
        proc = subprocess.Popen(cmd, cwd=_REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        echoed = 0
        reported = 0.0
        try:
            while proc.poll() is None:
                time.sleep(min(progress_every_s, 1.0))
                echoed = _echo_progress(log, echoed)
                elapsed = time.monotonic() - started
                if elapsed > timeout_s:
                    raise FeatureStoreError(f"backfill exceeded {timeout_s:.0f}s; active versions untouched; log {log}")
                if elapsed - reported >= progress_every_s:  # every few seconds, however long a round took
                    reported = elapsed
                    rows = _committed_rows(settings, start_snapshot)
                    print(f"[backfill] {elapsed:.0f}s: {rows:,} offline rows committed", file=sys.stderr, flush=True)
        except BaseException:  # the time limit, Ctrl-C, SIGTERM (main), a store gone while counting: no job left
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
    _echo_progress(log, echoed)
    if proc.returncode != 0:
        raise FeatureStoreError(
            f"backfill job failed (exit {proc.returncode}): {job_error(log)}; active versions untouched; log {log}"
        )
    rows = _committed_rows(settings, start_snapshot)
    print(f"[backfill] done in {time.monotonic() - started:.0f}s: {rows:,} offline rows", file=sys.stderr)


def _promoter(settings: Settings, refs: list[str]) -> str | None:
    """The team a ``--promote`` activates as (None: auth off, or an admin), refused now (ForbiddenError) if it does
    not own every version to promote and its latest: a promotion is an activation, and a refusal after the backfill
    would have spent the whole job first. The activation checks again, in its own write."""
    access = Access.of(settings, buffered_audit=False)
    caller = access.authenticate_command(settings.token) if access.enabled else None
    if caller is None or caller.admin:
        return None
    db = settings.definitions_db
    store = DefinitionStore.existing(db, name=f"FS_DEFINITIONS_DB={shown(db)}")
    catalog = store.catalog()
    for ref in refs:
        d = resolve_ref(catalog, ref)
        store.check_activator(d.entity, d.name, d.version, caller.team)
    return caller.team


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m jobs.backfill", description=__doc__)
    parser.add_argument("versions", nargs="+", type=version_refs, help="entity.name@version of each version to compute")
    parser.add_argument("--promote", action="store_true", help="promote each version once it is ready")
    parser.add_argument(
        "--events",
        metavar="LOCATION",
        type=location,
        help="read the events from a table instead of the topic: a Parquet file or directory, "
        "iceberg:<namespace>.<table>, or `archive` (the topic's archive, then the topic from where it ends); records "
        "the decoder refuses are written beside the definitions database",
    )
    parser.add_argument(
        "--since",
        type=instant,
        help="with --events: events and whole windows from this time (ISO-8601 with a zone, or epoch ms)",
    )
    parser.add_argument("--until", type=instant, help="with --events: events before and whole windows up to this time")
    args = parser.parse_args(argv)
    if (args.since is not None or args.until is not None) and args.events is None:
        parser.error("--since and --until need --events")
    try:  # the job's own check (an open side is 1970 or the end of 9999), before anything connects
        window_range(args.since, args.until)
    except FeatureStoreError as exc:
        parser.error(str(exc))
    settings = settings_for_command()
    with _terminated_unwinds():
        return _main(args, settings)


@contextmanager
def _terminated_unwinds() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C (exit 143), through ``run``'s clean-up: a stopped backfill stops its job, which
    went on computing and writing otherwise. Only in the main thread (the only one a handler can be set from)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(args: argparse.Namespace, settings: Settings) -> int:
    try:
        refs = [ref for given in args.versions for ref in given.split(",")]  # user.a@2,user.b@3 names two
        owned_by = _promoter(settings, refs) if args.promote else None
        run(settings, refs, events=args.events, since=args.since, until=args.until)
        if args.promote:
            from serving.offline.promotion import promote
            from sinks.factory import connect_iceberg
            from sinks.iceberg.writer import load_table

            db = settings.definitions_db
            store = DefinitionStore.existing(db, name=f"FS_DEFINITIONS_DB={shown(db)}")
            table = load_table(connect_iceberg(settings), settings.iceberg_namespace)
            promoted: set[tuple[str, str, int]] = set()
            for ref in refs:
                d = resolve_ref(store.catalog(), ref)
                if (d.entity, d.name, d.version) in promoted:
                    continue
                promoted.add((d.entity, d.name, d.version))
                ready = promote(store, table, d.entity, d.name, d.version, owned_by=owned_by)
                print(f"promoted: {ready.describe()}", file=sys.stderr)
    except FeatureStoreError as exc:
        print(error_line(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from registry.core.interrupt import run_command

    sys.exit(run_command(main, None))
