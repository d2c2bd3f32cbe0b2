"""Erased entities: the record every writer consults so that a replay cannot bring an erased entity back.

``serving.offline.erasure`` removes an entity from every store and records it here, with the time of
the erasure. From then on the writers drop what a replay of the entity's old events would write:
the stream job's writers (``sinks.dual.DualWriter``: a window result of the entity whose window
*starts* before the erasure, i.e. that holds any event from before it) and the serving-log landing
(``sinks.serving_log``: a record of the entity served at or before its serving cutoff, ``Erased.served_cutoff``).
Windows that start after the erasure hold only new events and are written as usual.

The serving cutoff is later than the erasure: the feature API serves the entity's old values until its online
partition is deleted (and from its vector cache for up to ``FS_CACHE_TTL_MS`` after that). The erasure records
that instant (``online_gone_at_ms``: the online delete's end plus the API's cache TTL, epoch ms) once the delete
is done; the cutoff is the later of it and ``erased_at_ms``, or ``erased_at_ms`` alone for a record without it
(made before the column existed, or by an erasure that stopped before its online delete ended).

An entity type with a composite key (docs/design.md §5.8) can also be erased by one key field: "every
``user_merchant`` whose ``user_id`` is ``u1``" (``record_key``). The writers then drop, by the same
time rule, every result of a matching entity, including pairs that did not exist when it was erased.

Pure SQLite (the job's writers and the API may import it); readers follow the table with a snapshot
reloaded when it changes, checked at most every ``refresh_s``. A database made before ``online_gone_at_ms``
existed gets the column (null in its rows) when a store is opened on it.
"""

from __future__ import annotations

import json
import sqlite3
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
    report TEXT NOT NULL, online_gone_at_ms INTEGER, PRIMARY KEY (entity_type, entity_id)
);
CREATE TABLE IF NOT EXISTS erased_keys (
    entity_type TEXT NOT NULL, key_fields TEXT NOT NULL, key_field TEXT NOT NULL, key_value TEXT NOT NULL,
    erased_at_ms INTEGER NOT NULL, requested_by TEXT NOT NULL, report TEXT NOT NULL, online_gone_at_ms INTEGER,
    PRIMARY KEY (entity_type, key_field, key_value)
);
CREATE TABLE IF NOT EXISTS erasures_seq (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
INSERT OR IGNORE INTO erasures_seq VALUES (1, 0);
"""
_GONE = "online_gone_at_ms"
_TABLES = ("erasures", "erased_keys")


class ErasureStore(SqliteStore):
    DDL = _DDL

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        if self._missing_gone():  # a database made before the column: added once, under the write lock
            with self._tx() as conn:
                for table in _TABLES:
                    if _GONE not in _columns(conn, table):
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {_GONE} INTEGER")

    def _missing_gone(self) -> bool:
        conn = self._connect()
        try:
            return any(_GONE not in _columns(conn, table) for table in _TABLES)
        finally:
            conn.close()

    def record(
        self,
        entity_type: str,
        entity_id: str,
        erased_at_ms: int,
        requested_by: str,
        report: str,
    ) -> None:
        """Record (or move forward) an entity's erasure; an erasure never moves back in time. The instant its
        online data was gone, if one was recorded, is kept (``record_online_gone``)."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO erasures (entity_type, entity_id, erased_at_ms, requested_by, report) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (entity_type, entity_id) DO UPDATE SET "
                "erased_at_ms = max(erased_at_ms, excluded.erased_at_ms), requested_by = excluded.requested_by, "
                "report = excluded.report",
                (entity_type, entity_id, erased_at_ms, requested_by, report),
            )
            conn.execute("UPDATE erasures_seq SET seq = seq + 1 WHERE id = 1")

    def record_online_gone(self, entity_type: str, entity_id: str, at_ms: int) -> None:
        """Record when the API serves none of the erased entity's pre-erasure values any more (epoch ms: its
        online delete's end plus the API's cache TTL), once that delete is done: the serving log's cutoff
        (``Erased.served_cutoff``). It never moves back; an entity with no erasure record is left alone."""
        self._gone("erasures", "entity_id = ?", (entity_type, entity_id), at_ms)

    def record_key_online_gone(self, entity_type: str, key_field: str, key_value: str, at_ms: int) -> None:
        """``record_online_gone`` for an erasure by key field (``record_key``)."""
        self._gone("erased_keys", "key_field = ? AND key_value = ?", (entity_type, key_field, key_value), at_ms)

    def _gone(self, table: str, which: str, key: tuple[str, ...], at_ms: int) -> None:
        with self._tx() as conn:
            conn.execute(
                f"UPDATE {table} SET {_GONE} = max(coalesce({_GONE}, ?), ?) WHERE entity_type = ? AND {which}",
                (at_ms, at_ms, *key),
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
                "INSERT INTO erased_keys (entity_type, key_fields, key_field, key_value, erased_at_ms, requested_by, "
                "report) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (entity_type, key_field, key_value) "
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
            for t, fields, f, v, at, gone in conn.execute(
                f"SELECT entity_type, key_fields, key_field, key_value, erased_at_ms, {_GONE} FROM erased_keys"
            ):
                held = keys.setdefault(t, KeyErasures(tuple(json.loads(fields))))
                if f in held.fields:  # a key recorded under other fields no longer applies
                    held.at[(held.fields.index(f), v)] = int(at)
                    if gone is not None:
                        held.gone[(held.fields.index(f), v)] = int(gone)
            ids: dict[tuple[str, str], int] = {}
            ids_gone: dict[tuple[str, str], int] = {}
            for t, i, at, gone in conn.execute(f"SELECT entity_type, entity_id, erased_at_ms, {_GONE} FROM erasures"):
                ids[(t, i)] = int(at)
                if gone is not None:
                    ids_gone[(t, i)] = int(gone)
        finally:
            conn.close()
        return Erased(ids, keys, ids_gone)

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


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in conn.execute("SELECT * FROM pragma_table_info(?)", (table,))}


