"""The job's two stores as one writer, with the commit order written down once: offline, then online.

The offline table is the record. A value reaches the online store only after the offline table holds
it, so at any instant online is at most *behind* offline, never ahead: promotion and backfills
(``serving.offline.promotion``) rebuild online from offline, and a crash between the two flushes is
repaired by the replay (the offline writer skips rows it already holds; online writes are idempotent
by write time). If the offline flush fails, the online one is not attempted.

An erased entity's results that reach back before its erasure (a replay of its old events) are
dropped here, before either store (``registry.erasures``); ``dropped_erased`` counts them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

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
    def __init__(self, offline: Writer, online: Writer, erased: Erased | None = None) -> None:
        self.offline = offline
        self.online = online
        self._erased = erased
        self.dropped_erased = 0

    def add(self, row: FeatureRow) -> None:
        if self._erased is not None and self._erased(row.entity_type, row.entity_id, row.window_start_ms):
            self.dropped_erased += 1
            return
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
            self.offline.add_results(results)
            self.online.add_results(results)

    def flush(self) -> None:
        self.offline.flush()
        self.online.flush()
