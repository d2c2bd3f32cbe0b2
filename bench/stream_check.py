"""The stream bench's check of a run's results against the events it generated: ``bench.stream`` uses it.

From the events alone (``expected_windows``): every (user, window) holding an event, with the values the bench's
features define (``count`` of events, ``sum`` of ``amount``). Then:

- offline (``check_offline``): the Iceberg table's rows, per feature: each expected window present exactly once
  (a window twice, as one revision or as two, is a mismatch: the backlog is in time order, nothing is late), its
  value equal to the expected one (sums within 1e-9 relative: the job adds in another order), its revision equal
  to the window's event count; no row for a window, entity or feature no event gives;
- online (``check_online``): for each user, each feature's stored value is the user's newest window (its end and
  its value); an older window is stale; no user or feature no event gives;
- dead letters: a run over Kafka dead-letters to ``<topic>.dlq``; a batch run writes the records it refuses to
  ``batch-rejected-*.parquet`` (``rejected_records``).

Vectorized with numpy and pyarrow, so the default backlog (1M events, ~880,000 offline rows) checks in seconds.
Each check returns ``Findings``: what was compared, counts of what differed by kind, and a few examples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

EXAMPLES = 3  # per kind of difference
_END_BITS = 41  # window ends (epoch ms) below 2^41 (year 2039); user ranks above them in one int64 key
SUM_RTOL = 1e-9


@dataclass(frozen=True)
class Feature:
    """A feature the check can compute: its name, version, aggregation and offline value column."""

    name: str
    version: int
    function: str  # "count" | "sum"
    column: str

    @classmethod
    def of(cls, definition: Any) -> Feature:
        from registry.core.value_types import VALUE_COLUMNS

        function, on = definition.aggregation.function, definition.aggregation.field
        if function not in ("count", "sum") or (function == "sum" and on != "amount"):
            raise ValueError(
                f"{definition.name}: the bench's check computes count and sum of amount, not {function}({on or ''}); "
                "extend bench/stream_check.py with the new feature"
            )
        return cls(definition.name, int(definition.version), function, VALUE_COLUMNS[definition.value_type])

    def __str__(self) -> str:
        return f"{self.name}@v{self.version}"


@dataclass
class Windows:
    """Windows holding at least one event, sorted by (user, end): user rank, end (epoch ms), count, sum."""

    users: np.ndarray
    ends: np.ndarray
    counts: np.ndarray
    sums: np.ndarray

    def __len__(self) -> int:
        return len(self.ends)

    def keys(self) -> np.ndarray:
        return _key(self.users, self.ends)

    def values(self, feature: Feature) -> np.ndarray:
        return self.counts if feature.function == "count" else self.sums

    def newest(self) -> Windows:
        """Each user's newest window."""
        last = np.r_[self.users[1:] != self.users[:-1], True] if len(self) else np.zeros(0, bool)
        return Windows(self.users[last], self.ends[last], self.counts[last], self.sums[last])


def _key(users: np.ndarray, ends: np.ndarray) -> np.ndarray:
    return (users.astype(np.int64) << _END_BITS) | ends.astype(np.int64)


def expected_windows(
    users: np.ndarray, times: np.ndarray, amounts: np.ndarray, *, size_ms: int, slide_ms: int, until_ms: int
) -> Windows:
    """Every sliding window (``size_ms``, sliding by ``slide_ms``, aligned to the epoch) ending by ``until_ms`` that
    holds an event of a user: its count of events and sum of amounts. An event at ``t`` is in the windows
    ``[end - size, end)`` with ``end`` a multiple of the slide: the ``size / slide`` ends after ``t // slide``."""
    if size_ms % slide_ms:
        raise ValueError(f"window size {size_ms} ms is not a multiple of its slide {slide_ms} ms")
    per = size_ms // slide_ms
    step = np.asarray(times, dtype=np.int64) // slide_ms
    buckets, where = np.unique(_key(np.asarray(users), step), return_inverse=True)  # (user, slide step)
    counts = np.bincount(where, minlength=len(buckets))
    sums = np.bincount(where, weights=np.asarray(amounts, dtype=np.float64), minlength=len(buckets))
    spread = (buckets[:, None] + np.arange(1, per + 1, dtype=np.int64)[None, :]).ravel()
    keys, where = np.unique(spread, return_inverse=True)
    counts = np.bincount(where, weights=np.repeat(counts, per), minlength=len(keys)).astype(np.int64)
    sums = np.bincount(where, weights=np.repeat(sums, per), minlength=len(keys))
    users_out = keys >> _END_BITS
    ends = (keys & ((1 << _END_BITS) - 1)) * slide_ms
    keep = ends <= until_ms
    return Windows(users_out[keep], ends[keep], counts[keep], sums[keep])


