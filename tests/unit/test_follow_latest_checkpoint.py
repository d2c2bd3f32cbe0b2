"""A restarted follower restores each job from its latest checkpoint (design §3.8): the highest ``chk-N`` across the
job's runs, whatever the files' times say. A job restored from ``chk-N`` numbers its checkpoints from N + 1 (Flink's
checkpoint coordinator), so the numbers order them; a clock set back gave a later run's checkpoints older times, and
the choice by time went back to an earlier run's state."""

from __future__ import annotations

import os
from pathlib import Path

from jobs.follow import latest_checkpoint


def _checkpoint(root: Path, job_id: str, name: str, mtime_s: float) -> Path:
    folder = root / job_id / name
    folder.mkdir(parents=True)
    (folder / "_metadata").write_bytes(b"metadata")
    os.utime(folder / "_metadata", (mtime_s, mtime_s))
    return folder


def test_the_highest_number_wins_over_a_newer_time(tmp_path: Path) -> None:
    hour_s = 3_600.0
    now_s = 1_800_000_000.0
    _checkpoint(tmp_path, "aaaa0001", "chk-7", now_s)  # the first run, before the clock was set back an hour
    restored = _checkpoint(tmp_path, "bbbb0002", "chk-12", now_s - hour_s + 60)  # the run restored from chk-7
    assert latest_checkpoint(tmp_path) == restored


def test_numbers_compare_as_numbers_and_folders_that_are_not_checkpoints_are_ignored(tmp_path: Path) -> None:
    now_s = 1_800_000_000.0
    _checkpoint(tmp_path, "aaaa0001", "chk-9", now_s + 30)
    newest = _checkpoint(tmp_path, "bbbb0002", "chk-10", now_s)
    _checkpoint(tmp_path, "bbbb0002", "chk-x", now_s + 60)
    (tmp_path / "bbbb0002" / "chk-11").mkdir()  # in progress: no _metadata yet
    assert latest_checkpoint(tmp_path) == newest


def test_equal_numbers_are_told_apart_by_time_and_none_is_none(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    now_s = 1_800_000_000.0
    _checkpoint(tmp_path, "aaaa0001", "chk-3", now_s)
    later = _checkpoint(tmp_path, "bbbb0002", "chk-3", now_s + 5)
    assert latest_checkpoint(tmp_path) == later
