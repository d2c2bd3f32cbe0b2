"""Snapshot expiry beside a writer (docs/design.md §9): the stream job commits several times a second, and an expiry
that read every manifest of every snapshot before its commit lost every commit race to it ("5 commit races lost",
retention and erasure alike, so old snapshots stayed readable), reading n(n+1)/2 manifests for n appends. Now it
commits from the table as just read, lists what the removed snapshots reached after, reads each manifest once, and
tries again past a writer's commits."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sinks.iceberg import maintenance
from tests.unit.test_oracle_lifecycle_retention import _append, _rows
from tests.unit.test_training_sets import iceberg_table


def _table(tmp_path: Path, appends: int) -> Any:
    table = iceberg_table(tmp_path, "feature_store")
    now_us = int(time.time() * 1_000_000)
    for i in range(appends):
        _append(table.refresh(), [("short_count", 1, f"u{i}", now_us - i)])
    return table.refresh()


def test_each_manifest_is_read_once_however_many_snapshots_list_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyiceberg.manifest import ManifestFile

    table = _table(tmp_path, 12)
    reads: list[str] = []
    real = ManifestFile.fetch_manifest_entry

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(self.manifest_path)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ManifestFile, "fetch_manifest_entry", counted)
    table, expired = maintenance.expire_snapshots(table)
    assert len(expired.snapshot_ids) == 11 and expired.files_deleted > 0
    assert len(reads) == len(set(reads)) == 12  # 90 before: every snapshot read its parents' again (78), and 12 more
    assert len(table.snapshots()) == 1 and len(_rows(table)) == 12


def test_an_expiry_wins_past_a_writer_committing_all_the_while(tmp_path: Path) -> None:
    table = _table(tmp_path, 30)
    stop = threading.Event()
    appended: list[int] = []

    def writer() -> None:  # as a stream job: a commit every 20 ms or so
        from pyiceberg.exceptions import CommitFailedException

        from tests.unit.test_training_sets import iceberg_table as reopen

        mine = reopen(tmp_path, "feature_store")
        while not stop.is_set():
            try:
                _append(mine.refresh(), [("short_count", 1, f"w{len(appended)}", int(time.time() * 1_000_000))])
            except CommitFailedException:  # the expiry's commit came first: the job's writer tries again
                continue
            appended.append(1)
            time.sleep(0.02)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.2)
        table, expired = maintenance.expire_snapshots(table.refresh())
    finally:
        stop.set()
        thread.join()
    assert len(expired.snapshot_ids) >= 30 and appended
    table = table.refresh()
    assert len(_rows(table)) == 30 + len(appended)  # nothing a concurrent append committed was lost
    reached = maintenance._reachable(table, [s.snapshot_id for s in table.snapshots()])
    assert all(Path(p.removeprefix("file://")).exists() for p in reached)  # no file a kept snapshot reaches deleted
