"""The SQLite base of the registry's stores: WAL, a busy timeout, and ``BEGIN IMMEDIATE`` writes.

``BEGIN IMMEDIATE`` takes the write lock at the start of a transaction, so two processes sharing
the file serialize their read-check-write sequences: neither can hand out a version or id the
other is handing out at the same moment.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from registry.core.errors import StoreUnavailableError

_WAL_ATTEMPTS = 50


_STORAGE_FAILURES = frozenset({5, 6, 8, 10, 13, 14})
"""SQLite's primary result codes for a store that cannot take a write now: BUSY, LOCKED, READONLY, IOERR ("disk I/O
error", what a full disk under a WAL store gives), FULL ("database or disk is full"), CANTOPEN."""


class RegistryStoreUnavailable(StoreUnavailableError, sqlite3.OperationalError):
    """The registry's SQLite file cannot be used: gone, unopenable, or locked by another writer past the busy
    timeout. A StoreUnavailableError (the API's 503 ``store_unavailable``, a command's one ``error:`` line), and
    still the ``sqlite3`` error that best-effort recorders (the audit log, erasure records) catch."""


def connect(path: Path, pragmas: tuple[str, ...] = (), *, create: bool = True) -> sqlite3.Connection:
    """A connection in WAL mode with a 30 s busy timeout, safe while other processes open the same file; with
    ``create=False`` no file is made where there is none (``sqlite3.OperationalError``, "unable to open").

    Switching a new database to WAL needs a moment of exclusive access, and SQLite answers "database
    is locked" at once rather than waiting on the busy timeout when another process holds the file
    (as when several processes open a new database together): the switch is retried. WAL is recorded
    in the file, so only the first opens of a new database ever wait here.
    """
    if create:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    else:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        for attempt in range(_WAL_ATTEMPTS):
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == _WAL_ATTEMPTS - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))
        for pragma in pragmas:
            conn.execute(f"PRAGMA {pragma}")
    except BaseException:
        conn.close()
        raise
    return conn


def tables_of(path: Path) -> set[str] | None:
    """The tables of the SQLite file at ``path``, read without writing anything (no file, table or WAL switch is
    created): None if there is no file there (or it cannot be opened); ``sqlite3.DatabaseError`` if it is not
    SQLite. An empty file is an empty database: no tables."""
    held = _read_schema(path, with_columns=False)
    return None if held is None else set(held)


def columns_of(path: Path) -> dict[str, set[str]] | None:
    """Each table of the SQLite file at ``path`` with its columns, read as ``tables_of`` reads (nothing written)."""
    return _read_schema(path, with_columns=True)


def _read_schema(path: Path, *, with_columns: bool) -> dict[str, set[str]] | None:
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=30)
    except sqlite3.OperationalError:  # no such file, a folder, or not ours to open
        return None
    try:
        names = [str(name) for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        if not with_columns:
            return {n: set() for n in names}
        return {n: {str(row[1]) for row in conn.execute("SELECT * FROM pragma_table_info(?)", (n,))} for n in names}
    finally:
        conn.close()


class SqliteStore:
    """Subclasses set ``DDL`` (run on open; idempotent) and may add ``PRAGMAS``."""

    DDL = ""
    PRAGMAS: tuple[str, ...] = ()

    def __init__(self, path: Path) -> None:
        self._path = path
        try:  # a folder on the way that is a file, or cannot be made or written: one named line, not a traceback
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect(path, self.PRAGMAS)
            try:
                conn.executescript(self.DDL)
            finally:
                conn.close()
        except (OSError, sqlite3.OperationalError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            where = f": {exc.filename}" if isinstance(exc, OSError) and exc.filename else ""
            raise RegistryStoreUnavailable(f"registry store {path} unavailable: {why}{where}") from None

    @property
    def path(self) -> Path:
        return self._path

    def file_stamp(self) -> tuple[int, int]:
        """Which file is at the store's path (device, inode): a store replaced under a reader (deleted and made
        again, or renamed over it) changes it even where its change sequence happens to equal the old one's. Not
        its modification time: every write to any table of the file (an audit record, a statistic) changes that,
        and a reload of a large catalog on each would stall its readers. ``FileNotFoundError`` if no file is
        there; nothing is created."""
        st = self._path.stat()
        return st.st_dev, st.st_ino

    def _connect(self) -> sqlite3.Connection:
        """A connection to the store made on open: a file deleted since is ``StoreUnavailableError`` naming it, and no
        empty file is left in its place."""
        try:
            return connect(self._path, self.PRAGMAS, create=False)
        except sqlite3.OperationalError as exc:
            why = exc if self._path.exists() else f"no file there ({exc})"
            raise RegistryStoreUnavailable(f"registry store {self._path} unavailable: {why}") from None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:  # "database is locked": another writer held it past the timeout
                raise RegistryStoreUnavailable(f"registry store {self._path} unavailable: {exc}") from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except RegistryStoreUnavailable:
                raise
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in _STORAGE_FAILURES:
                    raise  # SQLITE_ERROR (no such table, a statement's mistake): a bug's error, not the store's
                raise RegistryStoreUnavailable(f"registry store {self._path} unavailable: {exc}") from exc
        except BaseException:
            if conn.in_transaction:  # not when BEGIN itself failed ("database is locked"): that error is the one raised
                with suppress(sqlite3.Error):  # a disk that failed the write may fail this too; nothing was committed
                    conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()
