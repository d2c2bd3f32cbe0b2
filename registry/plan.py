"""Plan and apply a folder of definition files against the definition store.

``plan`` says what ``apply`` would change and changes nothing; it finds every conflict, those with
the store and those inside the folder (one version defined twice, differently). Apply registers new
features and versions and updates metadata, all in one transaction: the whole folder or nothing.
It moves no serving pointer except to a feature's first version (promotion is an explicit
``activate``, so registering v2 for a backfill never disturbs v1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from registry.core.definitions import FeatureDefinition
from registry.core.errors import DefinitionError
from registry.core.request_features import RequestFeature
from registry.definition_store import DefinitionConflictError, DefinitionStore, Registered

ChangeKind = Literal["create", "new_version", "update_metadata"]


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    definition: FeatureDefinition
    detail: str

    def __str__(self) -> str:
        d = self.definition
        symbol = {"create": "+", "new_version": "+", "update_metadata": "~"}[self.kind]
        return f"{symbol} {d.entity}.{d.name} v{d.version}: {self.detail}"


def _distinct(definitions: list[FeatureDefinition], conflicts: list[str]) -> list[FeatureDefinition]:
    """The definitions sorted by key, each once; a version defined twice differently is a conflict."""
    first: dict[tuple[str, str, int], FeatureDefinition] = {}
    for d in sorted(definitions, key=lambda d: d.key):
        seen = first.setdefault(d.key, d)
        if seen is not d and seen != d:
            what = "transform or TTL" if seen.identity_hash != d.identity_hash else "metadata"
            conflicts.append(
                f"{d.entity}.{d.name} v{d.version}: defined more than once in the folder, with "
                f"different {what}; keep one definition per version"
            )
    return list(first.values())


def plan(store: DefinitionStore, definitions: list[FeatureDefinition]) -> list[Change]:
    """What applying ``definitions`` would change; DefinitionConflictError naming every conflict."""
    catalog = store.catalog()
    changes: list[Change] = []
    conflicts: list[str] = []
    for d in _distinct(definitions, conflicts):
        existing = [v for v in catalog.versions(d.entity, d.name)]
        same = next((v for v in existing if v.version == d.version), None)
        if same is None:
            if not existing:
                changes.append(Change("create", d, "new feature (becomes active)"))
            elif d.version < existing[-1].version:
                conflicts.append(
                    f"{d.entity}.{d.name} v{d.version}: below the latest registered v{existing[-1].version}"
                )
            else:
                active = catalog.get(d.entity, d.name).version
                changes.append(Change("new_version", d, f"new version (inactive; v{active} keeps serving)"))
        elif same.identity_hash != d.identity_hash:
            conflicts.append(
                f"{d.entity}.{d.name} v{d.version}: transform or TTL differs from the registered version; "
                "versions are immutable, give the change a new version number"
            )
        elif same != d:
            fields = sorted(k for k in d.model_fields if getattr(d, k) != getattr(same, k))
            changes.append(Change("update_metadata", d, "metadata: " + ", ".join(fields)))
    if not conflicts:  # what the store would hold after the apply: every name and alias taken once
        try:
            catalog.after(definitions)
        except DefinitionError as exc:
            conflicts.append(str(exc))
    if conflicts:
        raise DefinitionConflictError("; ".join(conflicts))
    return changes


@dataclass(frozen=True)
class RequestChange:
    kind: Literal["create", "update_metadata"]
    feature: RequestFeature

    def __str__(self) -> str:
        r = self.feature
        if self.kind == "create":
            return f"+ request feature {r.entity}.{r.name} v{r.version}: {r.function} @{r.function_hash}"
        return f"~ request feature {r.entity}.{r.name} v{r.version}: metadata"


def plan_requests(store: DefinitionStore, request_features: list[RequestFeature]) -> list[RequestChange]:
    """What applying ``request_features`` would register; DefinitionConflictError naming every version
    whose function, function source, inputs, request fields or type differ from the registered one.
    Imports each function to hash its module's source (``RequestFeature.with_function_hash``)."""
    catalog = store.catalog()
    lines: list[RequestChange] = []
    conflicts: list[str] = []
    for r in sorted((r.with_function_hash() for r in request_features), key=lambda r: r.key):
        held = catalog.request_feature(r.entity, r.name, r.version)
        if held is None:
            lines.append(RequestChange("create", r))
        elif held.identity_hash != r.identity_hash:
            conflicts.append(
                f"request feature {r.entity}.{r.name} v{r.version}: function, its source, inputs, request fields "
                f"or type differ from the registered version (source hash {r.function_hash}, registered "
                f"{held.function_hash}); give the change a new version number"
            )
        elif held != r:
            lines.append(RequestChange("update_metadata", r))
    if conflicts:
        raise DefinitionConflictError("; ".join(conflicts))
    return lines


def plan_all(
    store: DefinitionStore, definitions: list[FeatureDefinition], request_features: list[RequestFeature]
) -> tuple[list[Change], list[RequestChange]]:
    """``plan`` and ``plan_requests`` of one folder: one DefinitionConflictError naming every conflict of both."""
    conflicts: list[str] = []
    changes: list[Change] = []
    request_changes: list[RequestChange] = []
    try:
        changes = plan(store, definitions)
    except DefinitionConflictError as exc:
        conflicts.append(str(exc))
    try:
        request_changes = plan_requests(store, request_features)
    except DefinitionConflictError as exc:
        conflicts.append(str(exc))
    if not conflicts:  # what the store would hold after the apply: names and aliases taken once, inputs registered
        try:
            store.catalog().after(definitions, [r.with_function_hash() for r in request_features])
        except DefinitionError as exc:
            conflicts.append(str(exc))
    if conflicts:
        raise DefinitionConflictError("; ".join(conflicts))
    return changes, request_changes


def apply(
    store: DefinitionStore, definitions: list[FeatureDefinition], request_features: list[RequestFeature] | None = None
) -> list[Registered]:
    """Register every definition (and request feature) in one transaction, after a plan that found no
    conflict; returns what happened to each definition. A conflict that appears between the plan and the
    write (another writer) fails the whole transaction: nothing of the folder is written."""
    plan_all(store, definitions, request_features or [])
    return store.register_all(_distinct(definitions, []), request_features or [])
