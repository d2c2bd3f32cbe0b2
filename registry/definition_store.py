"""Durable registry of feature definitions: immutable versions and an active-version pointer.

A version's identity (transform and TTL, ``FeatureDefinition.identity``) never changes once
registered; its metadata (owner, description, tags, SLO, status, ...) may, and every change is
recorded in ``changes``. Which version serves is a pointer moved by one UPDATE, so readers see the
old or the new version, never a mix. Every write runs in one ``BEGIN IMMEDIATE`` transaction:
two registry processes sharing the file cannot both create the same version.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from registry.core.catalog import FeatureCatalog, alias_clashes
from registry.core.definitions import (
    MAX_VERSION,
    STORED,
    FeatureDefinition,
    check_event_schema,
    check_lateness,
    check_streams,
)
from registry.core.errors import DefinitionError, ForbiddenError, UnknownFeatureError
from registry.core.request_features import RequestFeature, key_field_clashes
from registry.core.shown import shown
from registry.sqlite_store import SqliteStore, columns_of

_DDL = """
CREATE TABLE IF NOT EXISTS feature_versions (
    entity TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
    spec TEXT NOT NULL, identity_hash TEXT NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (entity, name, version)
);
CREATE TABLE IF NOT EXISTS active_versions (
    entity TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (entity, name)
);
CREATE TABLE IF NOT EXISTS request_feature_versions (
    entity TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
    spec TEXT NOT NULL, identity_hash TEXT NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (entity, name, version)
);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,
    entity TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, action TEXT NOT NULL
);
"""

_STORED_COLUMNS = {"entity", "name", "version", "spec", "identity_hash", "created_at"}

Action = Literal["created", "new_version", "metadata_updated", "unchanged", "activated"]


class DefinitionConflictError(DefinitionError):
    """The request contradicts what is registered (e.g. a different transform under an existing version)."""


@dataclass(frozen=True)
class Registered:
    action: Action
    definition: FeatureDefinition
    active_version: int


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _spec(d: FeatureDefinition | RequestFeature) -> str:
    return json.dumps(d.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


_VersionRow = tuple[int, str, str]  # version, spec, identity hash


def _versions(conn: sqlite3.Connection, table: str, entity: str, name: str) -> list[_VersionRow]:
    """The registered versions of one feature (or request feature), oldest first."""
    return [
        (int(v), str(spec), str(ident))
        for v, spec, ident in conn.execute(
            f"SELECT version, spec, identity_hash FROM {table} WHERE entity = ? AND name = ? ORDER BY version",
            (entity, name),
        )
    ]


def _put_version(
    conn: sqlite3.Connection,
    table: str,
    d: FeatureDefinition | RequestFeature,
    spec: str,
    rows: list[_VersionRow],
    *,
    changed: str,
    below: str,
) -> Action:
    """Write one immutable version into ``table`` (``feature_versions`` or ``request_feature_versions``)
    and record the change. The same identity under its number is at most a metadata update; another
    identity under it (``changed``), or a new number below the latest (``below``), is a conflict."""
    by_version = {v: (held, ident) for v, held, ident in rows}
    latest = rows[-1][0] if rows else 0
    action: Action
    if d.version in by_version:
        held, ident = by_version[d.version]
        # Hashed before inputs were hashed in their canonical spelling (`x@1` is `x@v1`): the identity is the
        # stored spec's, recomputed; a match is the same version, and the stored hash is brought up to date.
        if (
            ident != d.identity_hash
            and isinstance(d, RequestFeature)
            and RequestFeature.model_validate_json(held).identity_hash == d.identity_hash
        ):
            conn.execute(
                f"UPDATE {table} SET identity_hash = ? WHERE entity = ? AND name = ? AND version = ?",
                (d.identity_hash, d.entity, d.name, d.version),
            )
            ident = d.identity_hash
        if ident != d.identity_hash:
            raise DefinitionConflictError(changed)
        # The same definition, compared as ``plan`` compares it: a spec stored before a field existed (no
        # ``event_id_field``, ``sensitivity`` key) reads as the same model, and is unchanged, not rewritten.
        same = (
            held == spec
            or (
                stored_definition(held)
                if isinstance(d, FeatureDefinition)
                else RequestFeature.model_validate_json(held)
            )
            == d
        )
        action = "unchanged" if same else "metadata_updated"
        if action == "metadata_updated":
            conn.execute(
                f"UPDATE {table} SET spec = ? WHERE entity = ? AND name = ? AND version = ?",
                (spec, d.entity, d.name, d.version),
            )
    else:
        if d.version < latest:
            raise DefinitionConflictError(below)
        conn.execute(
            f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?)",
            (d.entity, d.name, d.version, spec, d.identity_hash, _now()),
        )
        action = "created" if not rows else "new_version"
    if action != "unchanged":
        conn.execute(
            "INSERT INTO changes (at, entity, name, version, action) VALUES (?, ?, ?, ?, ?)",
            (_now(), d.entity, d.name, d.version, action),
        )
    return action


def _check_runnable(registered: Sequence[Registered], *, activated: bool = False) -> None:
    """DefinitionError if a version a registration created (active or not: an inactive one is what a backfill
    computes and what ``activate`` later points at, as ``plan`` checks every new version) or, ``activated``,
    pointed at, is one the job cannot compute over its event schema (``event_schema_problems``)."""
    for r in registered:
        if r.action in ("created", "new_version") or (activated and r.active_version == r.definition.version):
            check_event_schema(r.definition)


class DefinitionStore(SqliteStore):
    DDL = _DDL

    @classmethod
    def existing(cls, path: Path, *, name: str | None = None) -> DefinitionStore:
        """The definition store at ``path`` for a command that only reads it (or moves its pointers): a
        DefinitionError, with nothing created or changed there, if no file is there, it is not SQLite, or it holds
        no definition store (a new file, or another program's database). ``name`` says how the path was given
        (``--db x.db``; default: the path)."""
        where = name or shown(path)
        try:
            tables = columns_of(path)
        except sqlite3.DatabaseError as exc:
            raise DefinitionError(f"{where}: not a usable definition store (SQLite): {exc}") from None
        if tables is None:
            raise DefinitionError(f"{where}: no definition store there; run `python -m registry.cli apply` first")
        if "feature_versions" not in tables:
            raise DefinitionError(
                f"{where}: not a definition store (no feature definitions table); run `python -m registry.cli apply`"
                " first, or name the registry's file"
            )
        missing = sorted(_STORED_COLUMNS - tables["feature_versions"])
        if missing:  # another program's table of that name: opening it as a store would add tables and switch to WAL
            raise DefinitionError(
                f"{where}: not a definition store (its feature_versions table has no column {', '.join(missing)}); "
                "name the registry's file"
            )
        return cls(path)

    # --- writes -----------------------------------------------------------------------------------

    def register(
        self,
        definition: FeatureDefinition,
        *,
        version_given: bool = True,
        activate: bool = False,
        owned_by: str | None = None,
    ) -> Registered:
        """Register one definition; idempotent for an identical one.

        With ``version_given=False`` the store picks the version: the latest one if its identity is
        unchanged (a metadata update or nothing), else the next number. The first version of a
        feature becomes active; later ones only with ``activate=True``. ``owned_by``: a team the feature's latest
        version must be owned by, if it has one, checked inside the write's transaction (ForbiddenError): a caller
        who checked the owner before another team registered the feature cannot then move it to its own team.
        """
        with self._tx() as conn:
            if owned_by is not None:
                _check_owner(conn, definition, owned_by, rewritten=definition.version if version_given else None)
            _check_key_fields(self._catalog(conn), [definition], ())
            registered = self._register(conn, definition, version_given=version_given, activate=activate)
            self._check_streams(conn, {(definition.entity, definition.source.topic)})
            _check_runnable([registered], activated=activate)
            # DefinitionError (rolling back) if a name or alias is now taken twice, or the job would refuse the
            # features now active (one source's features disagreeing on allowed_lateness)
            catalog = self._catalog(conn)
            _check_aliases(catalog, [definition])
            check_lateness(catalog.active(), {definition.source})
            return registered

    def register_all(
        self, definitions: list[FeatureDefinition], request_features: Sequence[RequestFeature] = ()
    ) -> list[Registered]:
        """Register every definition (and request feature) in one transaction: all of them, or (on any error) none.

        A request feature's ``function_hash`` is taken from its function's source as importable now
        (``RequestFeature.with_function_hash``); its version is immutable like a feature's, and the
        highest registered version is the one read by name."""
        hashed = [r.with_function_hash() for r in request_features]
        with self._tx() as conn:
            _check_key_fields(self._catalog(conn), definitions, hashed)
            registered = [self._register(conn, d, version_given=True, activate=False) for d in definitions]
            self._check_streams(conn, {(d.entity, d.source.topic) for d in definitions})
            _check_runnable(registered)
            for r in sorted(hashed, key=lambda r: (r.entity, r.name, r.version)):  # each feature's lowest first
                self._register_request(conn, r)
            # DefinitionError (rolling back) if a name or alias is taken twice or an input is unregistered: what
            # the store holds must stay a catalog every command can load.
            catalog = self._catalog(conn)
            _check_aliases(catalog, definitions)
            check_lateness(catalog.active(), {d.source for d in definitions})
            return registered

    def _register_request(self, conn: sqlite3.Connection, r: RequestFeature) -> None:
        rows = _versions(conn, "request_feature_versions", r.entity, r.name)
        latest = rows[-1][0] if rows else 0
        if not rows:  # a stored version's name or alias, active or not (an inactive one could never be activated)
            for (spec,) in conn.execute("SELECT spec FROM feature_versions WHERE entity = ?", (r.entity,)):
                held = json.loads(spec)
                if r.name == held["name"] or r.name in held.get("aliases", ()):
                    raise DefinitionConflictError(
                        f"request feature {r.entity}.{r.name} has the name of a stored feature or alias "
                        f"({r.entity}.{held['name']} v{held['version']})"
                    )
        _put_version(
            conn,
            "request_feature_versions",
            r,
            _spec(r),
            rows,
            changed=f"request feature {r.entity}.{r.name} v{r.version} is registered with another function, "
            f"function source, inputs, request fields or type; versions are immutable: register the "
            f"change as v{latest + 1}",
            below=f"request feature {r.entity}.{r.name} is at v{latest}; a new version must be numbered above it",
        )

    def _register(
        self, conn: sqlite3.Connection, definition: FeatureDefinition, *, version_given: bool, activate: bool
    ) -> Registered:
        d = definition
        for name in (d.name, *d.aliases):
            taken = conn.execute(
                "SELECT 1 FROM request_feature_versions WHERE entity = ? AND name = ? LIMIT 1", (d.entity, name)
            ).fetchone()
            if taken is not None:
                raise DefinitionConflictError(
                    f"{d.entity}.{name} is the name of a request-time feature; a stored feature needs another name"
                )
        rows = _versions(conn, "feature_versions", d.entity, d.name)
        latest = rows[-1][0] if rows else 0
        if not version_given:
            same = latest and rows[-1][2] == d.identity_hash
            if not same and latest >= MAX_VERSION:  # no next number a version may have: nothing is written
                raise DefinitionConflictError(
                    f"{d.entity}.{d.name} is at v{latest}, the highest a version may have ({MAX_VERSION}): "
                    "register the change under another name"
                )
            d = d.model_copy(update={"version": latest if same else latest + 1})
        action = _put_version(
            conn,
            "feature_versions",
            d,
            _spec(d),
            rows,
            changed=f"{d.entity}.{d.name} v{d.version} is registered with a different transform or TTL; "
            f"versions are immutable: register the change as v{latest + 1}",
            below=f"{d.entity}.{d.name} is at v{latest}; a new version must be numbered above it, not v{d.version}",
        )
        active = conn.execute(
            "SELECT version FROM active_versions WHERE entity = ? AND name = ?", (d.entity, d.name)
        ).fetchone()
        if active is None or (activate and active[0] != d.version):
            self._point(conn, d.entity, d.name, d.version)
            active_version = d.version
        else:
            active_version = active[0]
        return Registered(action, d, active_version)

    def _point(self, conn: sqlite3.Connection, entity: str, name: str, version: int) -> None:
        held = conn.execute(
            "SELECT version FROM active_versions WHERE entity = ? AND name = ?", (entity, name)
        ).fetchone()
        if held is not None and held[0] == version:  # already serving it: nothing changes, nothing is recorded
            return
        conn.execute(
            "INSERT INTO active_versions VALUES (?, ?, ?, ?) "
            "ON CONFLICT (entity, name) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
            (entity, name, version, _now()),
        )
        conn.execute(
            "INSERT INTO changes (at, entity, name, version, action) VALUES (?, ?, ?, ?, 'activated')",
            (_now(), entity, name, version),
        )

    def _check_streams(self, conn: sqlite3.Connection, moved: set[tuple[str, str]]) -> None:
        """After active pointers moved for ``moved`` (entity, topic) pairs: DefinitionError if two active
        features of one stream now read it differently (``check_streams``), so the transaction rolls back:
        the catalog could not load them, nor the job run them, together."""
        topics: dict[str, set[str]] = {}
        for entity, topic in moved:
            topics.setdefault(entity, set()).add(topic)
        for entity, wanted in topics.items():  # one query per entity type: one per topic made many topics quadratic
            specs = conn.execute(
                "SELECT json_extract(f.spec, '$.source.topic'), f.spec FROM active_versions a JOIN feature_versions f "
                "ON f.entity = a.entity AND f.name = a.name AND f.version = a.version WHERE a.entity = ?",
                (entity,),
            ).fetchall()
            check_streams(stored_definition(s) for topic, s in specs if topic in wanted)  # a stream is one topic's
        for entity in topics:  # every version of an entity type has its one composite key
            keys = conn.execute(
                "SELECT DISTINCT json_extract(spec, '$.source.entity_key') FROM feature_versions WHERE entity = ?",
                (entity,),
            ).fetchall()
            composite = {k for (k,) in keys if k.startswith("[")}  # a JSON array: a composite key
            if composite and len(keys) > 1:
                shown = sorted(k if k.startswith("[") else json.dumps([k]) for (k,) in keys)
                raise DefinitionError(
                    f"entity type {entity!r} would be keyed by {' and by '.join(shown)}: one entity type has one "
                    "composite key (the same fields in the same order), or a single key in every definition"
                )

    def activate(self, entity: str, name: str, version: int, *, owned_by: str | None = None) -> None:
        """Move the serving pointer to ``version`` (atomically); DefinitionError if that version reads its
        stream's topic differently from the stream's other active features (``activate_all`` moves several).
        ``owned_by``: a team that must own the feature's latest version and ``version``, checked inside the write's
        transaction (ForbiddenError): an owner read before an admin moved the feature to another team no longer
        lets the first team move its pointer."""
        self.activate_all([(entity, name, version)], owned_by=owned_by)

    def activate_all(self, pointers: Sequence[tuple[str, str, int]], *, owned_by: str | None = None) -> None:
        """Move several serving pointers in one transaction: all of them or none. The way to change how a
        stream reads its topic: every active feature of the stream moves to a version with the new source at once.
        ``owned_by``: as ``activate``'s, for every pointer."""
        asked: dict[tuple[str, str], int] = {}
        for entity, name, version in pointers:
            held = asked.setdefault((entity, name), version)
            if held != version:
                raise DefinitionError(
                    f"{entity}.{name} is named twice, at v{held} and v{version}: activate one version per feature"
                )
        with self._tx() as conn:
            moved: set[tuple[str, str]] = set()
            for (entity, name), version in asked.items():
                # no such version (a bool is no version, as the model says), and beyond what SQLite's integers hold
                if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
                    raise UnknownFeatureError(entity, [f"{name}@v{version}"])
                found = conn.execute(
                    "SELECT json_extract(spec, '$.source.topic') FROM feature_versions "
                    "WHERE entity = ? AND name = ? AND version = ?",
                    (entity, name, version),
                ).fetchone()
                if found is None:
                    raise UnknownFeatureError(entity, [f"{name}@v{version}"])
                if owned_by is not None:
                    _check_activator(conn, entity, name, version, owned_by)
                self._point(conn, entity, name, version)
                moved.add((entity, found[0]))
            self._check_streams(conn, moved)
            # DefinitionError (rolling back) if the versions now active take a name twice, or their sources'
            # features disagree on allowed_lateness (the job would refuse them)
            catalog = self._catalog(conn)
            activated = [catalog.get(e, n, v) for (e, n), v in asked.items()]
            for d in activated:  # the live job starts computing them
                check_event_schema(d)
            check_lateness(catalog.active(), {d.source for d in activated})

    # --- reads ------------------------------------------------------------------------------------

    def change_seq(self) -> int:
        """A number that grows with every change: readers reload their catalog when it moves."""
        conn = self._connect()
        try:
            (seq,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()
        finally:
            conn.close()
        return int(seq)

    def check_activator(self, entity: str, name: str, version: int, team: str) -> None:
        """ForbiddenError unless ``team`` owns the feature's latest version and ``version`` now: ``activate``'s
        check (which it repeats inside its own write), for a command to refuse before it does the work that ends in
        an activation (``jobs.backfill --promote``)."""
        conn = self._connect()
        try:
            _check_activator(conn, entity, name, version, team)
        finally:
            conn.close()

    def holds(self, definition: FeatureDefinition) -> bool:
        """Whether this version of the feature is registered with the same identity (transform and TTL): unchanged,
        or only its metadata differs (``registry.core.catalog.Held``)."""
        conn = self._connect()
        try:
            row = conn.execute(
                "SELECT identity_hash FROM feature_versions WHERE entity = ? AND name = ? AND version = ?",
                (definition.entity, definition.name, definition.version),
            ).fetchone()
        finally:
            conn.close()
        return row is not None and row[0] == definition.identity_hash

    def catalog(self) -> FeatureCatalog:
        """Every registered version, with the active pointers, as one consistent snapshot."""
        conn = self._connect()
        try:
            conn.execute("BEGIN")
            catalog = self._catalog(conn)
            conn.execute("COMMIT")
        finally:
            conn.close()
        return catalog

    @staticmethod
    def _catalog(conn: sqlite3.Connection) -> FeatureCatalog:
        specs = [r[0] for r in conn.execute("SELECT spec FROM feature_versions")]
        active = {(e, n): v for e, n, v in conn.execute("SELECT entity, name, version FROM active_versions")}
        requests = [r[0] for r in conn.execute("SELECT spec FROM request_feature_versions")]
        return FeatureCatalog(
            (stored_definition(s) for s in specs),
            active,
            (RequestFeature.model_validate_json(s) for s in requests),
        )

    def history(self, entity: str, name: str) -> list[dict[str, object]]:
        conn = self._connect()
        try:
            rows = conn.execute(
                "SELECT seq, at, version, action FROM changes WHERE entity = ? AND name = ? ORDER BY seq",
                (entity, name),
            ).fetchall()
        finally:
            conn.close()
        return [{"seq": s, "at": at, "version": v, "action": a} for s, at, v, a in rows]


def _check_owner(conn: sqlite3.Connection, d: FeatureDefinition, team: str, *, rewritten: int | None) -> None:
    """ForbiddenError unless ``team`` owns the feature's latest version and, if ``rewritten`` is registered (a
    metadata update of that version), that version too: owning the latest let a team rewrite an older version
    that another team owns, its owner and sensitivity included, and so read values restricted from it."""
    rows = _versions(conn, "feature_versions", d.entity, d.name)
    owners = {json.loads(spec).get("owner") for v, spec, _ in rows if v in (rows[-1][0], rewritten)} if rows else set()
    if owners - {team}:
        others = ", ".join(sorted(str(o) for o in owners - {team}))
        raise ForbiddenError(f"team {team} may not write {d.entity}/{d.name}@{d.version}: it is owned by team {others}")


def _check_activator(conn: sqlite3.Connection, entity: str, name: str, version: int, team: str) -> None:
    """ForbiddenError unless ``team`` owns the feature's latest version and ``version`` (as read in this transaction)."""
    rows = _versions(conn, "feature_versions", entity, name)
    owners = {json.loads(spec).get("owner") for v, spec, _ in rows if v in (rows[-1][0], version)}
    if owners != {team}:
        others = ", ".join(sorted(str(o) for o in owners - {team}))
        raise ForbiddenError(f"team {team} may not activate {entity}/{name}@{version}: it is owned by team {others}")


def _check_aliases(catalog: FeatureCatalog, written: Sequence[FeatureDefinition]) -> None:
    """DefinitionError if a version just written holds another feature's name or alias, in any version active or
    not (``alias_clashes``): an inactive version so registered could never be activated."""
    clashes = alias_clashes(catalog, written)
    if clashes:
        raise DefinitionError("; ".join(clashes))


def _check_key_fields(
    before: FeatureCatalog, definitions: Sequence[FeatureDefinition], requests: Sequence[RequestFeature]
) -> None:
    """DefinitionConflictError if the registration brings in a request field named like a key field of its entity
    type, whichever of the two is registered second (``key_field_clashes``)."""
    problems = key_field_clashes(before, before.request_features(), definitions, requests)
    if problems:
        raise DefinitionConflictError("; ".join(problems))


@lru_cache(maxsize=1 << 17)
def stored_definition(spec: str) -> FeatureDefinition:
    """A stored version's spec (its JSON, as registered) as a definition, parsed once per process per spec text.

    Versions are immutable and definitions frozen, so every reload of the catalog (each process that follows the
    store, each registration's checks) shares the definitions of the specs it read before: a catalog of 10,000
    definitions parsed whole took 0.3-0.4 s, and a registration parsed it three times."""
    return FeatureDefinition.model_validate_json(spec, context=STORED)
