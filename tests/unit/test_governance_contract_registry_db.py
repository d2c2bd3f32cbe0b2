"""Retention and erasure with an FS_DEFINITIONS_DB that is not the registry (a typo, a folder).

The registry holds what both need: each version's ``offline_retention`` and the training sets' pins
(retention), the erasure record the writers follow and the definitions (erasure). A missing file was created
empty, and retention then deleted no row but expired every snapshot but the current one, the snapshots the
real registry's recent training sets pin included (exit 0, nothing named); erasure recorded the erasure where
no writer looks. Now it is one ``error:`` line (exit 1) naming the variable, and nothing is created or changed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from registry.training_sets import TrainingSetStore
from serving.offline import erasure, retention
from tests.unit.test_oracle_lifecycle_faults import _one_error_line, env
from tests.unit.test_retention import _manifest

__all__ = ["env"]  # the fixture, used by name


@pytest.mark.parametrize("auth", ["off", "on"])
@pytest.mark.parametrize("args", [[], ["--dry-run"]])
@pytest.mark.parametrize("wrong", ["typo.db", "folder"])
def test_retention_with_a_registry_that_is_not_there_changes_nothing(
    env: tuple[Path, Any, list[Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    auth: str,
    args: list[str],
    wrong: str,
) -> None:
    _, table, _ = env
    pinned = table.snapshots()[0].snapshot_id
    TrainingSetStore(tmp_path / "definitions.db").record(_manifest(pinned, datetime.now(UTC) - timedelta(days=1)))
    snapshots = [s.snapshot_id for s in table.snapshots()]
    db = tmp_path / wrong
    if wrong == "folder":
        db.mkdir()
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    monkeypatch.setenv("FS_AUTH", auth)
    monkeypatch.setenv("FS_TOKEN", "fs_abc_def")
    assert retention.main([*args, "--orphans-older-than", "0s"]) == 1
    what = "is a directory" if wrong == "folder" else "does not exist"
    assert _one_error_line(capsys) == (
        f"error: registry database {db} (FS_DEFINITIONS_DB) {what}: retention needs the registry the stream job "
        "and the training sets use"
    )
    assert [s.snapshot_id for s in table.refresh().snapshots()] == snapshots
    assert db.is_dir() if wrong == "folder" else not db.exists()


@pytest.mark.parametrize("auth", ["off", "on"])
def test_erasure_with_a_registry_that_is_not_there_records_nothing(
    env: tuple[Path, Any, list[Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    auth: str,
) -> None:
    db = tmp_path / "typo.db"
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    monkeypatch.setenv("FS_AUTH", auth)
    monkeypatch.setenv("FS_TOKEN", "fs_abc_def")
    monkeypatch.setenv("FS_CASSANDRA_PORT", "1")
    assert erasure.main(["--entity-type", "user", "--entity-id", "u1"]) == 1
    assert "FS_DEFINITIONS_DB) does not exist: erasure needs the registry" in _one_error_line(capsys)
    assert not db.exists()
