"""Durable store of Avro schemas by subject and version, with global ids, on SQLite.

Registration runs in one ``BEGIN IMMEDIATE`` transaction, so two registry processes sharing the
database file cannot hand out the same id or version. An identical schema (after normalisation)
gets the id it already has, in any subject.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import fastavro

from registry.errors import SchemaError

_DDL = """
CREATE TABLE IF NOT EXISTS schemas (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    normalized TEXT NOT NULL UNIQUE,
    schema_type TEXT NOT NULL DEFAULT 'AVRO'
);
CREATE TABLE IF NOT EXISTS subject_versions (
    subject TEXT NOT NULL,
    version INTEGER NOT NULL,
    schema_id INTEGER NOT NULL REFERENCES schemas(id),
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, version)
);
"""


class InvalidSchemaError(SchemaError):
    """The text is not a valid Avro schema."""


class SchemaNotFoundError(SchemaError):
    """No such subject, version or id."""


@dataclass(frozen=True)
class RegisteredSchema:
    id: int
    subject: str
    version: int
    schema: str


def normalize(schema_text: str) -> str:
    """Parse, validate and re-serialise a schema so equal schemas compare equal as text."""
    try:
        parsed = json.loads(schema_text)
        fastavro.parse_schema(parsed)
    except (ValueError, TypeError, fastavro.schema.SchemaParseException) as exc:
        raise InvalidSchemaError(f"invalid Avro schema: {exc}") from exc
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"))


class SchemaStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        with self._connect() as conn:
            conn.executescript(_DDL)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def register(self, subject: str, schema_text: str) -> RegisteredSchema:
        normalized = normalize(schema_text)
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT id FROM schemas WHERE normalized = ?", (normalized,)).fetchone()
            schema_id = (
                row[0] if row else conn.execute("INSERT INTO schemas (normalized) VALUES (?)", (normalized,)).lastrowid
            )
            existing = conn.execute(
                "SELECT version FROM subject_versions WHERE subject = ? AND schema_id = ? AND deleted = 0",
                (subject, schema_id),
            ).fetchone()
            if existing:
                version = existing[0]
            else:
                (latest,) = conn.execute(
                    "SELECT COALESCE(MAX(version), 0) FROM subject_versions WHERE subject = ?", (subject,)
                ).fetchone()
                version = latest + 1
                conn.execute(
                    "INSERT INTO subject_versions (subject, version, schema_id) VALUES (?, ?, ?)",
                    (subject, version, schema_id),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()
        assert schema_id is not None
        return RegisteredSchema(id=schema_id, subject=subject, version=version, schema=normalized)

    def by_id(self, schema_id: int) -> str:
        with self._connect() as conn:
            row = conn.execute("SELECT normalized FROM schemas WHERE id = ?", (schema_id,)).fetchone()
        if row is None:
            raise SchemaNotFoundError(f"schema id {schema_id} not found")
        return str(row[0])

    def subjects(self) -> list[str]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT DISTINCT subject FROM subject_versions WHERE deleted = 0 ORDER BY subject"
            ).fetchall()
        return [r[0] for r in rows]

    def versions(self, subject: str) -> list[int]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT version FROM subject_versions WHERE subject = ? AND deleted = 0 ORDER BY version",
                (subject,),
            ).fetchall()
        if not rows:
            raise SchemaNotFoundError(f"subject {subject!r} not found")
        return [r[0] for r in rows]

    def version(self, subject: str, version: int | str) -> RegisteredSchema:
        number = self.versions(subject)[-1] if version in ("latest", -1) else int(version)
        with self._connect() as conn:
            row = conn.execute(
                "SELECT s.id, s.normalized FROM subject_versions v JOIN schemas s ON s.id = v.schema_id "
                "WHERE v.subject = ? AND v.version = ? AND v.deleted = 0",
                (subject, number),
            ).fetchone()
        if row is None:
            raise SchemaNotFoundError(f"subject {subject!r} has no version {version}")
        return RegisteredSchema(id=row[0], subject=subject, version=number, schema=row[1])

    def lookup(self, subject: str, schema_text: str) -> RegisteredSchema:
        normalized = normalize(schema_text)
        with self._connect() as conn:
            row = conn.execute(
                "SELECT v.version, s.id FROM subject_versions v JOIN schemas s ON s.id = v.schema_id "
                "WHERE v.subject = ? AND s.normalized = ? AND v.deleted = 0",
                (subject, normalized),
            ).fetchone()
        if row is None:
            raise SchemaNotFoundError(f"schema not registered under subject {subject!r}")
        return RegisteredSchema(id=row[1], subject=subject, version=row[0], schema=normalized)
