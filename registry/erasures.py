"""Erased entities: the record every writer consults so that a replay cannot bring an erased entity back.

``serving.offline.erasure`` removes an entity from every store and records it here, with the time of
the erasure. From then on the writers drop what a replay of the entity's old events would write:
the stream job's writers (``sinks.dual.DualWriter``: a window result of the entity whose window
*starts* before the erasure, i.e. that holds any event from before it) and the serving-log landing
(``sinks.serving_log``: a record of the entity served before the erasure). Windows that start after
the erasure hold only new events and are written as usual.

Pure SQLite (the job's writers and the API may import it); readers follow the table with a snapshot
reloaded when it changes, checked at most every ``refresh_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from registry.live import Following
from registry.sqlite_store import SqliteStore

_DDL = """
CREATE TABLE IF NOT EXISTS erasures (
    entity_type TEXT NOT NULL, entity_id TEXT NOT NULL, erased_at_ms INTEGER NOT NULL, requested_by TEXT NOT NULL,
    report TEXT NOT NULL, PRIMARY KEY (entity_type, entity_id)
);
CREATE TABLE IF NOT EXISTS erasures_seq (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
INSERT OR IGNORE INTO erasures_seq VALUES (1, 0);
"""


class ErasureStore(SqliteStore):
    DDL = _DDL

    def record(self, entity_type: str, entity_id: str, erased_at_ms: int, requested_by: str, report: str) -> None:
        """Record (or move forward) an entity's erasure; an erasure never moves back in time."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO erasures VALUES (?, ?, ?, ?, ?) ON CONFLICT (entity_type, entity_id) DO UPDATE SET "
                "erased_at_ms = max(erased_at_ms, excluded.erased_at_ms), requested_by = excluded.requested_by, "
                "report = excluded.report",
                (entity_type, entity_id, erased_at_ms, requested_by, report),
            )
            conn.execute("UPDATE erasures_seq SET seq = seq + 1 WHERE id = 1")

    def change_seq(self) -> int:
        conn = self._connect()
        try:
            return int(conn.execute("SELECT seq FROM erasures_seq WHERE id = 1").fetchone()[0])
        finally:
            conn.close()

    def erased(self) -> dict[tuple[str, str], int]:
        """(entity type, entity id) -> erasure time, epoch ms."""
        conn = self._connect()
        try:
            return {
                (t, i): int(at)
                for t, i, at in conn.execute("SELECT entity_type, entity_id, erased_at_ms FROM erasures")
            }
        finally:
            conn.close()

    def get(self, entity_type: str, entity_id: str) -> dict[str, Any] | None:
        conn = self._connect()
        try:
            row = conn.execute(
                "SELECT erased_at_ms, requested_by, report FROM erasures WHERE entity_type = ? AND entity_id = ?",
                (entity_type, entity_id),
            ).fetchone()
        finally:
            conn.close()
        if row is None:
            return None
        at = datetime.fromtimestamp(row[0] / 1000, UTC).isoformat(timespec="milliseconds")
        return {"erased_at_ms": row[0], "erased_at": at, "requested_by": row[1], "report": row[2]}


class ErasedEntities(Following[dict[tuple[str, str], int]]):
    """The erased entities, reloaded when the store changes; ``blocks`` is one dict lookup."""

    def __init__(
        self, store: ErasureStore, *, refresh_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(store, store.erased, refresh_s=refresh_s, clock=clock)

    @classmethod
    def at(cls, definitions_db: Path, *, refresh_s: float = 1.0) -> ErasedEntities:
        return cls(ErasureStore(definitions_db), refresh_s=refresh_s)

    def blocks(self, entity_type: str, entity_id: str, since_ms: int) -> bool:
        """Whether data of the entity that reaches back to ``since_ms`` (a window's start, a serving time)
        predates the entity's erasure: such data must not be written again."""
        erased_at = self.current().get((entity_type, entity_id))
        return erased_at is not None and since_ms < erased_at
