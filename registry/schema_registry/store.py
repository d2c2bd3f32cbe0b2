"""Durable store of Avro schemas by subject and version, with global ids, on SQLite.

Every write runs in one ``BEGIN IMMEDIATE`` transaction, so two registry processes sharing the
database file cannot hand out the same id or version, and cannot both register successors that are
each compatible with the old latest version but not with each other: the compatibility check reads
the versions and the config inside the same transaction that inserts. An identical schema (after
normalisation) gets the id it already has, in any subject. Ids are never reused and stay resolvable
after their versions are deleted, so records already on a topic can still be decoded.

Deletes follow Confluent: a soft delete hides a version (or every version of a subject) from
listings, ``deleted=True`` shows it again, and only a soft-deleted version may be deleted permanently.

The global compatibility level is the config row if one was set, else ``default_compatibility``
(Confluent's ``schema.compatibility.level`` server setting). It defaults to NONE here so that a bare
``SchemaStore(path)`` keeps its old accept-everything meaning; ``python -m registry.schema_registry`` passes BACKWARD,
Confluent's default.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import fastavro

from registry import sqlite_store
from registry.core import bounded_json
from registry.core.errors import SchemaError, StoreUnavailableError
from registry.schema_registry import avro_compat
from registry.schema_registry.avro_compat import CompatibilityLevel, InvalidSchemaError, parse_level

__all__ = [
    "AlreadySoftDeletedError",
    "CompatibilityLevel",
    "ConfigNotFoundError",
    "IncompatibleSchemaError",
    "InvalidSchemaError",
    "InvalidVersionError",
    "NotSoftDeletedError",
    "RegisteredSchema",
    "SchemaNotFoundError",
    "SchemaStore",
    "SubjectNotFoundError",
    "VersionNotFoundError",
    "normalize",
]

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

_MAX_VERSION = 2**31 - 1

VersionSpec = int | str
"""A version number, ``-1`` or ``"latest"``; also the text of a number, as it arrives in a URL."""


class SchemaNotFoundError(SchemaError):
    """No such subject, version or id, or the schema is not registered under the subject."""


class SubjectNotFoundError(SchemaNotFoundError):
    """The subject has no version (that the caller asked to see)."""


class VersionNotFoundError(SchemaNotFoundError):
    """The subject exists but has no such version."""


class ConfigNotFoundError(SchemaNotFoundError):
    """The subject has no subject-level compatibility level."""


class AlreadySoftDeletedError(SchemaNotFoundError):
    """A soft delete of a subject or version that is already soft-deleted (``version`` None: the subject)."""

    def __init__(self, subject: str, version: int | None = None) -> None:
        self.subject = subject
        self.version = version
        what = f"subject {subject!r}" if version is None else f"subject {subject!r} version {version}"
        super().__init__(f"{what} was soft deleted; set permanent=true to delete permanently")


class NotSoftDeletedError(SchemaError):
    """A permanent delete of a subject or version that was not soft-deleted first."""

    def __init__(self, subject: str, version: int | None = None) -> None:
        self.subject = subject
        self.version = version
        what = f"subject {subject!r}" if version is None else f"subject {subject!r} version {version}"
        super().__init__(f"{what} was not deleted first before being permanently deleted")


class InvalidVersionError(SchemaError):
    """A version that is neither a number in [1, 2^31-1], -1 nor ``latest``."""


class IncompatibleSchemaError(SchemaError):
    """The schema breaks the subject's compatibility level; ``messages`` say where."""

    def __init__(self, subject: str, level: CompatibilityLevel, messages: list[str]) -> None:
        self.subject = subject
        self.level = level
        self.messages = messages
        super().__init__(
            f"Schema being registered is incompatible with an earlier schema for subject {json.dumps(subject)} "
            f"(compatibility {level.value}), details: [{'; '.join(messages)}]"
        )


@dataclass(frozen=True)
class RegisteredSchema:
    id: int
    subject: str
    version: int
    schema: str