@dataclass
class Findings:
    """What one check compared, and what differed: a count per kind and a few examples of each."""

    what: str
    compared: str
    problems: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, count: int, examples: Sequence[str]) -> None:
        if count:
            self.problems[kind] = self.problems.get(kind, 0) + int(count)
            self.examples.setdefault(kind, []).extend(examples[: EXAMPLES - len(self.examples.get(kind, []))])

    def lines(self) -> list[str]:
        head = f"check, {self.what}: {self.compared}: " + (
            "OK" if self.ok else "MISMATCH, " + "; ".join(f"{k}: {n:,}" for k, n in self.problems.items())
        )
        return [head] + [f"    {kind}: {example}" for kind, shown in self.examples.items() for example in shown]


def _when(end_ms: int) -> str:
    return datetime.fromtimestamp(end_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _equal(feature: Feature, got: np.ndarray, expected: np.ndarray) -> np.ndarray:
    got = np.asarray(got, dtype=np.float64)
    if feature.function == "count":
        return np.asarray(got == expected)
    return np.asarray(np.isclose(got, expected, rtol=SUM_RTOL, atol=1e-9))


def _ms(column: Any) -> np.ndarray:
    """Epoch milliseconds of a timestamp column (any unit)."""
    return np.asarray(column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)) // 1000


def _numbers(column: Any) -> np.ndarray:
    """A numeric column as float64, null as NaN (which equals nothing)."""
    return np.asarray(column.cast(pa.float64()).fill_null(math.nan).to_numpy(zero_copy_only=False))


def check_offline(expected: Windows, rows: pa.Table, features: Sequence[Feature], entities: Sequence[str]) -> Findings:
    """The offline rows (columns ``entity_id``, ``feature_name``, ``feature_version``, ``event_time``,
    ``revision`` and the features' value columns) against ``expected``; ``entities[rank]`` is a user's id."""
    found = Findings(
        "offline",
        f"{rows.num_rows:,} Iceberg rows against {len(expected):,} windows x {len(features)} features "
        "computed from the events (each window once, its value and revision)",
    )
    ids = rows.column("entity_id")
    ranks = np.asarray(
        pc.index_in(ids, value_set=pa.array(list(entities), ids.type)).fill_null(-1).to_numpy(), np.int64
    )
    ends = _ms(rows.column("event_time"))
    revisions = np.asarray(rows.column("revision").fill_null(-1).to_numpy(zero_copy_only=False), np.int64)
    names = rows.column("feature_name")
    versions = rows.column("feature_version")
    ekeys = expected.keys()
    accounted = np.zeros(rows.num_rows, dtype=bool)
    for feature in features:
        mine = np.asarray(
            pc.and_(pc.equal(names, feature.name), pc.equal(versions, feature.version)).to_numpy(zero_copy_only=False),
            dtype=bool,
        )
        accounted |= mine
        stranger = mine & (ranks < 0)
        found.add(
            f"{feature} rows of an entity no event has",
            int(stranger.sum()),
            [f"{ids[int(i)]} window ending {_when(int(ends[i]))}" for i in np.flatnonzero(stranger)[:EXAMPLES]],
        )
        index = np.flatnonzero(mine & (ranks >= 0))
        keys = _key(ranks[index], ends[index])
        values = _numbers(rows.column(feature.column).take(pa.array(index)))
        # each window once
        distinct, first, times = np.unique(keys, return_index=True, return_counts=True)
        twice = np.flatnonzero(times > 1)
        found.add(
            f"{feature} windows present more than once",
            len(twice),
            [
                f"{entities[int(ranks[index[first[j]]])]} window ending {_when(int(ends[index[first[j]]]))}: "
                f"{int(times[j])} rows, revisions {sorted(int(r) for r in revisions[index[keys == distinct[j]]])}"
                for j in twice[:EXAMPLES]
            ],
        )
        # expected windows missing
        missing = np.flatnonzero(~np.isin(ekeys, distinct))
        found.add(
            f"{feature} windows missing",
            len(missing),
            [
                f"{entities[int(expected.users[j])]} window ending {_when(int(expected.ends[j]))} "
                f"(expected {_show(feature, expected.values(feature)[j])}, {int(expected.counts[j])} events)"
                for j in missing[:EXAMPLES]
            ],
        )
        # rows of windows no event gives
        at = np.minimum(np.searchsorted(ekeys, keys), max(len(ekeys) - 1, 0))
        known = (ekeys[at] == keys) if len(ekeys) else np.zeros(len(keys), dtype=bool)
        extra = np.flatnonzero(~known)
        found.add(
            f"{feature} rows of a window no event gives",
            len(extra),
            [
                f"{entities[int(ranks[index[i]])]} window ending {_when(int(ends[index[i]]))}: "
                f"{_show(feature, values[i])}"
                for i in extra[:EXAMPLES]
            ],
        )
        # values and revisions of the rest
        hit = np.flatnonzero(known)
        want = expected.values(feature)[at[hit]]
        wrong = hit[~_equal(feature, values[hit], want)]
        found.add(
            f"{feature} wrong values",
            len(wrong),
            [
                f"{entities[int(ranks[index[i]])]} window ending {_when(int(ends[index[i]]))}: "
                f"{_show(feature, values[i])}, expected {_show(feature, expected.values(feature)[at[i]])}"
                for i in wrong[:EXAMPLES]
            ],
        )
        off = hit[revisions[index[hit]] != expected.counts[at[hit]]]
        found.add(
            f"{feature} revisions not the window's event count",
            len(off),
            [
                f"{entities[int(ranks[index[i]])]} window ending {_when(int(ends[index[i]]))}: revision "
                f"{int(revisions[index[i]])}, {int(expected.counts[at[i]])} events"
                for i in off[:EXAMPLES]
            ],
        )
    others = np.flatnonzero(~accounted)
    found.add(
        "rows of other features",
        len(others),
        [f"{names[int(i)]}@v{versions[int(i)]} of {ids[int(i)]}" for i in others[:EXAMPLES]],
    )
    return found