@dataclass
class KeyErasures:
    """One composite-keyed entity type's erasures by key field: (field position, value) -> erasure time, and
    -> the instant the matching entities' online data was gone (where recorded)."""

    fields: tuple[str, ...]
    at: dict[tuple[int, str], int] = field(default_factory=dict)
    gone: dict[tuple[int, str], int] = field(default_factory=dict)


@dataclass
class Erased:
    """A snapshot of the erasures: by (entity type, entity id), and by key field per entity type; ``gone``, by
    (entity type, entity id), the instant the entity's online data was gone, where recorded."""

    ids: dict[tuple[str, str], int]
    keys: dict[str, KeyErasures]
    gone: dict[tuple[str, str], int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.ids or self.keys)

    def _covering(self, entity_type: str, entity_id: str) -> list[tuple[int, int | None]]:
        """Each erasure that covers the entity: (its time, the instant the online data was gone or None)."""
        out: list[tuple[int, int | None]] = []
        at = self.ids.get((entity_type, entity_id))
        if at is not None:
            out.append((at, self.gone.get((entity_type, entity_id))))
        by_key = self.keys.get(entity_type)
        if by_key is None:
            return out
        try:
            values = entity_keys.decode(entity_id, len(by_key.fields))
        except ValueError:  # not an id of this key: no key erasure covers it
            return out
        for i, v in enumerate(values):
            t = by_key.at.get((i, v))
            if t is not None:
                out.append((t, by_key.gone.get((i, v))))
        return out

    def erased_at(self, entity_type: str, entity_id: str) -> int | None:
        """The latest erasure that covers the entity (epoch ms), or None: the writers' rule (a window starting
        before it holds pre-erasure events)."""
        return max((at for at, _ in self._covering(entity_type, entity_id)), default=None)

    def served_cutoff(self, entity_type: str, entity_id: str) -> int | None:
        """The serving log's rule (epoch ms, or None): a vector of the entity served at or before it (its
        ``served_at``, whole ms) may hold its pre-erasure values. Per covering erasure the later of its time
        and the instant its online data was gone (its time alone where that is not recorded); the latest."""
        return max(
            (max(at, gone if gone is not None else at) for at, gone in self._covering(entity_type, entity_id)),
            default=None,
        )


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
