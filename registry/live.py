"""Snapshots that follow a store without a store read per request.

A reader keeps one snapshot and checks the store's change sequence at most every ``refresh_s``;
only when it moved is the snapshot rebuilt. Requests read the snapshot they were handed, whole. A change
committed at time t is in the snapshot handed to every call made at t + ``refresh_s`` or later (each check is
timed from before its read of the change sequence, so a slow rebuild does not push the next check back).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from registry.core.catalog import FeatureCatalog
from registry.core.errors import StoreUnavailableError
from registry.definition_store import DefinitionStore

T = TypeVar("T")


class _Sequenced(Protocol):
    def change_seq(self) -> int: ...


class Following(Generic[T]):
    """A snapshot built by ``load`` from a store, rebuilt when the store's change sequence moves."""

    def __init__(
        self, store: _Sequenced, load: Callable[[], T], *, refresh_s: float, clock: Callable[[], float]
    ) -> None:
        self._store = store
        self._load = load
        self._refresh_s = refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        checked_at = clock()
        self._seq = self._stamp()  # before the load: a change between the two is reloaded at the next check
        self._snapshot = self._loaded()
        self._checked_at = checked_at

    def current(self) -> T:
        if self._clock() - self._checked_at < self._refresh_s:
            return self._snapshot
        with self._lock:
            if self._clock() - self._checked_at >= self._refresh_s:
                self._reload_if_changed()
        return self._snapshot

    def invalidate(self) -> None:
        """Reload now (after a write through this process)."""
        with self._lock:
            self._reload_if_changed()

    def _reload_if_changed(self) -> None:
        # The check's time is taken before the stamp is read, not after the load: a change committed while a
        # (slow) load ran is seen at the next check, ``refresh_s`` after this one, never ``refresh_s`` plus the load.
        checked_at = self._clock()
        seq = self._stamp()
        if seq != self._seq:
            self._snapshot, self._seq = self._loaded(), seq
        self._checked_at = checked_at

    def _stamp(self) -> tuple[int, object]:
        """The store's change sequence with the identity of its file (a SQLite store's ``file_stamp``): a file
        replaced under the reader is reloaded even when its sequence equals the old one's. A store that is gone or
        unreadable is ``StoreUnavailableError`` naming it (no file is created where it was)."""
        file_stamp = getattr(self._store, "file_stamp", None)
        try:
            held = file_stamp() if file_stamp is not None else None
            return self._store.change_seq(), held
        except (OSError, sqlite3.DatabaseError) as exc:
            raise self._unavailable(exc) from exc

    def _loaded(self) -> T:
        try:
            return self._load()
        except (OSError, sqlite3.DatabaseError) as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: Exception) -> StoreUnavailableError:
        where = getattr(self._store, "path", None)
        return StoreUnavailableError(f"registry store {where or type(self._store).__name__} unavailable: {exc}")


class LiveCatalog(Following[FeatureCatalog]):
    """The definition store's catalog, reloaded when it changes (checked at most every ``refresh_s``)."""

    def __init__(self, store: DefinitionStore, *, refresh_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        super().__init__(store, store.catalog, refresh_s=refresh_s, clock=clock)
        self.store = store
