"""What a stored window result means at a point in time: the one rule online and offline share.

Windows are aligned on multiples of their step (the slide of a sliding window, the size of a
tumbling one) from the epoch, as Flink aligns them. A result row stored for the window ending at
``W`` holds until the next window closes. If by time ``t`` a later window ``L`` has closed and no
row exists for it, that window held no events: a count or sum is then 0 and other aggregations
have no value. The feature timestamp is the end of the window the value describes, ``max(W, L)``,
so its age measures pipeline lag, not how long the entity has been quiet. A stored row older than
the feature's TTL is expired (online, Cassandra's TTL deletes it an hour later: the cell's TTL is the
remaining TTL plus ``EXPIRED_GRACE_S``, so serving says ``expired``, not ``missing``, for that hour).

``closed_through_us`` is the latest window end the pipeline has closed for the feature's source
(online: the writer's recorded progress, capped at now; offline: the earlier of the label time and the
data's reach, docs/design.md §5.2).

Precision: the rule works in epoch microseconds, the precision the offline table stores. Times are
compared at full precision, never rounded to whole milliseconds, so a row stored 1 µs after a label
is in that label's future and a row 1 µs past its TTL is expired. A store that keeps coarser times
(the online store keeps whole milliseconds) gets a cut in its own unit (``Rule.cut(..., unit_us=1000)``)
whose thresholds are rounded so that comparing its whole-unit times gives exactly the answer the
microsecond comparison gives. A time given more finely than the stored one (a label frame in
nanoseconds) is compared exactly too: "at or before the label" floors the label to the stored unit,
"older than the TTL" ceils it (``serving.offline.asof_join``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal, NamedTuple

from registry.core.definitions import FeatureDefinition, ValueType
from registry.core.durations import to_millis

Status = Literal["present", "missing", "expired", "stale"]
_ZERO_WHEN_EMPTY = {"count": 0, "count_distinct": 0, "sum": 0}


def step_ms(definition: FeatureDefinition) -> int | None:
    """Distance between consecutive window ends; None for session windows (no grid)."""
    window = definition.window
    step = window.slide if window.kind == "sliding" else window.size if window.kind == "tumbling" else None
    return to_millis(step) if step is not None else None


def step_us(definition: FeatureDefinition) -> int | None:
    """``step_ms`` in microseconds (durations are whole milliseconds, so the grid is too)."""
    step = step_ms(definition)
    return step * 1000 if step is not None else None


def ceil_div(a: int, b: int) -> int:
    """``a / b`` rounded up, in integer arithmetic."""
    return -(-a // b)


def empty_value(definition: FeatureDefinition) -> int | float | None:
    """The value of a window that holds no events: 0 for counts and sums, no value otherwise."""
    zero = _ZERO_WHEN_EMPTY.get(definition.aggregation.function)
    if zero is None:
        return None
    return float(zero) if definition.value_type == "double" else zero


def tie_key(value: object, value_type: ValueType) -> tuple[int, int | bytes]:
    """Of two results of one feature tied on window end, ingestion time and revision, the greater key counts.

    It is the order in which Cassandra keeps one of two cells written with the same write time within one
    second (of two seconds apart it keeps the later written, whatever the value: docs/design.md §5.1; the
    online writer's write time is window end plus revision), so online and offline choose alike:
    no value (null: the online layout's ``NULL`` marker or null bit, which order above every value; a null
    stored as a tombstone, as the row layout before cells did, wins too) above every value; then the greater
    serialized value compared as unsigned bytes: a long or double by its 64-bit big-endian pattern
    read as an unsigned number (so every negative number is above every non-negative one, and among
    doubles of one sign the order is by magnitude), a string by its UTF-8 bytes (code point order),
    true above false. ``serving.offline.asof_join`` applies the same order to whole arrays.
    """
    if value is None:
        return (1, 0)
    if value_type == "long":
        return (0, int(value) & 0xFFFF_FFFF_FFFF_FFFF)  # type: ignore[call-overload]
    if value_type == "double":
        return (0, int(struct.unpack(">Q", struct.pack(">d", value))[0]))
    if value_type == "string":
        return (0, str(value).encode())
    return (0, int(bool(value)))


@dataclass(frozen=True, slots=True)
class Resolved:
    value: object
    feature_ts_us: int | None
    status: Status


# Before every window end a reader can meet: a session window (no grid) is never superseded by a later one.
_NO_GRID = -(2**63)


class Cut(NamedTuple):
    """The rule of one feature at one instant, in one time unit (a tuple: the hot path unpacks it by position).

    A stored row whose window end is at or after ``present_from`` is served as stored, present.
    """

    expired_before: int
    latest_closed: int
    stale_before: int
    empty: object
    present_from: int


@dataclass(frozen=True, slots=True)
class Rule:
    """One definition's timeline rule with its durations in microseconds, computed once per definition.

    ``cut(closed_through_us, now_us)`` fixes the rule at one instant; ``judge`` then applies it to a
    stored row with three integer comparisons, which is what a vector of many features pays per feature.
    The offline join (``serving.offline.asof_join``) applies the same fields to whole arrays of rows.
    """

    ttl_us: int
    freshness_us: int
    step_us: int | None
    empty: int | float | None

    @classmethod
    def of(cls, definition: FeatureDefinition) -> Rule:
        return cls(
            to_millis(definition.ttl) * 1000,
            to_millis(definition.freshness_slo) * 1000,
            step_us(definition),
            empty_value(definition),
        )

    def cut(self, closed_through_us: int, now_us: int, *, unit_us: int = 1) -> Cut:
        """The rule at ``now_us`` for stored window ends counted in units of ``unit_us`` microseconds.

        With ``unit_us=1000`` (a store of whole milliseconds) every threshold ``end < X µs`` becomes
        ``end < ceil(X / 1000) ms``, which is the same test for whole-millisecond ends; the grid of
        window ends is whole milliseconds, so ``latest_closed`` converts exactly. The cut's times, and
        the feature timestamps ``judge`` returns, are then in milliseconds.
        """
        step = self.step_us
        latest_closed = closed_through_us // step * step if step is not None else _NO_GRID
        expired_before, stale_before = now_us - self.ttl_us, now_us - self.freshness_us
        if unit_us != 1:
            if step is not None:
                latest_closed //= unit_us  # exact: window ends lie on a grid of whole milliseconds
            expired_before, stale_before = ceil_div(expired_before, unit_us), ceil_div(stale_before, unit_us)
        return Cut(
            expired_before, latest_closed, stale_before, self.empty, max(expired_before, latest_closed, stale_before)
        )


def judge(cut: Cut, stored_end: int | None, stored_value: object) -> tuple[object, int | None, Status]:
    """``(value, feature_ts, status)`` of the latest stored row (or None) under a rule fixed by ``Rule.cut``.

    ``stored_end`` and the returned feature timestamp are in the cut's unit.
    """
    if stored_end is None:
        return None, None, "missing"
    expired_before, latest_closed, stale_before, empty, _ = cut
    if stored_end < expired_before:  # now - W > ttl
        return None, stored_end, "expired"
    if stored_end < latest_closed:  # a later window closed without a row: it held no events
        return empty, latest_closed, ("stale" if latest_closed < stale_before else "present")
    return stored_value, stored_end, ("stale" if stored_end < stale_before else "present")


def resolve(
    definition: FeatureDefinition,
    stored_end_us: int | None,
    stored_value: object,
    *,
    closed_through_us: int,
    now_us: int,
) -> Resolved:
    """The value a reader at ``now_us`` sees, given the latest stored row (or None); times in epoch µs."""
    value, feature_ts, status = judge(Rule.of(definition).cut(closed_through_us, now_us), stored_end_us, stored_value)
    return Resolved(value, feature_ts, status)


def retention_cutoff_us(definition: FeatureDefinition, now_us: int) -> int:
    """The earliest window end the offline table keeps of ``definition`` at ``now_us``, in epoch µs: a row whose
    window ended before it is past ``offline_retention`` (retention deletes it, the job does not write it), one
    exactly at it is kept."""
    return now_us - to_millis(definition.offline_retention) * 1000
