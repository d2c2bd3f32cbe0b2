"""What a stored window result means at a point in time: the one rule online and offline share.

Windows are aligned on multiples of their step (the slide of a sliding window, the size of a
tumbling one) from the epoch, as Flink aligns them. A result row stored for the window ending at
``W`` holds until the next window closes. If by time ``t`` a later window ``L`` has closed and no
row exists for it, that window held no events: a count or sum is then 0 and other aggregations
have no value. The feature timestamp is the end of the window the value describes, ``max(W, L)``,
so its age measures pipeline lag, not how long the entity has been quiet. A stored row older than
the feature's TTL is expired (online, Cassandra's TTL deletes it at the same moment).

``closed_through_ms`` is the latest window end the pipeline has closed for the feature's source
(online: the writer's recorded progress, capped at now; offline: the label time itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from registry.definitions import FeatureDefinition
from registry.durations import to_millis

Status = Literal["present", "missing", "expired", "stale"]
_ZERO_WHEN_EMPTY = {"count": 0, "count_distinct": 0, "sum": 0}


def step_ms(definition: FeatureDefinition) -> int | None:
    """Distance between consecutive window ends; None for session windows (no grid)."""
    window = definition.window
    step = window.slide if window.kind == "sliding" else window.size if window.kind == "tumbling" else None
    return to_millis(step) if step is not None else None


def empty_value(definition: FeatureDefinition) -> int | float | None:
    """The value of a window that holds no events: 0 for counts and sums, no value otherwise."""
    zero = _ZERO_WHEN_EMPTY.get(definition.aggregation.function)
    if zero is None:
        return None
    return float(zero) if definition.value_type == "double" else zero


@dataclass(frozen=True, slots=True)
class Resolved:
    value: object
    feature_ts_ms: int | None
    status: Status


def resolve(
    definition: FeatureDefinition,
    stored_end_ms: int | None,
    stored_value: object,
    *,
    closed_through_ms: int,
    now_ms: int,
) -> Resolved:
    """The value a reader at ``now_ms`` sees, given the latest stored row (or None)."""
    if stored_end_ms is None:
        return Resolved(None, None, "missing")
    if now_ms - stored_end_ms > to_millis(definition.ttl):
        return Resolved(None, stored_end_ms, "expired")
    value, feature_ts = stored_value, stored_end_ms
    step = step_ms(definition)
    if step is not None:
        latest_closed = closed_through_ms // step * step
        if stored_end_ms < latest_closed:
            value, feature_ts = empty_value(definition), latest_closed
    if now_ms - feature_ts > to_millis(definition.freshness_slo):
        return Resolved(value, feature_ts, "stale")
    return Resolved(value, feature_ts, "present")
