"""Read plans: what a request's names or feature service resolve to, compiled once and reused.

A plan fixes, for one entity type, the output keys, the stored rows ``(name, version)`` to read and
each feature's timeline rule in milliseconds. Plans are cached per catalog and service snapshot
(both refreshed on change, never read from the registry per request), so a request that repeats a
name list costs a dictionary lookup, not a parse and a resolve of every name, whatever the number
of registered definitions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from registry.access import needs_grant
from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import RequestFeatureError, UnknownFeatureError, UnknownFeatureServiceError
from registry.core.request_features import RequestFeature, RequestField, Transform, request_fields
from registry.core.timeline import Cut, Rule
from registry.feature_services import LiveFeatureServices, ServiceIndex
from registry.live import LiveCatalog
from sinks.cassandra.layout import version_stream

MAX_PLANS = 4096  # plans cached at most; past any of these bounds the cache starts again empty
MAX_PLAN_FEATURES = 100_000  # features summed over the cached plans (a plan of 1,000 names holds ~290 KB)
MAX_PLAN_KEY_CHARS = 4_000_000  # characters summed over their keys (a GET's key is its raw query, up to ~64 KB)


@dataclass(frozen=True, eq=False, slots=True)
class Plan:
    entity_type: str
    keys: tuple[str, ...]  # response keys, in request order (a renamed feature answers to its old name)
    row_keys: tuple[tuple[str, int], ...]  # stored rows: (feature name, version)
    versions: tuple[int, ...]
    labels: tuple[tuple[str, str, int], ...]  # (entity, name, version), for metrics
    # Features with equal rules in one stream share one cut per request: a request computes a handful
    # of cuts (``rule_groups``), and each feature indexes its group (``rule_of``).
    rule_groups: tuple[tuple[Rule, str], ...]
    rule_of: tuple[int, ...]
    items: tuple[tuple[str, tuple[str, int], int, int, tuple[str, str, int]], ...]  # the above, per feature
    sensitive: tuple[FeatureDefinition, ...]  # features above `internal`: a read needs their team or its grant
    memo: list[object] = field(default_factory=list)  # the last (progress, now_us, cuts): reused at the same instant
    picks: dict[object, object] = field(default_factory=dict)  # pack layout -> its picker of row_keys (vectors)
    # Request-time features (none for most plans): computed after the stored ones, placed in request order.
    requests: tuple[RequestPlan, ...] = ()
    output_keys: tuple[str, ...] = ()  # every key in request order (``keys`` when there are no requests)
    output_versions: tuple[int, ...] = ()
    stored_at: tuple[int, ...] = ()  # the output position of each stored item
    fields: tuple[RequestField, ...] = ()  # the request fields the request features take
    # The plan judged by versions' own progress keys (``under``): the last ``own`` seen and its plan, and each
    # set of this plan's versions with keys of their own -> its plan.
    own_memo: list[object] = field(default_factory=list)
    variants: dict[frozenset[tuple[str, str, int]], Plan] = field(default_factory=dict)

    @classmethod
    def of(cls, entity_type: str, keys: Sequence[str], definitions: Sequence[FeatureDefinition]) -> Plan:
        # The empty window's value is part of the group: a long count's 0 and a double sum's 0.0 compare equal
        # (and hash alike), and one group's cut would answer both with the first feature's.
        groups: dict[tuple[Rule, type, str], int] = {}
        rules = [Rule.of(d) for d in definitions]
        rule_of = tuple(
            groups.setdefault((rule, type(rule.empty), d.stream), len(groups))
            for rule, d in zip(rules, definitions, strict=True)
        )
        row_keys = tuple((d.name, d.version) for d in definitions)
        versions = tuple(d.version for d in definitions)
        labels = tuple((d.entity, d.name, d.version) for d in definitions)
        return cls(
            entity_type=entity_type,
            keys=tuple(keys),
            row_keys=row_keys,
            versions=versions,
            labels=labels,
            rule_groups=tuple((rule, stream) for rule, _, stream in groups),
            rule_of=rule_of,
            items=tuple(zip(keys, row_keys, rule_of, versions, labels, strict=True)),
            sensitive=tuple(d for d in definitions if needs_grant(d.sensitivity)),
            output_keys=tuple(keys),
            output_versions=versions,
            stored_at=tuple(range(len(keys))),
        )

    @classmethod
    def mixed(
        cls,
        catalog: FeatureCatalog,
        entity_type: str,
        keys: Sequence[str],
        features: Sequence[FeatureDefinition | RequestFeature],
    ) -> Plan:
        """A plan of stored and request-time features (``keys[i]`` answers ``features[i]``)."""
        stored = [(k, f) for k, f in zip(keys, features, strict=True) if isinstance(f, FeatureDefinition)]
        asked = [
            (i, k, f) for i, (k, f) in enumerate(zip(keys, features, strict=True)) if isinstance(f, RequestFeature)
        ]
        base = cls.of(entity_type, [k for k, _ in stored], [d for _, d in stored])
        if not asked:
            return base
        requests = tuple(RequestPlan.of(catalog, i, k, f) for i, k, f in asked)
        sensitive = {id(d): d for d in base.sensitive}
        for r in requests:
            sensitive.update((id(d), d) for d in r.inputs.sensitive)
        request_at = {i for i, _, _ in asked}
        return cls(
            entity_type=base.entity_type,
            keys=base.keys,
            row_keys=base.row_keys,
            versions=base.versions,
            labels=base.labels,
            rule_groups=base.rule_groups,
            rule_of=base.rule_of,
            items=base.items,
            sensitive=tuple(sensitive.values()),
            requests=requests,
            output_keys=tuple(keys),
            output_versions=tuple(f.version for f in features),
            stored_at=tuple(i for i in range(len(keys)) if i not in request_at),
            fields=tuple(request_fields([r.feature for r in requests]).values()),
        )

    def under(self, progress: Mapping[str, int]) -> Plan:
        """This plan as ``progress`` judges it: a stored feature whose version has a progress key of its own
        (``sinks.cassandra.layout.Progress.own``: a job of its own computes it) takes its cut from that key, every
        other one from its stream's. Usually no version has one, and the plan is itself."""
        own = getattr(progress, "own", None)
        if not own:
            return self
        memo = self.own_memo
        if memo and memo[0] is own:
            return memo[1]  # type: ignore[return-value]
        mine = own.intersection(self.labels)
        plan = self if not mine else self.variants.get(frozenset(mine)) or self._judged_by(frozenset(mine))
        memo[:] = (own, plan)
        return plan

    def _judged_by(self, own: frozenset[tuple[str, str, int]]) -> Plan:
        groups: dict[tuple[Rule, type, str], int] = {}
        rule_of = []
        for group, label in zip(self.rule_of, self.labels, strict=True):
            rule, stream = self.rule_groups[group]
            key = version_stream(stream, *label) if label in own else stream
            rule_of.append(groups.setdefault((rule, type(rule.empty), key), len(groups)))
        plan = replace(
            self,
            rule_groups=tuple((rule, key) for rule, _, key in groups),
            rule_of=tuple(rule_of),
            items=tuple(
                (key, row_key, group, version, label)
                for (key, row_key, _, version, label), group in zip(self.items, rule_of, strict=True)
            ),
            memo=[],
            picks={},
            own_memo=[],
            variants={},
        )
        self.variants[own] = plan
        return plan

    def cuts(self, progress: Mapping[str, int], now_us: int) -> list[Cut]:
        """One cut per rule group: the rule at ``now_us`` with each stream's progress (epoch ms, capped at now).

        The cuts are in milliseconds, the online store's unit (``Rule.cut(..., unit_us=1000)``), and
        exact for its whole-millisecond window ends at the microsecond ``now_us``.
        """
        memo = self.memo
        if memo and memo[0] is progress and memo[1] == now_us:
            return memo[2]  # type: ignore[return-value]
        cuts = [
            rule.cut(min(now_us, progress.get(stream, 0) * 1000), now_us, unit_us=1000)
            for rule, stream in self.rule_groups
        ]
        self.memo[:] = (progress, now_us, cuts)
        return cuts


