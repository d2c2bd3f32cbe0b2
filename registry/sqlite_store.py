"""The SQLite base of the registry's stores: WAL, a busy timeout, and ``BEGIN IMMEDIATE`` writes.

``BEGIN IMMEDIATE`` takes the write lock at the start of a transaction, so two processes sharing
the file serialize their read-check-write sequences: neither can hand out a version or id the
other is handing out at the same moment.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_WAL_ATTEMPTS = 50


def connect(path: Path, pragmas: tuple[str, ...] = ()) -> sqlite3.Connection:
    """A connection in WAL mode with a 30 s busy timeout, safe while other processes open the same file.

    Switching a new database to WAL needs a moment of exclusive access, and SQLite answers "database
    is locked" at once rather than waiting on the busy timeout when another process holds the file
    (as when several processes open a new database together): the switch is retried. WAL is recorded
    in the file, so only the first opens of a new database ever wait here.
    """
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
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
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=30)
    except sqlite3.OperationalError:  # no such file, a folder, or not ours to open
        return None
    try:
        return {str(name) for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


class SqliteStore:
    """Subclasses set ``DDL`` (run on open; idempotent) and may add ``PRAGMAS``."""

    DDL = ""
    PRAGMAS: tuple[str, ...] = ()

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        conn = self._connect()
        try:
            conn.executescript(self.DDL)
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        return connect(self._path, self.PRAGMAS)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()
