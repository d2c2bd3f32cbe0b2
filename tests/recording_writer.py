"""A ``sinks.dual.Writer`` that keeps what it is given, for tests of what reaches a store (not a store)."""

from __future__ import annotations

from registry.core.errors import StoreUnavailableError
from sinks.records import FeatureRow, WindowResults


class RecordingWriter:
    """Keeps each value as a row (window results as ``results.rows()``); ``flush`` counts, appends ``name``
    to ``log``, or raises StoreUnavailableError when ``fail``."""

    def __init__(self, name: str = "", log: list[str] | None = None, *, fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log if log is not None else [], fail
        self.rows: list[FeatureRow] = []
        self.flushes = 0

    def add(self, row: FeatureRow) -> None:
        self.rows.append(row)

    def add_results(self, results: WindowResults) -> None:
        self.rows.extend(results.rows())

    def flush(self) -> None:
        if self.fail:
            raise StoreUnavailableError(f"{self.name} down")
        self.flushes += 1
        self.log.append(self.name)
