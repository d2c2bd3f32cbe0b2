"""Maintenance of our Iceberg tables: row deletes, snapshot expiry, and removal of unreachable files.

What retention (``serving.offline.retention``) and erasure (``serving.offline.erasure``) need so that
deleted rows are gone for time travel too:

- ``delete_rows``: pyiceberg's copy-on-write delete (files wholly matched are dropped, others rewritten
  without the rows), one or two snapshots.
- ``expire_snapshots``: removes snapshots from the table's metadata (never the current one), then
  deletes every manifest list, manifest and data file that only the removed snapshots reached. A
  reader can then time-travel only to the snapshots kept.
- ``remove_orphan_files``: deletes files under the table's location that no snapshot reaches and
  that are older than a cutoff (left by failed or abandoned commits, and metadata files out of the log).
- ``remove_old_metadata``: deletes only the metadata JSON files out of the table's metadata log.

A failure other than a lost commit race (a catalog refusing the commit, a file missing or that cannot be
deleted) is one ``StoreUnavailableError`` saying what was left: a refused delete or expiry changed
nothing (a rerun does it); files an expiry could not delete are named, and since no snapshot reaches
them, retention's orphan removal deletes them. A file deletion failing never stops the others.

pyiceberg 0.8.1 defines the ``remove-snapshots`` metadata update but does not apply it; this module
registers how to apply it (the Iceberg spec's semantics: the snapshots, the snapshot-log entries up to the
last of theirs, and refs to them are dropped) unless the installed pyiceberg already does.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from registry.core.errors import StoreUnavailableError
from sinks.iceberg.as_of import FIRST_SNAPSHOT_MS

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table

_COMMIT_RETRIES = 5
_EXPIRY_RETRIES = 50  # an expiry's attempt is one metadata commit: beside a job committing several times a second


def _register_remove_snapshots() -> None:
    from pyiceberg.table.update import RemoveSnapshotsUpdate, _apply_table_update

    if _apply_table_update.dispatch(RemoveSnapshotsUpdate) is not _apply_table_update.dispatch(object):
        return  # this pyiceberg applies it itself

    @_apply_table_update.register(RemoveSnapshotsUpdate)
    def _(update: RemoveSnapshotsUpdate, base: Any, context: Any) -> Any:
        removed = set(update.snapshot_ids)
        if base.current_snapshot_id in removed:
            raise ValueError(f"cannot expire the current snapshot {base.current_snapshot_id}")
        context.add_update(update)
        snapshots = [s for s in base.snapshots if s.snapshot_id not in removed]
        # The spec: "all entries before a snapshot that has expired should be removed". Dropping only the expired
        # entries would leave a gap in which a kept (pinned) older snapshot looks current, so time travel by
        # timestamp (pyiceberg's snapshot_as_of_timestamp, Spark's TIMESTAMP AS OF) would read it silently.
        kept = {s.snapshot_id for s in snapshots}
        log: list[Any] = []
        for entry in base.snapshot_log:
            if entry.snapshot_id in kept:
                log.append(entry)
            else:
                log = []
        return base.model_copy(
            update={
                "snapshots": snapshots,
                "snapshot_log": log,
                "refs": {name: ref for name, ref in base.refs.items() if ref.snapshot_id not in removed},
            }
        )


def delete_rows(
    table: Table,
    where: BooleanExpression,
    keep_properties: Iterable[str] = (),
    carry: Callable[[Table], dict[str, str]] | None = None,
) -> Table:
    """Delete the rows matching ``where`` (retried on a lost commit race); the reloaded table.
    ``keep_properties``: snapshot properties of the current snapshot carried into the delete's; ``carry``: the
    properties to give the delete's snapshot, from the table as each attempt finds it (instead)."""
    from pyiceberg.exceptions import CommitFailedException

    for _ in range(_COMMIT_RETRIES):
        current = table.current_snapshot()
        have = current.summary.additional_properties if current is not None and current.summary is not None else {}
        carried = carry(table) if carry is not None else {k: have[k] for k in keep_properties if k in have}
        try:
            table.delete(where, snapshot_properties=carried)
        except CommitFailedException:
            table = table.refresh()
            continue
        except Exception as exc:  # a catalog refusing the commit, a data file missing or unreadable, ...
            before = current.snapshot_id if current is not None else None
            raise StoreUnavailableError(
                f"could not delete rows of {_name(table)}: {one_line(exc)}; {_outcome(table, before)}"
            ) from exc
        return table.refresh()
    raise StoreUnavailableError(f"could not delete rows of {_name(table)}: {_COMMIT_RETRIES} commit races lost")


