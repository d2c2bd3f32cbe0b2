"""The schema store's SQLite tables and the reads it makes inside a transaction.

The tables (schemas, their references, subject versions, the global and per-subject compatibility), the
migrations of a store written by an older version, and the row-level reads
:class:`~registry.schema_registry.store.SchemaStore` runs on the connection of its current transaction: a
subject's versions, what references a version, and a schema's references resolved, transitively, to the texts
they bring in.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from registry.schema_registry.avro_compat import CompatibilityLevel
from registry.schema_registry.canonical import canonical_text
from registry.schema_registry.errors import InvalidSchemaError
from registry.schema_registry.schemas import SchemaReference, refs_from_json

DDL = """
CREATE TABLE IF NOT EXISTS schemas (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    normalized TEXT NOT NULL,
    schema_type TEXT NOT NULL DEFAULT 'AVRO',
    refs TEXT NOT NULL DEFAULT '[]',
    UNIQUE (normalized, refs)
);
CREATE TABLE IF NOT EXISTS schema_references (
    schema_id INTEGER NOT NULL REFERENCES schemas(id),
    name TEXT NOT NULL,
    subject TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (schema_id, name)
);
CREATE INDEX IF NOT EXISTS schema_references_by_target ON schema_references (subject, version);
CREATE TABLE IF NOT EXISTS subject_versions (
    subject TEXT NOT NULL,
    version INTEGER NOT NULL,
    schema_id INTEGER NOT NULL REFERENCES schemas(id),
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, version)
);
CREATE INDEX IF NOT EXISTS subject_versions_by_schema ON subject_versions (schema_id);
CREATE TABLE IF NOT EXISTS global_config (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    compatibility TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS subject_config (
    subject TEXT PRIMARY KEY,
    compatibility TEXT NOT NULL
);
"""

# A store written before references existed has `normalized` unique on its own: the table is rebuilt
# with (normalized, refs) unique, keeping every id.
MIGRATE_REFS = """
CREATE TABLE schemas_with_refs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    normalized TEXT NOT NULL,
    schema_type TEXT NOT NULL DEFAULT 'AVRO',
    refs TEXT NOT NULL DEFAULT '[]',
    UNIQUE (normalized, refs)
);
INSERT INTO schemas_with_refs (id, normalized, schema_type) SELECT id, normalized, schema_type FROM schemas;
DROP TABLE schemas;
ALTER TABLE schemas_with_refs RENAME TO schemas
"""

# PRAGMA user_version from which every stored text is Avro's own (``canonical``); 2: a type named like one of Avro's
# types (``record``, ``map``, ...) written by its full name, as Avro's Java library writes it.
CANONICAL_TEXTS = 2

VersionRow = tuple[int, str, int, tuple[SchemaReference, ...], bool]
"""(version, schema text, id, references, soft-deleted) of one subject version."""


def rewrite_texts(conn: sqlite3.Connection) -> None:
    """A store written before schema texts were Avro's own (``canonical``: they were JSON with sorted keys):
    each text rewritten, keeping its id. Where the new text is already another id's (two spellings of one
    schema registered apart), the later id keeps its old text: both ids stay readable."""
    for schema_id, text, refs_text in conn.execute("SELECT id, normalized, refs FROM schemas ORDER BY id").fetchall():
        try:
            _, dependencies = resolve(conn, refs_from_json(refs_text))
            new = canonical_text(json.loads(text), [json.loads(d) for d in dependencies])
        except (InvalidSchemaError, ValueError, KeyError, TypeError):
            continue  # not readable as a schema any more: left as it is
        if (
            new != text
            and not conn.execute("SELECT 1 FROM schemas WHERE normalized = ? AND refs = ?", (new, refs_text)).fetchone()
        ):
            conn.execute("UPDATE schemas SET normalized = ? WHERE id = ?", (new, schema_id))


def resolve(
    conn: sqlite3.Connection, references: Sequence[SchemaReference]
) -> tuple[tuple[SchemaReference, ...], list[str]]:
    """The references with ``-1`` resolved to the latest version, and the texts of every schema they
    bring in, transitively, each after the ones it depends on (Confluent's ``resolveReferences``:
    depth first, a reference name taken once).

    Raises:
        InvalidSchemaError: a reference to a subject version that does not exist.
    """
    taken: set[str] = set()
    read: set[tuple[str, int]] = set()  # subject versions already brought in under another name
    texts: list[str] = []

    def visit(refs: Sequence[SchemaReference], depth: int) -> tuple[SchemaReference, ...]:
        if depth > 32:
            raise InvalidSchemaError("references nested more than 32 levels")
        resolved = []
        for ref in refs:
            row = referenced_row(conn, ref)
            if row is None:
                raise InvalidSchemaError(
                    f'No schema reference found for subject "{ref.subject}" and version {ref.version}'
                )
            number, text, own_refs = row
            resolved.append(SchemaReference(ref.name, ref.subject, number))
            if ref.name not in taken:
                taken.add(ref.name)  # before its own references: a cycle back to this name stops
                if (ref.subject, number) in read:  # its text once: 200 names of one version parsed it 200 times
                    continue
                read.add((ref.subject, number))
                visit(own_refs, depth + 1)
                texts.append(text)
        return tuple(resolved)

    return visit(references, 0), texts


def referenced_row(
    conn: sqlite3.Connection, ref: SchemaReference
) -> tuple[int, str, tuple[SchemaReference, ...]] | None:
    """(version, text, references) of a referenced subject version, soft-deleted ones included (Confluent
    resolves references to deleted versions so that existing schemas keep parsing)."""
    order = "ORDER BY v.deleted, v.version DESC LIMIT 1" if ref.version == -1 else "AND v.version = ?"
    params: tuple[Any, ...] = (ref.subject,) if ref.version == -1 else (ref.subject, ref.version)
    row = conn.execute(
        "SELECT v.version, s.normalized, s.refs FROM subject_versions v JOIN schemas s ON s.id = v.schema_id "
        f"WHERE v.subject = ? {order}",
        params,
    ).fetchone()
    return None if row is None else (row[0], row[1], refs_from_json(row[2]))


def referenced_by(conn: sqlite3.Connection, subject: str, version: int, *, deleted: bool) -> list[tuple[str, int]]:
    """(subject, schema id) of the versions whose schema references ``subject`` at ``version``; only
    live versions unless ``deleted``."""
    hidden = "" if deleted else "AND v.deleted = 0"
    rows = conn.execute(
        "SELECT DISTINCT v.subject, r.schema_id FROM schema_references r "
        "JOIN subject_versions v ON v.schema_id = r.schema_id "
        f"WHERE r.subject = ? AND r.version = ? {hidden}",
        (subject, version),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def drop_soft_deleted_copies(conn: sqlite3.Connection, subject: str, schema_id: int) -> None:
    """Permanently delete the subject's soft-deleted versions of ``schema_id``, once a new version holds it again,
    but those a schema references (from a live or a soft-deleted version), as Confluent's ``register`` tombstones
    them (``RestApiTest.testSameIdTombstoneStillRunsWhenNoReferences``)."""
    rows = conn.execute(
        "SELECT version FROM subject_versions WHERE subject = ? AND schema_id = ? AND deleted = 1", (subject, schema_id)
    ).fetchall()
    for (version,) in rows:
        if not referenced_by(conn, subject, version, deleted=True):
            conn.execute("DELETE FROM subject_versions WHERE subject = ? AND version = ?", (subject, version))


def versions_of(conn: sqlite3.Connection, subject: str, *, deleted: bool) -> list[tuple[int, bool]]:
    hidden = "" if deleted else "AND deleted = 0"
    rows = conn.execute(
        f"SELECT version, deleted FROM subject_versions WHERE subject = ? {hidden} ORDER BY version", (subject,)
    ).fetchall()
    return [(r[0], bool(r[1])) for r in rows]


def schemas_of(conn: sqlite3.Connection, subject: str, *, deleted: bool) -> list[VersionRow]:
    """(version, schema, id, references, soft-deleted) of the subject's versions, oldest first."""
    hidden = "" if deleted else "AND v.deleted = 0"
    rows = conn.execute(
        "SELECT v.version, s.normalized, s.id, s.refs, v.deleted "
        "FROM subject_versions v JOIN schemas s ON s.id = v.schema_id "
        f"WHERE v.subject = ? {hidden} ORDER BY v.version",
        (subject,),
    ).fetchall()
    return [(r[0], r[1], r[2], refs_from_json(r[3]), bool(r[4])) for r in rows]


def subject_level(conn: sqlite3.Connection, subject: str) -> CompatibilityLevel | None:
    row = conn.execute("SELECT compatibility FROM subject_config WHERE subject = ?", (subject,)).fetchone()
    return None if row is None else CompatibilityLevel(row[0])