def _show(feature: Feature, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    return f"{int(value)}" if feature.function == "count" else f"{float(value):.6f}"


def check_online(
    expected: Windows,
    vectors: Mapping[str, Mapping[tuple[str, int], tuple[object, int]]],
    features: Sequence[Feature],
    entities: Sequence[str],
) -> Findings:
    """Each user's online vector (``entity_id -> {(name, version): (value, window end ms)}``) against the user's
    newest expected window: each feature's value and window end."""
    newest = expected.newest()
    found = Findings(
        "online",
        f"{len(vectors):,} users' stored values against each of {len(newest):,} users' newest window x "
        f"{len(features)} features (window end and value)",
    )
    wanted = {entities[int(u)] for u in newest.users}
    strangers = sorted(set(vectors) - wanted)
    found.add("online rows of an entity no event has", len(strangers), strangers[:EXAMPLES])
    refs = {(f.name, f.version) for f in features}
    for j, user in enumerate(newest.users.tolist()):
        entity, end = entities[user], int(newest.ends[j])
        vector = vectors.get(entity)
        if vector is None:
            found.add("users without an online row", 1, [f"{entity} (newest window ending {_when(end)})"])
            continue
        other = sorted(f"{name}@v{version}" for name, version in vector if (name, version) not in refs)
        found.add("values of other features", len(other), [f"{entity}: {o}" for o in other])
        for feature in features:
            want = newest.values(feature)[j]
            got = vector.get((feature.name, feature.version))
            if got is None:
                found.add(f"{feature} missing", 1, [f"{entity} (expected {_show(feature, want)} at {_when(end)})"])
                continue
            value, got_end = got
            if got_end != end:
                kind = "stale (an older window)" if got_end < end else "newer than the newest window"
                found.add(
                    f"{feature} {kind}",
                    1,
                    [
                        f"{entity}: window ending {_when(got_end)} ({_show(feature, value)}), newest "
                        f"{_when(end)} ({_show(feature, want)})"
                    ],
                )
            elif value is None or not bool(_equal(feature, np.array([value], dtype=np.float64), np.array([want]))[0]):
                found.add(
                    f"{feature} wrong values",
                    1,
                    [f"{entity} window ending {_when(end)}: {_show(feature, value)}, expected {_show(feature, want)}"],
                )
    return found


def check_dead_letters(count: int, where: str) -> Findings:
    found = Findings("dead letters", f"{count:,} in {where}")
    found.add("dead letters", count, [f"{count:,} records in {where}"])
    return found


def rejected_records(folder: Path) -> tuple[int, list[Path]]:
    """Records a batch run refused: the rows of its ``batch-rejected-*.parquet`` files in ``folder``."""
    import pyarrow.parquet as pq

    files = sorted(folder.glob("batch-rejected-*.parquet"))
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files), files
