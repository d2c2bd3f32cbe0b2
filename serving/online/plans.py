"""Read plans: what a request's names or feature service resolve to, compiled once and reused.

A plan fixes, for one entity type, the output keys, the stored rows ``(name, version)`` to read and
each feature's timeline rule in milliseconds. Plans are cached per catalog and service snapshot
(both refreshed on change, never read from the registry per request), so a request that repeats a
name list costs a dictionary lookup, not a parse and a resolve of every name, whatever the number
of registered definitions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from registry.access import needs_grant
from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import UnknownFeatureServiceError
from registry.core.timeline import Cut, Rule
from registry.feature_services import LiveFeatureServices, ServiceIndex
from registry.live import LiveCatalog

MAX_PLANS = 4096


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

    @classmethod
    def of(cls, entity_type: str, keys: Sequence[str], definitions: Sequence[FeatureDefinition]) -> Plan:
        groups: dict[tuple[Rule, str], int] = {}
        rule_of = tuple(groups.setdefault((Rule.of(d), d.stream), len(groups)) for d in definitions)
        row_keys = tuple((d.name, d.version) for d in definitions)
        versions = tuple(d.version for d in definitions)
        labels = tuple((d.entity, d.name, d.version) for d in definitions)
        return cls(
            entity_type=entity_type,
            keys=tuple(keys),
            row_keys=row_keys,
            versions=versions,
            labels=labels,
            rule_groups=tuple(groups),
            rule_of=rule_of,
            items=tuple(zip(keys, row_keys, rule_of, versions, labels, strict=True)),
            sensitive=tuple(d for d in definitions if needs_grant(d.sensitivity)),
        )

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


PlanKey = tuple[str | None, ...]
"""What a request asked for, as the route spells it (e.g. entity type, how names were given, their text)."""


class Plans:
    """Compiled plans keyed by what the request asked for; emptied when the catalog or services change."""

    def __init__(self, live: LiveCatalog, services: LiveFeatureServices | None = None) -> None:
        self._live = live
        self._services = services
        self._catalog: FeatureCatalog | None = None
        self._index: ServiceIndex | None = None
        self._plans: dict[PlanKey, Plan] = {}

    def snapshot(self) -> tuple[FeatureCatalog, ServiceIndex | None]:
        catalog = self._live.current()
        index = self._services.current() if self._services is not None else None
        if catalog is not self._catalog or index is not self._index:
            self._plans = {}
            self._catalog, self._index = catalog, index
        return catalog, index

    def cached(self, key: PlanKey) -> Plan | None:
        self.snapshot()
        return self._plans.get(key)

    def _keep(self, key: PlanKey, plan: Plan) -> Plan:
        if len(self._plans) >= MAX_PLANS:
            self._plans = {}
        self._plans[key] = plan
        return plan

    def for_names(self, key: PlanKey, entity_type: str, names: list[str] | None) -> Plan:
        """All active features of the entity (``names`` None) or the named ones; UnknownFeatureError names the unknown."""
        catalog, _ = self.snapshot()
        if names is None:
            definitions = catalog.for_entity(entity_type)
            keys = [d.name for d in definitions]
        else:
            definitions = catalog.resolve(entity_type, names)
            keys = names
        return self._keep(key, Plan.of(entity_type, keys, definitions))

    def for_service(self, key: PlanKey, entity_type: str, ref: str) -> Plan:
        """The pinned versions of a feature service's features of ``entity_type`` (empty if it has none)."""
        catalog, index = self.snapshot()
        if index is None:
            raise UnknownFeatureServiceError(ref)
        service = index.get(ref)
        pins = service.for_entity(entity_type)
        definitions = [catalog.get(p.entity, p.name, p.version) for p in pins]
        return self._keep(key, Plan.of(entity_type, [p.name for p in pins], definitions))
