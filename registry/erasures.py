"""Erased entities: the record every writer consults so that a replay cannot bring an erased entity back.

``serving.offline.erasure`` removes an entity from every store and records it here, with the time of
the erasure. From then on the writers drop what a replay of the entity's old events would write:
the stream job's writers (``sinks.dual.DualWriter``: a window result of the entity whose window
*starts* before the erasure, i.e. that holds any event from before it) and the serving-log landing
(``sinks.serving_log``: a record of the entity served before the erasure). Windows that start after
the erasure hold only new events and are written as usual.

An entity type with a composite key (docs/design.md §5.8) can also be erased by one key field: "every
``user_merchant`` whose ``user_id`` is ``u1``" (``record_key``). The writers then drop, by the same
time rule, every result of a matching entity, including pairs that did not exist when it was erased.

Pure SQLite (the job's writers and the API may import it); readers follow the table with a snapshot
reloaded when it changes, checked at most every ``refresh_s``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from registry.core import entity_keys
from registry.live import Following
from registry.sqlite_store import SqliteStore

_DDL = """
CREATE TABLE IF NOT EXISTS erasures (
    entity_type TEXT NOT NULL, entity_id TEXT NOT NULL, erased_at_ms INTEGER NOT NULL, requested_by TEXT NOT NULL,
    report TEXT NOT NULL, PRIMARY KEY (entity_type, entity_id)
);
CREATE TABLE IF NOT EXISTS erased_keys (
    entity_type TEXT NOT NULL, key_fields TEXT NOT NULL, key_field TEXT NOT NULL, key_value TEXT NOT NULL,
    erased_at_ms INTEGER NOT NULL, requested_by TEXT NOT NULL, report TEXT NOT NULL,
    PRIMARY KEY (entity_type, key_field, key_value)
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

    def record_key(
        self,
        entity_type: str,
        key_fields: tuple[str, ...],
        key_field: str,
        key_value: str,
        erased_at_ms: int,
        requested_by: str,
        report: str,
    ) -> None:
        """Record (or move forward) the erasure of every entity of a composite-keyed type whose
        ``key_field`` is ``key_value``; ``key_fields`` is the type's key, in order."""
        if key_field not in key_fields:
            raise ValueError(f"{key_field!r} is not a key field of {entity_type} ({', '.join(key_fields)})")
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO erased_keys VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (entity_type, key_field, key_value) "
                "DO UPDATE SET erased_at_ms = max(erased_at_ms, excluded.erased_at_ms), "
                "requested_by = excluded.requested_by, report = excluded.report, key_fields = excluded.key_fields",
                (entity_type, json.dumps(list(key_fields)), key_field, key_value, erased_at_ms, requested_by, report),
            )
            conn.execute("UPDATE erasures_seq SET seq = seq + 1 WHERE id = 1")

    def snapshot(self) -> Erased:
        """Every erasure: by entity id and by key field."""
        conn = self._connect()
        try:
            keys: dict[str, KeyErasures] = {}
            for t, fields, f, v, at in conn.execute(
                "SELECT entity_type, key_fields, key_field, key_value, erased_at_ms FROM erased_keys"
            ):
                held = keys.setdefault(t, KeyErasures(tuple(json.loads(fields))))
                if f in held.fields:  # a key recorded under other fields no longer applies
                    held.at[(held.fields.index(f), v)] = int(at)
        finally:
            conn.close()
        return Erased(self.erased(), keys)

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


@dataclass
class KeyErasures:
    """One composite-keyed entity type's erasures by key field: (field position, value) -> erasure time."""

    fields: tuple[str, ...]
    at: dict[tuple[int, str], int] = field(default_factory=dict)


@dataclass
class Erased:
    """A snapshot of the erasures: by (entity type, entity id), and by key field per entity type."""

    ids: dict[tuple[str, str], int]
    keys: dict[str, KeyErasures]

    def __bool__(self) -> bool:
        return bool(self.ids or self.keys)

    def erased_at(self, entity_type: str, entity_id: str) -> int | None:
        """The latest erasure that covers the entity (epoch ms), or None."""
        at = self.ids.get((entity_type, entity_id))
        by_key = self.keys.get(entity_type)
        if by_key is None:
            return at
        try:
            values = entity_keys.decode(entity_id, len(by_key.fields))
        except ValueError:  # not an id of this key: no key erasure covers it
            return at
        times = [t for t in (by_key.at.get((i, v)) for i, v in enumerate(values)) if t is not None]
        if at is not None:
            times.append(at)
        return max(times) if times else None


class ErasedEntities(Following[Erased]):
    """The erased entities, reloaded when the store changes; ``blocks`` is a dict lookup (and, for a
    type erased by key field, a decode of the id)."""

    def __init__(
        self, store: ErasureStore, *, refresh_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(store, store.snapshot, refresh_s=refresh_s, clock=clock)

    @classmethod
    def at(cls, definitions_db: Path, *, refresh_s: float = 1.0) -> ErasedEntities:
        return cls(ErasureStore(definitions_db), refresh_s=refresh_s)

    def blocks(self, entity_type: str, entity_id: str, since_ms: int) -> bool:
        """Whether data of the entity that reaches back to ``since_ms`` (a window's start, a serving time)
        predates the entity's erasure: such data must not be written again."""
        erased_at = self.current().erased_at(entity_type, entity_id)
        return erased_at is not None and since_ms < erased_at
