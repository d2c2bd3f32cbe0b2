"""The job's two stores as one writer, with the commit order written down once: offline, then online.

The offline table is the record. A value reaches the online store only after the offline table holds
it, so at any instant online is at most *behind* offline, never ahead: promotion and backfills
(``serving.offline.promotion``) rebuild online from offline, and a crash between the two flushes is
repaired by the replay (the offline writer skips rows it already holds; online writes are idempotent
by write time). If the offline flush fails, the online one is not attempted.

An erased entity's results that reach back before its erasure (a replay of its old events) are
dropped here, before either store (``registry.erasures``); ``dropped_erased`` counts them. Given a clock
(``retention_clock_us``, as the job gives one), a value whose window ended before ``now - offline_retention`` of its
feature version is kept out of the offline table (a replay wrote back rows retention had removed, and they stayed
until its next run); ``dropped_retained`` counts them. The online store judges its own TTL: of a version whose
``offline_retention`` is shorter than its ``ttl``, a value between the two is served online and held offline by
neither the writer nor retention, the one exception to online never being ahead of offline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

import numpy as np

from registry.core.timeline import retention_cutoff_us
from sinks.records import FeatureRow, WindowResults

Erased = Callable[[str, str, int], bool]
"""``(entity type, entity id, window start ms)`` -> whether the result predates the entity's erasure."""


class Writer(Protocol):
    """The sink lifecycle: ``add`` per value or ``add_results`` per batch of window results, ``flush`` at a
    commit point (raises StoreUnavailableError)."""

    def add(self, row: FeatureRow) -> None: ...

    def add_results(self, results: WindowResults) -> None: ...

    def flush(self) -> None: ...


class DualWriter:
    def __init__(
        self,
        offline: Writer,
        online: Writer,
        erased: Erased | None = None,
        retention_clock_us: Callable[[], int] | None = None,
    ) -> None:
        self.offline = offline
        self.online = online
        self._erased = erased
        self._clock_us = retention_clock_us
        self.dropped_erased = 0
        self.dropped_retained = 0

    def add(self, row: FeatureRow) -> None:
        if self._erased is not None and self._erased(row.entity_type, row.entity_id, row.window_start_ms):
            self.dropped_erased += 1
            return
        if self._clock_us is not None and row.window_end_ms * 1000 < retention_cutoff_us(
            row.defined_by, self._clock_us()
        ):
            self.dropped_retained += 1
        else:
            self.offline.add(row)
        self.online.add(row)

    def add_results(self, results: WindowResults) -> None:
        """A window group's results, as columns: the same values and rules as ``add`` of each of ``results.rows()``;
        the erasure check runs per result (its features share entity and window), not per value."""
        if self._erased is not None and len(results):
            erased, entity_type = self._erased, results.entity_type
            blocked = np.fromiter(
                (
                    erased(entity_type, entity_id, start)
                    for entity_id, start in zip(results.entity_ids, results.starts_ms.tolist(), strict=True)
                ),
                dtype=bool,
                count=len(results),
            )
            if blocked.any():
                self.dropped_erased += int(blocked.sum()) * len(results.features)
                results = results.take(~blocked)
        if len(results):
            for retained in self._retained(results):
                self.offline.add_results(retained)
            self.online.add_results(results)

    def _retained(self, results: WindowResults) -> list[WindowResults]:
        """``results`` without the values past their feature version's offline retention: the features of one
        retention together, each with the results whose window ended at or after ``now - offline_retention``."""
        if self._clock_us is None:
            return [results]
        now_us = self._clock_us()
        by_cutoff: dict[int, list[int]] = {}
        for i, d in enumerate(results.features):
            by_cutoff.setdefault(retention_cutoff_us(d, now_us), []).append(i)
        out = []
        for cutoff_us, at in by_cutoff.items():
            keep = results.ends_ms * 1000 >= cutoff_us
            if len(at) < len(results.features):
                results_of = dataclasses.replace(
                    results, features=tuple(results.features[i] for i in at), values=[results.values[i] for i in at]
                )
            else:
                results_of = results
            kept = results_of if keep.all() else results_of.take(keep)
            self.dropped_retained += (len(results) - len(kept)) * len(at)
            if len(kept):
                out.append(kept)
        return out

    def flush(self) -> None:
        self.offline.flush()
        self.online.flush()
