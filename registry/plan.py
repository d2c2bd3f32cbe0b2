"""Plan and apply a folder of definition files against the definition store.

``plan`` says what ``apply`` would change and changes nothing; it finds every conflict, those with
the store and those inside the folder (one version defined twice, differently). Apply registers new
features and versions and updates metadata, all in one transaction: the whole folder or nothing.
It moves no serving pointer except to a feature's first version (promotion is an explicit
``activate``, so registering v2 for a backfill never disturbs v1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from registry.core.catalog import FeatureCatalog, alias_clashes
from registry.core.definitions import FeatureDefinition, check_lateness, event_schema_problems
from registry.core.errors import DefinitionError
from registry.core.request_features import RequestFeature, key_field_clashes
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


def _twice(what: str, places: tuple[str | None, str | None]) -> str:
    """The "defined more than once in the folder" message, naming where each is written (``path:line``) if known."""
    where = f" ({places[0]} and {places[1]})" if places[0] and places[1] else ""
    return f"{what}: defined more than once in the folder{where}"


def _distinct(
    definitions: Sequence[FeatureDefinition], conflicts: list[str], places: Sequence[str] | None = None
) -> list[FeatureDefinition]:
    """The definitions sorted by key, each once; a version defined twice differently is a conflict, naming
    where each is written when ``places`` (one per definition: ``load_folder_at``) says."""
    at = list(places) if places is not None else [None] * len(definitions)
    first: dict[tuple[str, str, int], tuple[FeatureDefinition, str | None]] = {}
    for d, place in sorted(zip(definitions, at, strict=True), key=lambda located: located[0].key):
        seen, seen_at = first.setdefault(d.key, (d, place))
        if seen is not d and seen != d:
            what = "transform or TTL" if seen.identity_hash != d.identity_hash else "metadata"
            conflicts.append(
                f"{_twice(f'{d.entity}.{d.name} v{d.version}', (seen_at, place))}, with "
                f"different {what}; keep one definition per version"
            )
    return [d for d, _ in first.values()]


def _request_names_taken(
    catalog: FeatureCatalog, definitions: Sequence[FeatureDefinition], requests: Sequence[RequestFeature]
) -> list[str]:
    """Request and stored features of an entity type never share a name or alias, whichever is registered second.

    As the store refuses them (``DefinitionStore.register_all``): a stored version, active or not, whose name or
    alias is a request feature's name (registered or in the folder); and a request feature new to the store named
    like a registered version's name or alias, active or not (an inactive version's alias would otherwise make
    that version impossible to activate, and its folder impossible to apply again)."""
    taken = {(r.entity, r.name) for r in catalog.request_features()} | {(r.entity, r.name) for r in requests}
    problems = []
    for d in sorted({d.key: d for d in definitions}.values(), key=lambda d: d.key):
        for name in (d.name, *d.aliases):
            if (d.entity, name) in taken:
                what = "its name" if name == d.name else f"its alias {name}"
                problems.append(
                    f"{d.entity}.{d.name} v{d.version}: {what} is the name of a request-time feature; "
                    "a stored feature needs another name"
                )
    stored: dict[tuple[str, str], FeatureDefinition] = {}
    for d in sorted(catalog, key=lambda d: d.key):
        for name in (d.name, *d.aliases):
            stored.setdefault((d.entity, name), d)
    for key in sorted({(r.entity, r.name) for r in requests}):
        held = stored.get(key)
        if held is not None and catalog.request_feature(*key) is None:
            problems.append(
                f"request feature {key[0]}.{key[1]} has the name of a stored feature or alias "
                f"({held.entity}.{held.name} v{held.version})"
            )
    return problems


def _plan(
    catalog: FeatureCatalog,
    definitions: Sequence[FeatureDefinition],
    conflicts: list[str],
    places: Sequence[str] | None = None,
    requests: Sequence[RequestFeature] = (),
) -> list[Change]:
    """What applying ``definitions`` (beside ``requests``) to ``catalog`` would change; appends every conflict
    to ``conflicts``."""
    found: list[str] = []
    changes: list[Change] = []
    found.extend(_request_names_taken(catalog, definitions, requests))
    found.extend(alias_clashes(catalog, definitions))
    found.extend(key_field_clashes(catalog, [*catalog.request_features(), *requests], definitions))
    created: dict[tuple[str, str], int] = {}  # a feature new to the store: the version that becomes active
    for d in _distinct(definitions, found, places):
        existing = [v for v in catalog.versions(d.entity, d.name)]
        same = next((v for v in existing if v.version == d.version), None)
        if same is None and (problems := event_schema_problems(d)):  # a new version the job could not compute
            found.append(f"{d.entity}.{d.name} v{d.version}: " + "; ".join(problems))
            continue
        if same is None:
            first = created.setdefault((d.entity, d.name), d.version) if not existing else None
            if first is not None and first != d.version:  # the folder's lowest version of the feature serves
                changes.append(Change("new_version", d, f"new version (inactive; v{first} serves)"))
            elif not existing:
                changes.append(Change("create", d, "new feature (becomes active)"))
            elif d.version < existing[-1].version:
                found.append(f"{d.entity}.{d.name} v{d.version}: below the latest registered v{existing[-1].version}")
            else:
                active = catalog.get(d.entity, d.name).version
                changes.append(Change("new_version", d, f"new version (inactive; v{active} keeps serving)"))
        elif same.identity_hash != d.identity_hash:
            found.append(
                f"{d.entity}.{d.name} v{d.version}: transform or TTL differs from the registered version; "
                "versions are immutable, give the change a new version number"
            )
        elif same != d:
            fields = sorted(k for k in d.model_fields if getattr(d, k) != getattr(same, k))
            changes.append(Change("update_metadata", d, "metadata: " + ", ".join(fields)))
    if not found:  # what the store would hold after the apply: every name and alias taken once
        try:  # ... and what the job would then run: one allowed_lateness per source
            check_lateness(catalog.after(definitions).active(), {d.source for d in definitions})
        except DefinitionError as exc:
            found.append(str(exc))
    conflicts.extend(found)
    return changes


def plan(store: DefinitionStore, definitions: list[FeatureDefinition]) -> list[Change]:
    """What applying ``definitions`` would change; DefinitionConflictError naming every conflict."""
    conflicts: list[str] = []
    changes = _plan(store.catalog(), definitions, conflicts)
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


def _plan_requests(
    catalog: FeatureCatalog,
    hashed: Sequence[RequestFeature],
    conflicts: list[str],
    places: Sequence[str] | None = None,
) -> list[RequestChange]:
    """``plan_requests`` of request features already hashed; each version once (a version defined twice
    differently in the folder is a conflict, naming where each is written when ``places`` says)."""
    at = list(places) if places is not None else [None] * len(hashed)
    conflicts.extend(key_field_clashes(catalog, catalog.request_features(), (), hashed))
    first: dict[tuple[str, str, int], tuple[RequestFeature, str | None]] = {}
    lines: list[RequestChange] = []
    for r, place in sorted(zip(hashed, at, strict=True), key=lambda located: located[0].key):
        seen, seen_at = first.setdefault(r.key, (r, place))
        if seen is not r:
            if seen != r:
                what = (
                    "a different function, inputs, request fields or type"
                    if seen.identity_hash != r.identity_hash
                    else "different metadata"
                )
                conflicts.append(
                    f"{_twice(f'request feature {r.entity}.{r.name} v{r.version}', (seen_at, place))}, with "
                    f"{what}; keep one definition per version"
                )
            continue
        held = catalog.request_feature(r.entity, r.name, r.version)
        latest = catalog.request_feature(r.entity, r.name)
        if held is None and latest is not None and r.version < latest.version:
            conflicts.append(
                f"request feature {r.entity}.{r.name} v{r.version}: below the latest registered v{latest.version}"
            )
        elif held is None:
            lines.append(RequestChange("create", r))
        elif held.identity_hash != r.identity_hash:
            conflicts.append(
                f"request feature {r.entity}.{r.name} v{r.version}: function, its source, inputs, request fields "
                f"or type differ from the registered version (source hash {r.function_hash}, registered "
                f"{held.function_hash}); give the change a new version number"
            )
        elif held != r:
            lines.append(RequestChange("update_metadata", r))
    return lines


def plan_requests(store: DefinitionStore, request_features: list[RequestFeature]) -> list[RequestChange]:
    """What applying ``request_features`` would register; DefinitionConflictError naming every version
    whose function, function source, inputs, request fields or type differ from the registered one.
    Imports each function to hash its module's source (``RequestFeature.with_function_hash``)."""
    conflicts: list[str] = []
    lines = _plan_requests(store.catalog(), [r.with_function_hash() for r in request_features], conflicts)
    if conflicts:
        raise DefinitionConflictError("; ".join(conflicts))
    return lines


