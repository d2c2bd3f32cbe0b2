"""``registry.live.Refresher``: a follower's checks and rebuilds in a thread beside its readers, so that a reader
(the API's event loop) never rebuilds a snapshot on its way, while a change is still served ``refresh_s`` after it
commits at the latest (docs/design.md §3.3 "Following the registry while serving")."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from registry.core.errors import StoreUnavailableError
from registry.live import Following, Refresher

LOAD_S = 0.3  # one rebuild of the snapshot (a catalog of 10,000 definitions: about half a second)


class _Store:
    """A store whose change sequence the test moves, or breaks."""

    def __init__(self) -> None:
        self.seq = 0
        self.broken = False

    def change_seq(self) -> int:
        if self.broken:
            raise OSError("disk gone")
        return self.seq


def _slow_follower(store: _Store, loads: list[str]) -> Following[int]:
    def load() -> int:
        seq = store.seq
        loads.append(threading.current_thread().name)
        time.sleep(LOAD_S)
        return seq

    return Following(store, load, refresh_s=1.0, clock=time.monotonic)


def test_a_reader_never_rebuilds_and_sees_a_change_refresh_s_after_it() -> None:
    store, loads = _Store(), list[str]()
    following = _slow_follower(store, loads)
    refresher = Refresher([following], every_s=0.05)
    refresher.start()
    try:
        time.sleep(0.2)
        store.seq = 1
        committed = time.monotonic()
        slowest, seen_at = 0.0, None
        while time.monotonic() - committed < 1.3:
            began = time.monotonic()
            value = following.current()
            slowest = max(slowest, time.monotonic() - began)
            if began - committed >= 1.0:
                assert value == 1, "a change not served 1 s after it committed"
            if value == 1 and seen_at is None:
                seen_at = began - committed
            time.sleep(0.001)
    finally:
        refresher.close()
    assert loads[1:] == ["registry-refresher"], f"rebuilt by {loads[1:]}"  # the first load: the constructor's
    assert slowest < LOAD_S / 2, f"a reader waited {slowest:.3f} s: it rebuilt or waited for a rebuild"
    assert seen_at is not None and seen_at < 1.0


def test_a_store_gone_under_the_refresher_is_the_readers_error_once_due_and_the_thread_carries_on() -> None:
    store, loads = _Store(), list[str]()
    following = _slow_follower(store, loads)
    refresher = Refresher([following], every_s=0.05)
    refresher.start()
    try:
        store.broken = True
        time.sleep(0.2)
        assert following.current() == 0  # checked less than refresh_s ago: the snapshot as it was
        time.sleep(1.0)
        with pytest.raises(StoreUnavailableError, match="disk gone"):
            following.current()
        store.broken, store.seq = False, 2
        deadline = time.monotonic() + 5.0
        while len(loads) < 2 and time.monotonic() < deadline:  # the thread rebuilds; the reader does not look
            time.sleep(0.05)
        time.sleep(LOAD_S + 0.1)
        assert following.current() == 2
    finally:
        refresher.close()
    assert loads == ["MainThread", "registry-refresher"]


def test_close_stops_the_thread_and_a_period_must_be_positive() -> None:
    refresher = Refresher([], every_s=0.01)
    refresher.start()
    refresher.close()
    assert not any(t.name == "registry-refresher" and t.is_alive() for t in threading.enumerate())
    with pytest.raises(ValueError):
        Refresher([], every_s=0)


def test_the_api_process_follows_its_registry_from_a_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m serving.online`` builds its app with a refresher over the catalog and the feature services."""
    import gc
    import sys

    import serving.online.__main__ as entry
    from registry.core.settings import Settings

    class _Session:
        row_factory = None

    monkeypatch.setattr(entry, "connect_cassandra", lambda settings, create_schema=True: (None, _Session()))
    settings = Settings(definitions_db=tmp_path / "registry.db")
    interval, threshold = sys.getswitchinterval(), gc.get_threshold()
    try:
        app, _ = entry.build(settings, {"FS_SERVING_LOG_SAMPLE": "0"})
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
        sys.setswitchinterval(interval)
    refresher = app.state.refresher
    try:
        assert isinstance(refresher, Refresher)
        assert [type(f).__name__ for f in refresher._followers] == ["LiveCatalog", "LiveFeatureServices"]
        assert any(t.name == "registry-refresher" and t.is_alive() for t in threading.enumerate())
    finally:
        refresher.close()


def test_a_stored_version_is_parsed_once_per_process(tmp_path: Path) -> None:
    """Each reload of the catalog (every follower, each registration's checks) takes the definitions of the specs it
    read before as they were: versions are immutable and definitions frozen (a catalog of 10,000 parsed whole took
    0.3-0.4 s a reload)."""
    from registry.definition_store import DefinitionStore
    from tests.unit.conftest import build_definition

    store = DefinitionStore(tmp_path / "registry.db")
    store.register(build_definition())
    first = store.catalog().get("user", "txn_count_1h")
    store.register(build_definition(version=2, ttl="3h"))
    again = store.catalog()
    assert again.get("user", "txn_count_1h", 1) is first
    assert again.get("user", "txn_count_1h", 2).ttl != first.ttl
