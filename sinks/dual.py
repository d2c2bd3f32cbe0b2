"""The job's two stores as one writer, with the commit order written down once: offline, then online.

The offline table is the record. A value reaches the online store only after the offline table holds
it, so at any instant online is at most *behind* offline, never ahead: promotion and backfills
(``serving.offline.promotion``) rebuild online from offline, and a crash between the two flushes is
repaired by the replay (the offline writer skips rows it already holds; online writes are idempotent
by write time). If the offline flush fails, the online one is not attempted.
"""

from __future__ import annotations

from typing import Protocol

from sinks.records import FeatureRow


class Writer(Protocol):
    """The sink lifecycle: ``add`` per result, ``flush`` at a commit point (raises StoreUnavailableError)."""

    def add(self, row: FeatureRow) -> None: ...

    def flush(self) -> None: ...


class DualWriter:
    def __init__(self, offline: Writer, online: Writer) -> None:
        self.offline = offline
        self.online = online

    def add(self, row: FeatureRow) -> None:
        self.offline.add(row)
        self.online.add(row)

    def flush(self) -> None:
        self.offline.flush()
        self.online.flush()
