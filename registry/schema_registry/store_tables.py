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
    refs TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS schemas_by_text ON schemas (normalized, refs);
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

# A store written before references existed has `normalized` unique on its own, and one written before
# 2026-12-07 (normalized, refs): the table is rebuilt without, keeping every id. A schema registers under one id
# (the register looks its text up first, in the write transaction); only two ids of a store written before texts
# were Avro's own (two spellings of one schema registered apart) hold the same text, once both are rewritten.
MIGRATE_UNIQUE = """
CREATE TABLE schemas_shared (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    normalized TEXT NOT NULL,
    schema_type TEXT NOT NULL DEFAULT 'AVRO',
    refs TEXT NOT NULL DEFAULT '[]'
);
INSERT INTO schemas_shared (id, normalized, schema_type, refs) SELECT id, normalized, schema_type, {refs} FROM schemas;
DROP TABLE schemas;
ALTER TABLE schemas_shared RENAME TO schemas
"""

# PRAGMA user_version from which every stored text is Avro's own (``canonical``); 2: a type named like one of Avro's
# types (``record``, ``map``, ...) written by its full name, as Avro's Java library writes it; 3: a text that was
# already another id's rewritten too (it was left as it was: its subject found its own schema no more).
CANONICAL_TEXTS = 3

VersionRow = tuple[int, str, int, tuple[SchemaReference, ...], bool]
"""(version, schema text, id, references, soft-deleted) of one subject version."""


def migrate(conn: sqlite3.Connection) -> None:
    """A store written by an older version brought to the tables of ``DDL`` (every id and text kept), then its
    texts rewritten to Avro's own (``rewrite_texts``) once; a new store made."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(schemas)")}
    unique = any(row[2] for row in conn.execute("PRAGMA index_list(schemas)"))  # (seq, name, unique, ...)
    if columns and ("refs" not in columns or unique):
        refs = "refs" if "refs" in columns else "'[]'"
        for statement in MIGRATE_UNIQUE.format(refs=refs).split(";"):
            conn.execute(statement)
    for statement in DDL.split(";"):
        if statement.strip():
            conn.execute(statement)
    if conn.execute("PRAGMA user_version").fetchone()[0] < CANONICAL_TEXTS:
        rewrite_texts(conn)
        conn.execute(f"PRAGMA user_version = {CANONICAL_TEXTS}")


def rewrite_texts(conn: sqlite3.Connection) -> None:
    """A store written before schema texts were Avro's own (``canonical``: they were JSON with sorted keys):
    each text rewritten, keeping its id, also where the new text is already another id's (two spellings of one
    schema registered apart): both ids stay readable, and each subject finds its own version by the schema's
    text (the later id kept its old text before, and its subject answered 40403 for its own schema)."""
    for schema_id, text, refs_text in conn.execute("SELECT id, normalized, refs FROM schemas ORDER BY id").fetchall():
        try:
            _, dependencies = resolve(conn, refs_from_json(refs_text))
            new = canonical_text(json.loads(text), [json.loads(d) for d in dependencies])
        except (InvalidSchemaError, ValueError, KeyError, TypeError):
            continue  # not readable as a schema any more: left as it is
        if new != text:
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
