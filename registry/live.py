"""A catalog that follows the definition store without a store read per request."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from registry.catalog import FeatureCatalog
from registry.definition_store import DefinitionStore


class LiveCatalog:
    """The store's catalog, reloaded when its change sequence moves (checked at most every ``refresh_s``)."""

    def __init__(self, store: DefinitionStore, *, refresh_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self._refresh_s = refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        self._seq = store.change_seq()
        self._catalog = store.catalog()
        self._checked_at = clock()

    def current(self) -> FeatureCatalog:
        if self._clock() - self._checked_at < self._refresh_s:
            return self._catalog
        with self._lock:
            if self._clock() - self._checked_at >= self._refresh_s:
                self._reload_if_changed()
        return self._catalog

    def invalidate(self) -> None:
        """Reload now (after a write through this process)."""
        with self._lock:
            self._reload_if_changed()

    def _reload_if_changed(self) -> None:
        seq = self.store.change_seq()
        if seq != self._seq:
            self._catalog, self._seq = self.store.catalog(), seq
        self._checked_at = self._clock()