def _reachable(
    table: Table, snapshot_ids: Iterable[int], read: dict[str, set[str]] | None = None, metadata: Any = None
) -> set[str]:
    """Every file the snapshots reach: manifest lists, manifests, live data and delete files. Each manifest is read
    once (``read``: its files by path, kept across calls: a manifest never changes), where every snapshot listing it
    read it again: n(n+1)/2 manifest reads for n appends, 31 s at 200 snapshots. ``metadata``: the table as it was
    (``Table.refresh`` replaces the table's own in place), else as it is."""
    io = table.io
    read = {} if read is None else read
    metadata = table.metadata if metadata is None else metadata
    out: set[str] = set()
    for snapshot_id in snapshot_ids:
        snapshot = metadata.snapshot_by_id(snapshot_id)
        if snapshot is None:
            continue
        if snapshot.manifest_list:
            out.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(io):
            out.add(manifest.manifest_path)
            if manifest.manifest_path not in read:
                entries = manifest.fetch_manifest_entry(io, discard_deleted=True)
                read[manifest.manifest_path] = {entry.data_file.file_path for entry in entries}
            out |= read[manifest.manifest_path]
    return out


@dataclass(frozen=True)
class Expired:
    snapshot_ids: tuple[int, ...]
    files_deleted: int
    kept: tuple[int, ...] = field(default=())


def unreadable_table_errors() -> tuple[type[BaseException], ...]:
    """What reading a table whose files are missing or cut short raises (an OSError; EOFError from a truncated
    manifest list; pydantic's ValidationError from a truncated metadata file, pyiceberg's from metadata it refuses):
    a command's one-line failure naming the cause, not a bug's traceback."""
    from pydantic import ValidationError as Unparsed
    from pyiceberg.exceptions import ValidationError

    return (OSError, EOFError, ValidationError, Unparsed)


class FilesLeft(StoreUnavailableError):
    """Snapshots were expired, but some files only they reached could not be deleted: no snapshot reaches them
    any more (the expiry itself is done: ``table`` and ``expired`` say what it did), and retention's orphan
    removal deletes them."""

    def __init__(self, message: str, table: Table, expired: Expired) -> None:
        super().__init__(message)
        self.table = table
        self.expired = expired


def _first_snapshot_ms(table: Table) -> int | None:
    """The time of the table's first snapshot to record before an expiry removes it (``sinks.iceberg.as_of``: a
    time before it read nothing, not "expired"): None when it is recorded already, or when the history was expired
    before it was recorded (no kept snapshot without a parent), where the time is not known any more."""
    if FIRST_SNAPSHOT_MS in table.properties:
        return None
    roots = [s.timestamp_ms for s in table.metadata.snapshots if s.parent_snapshot_id is None]
    return min(roots) if roots else None