def normalize(schema_text: str) -> str:
    """Parse, validate and re-serialise a schema so equal schemas compare equal as text."""
    try:
        parsed = bounded_json.loads(schema_text)
    except (ValueError, TypeError) as exc:
        raise InvalidSchemaError(f"invalid Avro schema: not JSON: {exc}") from exc
    # Our own parser first: it names what is wrong, and what it accepts the compatibility checks can read.
    try:
        avro_compat.validate(parsed)
    except InvalidSchemaError as exc:
        raise InvalidSchemaError(f"invalid Avro schema: {exc}") from exc
    try:
        fastavro.parse_schema(parsed)
    except Exception as exc:  # fastavro signals bad input with many exception types (KeyError among them)
        raise InvalidSchemaError(f"invalid Avro schema: {type(exc).__name__}: {exc}") from exc
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"))


def _version_spec(version: VersionSpec) -> int | None:
    """The version number asked for, or None for the latest one."""
    number: object = version
    if isinstance(version, str):
        if version.strip().lower() == "latest":
            return None
        with suppress(ValueError):
            number = int(version)
    if isinstance(number, bool) or not isinstance(number, int) or not (number == -1 or 1 <= number <= _MAX_VERSION):
        raise InvalidVersionError(
            f"The specified version {version!r} is not a valid version id. "
            'Allowed values are between [1, 2^31-1] and the string "latest"'
        )
    return None if number == -1 else number


