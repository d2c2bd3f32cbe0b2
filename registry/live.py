"""Snapshots that follow a store without a store read per request.

A reader keeps one snapshot and checks the store's change sequence at most every ``refresh_s``;
only when it moved is the snapshot rebuilt. Requests read the snapshot they were handed, whole. A change
committed at time t is in the snapshot handed to every call made at t + ``refresh_s`` or later (each check is
timed from before its read of the change sequence, so a slow rebuild does not push the next check back).

A ``Refresher`` runs those checks (and rebuilds) in a thread of its own, ahead of the readers: a server's
requests then find their snapshot checked less than ``refresh_s`` ago and never read the store or rebuild on
the way (a catalog of 10,000 definitions takes about half a second to rebuild). A reader still checks
itself when the thread has fallen behind, so the bound above holds either way.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

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


class Refresher:
    """Checks ``followers`` every ``every_s`` in a daemon thread (``Following.invalidate``: a rebuild only when a
    store changed), so that their readers (a server's event loop) find a snapshot checked less than ``refresh_s``
    ago and take it without a store read or a rebuild of their own.

    A change committed at t is then rebuilt by about t + ``every_s`` + the rebuild's time, ahead of the
    t + ``refresh_s`` by which every reader must see it; a reader that finds its snapshot older than ``refresh_s``
    (the thread behind, a rebuild longer than ``refresh_s - every_s``) checks, or waits for the thread's rebuild
    under the follower's lock, as without this thread. A check that fails (the store gone) is left to the readers'
    own check, which answers it (``StoreUnavailableError``) once their snapshot is due."""

    def __init__(self, followers: Sequence[Following[Any]], *, every_s: float = 0.1) -> None:
        if every_s <= 0:
            raise ValueError("every_s must be positive")
        self._followers = tuple(followers)
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="registry-refresher", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            for follower in self._followers:
                try:
                    follower.invalidate()
                except Exception:  # the readers' own check raises it when their snapshot is due
                    continue
