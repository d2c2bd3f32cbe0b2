"""Assemble feature vectors with per-feature freshness from stored values and the timeline rule.

The sources a vector is read from (``VectorSource`` for in-memory and test sources,
``AsyncVectorSource`` for I/O) and the two response shapes: one entity as an object per feature,
many entities as columns aligned with the feature list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from operator import ge, itemgetter
from typing import Any, Protocol, runtime_checkable

from registry.core.timeline import Status, judge
from serving.online.plans import Plan
from sinks.cassandra.reader import PackedVector, Stored

Tally = dict[tuple[tuple[str, str, int], str], int]
"""Values served with a status other than ``present`` (a timeline status, or ``error`` for a request-time
feature whose function failed), by feature label and status (for metrics)."""


class VectorSource(Protocol):
    """A synchronous source; one without the async methods is called on the event loop, so it must not block."""

    def read(self, entity_type: str, entity_id: str) -> Stored: ...

    def progress(self) -> dict[str, int]: ...


@runtime_checkable
class AsyncVectorSource(Protocol):
    async def read_many_async(self, entity_type: str, entity_ids: Sequence[str]) -> list[Stored]: ...

    async def progress_async(self) -> dict[str, int]: ...


class _Inline:
    """An in-memory VectorSource seen as an AsyncVectorSource."""

    def __init__(self, source: VectorSource) -> None:
        self._source = source

    async def read_many_async(self, entity_type: str, entity_ids: Sequence[str]) -> list[Stored]:
        return [self._source.read(entity_type, eid) for eid in entity_ids]

    async def progress_async(self) -> dict[str, int]:
        return self._source.progress()


def as_async(source: VectorSource | AsyncVectorSource) -> AsyncVectorSource:
    return source if isinstance(source, AsyncVectorSource) else _Inline(source)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_ms(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC with a ``Z``, e.g. ``2023-11-14T22:15:00.000Z`` (exact: in whole
    milliseconds, never through a float, which is 1 ms short for some times after about 2109)."""
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


iso = lru_cache(maxsize=16_384)(format_ms)  # window ends repeat across features and entities: format each once


def _value(
    cut: Any, hit: tuple[Any, int] | None, label: tuple[str, str, int], tally: Tally
) -> tuple[Any, int | None, Status]:
    """One feature's (value, feature timestamp, status) from its stored row; counts non-present statuses."""
    if hit is not None and hit[1] >= cut[4]:  # the fast path: a row for the latest closed window or newer
        return hit[0], hit[1], "present"
    value, ts, status = judge(cut, None, None) if hit is None else judge(cut, hit[1], hit[0])
    if status != "present":
        tally[(label, status)] = tally.get((label, status), 0) + 1
    return value, ts, status


_VALUE, _END = itemgetter(0), itemgetter(1)