class SchemaStore:
    """Schemas, subject versions and compatibility config in one SQLite file (see the module docstring)."""

    def __init__(self, path: Path, *, default_compatibility: CompatibilityLevel | str = "NONE") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._default = parse_level(default_compatibility)
        with self._transaction() as conn:
            for statement in _DDL.split(";"):
                if statement.strip():
                    conn.execute(statement)

    # -- connections --------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        return sqlite_store.connect(self._path)

    @contextmanager
    def _transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One transaction on a fresh connection: committed if the block returns, rolled back if it raises.

        Reads use a DEFERRED transaction too, so a read of several rows sees one snapshot.
        """
        try:
            conn = self._connect()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailableError(f"schema store {self._path} unavailable: {exc}") from exc
        try:
            conn.execute(f"BEGIN {mode}")
            yield conn
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise StoreUnavailableError(f"schema store {self._path} unavailable: {exc}") from exc
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._transaction("DEFERRED")

    # -- writes -------------------------------------------------------------------------------------

    def register(self, subject: str, schema_text: str) -> RegisteredSchema:
        """Register a schema under ``subject``: its existing version if it has one, else a new version.

        Raises:
            InvalidSchemaError: not a valid Avro schema.
            IncompatibleSchemaError: a new version would break the subject's compatibility level.
        """
        normalized = normalize(schema_text)
        with self._transaction() as conn:
            existing = conn.execute(
                "SELECT v.version, s.id FROM subject_versions v JOIN schemas s ON s.id = v.schema_id "
                "WHERE v.subject = ? AND s.normalized = ? AND v.deleted = 0 ORDER BY v.version LIMIT 1",
                (subject, normalized),
            ).fetchone()
            if existing:
                return RegisteredSchema(id=existing[1], subject=subject, version=existing[0], schema=normalized)
            level = self._effective_level(conn, subject)
            live = self._schemas_of(conn, subject, deleted=False)
            problems = avro_compat.check(
                level, normalized, [text for _, text, _ in live], labels=[f"version {v}" for v, _, _ in live]
            )
            if problems:
                raise IncompatibleSchemaError(subject, level, problems)
            row = conn.execute("SELECT id FROM schemas WHERE normalized = ?", (normalized,)).fetchone()
            schema_id = (
                row[0] if row else conn.execute("INSERT INTO schemas (normalized) VALUES (?)", (normalized,)).lastrowid
            )
            (latest,) = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM subject_versions WHERE subject = ?", (subject,)
            ).fetchone()
            conn.execute(
                "INSERT INTO subject_versions (subject, version, schema_id) VALUES (?, ?, ?)",
                (subject, latest + 1, schema_id),
            )
        assert schema_id is not None
        return RegisteredSchema(id=schema_id, subject=subject, version=latest + 1, schema=normalized)

    def delete_version(self, subject: str, version: VersionSpec, *, permanent: bool = False) -> int:
        """Soft-delete one version, or permanently delete a soft-deleted one; returns its number.

        Raises:
            SubjectNotFoundError, VersionNotFoundError, InvalidVersionError: nothing to delete.
            AlreadySoftDeletedError: a soft delete of a soft-deleted version.
            NotSoftDeletedError: a permanent delete of a version that was not soft-deleted first.
        """
        with self._transaction() as conn:
            rows = dict(self._versions_of(conn, subject, deleted=True))
            # a soft delete sees what listings see; a permanent one also sees soft-deleted versions
            visible = rows if permanent else {v: d for v, d in rows.items() if not d}
            if not visible:
                raise SubjectNotFoundError(f"subject {subject!r} not found")
            number = _version_spec(version)
            number = max(visible) if number is None else number
            if number not in rows:
                raise VersionNotFoundError(f"subject {subject!r} has no version {number}")
            if permanent:
                if not rows[number]:
                    raise NotSoftDeletedError(subject, number)
                conn.execute("DELETE FROM subject_versions WHERE subject = ? AND version = ?", (subject, number))
            else:
                if rows[number]:
                    raise AlreadySoftDeletedError(subject, number)
                conn.execute(
                    "UPDATE subject_versions SET deleted = 1 WHERE subject = ? AND version = ?", (subject, number)
                )
        return number

    def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        """Soft-delete every live version of a subject (and its config), or permanently delete a soft-deleted
        subject; returns the versions deleted.

        Raises:
            SubjectNotFoundError: the subject has no version at all.
            AlreadySoftDeletedError: a soft delete of a subject whose versions are all soft-deleted.
            NotSoftDeletedError: a permanent delete of a subject with live versions.
        """
        with self._transaction() as conn:
            rows = self._versions_of(conn, subject, deleted=True)
            if not rows:
                raise SubjectNotFoundError(f"subject {subject!r} not found")
            live = [v for v, deleted in rows if not deleted]
            if permanent:
                if live:
                    raise NotSoftDeletedError(subject)
                conn.execute("DELETE FROM subject_versions WHERE subject = ?", (subject,))
                gone = [v for v, _ in rows]
            else:
                if not live:
                    raise AlreadySoftDeletedError(subject)
                conn.execute("UPDATE subject_versions SET deleted = 1 WHERE subject = ?", (subject,))
                gone = live
            conn.execute("DELETE FROM subject_config WHERE subject = ?", (subject,))
        return gone

    def set_compatibility(self, level: CompatibilityLevel | str, subject: str | None = None) -> CompatibilityLevel:
        """Set the global level (``subject`` None) or a subject's override.

        Raises:
            InvalidCompatibilityLevelError: not a level.
        """
        parsed = parse_level(level)
        with self._transaction() as conn:
            if subject is None:
                conn.execute(
                    "INSERT INTO global_config (singleton, compatibility) VALUES (1, ?) "
                    "ON CONFLICT (singleton) DO UPDATE SET compatibility = excluded.compatibility",
                    (parsed.value,),
                )
            else:
                conn.execute(
                    "INSERT INTO subject_config (subject, compatibility) VALUES (?, ?) "
                    "ON CONFLICT (subject) DO UPDATE SET compatibility = excluded.compatibility",
                    (subject, parsed.value),
                )
        return parsed

    def delete_compatibility(self, subject: str | None = None) -> CompatibilityLevel:
        """Drop a subject's override (or reset the global level to the default); returns the level dropped.

        Raises:
            ConfigNotFoundError: the subject has no override.
        """
        with self._transaction() as conn:
            if subject is None:
                previous = self._global_level(conn)
                conn.execute("DELETE FROM global_config")
                return previous
            row = conn.execute("SELECT compatibility FROM subject_config WHERE subject = ?", (subject,)).fetchone()
            if row is None:
                raise ConfigNotFoundError(f"subject {subject!r} does not have subject-level compatibility configured")
            conn.execute("DELETE FROM subject_config WHERE subject = ?", (subject,))
        return CompatibilityLevel(row[0])

    # -- reads --------------------------------------------------------------------------------------

    def by_id(self, schema_id: int) -> str:
        with self._read() as conn:
            row = conn.execute("SELECT normalized FROM schemas WHERE id = ?", (schema_id,)).fetchone()
        if row is None:
            raise SchemaNotFoundError(f"schema id {schema_id} not found")
        return str(row[0])

    def subjects(self, *, deleted: bool = False, deleted_only: bool = False) -> list[str]:
        """Subjects with a live version; ``deleted`` adds soft-deleted ones, ``deleted_only`` lists only those."""
        having = {
            (False, False): "HAVING MIN(deleted) = 0",
            (True, False): "",
        }.get((deleted, deleted_only), "HAVING MIN(deleted) = 1")
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT subject FROM subject_versions GROUP BY subject {having} ORDER BY subject"
            ).fetchall()
        return [r[0] for r in rows]

    def versions(self, subject: str, *, deleted: bool = False) -> list[int]:
        with self._read() as conn:
            rows = self._versions_of(conn, subject, deleted=deleted)
        if not rows:
            raise SubjectNotFoundError(f"subject {subject!r} not found")
        return [v for v, _ in rows]

    def version(self, subject: str, version: VersionSpec, *, deleted: bool = False) -> RegisteredSchema:
        number = _version_spec(version)
        with self._read() as conn:
            rows = self._schemas_of(conn, subject, deleted=deleted)
        if not rows:
            raise SubjectNotFoundError(f"subject {subject!r} not found")
        found = rows[-1] if number is None else next((r for r in rows if r[0] == number), None)
        if found is None:
            raise VersionNotFoundError(f"subject {subject!r} has no version {version}")
        number, schema, schema_id = found[0], found[1], found[2]
        return RegisteredSchema(id=schema_id, subject=subject, version=number, schema=schema)

    def lookup(self, subject: str, schema_text: str, *, deleted: bool = False) -> RegisteredSchema:
        """The version of ``subject`` that holds this schema (a live one first, then the latest).

        Raises:
            InvalidSchemaError: not a valid Avro schema.
            SubjectNotFoundError: the subject has no (live, unless ``deleted``) version.
            SchemaNotFoundError: the subject does not hold this schema.
        """
        normalized = normalize(schema_text)
        hidden = "" if deleted else "AND v.deleted = 0"
        with self._read() as conn:
            row = conn.execute(
                "SELECT v.version, s.id FROM subject_versions v JOIN schemas s ON s.id = v.schema_id "
                f"WHERE v.subject = ? AND s.normalized = ? {hidden} ORDER BY v.deleted, v.version DESC LIMIT 1",
                (subject, normalized),
            ).fetchone()
            known = row is not None or bool(self._versions_of(conn, subject, deleted=deleted))
        if not known:
            raise SubjectNotFoundError(f"subject {subject!r} not found")
        if row is None:
            raise SchemaNotFoundError(f"schema not registered under subject {subject!r}")
        return RegisteredSchema(id=row[1], subject=subject, version=row[0], schema=normalized)

    def versions_of_id(self, schema_id: int, *, deleted: bool = False) -> list[tuple[str, int]]:
        """The (subject, version) pairs that hold schema ``schema_id``.

        Raises:
            SchemaNotFoundError: no such id.
        """
        hidden = "" if deleted else "AND deleted = 0"
        with self._read() as conn:
            if conn.execute("SELECT 1 FROM schemas WHERE id = ?", (schema_id,)).fetchone() is None:
                raise SchemaNotFoundError(f"schema id {schema_id} not found")
            rows = conn.execute(
                f"SELECT subject, version FROM subject_versions WHERE schema_id = ? {hidden} ORDER BY subject, version",
                (schema_id,),
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def subjects_of_id(self, schema_id: int, *, deleted: bool = False) -> list[str]:
        """The subjects that hold schema ``schema_id`` (see :meth:`versions_of_id`)."""
        return sorted({subject for subject, _ in self.versions_of_id(schema_id, deleted=deleted)})

    def compatibility(self, subject: str | None = None) -> CompatibilityLevel:
        """The level in force: the subject's override, else the global level, else the default."""
        with self._read() as conn:
            return self._effective_level(conn, subject)

    def subject_compatibility(self, subject: str) -> CompatibilityLevel | None:
        """The subject's own override, or None."""
        with self._read() as conn:
            return self._subject_level(conn, subject)

    def check_compatibility(self, subject: str, schema_text: str, version: VersionSpec | None = "latest") -> list[str]:
        """Why ``schema_text`` breaks the subject's level against one version (or, with ``version`` None,
        against the versions its level names); empty if it does not. Registers nothing.

        Against a single version the level's direction applies, not its transitivity. A subject with no
        version accepts anything when asked about ``latest`` or about all versions.

        Raises:
            InvalidSchemaError, InvalidVersionError: bad input.
            SubjectNotFoundError, VersionNotFoundError: a numbered version that does not exist.
        """
        normalized = normalize(schema_text)
        number = None if version is None else _version_spec(version)
        with self._read() as conn:
            level = self._effective_level(conn, subject)
            live = self._schemas_of(conn, subject, deleted=False)
        if number is not None:
            if not live:
                raise SubjectNotFoundError(f"subject {subject!r} not found")
            live = [row for row in live if row[0] == number]
            if not live:
                raise VersionNotFoundError(f"subject {subject!r} has no version {number}")
        elif version is not None:
            live = live[-1:]
        if version is not None:
            level = CompatibilityLevel(level.value.replace("_TRANSITIVE", ""))
        return avro_compat.check(
            level, normalized, [text for _, text, _ in live], labels=[f"version {v}" for v, *_ in live]
        )

    # -- helpers (inside a transaction) -------------------------------------------------------------

    @staticmethod
    def _versions_of(conn: sqlite3.Connection, subject: str, *, deleted: bool) -> list[tuple[int, bool]]:
        hidden = "" if deleted else "AND deleted = 0"
        rows = conn.execute(
            f"SELECT version, deleted FROM subject_versions WHERE subject = ? {hidden} ORDER BY version", (subject,)
        ).fetchall()
        return [(r[0], bool(r[1])) for r in rows]

    @staticmethod
    def _schemas_of(conn: sqlite3.Connection, subject: str, *, deleted: bool) -> list[tuple[int, str, int]]:
        """(version, schema, id) of the subject's versions, oldest first."""
        hidden = "" if deleted else "AND v.deleted = 0"
        rows = conn.execute(
            "SELECT v.version, s.normalized, s.id FROM subject_versions v JOIN schemas s ON s.id = v.schema_id "
            f"WHERE v.subject = ? {hidden} ORDER BY v.version",
            (subject,),
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def _global_level(self, conn: sqlite3.Connection) -> CompatibilityLevel:
        row = conn.execute("SELECT compatibility FROM global_config").fetchone()
        return self._default if row is None else CompatibilityLevel(row[0])

    @staticmethod
    def _subject_level(conn: sqlite3.Connection, subject: str) -> CompatibilityLevel | None:
        row = conn.execute("SELECT compatibility FROM subject_config WHERE subject = ?", (subject,)).fetchone()
        return None if row is None else CompatibilityLevel(row[0])

    def _effective_level(self, conn: sqlite3.Connection, subject: str | None) -> CompatibilityLevel:
        own = None if subject is None else self._subject_level(conn, subject)
        return own if own is not None else self._global_level(conn)
