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


# Before every window end a reader can meet: a session window (no grid) is never superseded by a later one.
_NO_GRID = -(2**63)

Cut = tuple[int, int, int, object, int]
"""The rule of one feature at one instant: ``(expired_before_ms, latest_closed_ms, stale_before_ms, empty,
present_from_ms)``; a stored row whose window end is at or after ``present_from_ms`` is served as stored, present."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One definition's timeline rule with its durations in milliseconds, computed once per definition.

    ``cut(closed_through_ms, now_ms)`` fixes the rule at one instant; ``judge`` then applies it to a
    stored row with three integer comparisons, which is what a vector of many features pays per feature.
    """

    ttl_ms: int
    freshness_ms: int
    step_ms: int | None
    empty: int | float | None

    @classmethod
    def of(cls, definition: FeatureDefinition) -> Rule:
        return cls(to_millis(definition.ttl), to_millis(definition.freshness_slo), step_ms(definition),
                   empty_value(definition))  # fmt: skip

    def cut(self, closed_through_ms: int, now_ms: int) -> Cut:
        step = self.step_ms
        latest_closed = closed_through_ms // step * step if step is not None else _NO_GRID
        expired_before, stale_before = now_ms - self.ttl_ms, now_ms - self.freshness_ms
        return (
            expired_before,
            latest_closed,
            stale_before,
            self.empty,
            max(expired_before, latest_closed, stale_before),
        )


def judge(cut: Cut, stored_end_ms: int | None, stored_value: object) -> tuple[object, int | None, Status]:
    """``(value, feature_ts_ms, status)`` of the latest stored row (or None) under a rule fixed by ``Rule.cut``."""
    if stored_end_ms is None:
        return None, None, "missing"
    expired_before, latest_closed, stale_before, empty, _ = cut
    if stored_end_ms < expired_before:  # now - W > ttl
        return None, stored_end_ms, "expired"
    if stored_end_ms < latest_closed:  # a later window closed without a row: it held no events
        return empty, latest_closed, ("stale" if latest_closed < stale_before else "present")
    return stored_value, stored_end_ms, ("stale" if stored_end_ms < stale_before else "present")


def resolve(
    definition: FeatureDefinition,
    stored_end_ms: int | None,
    stored_value: object,
    *,
    closed_through_ms: int,
    now_ms: int,
) -> Resolved:
    """The value a reader at ``now_ms`` sees, given the latest stored row (or None)."""
    value, feature_ts, status = judge(Rule.of(definition).cut(closed_through_ms, now_ms), stored_end_ms, stored_value)
    return Resolved(value, feature_ts, status)