def expire_snapshots(table: Table, keep: Iterable[int] = (), *, since_ms: int | None = None) -> tuple[Table, Expired]:
    """Remove every snapshot but the current one, ``keep`` (ids no longer in the table are ignored) and, with
    ``since_ms``, those made at or after it (epoch ms; chosen again on every attempt, from the table as it is then:
    a writer's snapshots made since the caller read the table are young too), then delete the files only they
    reached. Retried when a writer commits in between."""
    keep = list(keep)
    from pyiceberg.exceptions import CommitFailedException
    from pyiceberg.table.update import AssertRefSnapshotId, RemoveSnapshotsUpdate, SetPropertiesUpdate

    _register_remove_snapshots()
    for attempt in range(_EXPIRY_RETRIES):
        if attempt:  # a writer committed in between: it does not undo this expiry, which tries again at once or so
            time.sleep(random.uniform(0.0, 0.05 * min(attempt, 10)))
        current = table.current_snapshot()
        if current is None:
            return table, Expired((), 0)
        kept = {current.snapshot_id, *(k for k in keep if table.snapshot_by_id(k) is not None)}
        if since_ms is not None:
            kept.update(s.snapshot_id for s in table.metadata.snapshots if s.timestamp_ms >= since_ms)
        every = [s.snapshot_id for s in table.metadata.snapshots]
        removed = [s for s in every if s not in kept]
        if not removed:
            return table, Expired((), 0, tuple(sorted(kept)))
        first_ms = _first_snapshot_ms(table)
        record = () if first_ms is None else (SetPropertiesUpdate(updates={FIRST_SNAPSHOT_MS: str(first_ms)}),)
        # The commit first, from the table as just read (nothing between the read and the commit but the
        # metadata update: a stream job commits several times a second, and an expiry that first read every
        # manifest lost every race to it); what the removed snapshots reached is read after, from that same state
        # (their files are deleted only below).
        try:
            table.catalog.commit_table(
                table,
                (AssertRefSnapshotId.model_validate({"ref": "main", "snapshot-id": current.snapshot_id}),),
                (RemoveSnapshotsUpdate.model_validate({"snapshot-ids": removed}), *record),
            )
        except CommitFailedException:
            table = table.refresh()
            continue
        except Exception as exc:  # a catalog refusing the commit, ...
            raise StoreUnavailableError(
                f"could not expire snapshots of {_name(table)}: {one_line(exc)}; no snapshot was expired and "
                "no file deleted (older snapshots still hold what they held): run it again once the cause is fixed"
            ) from exc
        expired_from = table.metadata  # as committed from: ``refresh`` replaces it in place
        table = table.refresh()
        read: dict[str, set[str]] = {}
        try:
            before = _reachable(table, every, read, expired_from)
            gone = before - _reachable(table, [s.snapshot_id for s in table.metadata.snapshots], read)
        except Exception as exc:  # a manifest missing or unreadable: the snapshots are expired, their files left
            raise FilesLeft(
                f"expired {len(removed)} snapshots of {_name(table)}, but the files only they reached could not be "
                f"listed ({one_line(exc)}): no snapshot reaches them any more, and retention deletes them as orphan "
                "files (--orphans-older-than)",
                table,
                Expired(tuple(removed), 0, tuple(sorted(kept))),
            ) from exc
        failed: list[tuple[str, Exception]] = []
        for path in sorted(gone):  # every file, whatever fails: one failure must not leave the rest behind
            try:
                table.io.delete(path)
            except FileNotFoundError:
                pass  # gone already (deleted by hand, or by an earlier attempt)
            except Exception as exc:
                failed.append((path, exc))
        if failed:
            path, first = failed[0]
            raise FilesLeft(
                f"expired {len(removed)} snapshots of {_name(table)}, but {len(failed)} of the {len(gone)} files only "
                f"they reached could not be deleted (first {path}: {one_line(first)}): no snapshot reaches them any "
                "more, and retention deletes them as orphan files (--orphans-older-than)",
                table,
                Expired(tuple(removed), len(gone) - len(failed), tuple(sorted(kept))),
            )
        return table, Expired(tuple(removed), len(gone), tuple(sorted(kept)))
    raise StoreUnavailableError(f"could not expire snapshots of {_name(table)}: {_EXPIRY_RETRIES} commit races lost")


def expire_older_than(table: Table, older_than_s: float, keep: Iterable[int] = ()) -> Table:
    """``expire_snapshots`` of the snapshots made more than ``older_than_s`` ago (a snapshot exactly that old is
    kept), never the current one nor ``keep``: the periodic expiry of the tables a process appends to for days."""
    now_ms = time.time_ns() // 1_000_000
    cutoff_ms = now_ms - int(min(older_than_s, now_ms / 1000) * 1000)  # 1e306 s: keeps every snapshot
    return expire_snapshots(table, keep, since_ms=cutoff_ms)[0]


def remove_orphan_files(table: Table, *, older_than_s: float = 86_400.0) -> int:
    """Delete files under the table's location that no snapshot reaches and that were last modified more than
    ``older_than_s`` ago (a younger one may belong to a commit in progress): data files, manifests and manifest lists,
    and metadata JSON files that are neither the table's current one nor in its metadata log (its last 100; the
    others nothing reads, and a writer that commits every few seconds leaves thousands a day). Returns the files
    deleted."""
    table = _fresh(table)
    reachable = {_path_of(p) for p in _reachable(table, [s.snapshot_id for s in table.metadata.snapshots])}
    return _delete_unkept(table, table.location(), reachable, older_than_s, "orphan")


# A metadata JSON file out of the table's metadata log younger than this is never deleted, whatever the cutoff
# asked: one written by a commit still in progress is not yet the current one (it becomes it within seconds).
METADATA_GRACE_S = 600.0