@dataclass(frozen=True, eq=False, slots=True)
class RequestPlan:
    """One request-time feature of a plan: its output position, its function (or why it cannot run) and
    a plan of its stored inputs, read from the same entity snapshot as the rest of the vector."""

    position: int
    key: str
    feature: RequestFeature
    transform: Transform | RequestFeatureError
    inputs: Plan
    inputs_definitions: tuple[FeatureDefinition, ...]
    label: tuple[str, str, int]

    @classmethod
    def of(cls, catalog: FeatureCatalog, position: int, key: str, feature: RequestFeature) -> RequestPlan:
        try:
            transform: Transform | RequestFeatureError = Transform.of(feature)
        except RequestFeatureError as exc:  # answered as this feature's error on every read, not as a failed request
            transform = exc
        inputs = catalog.inputs_of(feature)
        return cls(
            position=position,
            key=key,
            feature=feature,
            transform=transform,
            inputs=Plan.of(feature.entity, [d.name for d in inputs], inputs),
            inputs_definitions=tuple(inputs),
            label=feature.key,
        )


def _chars(key: PlanKey) -> int:
    """The characters (bytes of a raw query) a plan key holds."""
    return sum(
        len(part) if isinstance(part, str | bytes) else _chars(part) if isinstance(part, tuple) else 1 for part in key
    )


PlanKey = tuple[str | tuple[str, ...] | None, ...]
"""What a request asked for, as the route spells it (e.g. entity type, how names were given, their text:
a raw query string, or a body's name list as a tuple, never joined into one string that two lists share)."""


