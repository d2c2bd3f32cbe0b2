"""Durable store of Avro schemas by subject and version, with global ids, on SQLite.

Every write runs in one ``BEGIN IMMEDIATE`` transaction, so two registry processes sharing the
database file cannot hand out the same id or version, and cannot both register successors that are
each compatible with the old latest version but not with each other: the compatibility check reads
the versions and the config inside the same transaction that inserts. An identical schema (after
normalisation) with the same references gets the id it already has, in any subject. Ids are never reused and stay resolvable
after their versions are deleted, so records already on a topic can still be decoded.

References follow Confluent: a schema may name types declared in other subjects' versions
(``references: [{name, subject, version}]``); they are resolved, transitively, when the schema is
parsed, normalised and checked for compatibility, stored with it (``-1`` resolved to the version it
meant then), and a referenced version cannot be deleted while a schema that references it is held
by a version (:class:`ReferenceExistsError`).

Deletes follow Confluent: a soft delete hides a version (or every version of a subject) from
listings, ``deleted=True`` shows it again, and only a soft-deleted version may be deleted permanently.
``latest`` (and ``-1``) always names the latest live version, for reads with ``deleted=True`` and for
permanent deletes too (Confluent's ``getLatestVersion`` skips soft-deleted versions). A soft delete of a
subject keeps its compatibility override; only a permanent delete drops it (Confluent's ``deleteSubject``), as does
the permanent delete of the subject's last version (``deleteSchemaVersion``).

The global compatibility level is the config row if one was set, else ``default_compatibility``
(Confluent's ``schema.compatibility.level`` server setting). It defaults to NONE here so that a bare
``SchemaStore(path)`` keeps its old accept-everything meaning; ``python -m registry.schema_registry`` passes BACKWARD,
Confluent's default.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from registry import sqlite_store
from registry.core.errors import StoreUnavailableError
from registry.schema_registry import avro_compat, avro_parse
from registry.schema_registry.avro_compat import CompatibilityLevel
from registry.schema_registry.avro_parse import WithReferences
from registry.schema_registry.canonical import resolved_text
from registry.schema_registry.errors import (
    AlreadySoftDeletedError,
    ConfigNotFoundError,
    IncompatibleSchemaError,
    InvalidCompatibilityLevelError,
    InvalidSchemaError,
    InvalidVersionError,
    NotSoftDeletedError,
    ReferenceExistsError,
    SchemaNotFoundError,
    SubjectNotFoundError,
    VersionNotFoundError,
)
from registry.schema_registry.schemas import (
    RegisteredSchema,
    SchemaReference,
    StoredSchema,
    VersionSpec,
    normalize,
    refs_from_json,
    refs_json,
    sorted_references,
    version_spec,
)
from registry.schema_registry.store_tables import (
    VersionRow,
    drop_soft_deleted_copies,
    migrate,
    referenced_by,
    resolve,
    schemas_of,
    subject_level,
    versions_of,
)

__all__ = [
    "AlreadySoftDeletedError",
    "CompatibilityLevel",
    "ConfigNotFoundError",
    "IncompatibleSchemaError",
    "InvalidSchemaError",
    "InvalidVersionError",
    "NotSoftDeletedError",
    "ReferenceExistsError",
    "RegisteredSchema",
    "SchemaNotFoundError",
    "SchemaReference",
    "SchemaStore",
    "SubjectNotFoundError",
    "VersionNotFoundError",
    "normalize",
]

# A schema id some version holds, soft-deleted or not: Confluent's registry forgets an id whose versions are all
# deleted permanently (InMemoryCache.schemaTombstoned), and its reads by id answer 40403 then.
_HELD = "EXISTS (SELECT 1 FROM subject_versions WHERE schema_id = ?)"


def _parse_level(level: object) -> CompatibilityLevel:
    try:
        return avro_compat.parse_level(level)
    except avro_compat.InvalidCompatibilityLevelError:
        raise InvalidCompatibilityLevelError() from None


class SchemaStore:
    """Schemas, subject versions and compatibility config in one SQLite file (see the module docstring)."""

    def __init__(self, path: Path, *, default_compatibility: CompatibilityLevel | str = "NONE") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._default = _parse_level(default_compatibility)
        self._opened = False  # once the file is made, a file gone under the process is not made again
        with self._transaction() as conn:
            migrate(conn)
        self._opened = True

    # -- connections --------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # After start-up the file must be there: one deleted under the running server is 50002 naming it, and no
        # empty store is made in its place (a restart would then hand out ids 1, 2, ... again for other schemas).
        return sqlite_store.connect(self._path, create=not self._opened)

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

    def register(
        self,
        subject: str,
        schema_text: str,
        references: Sequence[SchemaReference] = (),
        *,
        normalize_references: bool = False,
    ) -> RegisteredSchema:
        """Register a schema under ``subject``: its existing version if it has one, else a new version.

        The schema's identity is its normalised text with its references (a ``-1`` version resolved
        to the referenced subject's latest), as in Confluent: the same pair gets the same id in any subject.
        ``normalize_references`` (Confluent's ``normalize=true``) sorts the references first, and they are
        stored sorted: the same references in another order are then the same schema.

        Raises:
            InvalidSchemaError: not a valid Avro schema, or a reference that does not resolve.
            IncompatibleSchemaError: a new version would break the subject's compatibility level.
        """
        with self._transaction() as conn:
            refs, dependencies = resolve(conn, references)
            if normalize_references:
                refs = sorted_references(refs)
            normalized = normalize(schema_text, dependencies)
            refs_text = refs_json(refs)
            existing = conn.execute(
                "SELECT v.version, s.id FROM subject_versions v JOIN schemas s ON s.id = v.schema_id "
                "WHERE v.subject = ? AND s.normalized = ? AND s.refs = ? AND v.deleted = 0 ORDER BY v.version LIMIT 1",
                (subject, normalized, refs_text),
            ).fetchone()
            if existing:
                return RegisteredSchema(existing[1], subject, existing[0], normalized, refs)
            level = self._effective_level(conn, subject)
            live = schemas_of(conn, subject, deleted=False)
            self._check_or_raise(conn, subject, level, WithReferences(normalized, tuple(dependencies)), live)
            row = conn.execute(
                "SELECT id FROM schemas WHERE normalized = ? AND refs = ? ORDER BY id LIMIT 1", (normalized, refs_text)
            ).fetchone()
            if row:
                schema_id = row[0]
            else:
                schema_id = conn.execute(
                    "INSERT INTO schemas (normalized, refs) VALUES (?, ?)", (normalized, refs_text)
                ).lastrowid
                conn.executemany(
                    "INSERT INTO schema_references (schema_id, name, subject, version) VALUES (?, ?, ?, ?)",
                    [(schema_id, r.name, r.subject, r.version) for r in refs],
                )
            (latest,) = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM subject_versions WHERE subject = ?", (subject,)
            ).fetchone()
            conn.execute(
                "INSERT INTO subject_versions (subject, version, schema_id) VALUES (?, ?, ?)",
                (subject, latest + 1, schema_id),
            )
            drop_soft_deleted_copies(conn, subject, schema_id)  # as Confluent: the new version replaces them
        assert schema_id is not None
        return RegisteredSchema(schema_id, subject, latest + 1, normalized, refs)

    def delete_version(self, subject: str, version: VersionSpec, *, permanent: bool = False) -> int:
        """Soft-delete one version, or permanently delete a soft-deleted one; returns its number. A permanent
        delete of the subject's last version (soft-deleted ones counted) also drops its compatibility override, as
        Confluent's ``deleteSchemaVersion`` does.

        Raises:
            SubjectNotFoundError, VersionNotFoundError, InvalidVersionError: nothing to delete.
            ReferenceExistsError: another schema references the version (a live one, or for a
                permanent delete any, as in Confluent).
            AlreadySoftDeletedError: a soft delete of a soft-deleted version.
            NotSoftDeletedError: a permanent delete of a version that was not soft-deleted first.
        """
        number = version_spec(version)
        with self._transaction() as conn:
            rows = dict(versions_of(conn, subject, deleted=True))
            # in Confluent's order (validateDeleteSchemaVersion): a numbered version is found among
            # soft-deleted ones too; `latest` is the latest live one, for a permanent delete as well (so
            # that one fails with NotSoftDeletedError), and with no live version it is "Version -1 not found."
            if not rows:
                raise SubjectNotFoundError(subject)
            if number is None:
                live = [v for v, deleted in rows.items() if not deleted]
                if not live:
                    raise VersionNotFoundError(subject, -1)
                number = max(live)
            if number not in rows:
                raise VersionNotFoundError(subject, number)
            if rows[number] and not permanent:
                raise AlreadySoftDeletedError(subject, number)
            if referenced_by(conn, subject, number, deleted=permanent):
                raise ReferenceExistsError(subject, number)
            if permanent:
                if not rows[number]:
                    raise NotSoftDeletedError(subject, number)
                conn.execute("DELETE FROM subject_versions WHERE subject = ? AND version = ?", (subject, number))
                if not conn.execute("SELECT 1 FROM subject_versions WHERE subject = ?", (subject,)).fetchone():
                    # the subject's last version gone: its override goes with it (Confluent's deleteSchemaVersion)
                    conn.execute("DELETE FROM subject_config WHERE subject = ?", (subject,))
            else:
                conn.execute(
                    "UPDATE subject_versions SET deleted = 1 WHERE subject = ? AND version = ?", (subject, number)
                )
        return number

    def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        """Soft-delete every live version of a subject, or permanently delete a soft-deleted subject (and its
        compatibility override: a soft delete keeps it, as Confluent's ``deleteSubject``); returns the versions
        deleted.

        Raises:
            SubjectNotFoundError: the subject has no version at all.
            ReferenceExistsError: a version is referenced from another subject.
            AlreadySoftDeletedError: a soft delete of a subject whose versions are all soft-deleted.
            NotSoftDeletedError: a permanent delete of a subject with live versions.
        """
        with self._transaction() as conn:
            rows = versions_of(conn, subject, deleted=True)
            if not rows:
                raise SubjectNotFoundError(subject)
            live = [v for v, deleted in rows if not deleted]
            # version by version, oldest first, as Confluent's deleteSubject: a version referenced from another
            # subject (42206), then, for a permanent delete, a live version (40405), whichever comes first
            for number, deleted in rows if permanent else [(v, False) for v in live]:
                if any(s != subject for s, _ in referenced_by(conn, subject, number, deleted=permanent)):
                    raise ReferenceExistsError(subject, number)
                if permanent and not deleted:
                    raise NotSoftDeletedError(subject)
            if permanent:
                conn.execute("DELETE FROM subject_versions WHERE subject = ?", (subject,))
                conn.execute("DELETE FROM subject_config WHERE subject = ?", (subject,))
                gone = [v for v, _ in rows]
            else:
                if not live:
                    raise AlreadySoftDeletedError(subject)
                conn.execute("UPDATE subject_versions SET deleted = 1 WHERE subject = ?", (subject,))
                gone = live
        return gone

    def set_compatibility(self, level: CompatibilityLevel | str, subject: str | None = None) -> CompatibilityLevel:
        """Set the global level (``subject`` None) or a subject's override.

        Raises:
            InvalidCompatibilityLevelError: not a level.
        """
        parsed = _parse_level(level)
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
                raise ConfigNotFoundError(subject)
            conn.execute("DELETE FROM subject_config WHERE subject = ?", (subject,))
        return CompatibilityLevel(row[0])

    # -- reads --------------------------------------------------------------------------------------

    def by_id(self, schema_id: int) -> str:
        """The normalised text of schema ``schema_id``.

        Raises:
            SchemaNotFoundError: no such id, or every version that held it deleted permanently (as Confluent's
                registry forgets an id then); registering the same schema again brings it back under that id.
        """
        return self.stored(schema_id).schema

    def stored(self, schema_id: int, *, resolved: bool = False) -> StoredSchema:
        """Schema ``schema_id`` with the references it was registered with (see :meth:`by_id`); ``resolved``: its
        text with the named types its references declare written in full (Confluent's ``?format=resolved``)."""
        with self._read() as conn:
            row = conn.execute(
                f"SELECT normalized, refs FROM schemas WHERE id = ? AND {_HELD}", (schema_id, schema_id)
            ).fetchone()
            if row is None:
                raise SchemaNotFoundError(schema_id)
            text, references = str(row[0]), refs_from_json(row[1])
            if resolved and references:
                _, dependencies = resolve(conn, references)
                text = resolved_text(json.loads(text), [json.loads(d) for d in dependencies])
        return StoredSchema(text, references)

    def subjects(self, *, deleted: bool = False, deleted_only: bool = False, prefix: str = "") -> list[str]:
        """Subjects with a live version; ``deleted`` adds soft-deleted ones, ``deleted_only`` lists only those;
        only those starting with ``prefix`` (Confluent's ``subjectPrefix``)."""
        having = {
            (False, False): "HAVING MIN(deleted) = 0",
            (True, False): "",
        }.get((deleted, deleted_only), "HAVING MIN(deleted) = 1")
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT subject FROM subject_versions GROUP BY subject {having} ORDER BY subject"
            ).fetchall()
        return [r[0] for r in rows if r[0].startswith(prefix)]

    def all_versions(
        self, *, prefix: str = "", deleted: bool = False, latest_only: bool = False
    ) -> list[RegisteredSchema]:
        """Every live version (``deleted``: soft-deleted ones too) of the subjects starting with ``prefix``, by
        subject then version; ``latest_only``: the latest listed version of each (Confluent's ``GET /schemas``)."""
        hidden = "" if deleted else "WHERE v.deleted = 0"
        with self._read() as conn:
            rows = conn.execute(
                "SELECT v.subject, v.version, s.id, s.normalized, s.refs, v.deleted "
                f"FROM subject_versions v JOIN schemas s ON s.id = v.schema_id {hidden} ORDER BY v.subject, v.version"
            ).fetchall()
        found = [
            RegisteredSchema(r[2], r[0], r[1], r[3], refs_from_json(r[4]), deleted=bool(r[5]))
            for r in rows
            if r[0].startswith(prefix)
        ]
        if latest_only:
            latest = {f.subject: f for f in found}  # rows are by version: the last one of a subject wins
            found = [f for f in found if latest[f.subject] is f]
        return found

    def versions(self, subject: str, *, deleted: bool = False, deleted_only: bool = False) -> list[int]:
        """The subject's live version numbers; ``deleted`` adds soft-deleted ones, ``deleted_only`` lists
        only those (possibly none, as Confluent's ``deletedOnly``; it wins over ``deleted``).

        Raises:
            SubjectNotFoundError: no version at all (no live one, unless ``deleted`` or ``deleted_only``).
        """
        with self._read() as conn:
            rows = versions_of(conn, subject, deleted=deleted or deleted_only)
        if not rows:
            raise SubjectNotFoundError(subject)
        return [v for v, gone in rows if gone or not deleted_only]

    def version(self, subject: str, version: VersionSpec, *, deleted: bool = False) -> RegisteredSchema:
        """One version of the subject; ``deleted`` lets a numbered version be a soft-deleted one, while
        ``latest`` / ``-1`` is always the latest live version, as in Confluent.

        Raises:
            SubjectNotFoundError: no version (no live one, unless ``deleted``).
            VersionNotFoundError: no such version (``latest`` with ``deleted``: no live version, "Version -1").
            InvalidVersionError: not a version.
        """
        number = version_spec(version)
        with self._read() as conn:
            rows = schemas_of(conn, subject, deleted=deleted)
            live = schemas_of(conn, subject, deleted=False) if deleted and number is None else rows
        if not rows:
            raise SubjectNotFoundError(subject)
        if number is None and not live:
            raise VersionNotFoundError(subject, -1)
        found = live[-1] if number is None else next((r for r in rows if r[0] == number), None)
        if found is None:  # named by its number, as Confluent names it ("03" and "+3" are "Version 3")
            raise VersionNotFoundError(subject, number if number is not None else -1)
        return RegisteredSchema(found[2], subject, found[0], found[1], found[3], deleted=found[4])

    def referenced_by(self, subject: str, version: VersionSpec, *, deleted: bool = False) -> list[int]:
        """Ids of the schemas that reference ``subject`` at ``version`` (and are held by a live version,
        unless ``deleted``), ascending, as Confluent's ``GET .../referencedby``.

        Raises:
            SubjectNotFoundError, VersionNotFoundError, InvalidVersionError: no such version.
        """
        found = self.version(subject, version, deleted=True)
        with self._read() as conn:
            return sorted({schema_id for _, schema_id in referenced_by(conn, subject, found.version, deleted=deleted)})

    def lookup(
        self,
        subject: str,
        schema_text: str,
        references: Sequence[SchemaReference] = (),
        *,
        deleted: bool = False,
        normalize_references: bool = False,
    ) -> RegisteredSchema:
        """The version of ``subject`` that holds this schema with these references (a live one first, then
        the latest); ``deleted`` lets it be a soft-deleted one (then marked ``deleted``).
        ``normalize_references``: the references sorted first, as :meth:`register` with it stores them.

        Raises:
            InvalidSchemaError: not a valid Avro schema, or a reference that does not resolve.
            SubjectNotFoundError: the subject has no (live, unless ``deleted``) version.
            SchemaNotFoundError: the subject does not hold this schema.
        """
        hidden = "" if deleted else "AND v.deleted = 0"
        with self._read() as conn:
            refs, dependencies = resolve(conn, references)
            if normalize_references:
                refs = sorted_references(refs)
            normalized = normalize(
                schema_text, dependencies, as_new=False
            )  # Confluent's lookup: names, defaults unchecked
            row = conn.execute(
                "SELECT v.version, s.id, v.deleted FROM subject_versions v JOIN schemas s ON s.id = v.schema_id "
                f"WHERE v.subject = ? AND s.normalized = ? AND s.refs = ? {hidden} "
                "ORDER BY v.deleted, v.version DESC LIMIT 1",
                (subject, normalized, refs_json(refs)),
            ).fetchone()
            known = row is not None or bool(versions_of(conn, subject, deleted=deleted))
        if not known:
            raise SubjectNotFoundError(subject)
        if row is None:
            raise SchemaNotFoundError()
        return RegisteredSchema(row[1], subject, row[0], normalized, refs, deleted=bool(row[2]))

    def versions_of_id(self, schema_id: int, *, deleted: bool = False) -> list[tuple[str, int]]:
        """The (subject, version) pairs that hold schema ``schema_id``.

        Raises:
            SchemaNotFoundError: no such id.
        """
        hidden = "" if deleted else "AND deleted = 0"
        with self._read() as conn:
            if (
                conn.execute(f"SELECT 1 FROM schemas WHERE id = ? AND {_HELD}", (schema_id, schema_id)).fetchone()
                is None
            ):
                raise SchemaNotFoundError(schema_id)
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
            return subject_level(conn, subject)

    def configured_compatibility(self, subject: str | None = None) -> CompatibilityLevel | None:
        """The level stored for ``subject`` (None: the global level set through ``PUT /config``), or None
        where none was stored: neither falls back to the other nor to the default."""
        if subject is not None:
            return self.subject_compatibility(subject)
        with self._read() as conn:
            row = conn.execute("SELECT compatibility FROM global_config").fetchone()
        return None if row is None else CompatibilityLevel(row[0])

    def check_compatibility(
        self,
        subject: str,
        schema_text: str,
        version: VersionSpec | None = "latest",
        references: Sequence[SchemaReference] = (),
    ) -> list[str]:
        """Why ``schema_text`` breaks the subject's level against one version (or, with ``version`` None,
        against the versions its level names); empty if it does not. Registers nothing.

        Against a single version the level's direction applies, not its transitivity. A subject with no
        version accepts anything when asked about ``latest`` or about all versions.

        As Confluent's ``CompatibilityResource``: the version is looked up before the schema is parsed,
        and a numbered version that is missing or soft-deleted is "version not found" (40402) whether or
        not the subject exists.

        Raises:
            InvalidVersionError, VersionNotFoundError: no such version (checked first).
            InvalidSchemaError: not a valid schema, or a reference that does not resolve.
        """
        number = None if version is None else version_spec(version)
        with self._read() as conn:
            live = schemas_of(conn, subject, deleted=False)
            if number is not None:
                live = [row for row in live if row[0] == number]
                if not live:
                    raise VersionNotFoundError(subject, number)
            elif version is not None:
                live = live[-1:]
            _, dependencies = resolve(conn, references)
            normalized = normalize(schema_text, dependencies)
            level = self._effective_level(conn, subject)
            if version is not None:
                level = CompatibilityLevel(level.value.replace("_TRANSITIVE", ""))
            existing = [WithReferences(text, tuple(resolve(conn, refs)[1])) for _, text, _, refs, _ in live]
        return _check(
            level, WithReferences(normalized, tuple(dependencies)), existing, [f"version {v}" for v, *_ in live]
        )

    # -- helpers (inside a transaction) -------------------------------------------------------------

    def _check_or_raise(
        self,
        conn: sqlite3.Connection,
        subject: str,
        level: CompatibilityLevel,
        new: WithReferences,
        live: list[VersionRow],
    ) -> None:
        """Raise :class:`IncompatibleSchemaError` naming the first existing version (newest first, as
        Confluent's ``CompatibilityChecker`` iterates: "in order of most recent to least recent") that ``new`` may
        not follow under ``level``."""
        if level is CompatibilityLevel.NONE or not live:
            return
        for number, text, _, refs, _ in reversed(live) if level.transitive else live[-1:]:
            old = WithReferences(text, tuple(resolve(conn, refs)[1]))
            problems = _check(level, new, [old], [f"version {number}"])
            if problems:
                raise IncompatibleSchemaError(subject, level, problems, number, text)

    def _global_level(self, conn: sqlite3.Connection) -> CompatibilityLevel:
        row = conn.execute("SELECT compatibility FROM global_config").fetchone()
        return self._default if row is None else CompatibilityLevel(row[0])

    def _effective_level(self, conn: sqlite3.Connection, subject: str | None) -> CompatibilityLevel:
        own = None if subject is None else subject_level(conn, subject)
        return own if own is not None else self._global_level(conn)


def _check(
    level: CompatibilityLevel, new: WithReferences, existing: list[WithReferences], labels: list[str]
) -> list[str]:
    """``avro_compat.check``, with an existing version that does not parse (a schema the parser refuses now was
    registered before it did) a 422 that names that version, as Confluent's is an invalid schema, not a 500.

    Raises:
        InvalidSchemaError: an existing version does not parse even as Confluent parses a schema it holds.
    """
    try:
        return avro_compat.check(level, new, existing, labels=labels)
    except avro_parse.InvalidSchemaError as exc:
        if isinstance(exc, InvalidSchemaError):
            raise
        raise InvalidSchemaError(str(exc)) from exc
