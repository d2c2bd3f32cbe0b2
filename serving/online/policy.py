"""A model's policy for the features it needs: when a required feature is not fit to score on, say so by name.

A feature vector always answers, with a status per feature (``present``, ``stale``, ``expired``,
``missing``, and ``error`` for a request-time feature whose function failed); what a model may do with a value that is not ``present`` is the model owner's decision,
not the feature store's. A ``ModelPolicy`` writes that decision down once::

    policy = ModelPolicy("fraud", "7", required={"txn_count_1h": REFUSE_NOT_PRESENT}, fallback="rules_v2")
    decision = client.score_vector(policy, "user", "u1")
    if decision.fallback: score = rules(decision)          # named: "rules_v2", with the reasons
    else: score = model.predict(decision.values)

A required feature whose status is in its refused set makes the decision take the named fallback, and
the reasons list each ``feature: status``; every fallback is counted per model, feature and status
(``fs_client_fallbacks_total``). A required feature with a status the API never sends (a proxy's answer, a
newer API) is refused too, counted as ``unknown`` (fail closed); an entity whose read failed is counted as
``unavailable``. Features that are not required are passed through with their status
and never cause a fallback. There is no silent default: a refused value is never replaced by 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter

# `error`: a request-time feature whose function failed (its value is null, as a missing one's)
STATUSES = frozenset({"present", "stale", "expired", "missing", "error"})
REFUSE_NOT_PRESENT = frozenset({"stale", "expired", "missing", "error"})
REFUSE_UNKNOWN = frozenset({"expired", "missing", "error"})  # a stale value is still a value: tolerated


@dataclass(frozen=True)
class ModelPolicy:
    """What ``model`` (at ``version``) needs: per required feature, the statuses it refuses; the fallback's name."""

    model: str
    version: str
    required: Mapping[str, frozenset[str]]
    fallback: str

    def __post_init__(self) -> None:
        if not self.required:
            raise ValueError(f"policy of {self.model}: name at least one required feature")
        for name, refused in self.required.items():
            unknown = set(refused) - STATUSES
            if unknown or not refused:
                raise ValueError(
                    f"policy of {self.model}: {name!r} must refuse some of {sorted(STATUSES)}, not {sorted(refused)}"
                )
            if "present" in refused:
                raise ValueError(f"policy of {self.model}: {name!r} cannot refuse `present`")
        if not self.fallback:
            raise ValueError(f"policy of {self.model}: the fallback needs a name")


@dataclass(frozen=True)
class Decision:
    """A vector judged by a policy: ``fallback`` is None when the model may score on ``values``."""

    entity_id: str
    values: dict[str, Any]
    statuses: dict[str, str]
    fallback: str | None
    reasons: tuple[str, ...] = field(default=())


class Fallbacks:
    """Counts of fallbacks taken, per model, feature and status (a Prometheus counter in ``registry``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._counter = Counter(
            "fs_client_fallbacks",
            "Vectors a model did not score on, per required feature and the status that refused it",
            ["model", "model_version", "feature", "status"],
            registry=self.registry,
        )

    def count(self, policy: ModelPolicy, feature: str, status: str) -> None:
        self._counter.labels(policy.model, policy.version, feature, status).inc()

    def value(self, policy: ModelPolicy, feature: str, status: str) -> float:
        labels = {"model": policy.model, "model_version": policy.version, "feature": feature, "status": status}
        return float(self.registry.get_sample_value("fs_client_fallbacks_total", labels) or 0.0)


def decide(
    policy: ModelPolicy, entity_id: str, features: Mapping[str, Mapping[str, Any]], fallbacks: Fallbacks
) -> Decision:
    """The decision for one entity's ``features`` (the API's ``{name: {value, status, ...}}``).

    A required feature absent from ``features`` counts as ``missing``.
    """
    reasons = []
    for name, refused in policy.required.items():
        status = str(features[name]["status"]) if name in features else "missing"
        if status in refused or status not in STATUSES:  # a status the API never sends: not fit to score on
            reasons.append(f"{name}: {status}")
            fallbacks.count(policy, name, status if status in STATUSES else "unknown")
    return Decision(
        entity_id=entity_id,
        values={name: f["value"] for name, f in features.items()},
        statuses={name: str(f["status"]) for name, f in features.items()},
        fallback=policy.fallback if reasons else None,
        reasons=tuple(reasons),
    )


def unavailable(policy: ModelPolicy, entity_id: str, fallbacks: Fallbacks, error: str) -> Decision:
    """The decision for an entity whose read failed (in a batch that others answered): the fallback, counted under
    ``status="unavailable"`` for each required feature (no status was read; it is not one a policy refuses)."""
    for name in policy.required:
        fallbacks.count(policy, name, "unavailable")
    return Decision(entity_id, {}, {}, policy.fallback, (f"read failed: {error}",))