class Plans:
    """Compiled plans keyed by what the request asked for; emptied when the catalog or services change."""

    def __init__(self, live: LiveCatalog, services: LiveFeatureServices | None = None) -> None:
        self._live = live
        self._services = services
        self._catalog: FeatureCatalog | None = None
        self._index: ServiceIndex | None = None
        self._plans: dict[PlanKey, Plan] = {}
        self._features = 0  # summed over the cached plans (``MAX_PLAN_FEATURES``)
        self._key_chars = 0  # summed over their keys (``MAX_PLAN_KEY_CHARS``)
        self._held = False  # inside ``one_snapshot``: no reload

    def _clear(self) -> None:
        self._plans = {}
        self._features = self._key_chars = 0

    @contextmanager
    def one_snapshot(self) -> Iterator[None]:
        """Every plan looked up or made inside resolves against the snapshot current on entry: a request of several
        parts (``POST /v1/vectors``) answers each from one catalog, never one part at a version the registry
        activated while the request's other parts were resolved. Held only by synchronous code (no ``await``
        inside), so no other request's plans wait on it."""
        self.snapshot()
        held, self._held = self._held, True
        try:
            yield
        finally:
            self._held = held

    def snapshot(self) -> tuple[FeatureCatalog, ServiceIndex | None]:
        if self._held and self._catalog is not None:
            return self._catalog, self._index
        # The services first, and the catalog checked again when they changed: a service's pins were registered
        # before it was, so a catalog at least as new as the services holds every pin (the two are checked at
        # their own times: a service another process registered would otherwise be 404 `unknown_feature` for its
        # new versions until the catalog's own check fell due).
        index = self._services.current() if self._services is not None else None
        if index is not self._index:
            self._live.invalidate()
        catalog = self._live.current()
        if catalog is not self._catalog or index is not self._index:
            self._clear()
            self._catalog, self._index = catalog, index
        return catalog, index

    def cached(self, key: PlanKey) -> Plan | None:
        self.snapshot()
        return self._plans.get(key)

    def _keep(self, key: PlanKey, plan: Plan) -> Plan:
        """Cache ``plan`` under ``key``, within the bounds on plans, their features and their keys' characters:
        a count of plans alone let distinct requests of 1,000 names (or GETs with 64 KB of extra query) hold
        over a gigabyte in one process."""
        features, chars = len(plan.output_keys) + len(plan.items), _chars(key)
        if (
            len(self._plans) >= MAX_PLANS
            or self._features + features > MAX_PLAN_FEATURES
            or self._key_chars + chars > MAX_PLAN_KEY_CHARS
        ):
            self._clear()
        if features <= MAX_PLAN_FEATURES and chars <= MAX_PLAN_KEY_CHARS:
            self._plans[key] = plan
            self._features += features
            self._key_chars += chars
        return plan

    def for_names(self, key: PlanKey, entity_type: str, names: list[str] | None) -> Plan:
        """All active features of the entity (``names`` None) or the named ones; UnknownFeatureError names the unknown."""
        catalog, _ = self.snapshot()
        if names is None:  # request features are read by name only: they need the request's data
            definitions = catalog.for_entity(entity_type)
            return self._keep(key, Plan.of(entity_type, [d.name for d in definitions], definitions))
        requests = [catalog.request_feature(entity_type, n) for n in names]
        if not any(requests):
            return self._keep(key, Plan.of(entity_type, names, catalog.resolve(entity_type, names)))
        unknown: list[str] = []
        features: list[FeatureDefinition | RequestFeature] = []
        for name, request in zip(names, requests, strict=True):
            if request is not None:
                features.append(request)
                continue
            try:
                features.extend(catalog.resolve(entity_type, [name]))
            except UnknownFeatureError:
                unknown.append(name)
        if unknown:
            raise UnknownFeatureError(entity_type, unknown)
        return self._keep(key, Plan.mixed(catalog, entity_type, names, features))

    def alias(self, key: PlanKey, plan: Plan) -> None:
        """Keep ``plan`` under another key too (a raw query string that resolved to it)."""
        self._keep(key, plan)

    def for_service(self, key: PlanKey, entity_type: str, ref: str) -> Plan:
        """The pinned versions of a feature service's features of ``entity_type`` (empty if it has none; an
        empty plan is not kept, so every request for it is refused again, not served from the cache)."""
        catalog, index = self.snapshot()
        if index is None:
            raise UnknownFeatureServiceError(ref)
        service = index.get(ref)
        pins = service.for_entity(entity_type)
        features = [
            catalog.request_feature(p.entity, p.name, p.version) or catalog.get(p.entity, p.name, p.version)
            for p in pins
        ]
        plan = Plan.mixed(catalog, entity_type, [p.name for p in pins], features)
        return self._keep(key, plan) if plan.output_keys else plan
