"""Feature services: named, versioned lists of pinned feature versions that a model reads together.

A model pins ``(entity, name, version)`` of every feature it was trained on; serving a feature
service reads exactly those versions' rows, whatever version of each feature is active. A
service's versions are immutable: registering the same content again is ``unchanged``, different
content under an existing version is a conflict, and without a version the store picks the latest
(same content) or the next number. Services live in the definition store's SQLite file, in their
own table, written in one ``BEGIN IMMEDIATE`` transaction like definitions.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from registry.core import refs
from registry.core.catalog import FeatureCatalog
from registry.core.definitions import MAX_VERSION, STORED, FeatureDefinition, Version
from registry.core.definitions import _prose as prose  # the rule of a definition's description
from registry.core.errors import RequestFeatureError, UnknownFeatureError, UnknownFeatureServiceError
from registry.core.refs import SERVICE_NAME_PATTERN
from registry.core.request_features import RequestFeature, request_fields
from registry.definition_store import DefinitionConflictError
from registry.gate import PinnedFeature
from registry.live import Following
from registry.sqlite_store import SqliteStore

MAX_FEATURES = 1000
MAX_DESCRIPTION = 4096  # characters, as a definition's description (docs/design.md §4)

_DDL = """
CREATE TABLE IF NOT EXISTS feature_services (
    name TEXT NOT NULL, version INTEGER NOT NULL, spec TEXT NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
"""

Action = Literal["created", "new_version", "unchanged"]


def _description(value: str, info: ValidationInfo) -> str:
    """As a definition's: at most ``MAX_DESCRIPTION`` characters, line feed and tab its only control characters."""
    if info.context == STORED:
        return value
    if len(value) > MAX_DESCRIPTION:
        raise ValueError(f"must be at most {MAX_DESCRIPTION} characters, not {len(value)}")
    return prose(value)


Description = Annotated[str, AfterValidator(_description)]


class FeatureService(BaseModel):
    """One immutable version of a feature service. Feature order is the order vectors are returned in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=SERVICE_NAME_PATTERN)
    version: Version
    description: Description = Field(default="", json_schema_extra={"maxLength": MAX_DESCRIPTION})
    features: tuple[PinnedFeature, ...] = Field(min_length=1, max_length=MAX_FEATURES)

    @model_validator(mode="after")
    def _one_version_per_feature(self) -> FeatureService:
        seen: set[tuple[str, str]] = set()
        for pin in self.features:
            if (pin.entity, pin.name) in seen:
                raise ValueError(f"{pin.entity}.{pin.name} is pinned twice; a service reads one version of a feature")
            seen.add((pin.entity, pin.name))
        return self

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def for_entity(self, entity: str) -> tuple[PinnedFeature, ...]:
        return tuple(p for p in self.features if p.entity == entity)

    def content(self) -> str:
        """Canonical JSON of what a version fixes (everything but its number)."""
        return json.dumps(self.model_dump(mode="json", exclude={"version"}), sort_keys=True, separators=(",", ":"))

    def check(self, catalog: FeatureCatalog) -> list[str]:
        """Pins the catalog cannot serve as pinned; UnknownFeatureError when a pinned version is not registered."""
        missing: dict[str, list[str]] = {}
        problems = []
        for pin in self.features:
            request = catalog.request_feature(pin.entity, pin.name, pin.version)
            try:  # a request-time feature is pinned by its type and identity the same way
                d: FeatureDefinition | RequestFeature = request or catalog.get(pin.entity, pin.name, pin.version)
            except UnknownFeatureError:
                missing.setdefault(pin.entity, []).append(f"{pin.name}@v{pin.version}")
                continue
            if d.name != pin.name:
                problems.append(f"{pin.entity}.{pin.name}: is a former name of {d.name}; pin the feature's own name")
            if pin.value_type is not None and pin.value_type != d.value_type:
                problems.append(
                    f"{pin.entity}.{pin.name}@v{pin.version}: pinned as {pin.value_type}, is {d.value_type}"
                )
            if pin.identity_hash is not None and not (
                d.pinned_by(pin.identity_hash)
                if isinstance(d, RequestFeature)
                else pin.identity_hash == d.identity_hash
            ):
                problems.append(
                    f"{pin.entity}.{pin.name}@v{pin.version}: pinned identity {pin.identity_hash}, is {d.identity_hash}"
                )
        for entity, names in missing.items():
            raise UnknownFeatureError(entity, names)
        pinned_requests: dict[str, list[RequestFeature]] = {}
        for pin in self.features:
            request = catalog.request_feature(pin.entity, pin.name, pin.version)
            if request is not None:
                pinned_requests.setdefault(pin.entity, []).append(request)
        for requests in pinned_requests.values():
            try:  # one request carries one value per field: two types for one field cannot be served together
                request_fields(requests)
            except RequestFeatureError as exc:
                problems.append(str(exc))
        return problems


@dataclass(frozen=True)
class RegisteredService:
    action: Action
    service: FeatureService


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``name``, ``name@3`` or ``name@v3`` (``registry.core.refs``) -> (name, version or None for the latest)."""
    parsed = refs.parse_ref(ref, name_pattern=SERVICE_NAME_PATTERN)
    if parsed is None:
        raise UnknownFeatureServiceError(ref)
    return parsed.name, parsed.version


class FeatureServiceStore(SqliteStore):
    DDL = _DDL

    def register(self, service: FeatureService, *, version_given: bool = True) -> RegisteredService:
        """Register one version; idempotent for identical content, a conflict for different content."""
        s = service
        with self._tx() as conn:
            (latest,) = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM feature_services WHERE name = ?", (s.name,)
            ).fetchone()
            if not version_given:
                at_latest = self._stored(conn, s.name, latest) if latest else None
                same = at_latest is not None and at_latest.content() == s.content()
                if not same and latest >= MAX_VERSION:  # no next number a version may have: nothing is written
                    raise DefinitionConflictError(
                        f"feature service {s.name} is at version {latest}, the highest a version may have "
                        f"({MAX_VERSION}): register the change under another name"
                    )
                s = s.model_copy(update={"version": latest if same else latest + 1})
            held = self._stored(conn, s.name, s.version)
            if held is not None:
                if held.content() != s.content():
                    what = "other features" if held.features != s.features else "another description"
                    raise DefinitionConflictError(
                        f"feature service {s.ref} is registered with {what}; versions are immutable: "
                        f"register the change as {s.name}@{latest + 1}"
                    )
                return RegisteredService("unchanged", s)
            if s.version < latest:
                raise DefinitionConflictError(
                    f"feature service {s.name} is at version {latest}; a new version must be numbered above it"
                )
            conn.execute(
                "INSERT INTO feature_services VALUES (?, ?, ?, ?)",
                (s.name, s.version, s.model_dump_json(), datetime.now(UTC).isoformat()),
            )
        return RegisteredService("created" if not latest else "new_version", s)

    @staticmethod
    def _stored(conn: sqlite3.Connection, name: str, version: int) -> FeatureService | None:
        """Version ``version`` of ``name``, if registered: only the versions a registration compares are read (it
        parsed every earlier version, and each new version of a service took longer than the last)."""
        row = conn.execute(
            "SELECT spec FROM feature_services WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
        return None if row is None else FeatureService.model_validate_json(row[0], context=STORED)

    def has_versions(self, name: str) -> bool:
        """Whether any version of the service ``name`` is registered."""
        conn = self._connect()
        try:
            return conn.execute("SELECT 1 FROM feature_services WHERE name = ? LIMIT 1", (name,)).fetchone() is not None
        finally:
            conn.close()

    def change_seq(self) -> int:
        """Grows with every registration (versions are never updated or deleted)."""
        conn = self._connect()
        try:
            (seq,) = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM feature_services").fetchone()
        finally:
            conn.close()
        return int(seq)

    def all(self) -> list[FeatureService]:
        conn = self._connect()
        try:
            specs = [r[0] for r in conn.execute("SELECT spec FROM feature_services ORDER BY name, version")]
        finally:
            conn.close()
        return [FeatureService.model_validate_json(s, context=STORED) for s in specs]


class ServiceIndex:
    """Every registered service version, indexed by name; lookups are dictionary reads."""

    def __init__(self, services: list[FeatureService]) -> None:
        self._by_name: dict[str, dict[int, FeatureService]] = {}
        for s in services:
            self._by_name.setdefault(s.name, {})[s.version] = s
        self._latest = {name: versions[max(versions)] for name, versions in self._by_name.items()}

    def get(self, ref: str) -> FeatureService:
        """The service named by ``name@version`` (``name`` alone: its latest version)."""
        name, version = parse_ref(ref)
        found = self._latest.get(name) if version is None else self._by_name.get(name, {}).get(version)
        if found is None:
            raise UnknownFeatureServiceError(ref)
        return found

    def all(self) -> list[FeatureService]:
        return [s for name in sorted(self._by_name) for _, s in sorted(self._by_name[name].items())]


class LiveFeatureServices(Following[ServiceIndex]):
    """The store's services, reloaded when its change sequence moves (checked at most every ``refresh_s``)."""

    def __init__(
        self, store: FeatureServiceStore, *, refresh_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(store, lambda: ServiceIndex(store.all()), refresh_s=refresh_s, clock=clock)
        self.store = store