def remove_old_metadata(table: Table, *, older_than_s: float = METADATA_GRACE_S) -> int:
    """Delete the table's metadata JSON files (``<location>/metadata/*.metadata.json``) that are neither its current
    one nor in its metadata log and were last modified more than ``older_than_s`` ago: what Iceberg's
    ``write.metadata.delete-after-commit.enabled`` does, which pyiceberg 0.8.1 does not. For the processes that
    commit every few seconds for days (the events archiver, the serving log's landing), whose every commit writes a
    whole metadata file. Reads no manifest. Returns the files deleted."""
    table = _fresh(table)
    folder = f"{table.location().rstrip('/')}/metadata"
    return _delete_unkept(table, folder, set(), older_than_s, "old metadata", only=_METADATA)


_METADATA = ".metadata.json"


def _fresh(table: Table) -> Table:
    """``table`` loaded again from its catalog, as a new object (the caller's copy is left as it is: an archiver's
    stale copy must still lose its next commit's race): what is kept is decided from the catalog's current metadata,
    not from the caller's copy, which another process's commit (an erasure's, another landing's) made stale: its
    current file looked out of the log, and an idle landing deleted it, leaving the table unloadable."""
    try:
        return table.catalog.load_table(table.name())
    except Exception as exc:  # the catalog's database refusing, the table dropped
        raise StoreUnavailableError(f"cannot load {_name(table)} again from its catalog: {one_line(exc)}") from exc


def _delete_unkept(table: Table, folder: str, kept: set[str], older_than_s: float, what: str, *, only: str = "") -> int:
    """Delete the files under ``folder`` whose names end in ``only``, not in ``kept``, and last modified more than
    ``older_than_s`` ago (a file exactly that old is kept, as a younger one); each one tried whatever the others do.
    A metadata JSON file is kept when it is ``table``'s current one or in its metadata log (``table`` just loaded
    again: ``_fresh``), or younger than ``METADATA_GRACE_S`` whatever ``older_than_s`` says.
    StoreUnavailableError when the folder cannot be listed or a file cannot be deleted (after trying every one)."""
    import pyarrow.fs as pafs

    filesystem, root = _filesystem(folder)
    now_s = time.time()
    cutoff, metadata_cutoff = now_s - older_than_s, now_s - max(older_than_s, METADATA_GRACE_S)
    kept = kept | {_path_of(table.metadata_location), *(_path_of(e.metadata_file) for e in table.metadata.metadata_log)}
    deleted = 0
    try:
        infos = filesystem.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except OSError as exc:
        raise StoreUnavailableError(f"cannot list {folder}: {exc}") from exc
    failed: list[tuple[str, OSError]] = []
    for info in infos:
        if info.type != pafs.FileType.File or not info.path.endswith(only) or info.path in kept:
            continue
        limit = metadata_cutoff if info.path.endswith(_METADATA) else cutoff
        if info.mtime is None or info.mtime.timestamp() >= limit:
            continue
        try:
            filesystem.delete_file(info.path)
        except FileNotFoundError:
            continue  # gone meanwhile
        except OSError as exc:  # one that cannot be deleted must not leave the others behind
            failed.append((info.path, exc))
            continue
        deleted += 1
    if failed:
        path, first = failed[0]
        raise StoreUnavailableError(
            f"deleted {deleted} {what} files of {_name(table)}, but {len(failed)} could not be deleted "
            f"(first {path}: {one_line(first)}): a rerun deletes them"
        )
    return deleted


def _filesystem(uri: str) -> tuple[Any, str]:
    """The filesystem holding ``uri`` and the path in it. A ``file:`` URI's path is taken as it is written, as
    pyiceberg writes and reads it (it does not unescape): pyarrow's ``from_uri`` unescaped a folder "a%20b" (an
    ``as_uri()`` warehouse) to "a b", listed nothing there and deleted no orphan; it refuses a space."""
    import pyarrow.fs as pafs

    if uri.startswith("file:"):
        return pafs.LocalFileSystem(), urlsplit(uri).path
    filesystem, root = pafs.FileSystem.from_uri(uri)
    return filesystem, str(root)


def _name(table: Table) -> str:
    return ".".join(table.name())


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message (SQLAlchemy adds the SQL below)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _outcome(table: Table, before: int | None) -> str:
    """What a failed commit left: nothing (the current snapshot did not move), or not known."""
    try:
        now = table.refresh().current_snapshot()
    except Exception as exc:
        return f"whether it committed is not known (the table cannot be read: {one_line(exc)}): run it again"
    if (now.snapshot_id if now is not None else None) == before:
        return "nothing was deleted (the table is as it was): run it again once the cause is fixed"
    return "the delete committed (a new current snapshot): run it again to finish"


def _path_of(uri: str) -> str:
    return _filesystem(uri)[1]
