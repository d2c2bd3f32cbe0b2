"""The point-in-time join of a chunk of labels, one feature at a time, vectorized over numpy and Arrow.

For each label (entity code, time ``t`` in epoch ms): the latest row of the same entity whose window
ended at or before ``t``. Ties on the window end resolve to the latest ingestion, then to the
highest revision (a late update of the window), then to the greatest value, so the answer never depends on the physical order of rows (and a rebuild from the
same snapshot is byte-identical whatever its chunking). Then ``registry.timeline``'s rule: a row
older than the TTL is expired (null); a later window closed by ``min(t, reach)`` with no row held no
events (0 for counts and sums, null otherwise).

How: entity codes and times are packed into one int64 key (``code * span + time``); labels are
sorted by it once per chunk, each feature's rows once, and every label finds its row with one
``searchsorted``: O((rows + labels) log rows), no Python loop over rows or labels. Values never
leave Arrow (a long through float64 would lose exactness above 2**53): the result is a ``take`` by
row index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from registry.definitions import FeatureDefinition
from registry.durations import to_millis
from registry.timeline import empty_value, step_ms

ARROW_TYPES = {"long": pa.int64(), "double": pa.float64(), "string": pa.string(), "boolean": pa.bool_()}
_KEY_LIMIT = 2**62


@dataclass(frozen=True)
class LabelKeys:
    """A chunk's labels packed into sortable keys, shared by every feature joined for the chunk."""

    code: np.ndarray  # entity code per label, -1 for an entity no row has
    ms: np.ndarray  # label time, epoch ms
    base: int
    span: int
    times: np.ndarray | None  # sorted distinct times when packed by rank (times too far apart)
    order: np.ndarray  # labels sorted by key; the join works in this order (sequential memory access)
    sorted_key: np.ndarray  # key per label in that order, -1 where code is -1
    sorted_code: np.ndarray
    sorted_ms: np.ndarray

    @classmethod
    def build(cls, code: np.ndarray, ms: np.ndarray, row_code: np.ndarray, row_end_ms: np.ndarray) -> LabelKeys:
        """Keys for labels ``(code, ms)`` that also fit every row ``(row_code, row_end_ms)`` of the chunk."""
        times: np.ndarray | None = None
        all_ms = np.concatenate([ms, row_end_ms])
        base = int(all_ms.min()) if len(all_ms) else 0
        span = int(all_ms.max()) - base + 1 if len(all_ms) else 1
        codes = int(max(code.max(initial=-1), row_code.max(initial=-1))) + 1
        if codes * span >= _KEY_LIMIT:  # times too far apart to pack: pack their ranks instead
            times = np.unique(all_ms)
            base, span = 0, len(times)
        empty = np.empty(0, np.int64)
        keys = cls(code, ms, base, span, times, empty, empty, empty, empty)
        key = np.where(code >= 0, keys.pack(code, ms), -1)
        order = np.argsort(key)
        for name, value in (("order", order), ("sorted_key", key[order]), ("sorted_code", code[order]),
                            ("sorted_ms", ms[order])):  # fmt: skip
            object.__setattr__(keys, name, value)
        return keys

    def pack(self, code: np.ndarray, ms: np.ndarray) -> np.ndarray:
        t = ms - self.base if self.times is None else np.searchsorted(self.times, ms)
        return code * self.span + t


def _winners_last(order: np.ndarray, sorted_key: np.ndarray, ingested_ms: np.ndarray, revision: np.ndarray,
                  values: pa.Array) -> None:  # fmt: skip
    """Where rows share a key, put the one that counts last: latest ingestion, highest revision, greatest value.

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
    by = [revision[rows], ingested_ms[rows], sorted_key[at]]  # np.lexsort: the last key is the primary one
    tied = np.lexsort(by)
    k, g, r = by[2][tied], by[1][tied], by[0][tied]
    if ((k[1:] == k[:-1]) & (g[1:] == g[:-1]) & (r[1:] == r[:-1])).any():  # the same result stored twice
        rank = pc.rank(values.take(pa.array(rows)), sort_keys="ascending", null_placement="at_start",
                       tiebreaker="dense").to_numpy()  # fmt: skip
        tied = np.lexsort([rank, *by])
    order[at] = rows[tied]  # the runs keep their positions; within each, the winner is now last


def join_feature(
    labels: LabelKeys,
    code: np.ndarray,
    end_ms: np.ndarray,
    ingested_ms: np.ndarray,
    revision: np.ndarray,
    values: pa.Array,
    definition: FeatureDefinition,
    reach_ms: int | None,
) -> pa.Array:
    """The feature's value for every label of ``labels``, in the labels' order.

    Args:
        code, end_ms, ingested_ms, revision: per row of this feature version: entity code, window end,
            ingestion time, revision.
        values: per row, the value column (any Arrow type castable to the feature's value type).
        definition: the feature version joined.
        reach_ms: the latest window end stored for the feature version (any entity), or None.
    """
    out_type = ARROW_TYPES[definition.value_type]
    n = len(labels.code)
    if len(code) == 0 or n == 0:
        return pa.nulls(n, out_type)
    row_key = labels.pack(code, end_ms)
    order = np.argsort(row_key)
    sorted_key = row_key[order]
    _winners_last(order, sorted_key, ingested_ms, revision, values)

    # In the labels' key order: the search, and the gathers that follow, walk memory sequentially.
    pos = np.searchsorted(sorted_key, labels.sorted_key, side="right") - 1
    hit = order[np.maximum(pos, 0)]
    end = end_ms[hit]
    label_ms = labels.sorted_ms
    keep = (pos >= 0) & (labels.sorted_code >= 0) & (code[hit] == labels.sorted_code)
    keep &= label_ms - end <= to_millis(definition.ttl)  # older than the TTL: expired
    empty = None
    step = step_ms(definition)
    if step is not None and reach_ms is not None:
        # "Closed" offline: by the label time, and reached by the data (as stream progress is online).
        closed = np.minimum(label_ms, reach_ms)
        empty = keep & (end < closed // step * step)
    index = np.empty(n, dtype=np.int64)  # back to the labels' own order
    index[labels.order] = hit
    missing = np.empty(n, dtype=bool)
    missing[labels.order] = ~keep
    result = values.take(pa.array(index, mask=missing))
    if empty is not None and empty.any():
        in_order = np.empty(n, dtype=bool)
        in_order[labels.order] = empty
        result = pc.if_else(pa.array(in_order), pa.scalar(empty_value(definition), type=result.type), result)
    return result.cast(out_type)
