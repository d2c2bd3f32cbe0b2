"""The point-in-time join of a chunk of labels, one feature at a time, vectorized over numpy and Arrow.

For each label (entity code, time ``t`` in epoch µs): the latest row of the same entity whose window
ended at or before ``t``. Ties on the window end resolve to the latest ingestion, then to the
highest revision (a late update of the window), then to ``registry.core.timeline.tie_key``'s order (Cassandra's
for equal-time cells), so the answer never depends on the physical order of rows (and a rebuild from the
same snapshot is byte-identical whatever its chunking). Then ``registry.core.timeline``'s rule: a row
older than the TTL is expired (null); a later window closed by ``min(t, reach)`` with no row held no
events (0 for counts and sums, null otherwise).

Times are compared at full precision: stored window ends are microseconds (the offline table's
unit), and so are label times. A label given in nanoseconds is compared exactly too, with two
views of it: floored to µs for "ended at or before ``t``" (a row 1 ns after the label is not seen)
and ceiled to µs for "older than the TTL" (a row 1 ns past its TTL is expired).

How: entity codes and times are packed into one int64 key (``code * span + time``); labels are
sorted by it once per chunk, each feature's rows once, and every label finds its row with one
``searchsorted``: O((rows + labels) log rows), no Python loop over rows or labels. Values never
leave Arrow (a long through float64 would lose exactness above 2**53): the result is a ``take`` by
row index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from registry.core.definitions import FeatureDefinition
from registry.core.timeline import Rule
from registry.core.value_types import arrow_type

_KEY_LIMIT = 2**62


@dataclass(frozen=True)
class LabelKeys:
    """A chunk's labels packed into sortable keys, shared by every feature joined for the chunk."""

    code: np.ndarray  # entity code per label, -1 for an entity no row has
    us: np.ndarray  # label time, epoch µs (floored, if given in ns)
    base: int
    span: int
    times: np.ndarray | None  # sorted distinct times when packed by rank (times too far apart)
    order: np.ndarray  # labels sorted by key; the join works in this order (sequential memory access)
    sorted_key: np.ndarray  # key per label in that order, -1 where code is -1
    sorted_code: np.ndarray
    sorted_us: np.ndarray
    sorted_ceil_us: np.ndarray  # label time ceiled to µs (equal to sorted_us unless given in ns): the TTL test

    @classmethod
    def build(
        cls,
        code: np.ndarray,
        us: np.ndarray,
        row_end_us: Sequence[np.ndarray],
        ceil_us: np.ndarray | None = None,
    ) -> LabelKeys:
        """Keys for labels ``(code, us)`` that also fit every row of the chunk (window ends ``row_end_us``,
        per feature; row entity codes index the labels' entities, so they are below ``code``'s bound).

        ``ceil_us``: the label times ceiled to µs where they were given more finely (default: ``us``).
        """
        times: np.ndarray | None = None
        parts = [a for a in (us, *row_end_us) if len(a)]
        base = min(int(a.min()) for a in parts) if parts else 0
        span = max(int(a.max()) for a in parts) - base + 1 if parts else 1
        codes = int(code.max(initial=-1)) + 1
        if codes * span >= _KEY_LIMIT:  # times too far apart to pack: pack their ranks instead
            times = np.unique(np.concatenate(parts))
            base, span = 0, len(times)
        empty = np.empty(0, np.int64)
        keys = cls(code, us, base, span, times, empty, empty, empty, empty, empty)
        key = np.where(code >= 0, keys.pack(code, us), -1)
        order = np.argsort(key)
        for name, value in (
            ("order", order),
            ("sorted_key", key[order]),
            ("sorted_code", code[order]),
            ("sorted_us", us[order]),
            ("sorted_ceil_us", (us if ceil_us is None else ceil_us)[order]),
        ):
            object.__setattr__(keys, name, value)
        return keys

    def pack(self, code: np.ndarray, us: np.ndarray) -> np.ndarray:
        t = us - self.base if self.times is None else np.searchsorted(self.times, us)
        return code * self.span + t


