"""Stored data-quality results: hourly statistics, drift scores and parity runs, per feature version.

``serving.offline.statistics`` and ``serving.offline.parity`` compute them; this store keeps them in
the registry's SQLite file, where the feature API (``GET /v1/quality/...``), the deployment gate
(``registry.gate.Guardrails``) and the plots (``serving.offline.plots``) read them without touching
Iceberg.

- ``hourly``: one row per (source, entity type, feature, version, hour); the hour is the UTC hour of
  the window end for ``source = "offline"`` and of the serving time for ``source = "serving_log"``.
  Writing an hour again replaces it (a later run over the same hour sees at least as many rows), except
  that an hour the run's span began inside of (``put_hourly(since=)``) was counted only in part: it
  replaces only a stored part of that hour with fewer values.
- ``drift``: one row per run, feature version, source and training set (the PSI against what the
  training set's manifest pins, over the run's ``[since, until)``).
- ``parity``: one row per run and feature version (``serving.offline.parity``'s ratios and counts).

Times are stored as ISO-8601 UTC text with microseconds (``2026-11-30T10:00:00.000000+00:00``), which
sorts as time does; every query range is half-open, ``[since, until)``.

Pure SQLite: no Arrow, no Iceberg (the feature API imports this).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from registry.sqlite_store import SqliteStore

SOURCES = ("offline", "serving_log")
TABLES = ("quality_hourly", "quality_drift", "quality_parity")

HOURLY_COLUMNS = (
    "count",
    "nulls",
    "zeros",
    "null_rate",
    "zero_rate",
    "mean",
    "stddev",
    "p01",
    "p50",
    "p99",
    "lag_p50_ms",
    "lag_p99_ms",
)
DRIFT_COLUMNS = ("psi", "reference_values", "current_values")
PARITY_COLUMNS = ("checked", "mismatched", "missing_offline", "mismatch_ratio", "missing_ratio", "served", "stale")

_KEY = "entity_type TEXT NOT NULL, feature TEXT NOT NULL, version INTEGER NOT NULL"
_DDL = f"""
CREATE TABLE IF NOT EXISTS quality_hourly (
    source TEXT NOT NULL, {_KEY}, hour TEXT NOT NULL, computed_at TEXT NOT NULL,
    {", ".join(f'"{c}" REAL' for c in HOURLY_COLUMNS)},
    PRIMARY KEY (entity_type, feature, version, source, hour)
);
CREATE TABLE IF NOT EXISTS quality_drift (
    source TEXT NOT NULL, {_KEY}, training_set TEXT NOT NULL, computed_at TEXT NOT NULL,
    since TEXT NOT NULL, until TEXT NOT NULL, {", ".join(f'"{c}" REAL' for c in DRIFT_COLUMNS)},
    PRIMARY KEY (entity_type, feature, version, source, training_set, computed_at)
);
CREATE INDEX IF NOT EXISTS quality_drift_by_time ON quality_drift (computed_at);
CREATE TABLE IF NOT EXISTS quality_parity (
    {_KEY}, computed_at TEXT NOT NULL, since TEXT NOT NULL, until TEXT NOT NULL,
    {", ".join(f'"{c}" REAL' for c in PARITY_COLUMNS)},
    PRIMARY KEY (entity_type, feature, version, computed_at)
);
"""

_INT_COLUMNS = {"count", "nulls", "zeros", "reference_values", "current_values", "checked", "mismatched"}
_INT_COLUMNS |= {"missing_offline", "served", "stale"}


def iso(dt: datetime) -> str:
    """The stored form of an instant: UTC, microseconds, sortable as text."""
    if dt.tzinfo is None:
        raise ValueError("quality: times must be timezone-aware")
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def _normal(text: str) -> str:
    return iso(datetime.fromisoformat(text))


def _key(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"entity_type": row["entity_type"], "feature": row["feature"], "version": int(row["version"])}


def _row(row: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    out = dict(row)
    for c in columns:
        if out.get(c) is not None and c in _INT_COLUMNS:
            out[c] = int(out[c])
    return out


class QualityStore(SqliteStore):
    DDL = _DDL

    def put_hourly(
        self,
        source: str,
        rows: Iterable[Mapping[str, Any]],
        computed_at: datetime,
        *,
        since: datetime | None = None,
    ) -> int:
        """Store hourly statistics (``serving.offline.statistics.hourly``'s entries); an hour stored
        before is replaced. Returns the rows written.

        ``since``: where the run's span began. An hour that began before it was only partly counted (a
        ``--since 1d`` run at 10:30 counts yesterday's 10:00 hour from 10:30 on), so it replaces only a
        stored part of that hour with fewer values, never the whole hour an earlier run counted."""
        self._check_source(source)
        stored = [
            {**_key(r), "source": source, "hour": _normal(r["hour"]), "computed_at": iso(computed_at)}
            | {c: r.get(c) for c in HOURLY_COLUMNS}
            for r in rows
        ]
        if since is None:
            return self._insert("quality_hourly", stored)
        start = iso(since)
        with self._tx() as conn:
            kept = [r for r in stored if r["hour"] >= start or self._fewer_stored(conn, r)]
            _replace(conn, "quality_hourly", kept)
        return len(kept)

    @staticmethod
    def _fewer_stored(conn: sqlite3.Connection, row: Mapping[str, Any]) -> bool:
        """Whether the stored row of ``row``'s hour (if any) counted fewer values than ``row``."""
        had = conn.execute(
            "SELECT count FROM quality_hourly WHERE entity_type = ? AND feature = ? AND version = ? AND source = ? "
            "AND hour = ?",
            (row["entity_type"], row["feature"], row["version"], row["source"], row["hour"]),
        ).fetchone()
        return had is None or (had[0] or 0) < (row["count"] or 0)

    def put_drift(
        self, source: str, rows: Iterable[Mapping[str, Any]], since: datetime, until: datetime, computed_at: datetime
    ) -> int:
        """Store drift scores (``serving.offline.statistics.drift``'s entries, each with its ``training_set``)."""
        self._check_source(source)
        run = {"source": source, "computed_at": iso(computed_at), "since": iso(since), "until": iso(until)}
        stored = [
            {**_key(r), **run, "training_set": r["training_set"]} | {c: r.get(c) for c in DRIFT_COLUMNS} for r in rows
        ]
        return self._insert("quality_drift", stored)

    def put_parity(
        self, rows: Iterable[Mapping[str, Any]], since: datetime, until: datetime, computed_at: datetime
    ) -> int:
        """Store one parity run: per feature version, the counts and ratios of ``PARITY_COLUMNS``."""
        run = {"computed_at": iso(computed_at), "since": iso(since), "until": iso(until)}
        stored = [{**_key(r), **run} | {c: r.get(c) for c in PARITY_COLUMNS} for r in rows]
        return self._insert("quality_parity", stored)

    def feature(
        self, entity_type: str, feature: str, version: int | None, since: datetime, until: datetime
    ) -> dict[str, list[dict[str, Any]]]:
        """Everything stored of a feature (every version, or one) in ``[since, until)``: hourly rows by
        their hour, drift and parity rows by when they were computed; each list in time order."""
        where = "entity_type = ? AND feature = ?" + ("" if version is None else " AND version = ?")
        args: tuple[Any, ...] = (entity_type, feature) + (() if version is None else (version,))
        span = (iso(since), iso(until))
        return {
            "hourly": self._select(
                "quality_hourly", f"{where} AND hour >= ? AND hour < ?", (*args, *span), "hour, source, version"
            ),
            "drift": self._select(
                "quality_drift",
                f"{where} AND computed_at >= ? AND computed_at < ?",
                (*args, *span),
                "computed_at, source, version",
            ),
            "parity": self._select(
                "quality_parity", f"{where} AND computed_at >= ? AND computed_at < ?", (*args, *span), "computed_at"
            ),
        }

    def features(self, entity_type: str | None = None) -> list[tuple[str, str, int]]:
        """(entity type, feature, version) of everything stored, sorted."""
        keys: set[tuple[str, str, int]] = set()
        conn = self._connect()
        try:
            for table in ("quality_hourly", "quality_drift", "quality_parity"):
                sql = f"SELECT DISTINCT entity_type, feature, version FROM {table}"
                rows = (
                    conn.execute(sql + " WHERE entity_type = ?", (entity_type,)) if entity_type else conn.execute(sql)
                )
                keys.update((e, f, int(v)) for e, f, v in rows)
        finally:
            conn.close()
        return sorted(keys)

    def worst_drift(self, since: datetime) -> dict[tuple[str, str, int], tuple[float, str, str]]:
        """Per (entity type, feature, version): the highest PSI computed at or after ``since``, with its
        training set and source (the deployment gate's drift reason)."""
        conn = self._connect()
        try:
            rows = conn.execute(
                "SELECT entity_type, feature, version, psi, training_set, source FROM quality_drift "
                "WHERE computed_at >= ? AND psi IS NOT NULL ORDER BY psi DESC, computed_at DESC",
                (iso(since),),
            ).fetchall()
        finally:
            conn.close()
        out: dict[tuple[str, str, int], tuple[float, str, str]] = {}
        for entity_type, feature, version, psi, training_set, source in rows:
            out.setdefault((entity_type, feature, int(version)), (float(psi), training_set, source))
        return out

    def _check_source(self, source: str) -> None:
        if source not in SOURCES:
            raise ValueError(f"quality: source must be one of {SOURCES}, not {source!r}")

    def _insert(self, table: str, rows: list[dict[str, Any]]) -> int:
        """Insert (or replace, by primary key) rows of one shape in one transaction."""
        if not rows:
            return 0
        with self._tx() as conn:
            _replace(conn, table, rows)
        return len(rows)

    def _select(self, table: str, where: str, args: tuple[Any, ...], order: str) -> list[dict[str, Any]]:
        conn = self._connect()
        try:
            cursor = conn.execute(f"SELECT * FROM {table} WHERE {where} ORDER BY {order}", args)
            names = [c[0] for c in cursor.description]
            return [_row(dict(zip(names, r, strict=True)), names) for r in cursor.fetchall()]
        finally:
            conn.close()


def _replace(conn: sqlite3.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert (or replace, by primary key) rows of one shape."""
    if not rows:
        return
    names = list(rows[0])
    columns = ", ".join(f'"{n}"' for n in names)
    conn.executemany(
        f"INSERT OR REPLACE INTO {table} ({columns}) VALUES ({', '.join('?' * len(names))})",
        [tuple(r[n] for n in names) for r in rows],
    )
