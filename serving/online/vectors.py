"""Assemble feature vectors with per-feature freshness from stored values and the timeline rule.

The sources a vector is read from (``VectorSource`` for in-memory and test sources,
``AsyncVectorSource`` for I/O) and the two response shapes: one entity as an object per feature,
many entities as columns aligned with the feature list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

from registry.core.timeline import Status, judge
from serving.online.plans import Plan
from sinks.cassandra.reader import Stored

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


def format_ms(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC with a ``Z``, e.g. ``2023-11-14T22:15:00.000Z``."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


def features_object(
    plan: Plan, stored: Stored, progress: Mapping[str, int], now_us: int, tally: Tally
) -> dict[str, dict[str, Any]]:
    """``{key: {value, feature_timestamp, age_seconds, version, status}}`` for one entity (``now_us``: epoch µs)."""
    cuts = plan.cuts(progress, now_us)
    get = stored.get
    stamps: dict[int, tuple[str, float]] = {}  # window ends repeat across features: format and age each once
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
            stamp = stamps[ts] = (iso(ts), round((now_us - ts * 1000) / 1e6, 3))
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
        self._stamps: dict[int, tuple[str, float]] = {}

    def row(self, entity_id: str, stored: Stored, progress: Mapping[str, int]) -> dict[str, Any]:
        plan, now_us, tally, stamps = self._plan, self._now_us, self._tally, self._stamps
        cuts = plan.cuts(progress, now_us)
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
            stamp = stamps.get(ts)
            if stamp is None:
                stamp = stamps[ts] = (iso(ts), round((now_us - ts * 1000) / 1e6, 3))
            times.append(stamp[0])
            ages.append(stamp[1])
        return {
            "entity_id": entity_id,
            "values": values,
            "feature_timestamps": times,
            "age_seconds": ages,
            "statuses": statuses,
        }