class _Stamps:
    """Each window end's ISO text and age at one instant, computed once (window ends repeat across features
    and entities)."""

    __slots__ = ("ages", "now_us", "texts")

    def __init__(self, now_us: int) -> None:
        self.now_us = now_us
        self.texts: dict[int, str] = {}
        self.ages: dict[int, float] = {}

    def stamp(self, ts: int) -> tuple[str, float]:
        text = self.texts.get(ts)
        if text is None:
            text = self.texts[ts] = iso(ts)
            self.ages[ts] = (self.now_us // 1000 - ts) / 1000
        return text, self.ages[ts]

    def columns(self, ends: list[int]) -> tuple[list[str], list[float]]:
        """The ISO texts and ages of ``ends``, in order."""
        texts, ages = self.texts, self.ages
        try:
            return list(map(texts.__getitem__, ends)), list(map(ages.__getitem__, ends))
        except KeyError:
            for ts in set(ends).difference(texts):
                self.stamp(ts)
            return list(map(texts.__getitem__, ends)), list(map(ages.__getitem__, ends))


_UNSEEN = object()
_MAX_PICKS = 64  # pack layouts a plan remembers


def _packed(plan: Plan, stored: PackedVector, floor: int | None) -> tuple[list[Any], int] | None:
    """``_fresh`` for a vector read as one pack: every feature of the plan in it, the pack's window end at or
    after ``floor`` (the greatest ``present_from`` of the plan's features): their values (by positions, no
    lookup per feature) and that end."""
    pick = plan.picks.get(stored.layout, _UNSEEN)
    if pick is _UNSEEN:
        if len(plan.picks) >= _MAX_PICKS:
            plan.picks.clear()
        pick = plan.picks[stored.layout] = stored.layout.picker(plan.row_keys)
    if pick is None or floor is None or stored.end_ms < floor:
        return None
    return pick(stored.member_values), stored.end_ms  # type: ignore[operator]


def _floor(cuts: list[Any]) -> int | None:
    """The greatest ``present_from`` over a plan's cuts (each cut is some feature's), None for no cuts."""
    return max(cut[4] for cut in cuts) if cuts else None


def _fresh(plan: Plan, stored: Stored, floors: list[int]) -> tuple[list[Any], list[int]] | None:
    """The fast path: when every feature has a stored value at or after its ``present_from`` (all present, the
    common case), their values and window ends, in C-level loops; None otherwise (judge each feature)."""
    hits: list[Any] = list(map(stored.get, plan.row_keys))
    try:
        ends = list(map(_END, hits))
    except TypeError:  # a feature without a stored value
        return None
    if not all(map(ge, ends, floors)):
        return None
    return list(map(_VALUE, hits)), ends


def features_object(
    plan: Plan, stored: Stored, progress: Mapping[str, int], now_us: int, tally: Tally
) -> dict[str, dict[str, Any]]:
    """``{key: {value, feature_timestamp, age_seconds, version, status}}`` for one entity (``now_us``: epoch µs)."""
    plan = plan.under(progress)
    cuts = plan.cuts(progress, now_us)
    packed = _packed(plan, stored, _floor(cuts)) if stored.__class__ is PackedVector else None
    if packed is not None:  # every feature present, one window end
        end = packed[1]
        text, age = iso(end), (now_us // 1000 - end) / 1000
        return {
            key: {
                "value": value,
                "feature_timestamp": text,
                "age_seconds": age,
                "version": version,
                "status": "present",
            }
            for key, value, version in zip(plan.keys, packed[0], plan.versions, strict=True)
        }
    get = stored.get
    # Window ends repeat across features: format and age each once (inline, not ``_Stamps.stamp``: a call per
    # feature costs ~7 µs a 100-feature request).
    stamps: dict[int, tuple[str, float]] = {}
    out = {}
    for key, row_key, group, version, label in plan.items:
        value, ts, status = _value(cuts[group], get(row_key), label, tally)
        if ts is None:
            out[key] = {
                "value": value,
                "feature_timestamp": None,
                "age_seconds": None,
                "version": version,
                "status": status,
            }
            continue
        stamp = stamps.get(ts)
        if stamp is None:
            stamp = stamps[ts] = (iso(ts), (now_us // 1000 - ts) / 1000)
        out[key] = {
            "value": value,
            "feature_timestamp": stamp[0],
            "age_seconds": stamp[1],
            "version": version,
            "status": status,
        }
    return out


class ColumnWriter:
    """Many entities' vectors as columns aligned with ``plan.keys``."""

    def __init__(self, plan: Plan, now_us: int, tally: Tally) -> None:
        self._plan = plan
        self._now_us = now_us
        self._tally = tally
        self._stamps = _Stamps(now_us)
        self._present = ["present"] * len(plan.keys)
        # (cuts, each feature's present_from under them, the greatest of those)
        self._floors: tuple[object, list[int], int | None] = (None, [], None)

    def row(self, entity_id: str, stored: Stored, progress: Mapping[str, int]) -> dict[str, Any]:
        plan, tally, stamps = self._plan.under(progress), self._tally, self._stamps
        cuts = plan.cuts(progress, self._now_us)
        if self._floors[0] is not cuts:  # the plan memoizes its cuts: usually the same list for every entity
            self._floors = (cuts, [cuts[g][4] for g in plan.rule_of], _floor(cuts))
        packed = _packed(plan, stored, self._floors[2]) if stored.__class__ is PackedVector else None
        if packed is not None:
            n = len(packed[0])
            text, age = stamps.stamp(packed[1])
            return {
                "entity_id": entity_id,
                "values": packed[0],
                "feature_timestamps": [text] * n,
                "age_seconds": [age] * n,
                "statuses": self._present.copy(),
            }
        fresh = _fresh(plan, stored, self._floors[1])
        if fresh is not None:
            texts, stamped = stamps.columns(fresh[1])
            return {
                "entity_id": entity_id,
                "values": fresh[0],
                "feature_timestamps": texts,
                "age_seconds": stamped,
                "statuses": self._present.copy(),  # a list of its own: a caller may change one row's lists
            }
        get = stored.get
        values: list[Any] = []
        times: list[str | None] = []
        ages: list[float | None] = []
        statuses: list[str] = []
        for _, row_key, group, _, label in plan.items:
            value, ts, status = _value(cuts[group], get(row_key), label, tally)
            values.append(value)
            statuses.append(status)
            if ts is None:
                times.append(None)
                ages.append(None)
                continue
            text, age = stamps.stamp(ts)
            times.append(text)
            ages.append(age)
        return {
            "entity_id": entity_id,
            "values": values,
            "feature_timestamps": times,
            "age_seconds": ages,
            "statuses": statuses,
        }