def tie_keys(values: pa.Array) -> list[np.ndarray]:
    """``np.lexsort`` keys (the last is the primary one) that order values as ``registry.core.timeline.tie_key`` does."""
    is_null = values.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        as_64 = values.fill_null(0).cast(pa.int64() if pa.types.is_integer(values.type) else pa.float64())
        return [as_64.to_numpy(zero_copy_only=False).view(np.uint64), is_null]  # the unsigned 64-bit pattern
    # Arrow orders strings by their UTF-8 bytes, unsigned (code points), and false before true.
    return [pc.rank(values, sort_keys="ascending", null_placement="at_end", tiebreaker="dense").to_numpy()]


def _winners_last(
    order: np.ndarray, sorted_key: np.ndarray, ingested_us: np.ndarray, revision: np.ndarray, values: pa.Array
) -> None:
    """Where rows share a key, put the one that counts last: latest ingestion, highest revision, then
    ``registry.core.timeline.tie_key`` (the order Cassandra keeps equal-time cells in, so online agrees).

    Only the last position of a run of equal keys is ever found by ``searchsorted(side="right") - 1``,
    so only the runs (windows stored more than once, usually few) are sorted further, in place.
    """
    same = sorted_key[1:] == sorted_key[:-1]
    if not same.any():
        return
    in_run = np.zeros(len(sorted_key), dtype=bool)
    in_run[1:] |= same
    in_run[:-1] |= same
    at = np.flatnonzero(in_run)  # positions (in sorted order) of rows in runs, runs contiguous
    rows = order[at]
    by = [revision[rows], ingested_us[rows], sorted_key[at]]  # np.lexsort: the last key is the primary one
    tied = np.lexsort(by)
    k, g, r = by[2][tied], by[1][tied], by[0][tied]
    if ((k[1:] == k[:-1]) & (g[1:] == g[:-1]) & (r[1:] == r[:-1])).any():  # the same result stored twice
        tied = np.lexsort([*tie_keys(values.take(pa.array(rows))), *by])
    order[at] = rows[tied]  # the runs keep their positions; within each, the winner is now last


def join_feature(
    labels: LabelKeys,
    code: np.ndarray,
    end_us: np.ndarray,
    ingested_us: np.ndarray,
    revision: np.ndarray,
    values: pa.Array,
    definition: FeatureDefinition,
    reach_us: int | None,
) -> pa.Array:
    """The feature's value for every label of ``labels``, in the labels' order.

    Args:
        code, end_us, ingested_us, revision: per row of this feature version: entity code, window end
            and ingestion time (epoch µs), revision.
        values: per row, the value column (any Arrow type castable to the feature's value type).
        definition: the feature version joined.
        reach_us: the latest window end stored for the feature version (any entity), or None.
    """
    out_type = arrow_type(definition.value_type)
    n = len(labels.code)
    if len(code) == 0 or n == 0:
        return pa.nulls(n, out_type)
    rule = Rule.of(definition)  # registry.core.timeline's rule, applied to whole arrays
    row_key = labels.pack(code, end_us)
    # Rows arrive as sorted runs (one per file read): a merge sort finds and merges them in a few passes.
    order = np.argsort(row_key, kind="stable")
    sorted_key = row_key[order]
    _winners_last(order, sorted_key, ingested_us, revision, values)

    # In the labels' key order: the search, and the gathers that follow, walk memory sequentially.
    pos = np.searchsorted(sorted_key, labels.sorted_key, side="right") - 1
    hit = order[np.maximum(pos, 0)]
    end = end_us[hit]
    keep = (pos >= 0) & (labels.sorted_code >= 0) & (code[hit] == labels.sorted_code)
    keep &= labels.sorted_ceil_us - end <= rule.ttl_us  # older than the TTL: expired
    empty = None
    step = rule.step_us
    if step is not None and reach_us is not None:
        # "Closed" offline: by the label time, and reached by the data (as stream progress is online).
        closed = np.minimum(labels.sorted_us, reach_us)
        empty = keep & (end < closed // step * step)
    index = np.empty(n, dtype=np.int64)  # back to the labels' own order
    index[labels.order] = hit
    missing = np.empty(n, dtype=bool)
    missing[labels.order] = ~keep
    result = values.take(pa.array(index, mask=missing))
    if empty is not None and empty.any():
        in_order = np.empty(n, dtype=bool)
        in_order[labels.order] = empty
        result = pc.if_else(pa.array(in_order), pa.scalar(rule.empty, type=result.type), result)
    return result.cast(out_type)
