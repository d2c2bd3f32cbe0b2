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

from sinks.records import FeatureRow

Erased = Callable[[str, str, int], bool]
"""``(entity type, entity id, window start ms)`` -> whether the result predates the entity's erasure."""


class Writer(Protocol):
    """The sink lifecycle: ``add`` per result, ``flush`` at a commit point (raises StoreUnavailableError)."""

    def add(self, row: FeatureRow) -> None: ...

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

    def flush(self) -> None:
        self.offline.flush()
        self.online.flush()
