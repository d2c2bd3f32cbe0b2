"""The SQLite base of the registry's stores: WAL, a busy timeout, and ``BEGIN IMMEDIATE`` writes.

``BEGIN IMMEDIATE`` takes the write lock at the start of a transaction, so two processes sharing
the file serialize their read-check-write sequences: neither can hand out a version or id the
other is handing out at the same moment.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
        conn = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        for pragma in self.PRAGMAS:
            conn.execute(f"PRAGMA {pragma}")
        return conn

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