def plan_all(
    store: DefinitionStore,
    definitions: Sequence[FeatureDefinition],
    request_features: Sequence[RequestFeature],
    *,
    places: Sequence[str] | None = None,
    request_places: Sequence[str] | None = None,
) -> tuple[list[Change], list[RequestChange]]:
    """``plan`` and ``plan_requests`` of one folder, against one snapshot of the store: one
    DefinitionConflictError naming every conflict of both. ``places``/``request_places`` (one per
    definition, ``load_folder_at``) let a version defined twice name where each is written."""
    catalog = store.catalog()
    hashed = [r.with_function_hash() for r in request_features]
    conflicts: list[str] = []
    changes = _plan(catalog, definitions, conflicts, places, hashed)
    request_changes = _plan_requests(catalog, hashed, conflicts, request_places)
    if not conflicts:  # what the store would hold after the apply: names and aliases taken once, inputs registered
        try:
            catalog.after(definitions, hashed)
        except DefinitionError as exc:
            conflicts.append(str(exc))
    if conflicts:
        raise DefinitionConflictError("; ".join(conflicts))
    return changes, request_changes


def apply_all(
    store: DefinitionStore,
    definitions: Sequence[FeatureDefinition],
    request_features: Sequence[RequestFeature] = (),
    *,
    places: Sequence[str] | None = None,
    request_places: Sequence[str] | None = None,
) -> tuple[list[Registered], list[RequestChange]]:
    """``apply``, planned once: what happened to each definition, and the request features' planned changes."""
    _, request_changes = plan_all(store, definitions, request_features, places=places, request_places=request_places)
    # Each version once, lowest first (as ``_distinct`` orders the stored ones): a folder may list v3 before v2.
    requests = sorted({r.key: r for r in request_features}.values(), key=lambda r: r.key)
    return store.register_all(_distinct(definitions, []), requests), request_changes


def apply(
    store: DefinitionStore, definitions: list[FeatureDefinition], request_features: list[RequestFeature] | None = None
) -> list[Registered]:
    """Register every definition (and request feature) in one transaction, after a plan that found no
    conflict; returns what happened to each definition. A conflict that appears between the plan and the
    write (another writer) fails the whole transaction: nothing of the folder is written."""
    return apply_all(store, definitions, request_features or [])[0]
