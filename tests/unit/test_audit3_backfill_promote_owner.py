"""``jobs.backfill --promote`` moves the serving pointer as an activation does (docs/design.md §9 "Governance":
"activating a version needs the owner of that version and of the latest"): the backfill takes its caller's token
(README: the offline commands that read feature values take ``FS_TOKEN``), and with auth on its promotion moved the
pointer of a feature its caller's team does not own, needing no more than a read. A caller whose team may not promote
is refused before the job runs (it was refused only after the whole backfill)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from jobs import backfill
from registry.access_store import AccessStore
from tests.unit.test_oracle_lifecycle_promotion import T_US, _setup


class _DoneJob:
    """A backfill job that ends at once, successfully (its rows are the fixture's)."""

    returncode = 0
    started = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _DoneJob.started += 1

    def poll(self) -> int:
        return 0


@pytest.mark.parametrize(
    ("team", "admin", "promoted"), [("ml-team", False, False), ("risk-team", False, True), ("ops", True, True)]
)
def test_promote_needs_the_owning_team(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    team: str,
    admin: bool,
    promoted: bool,
) -> None:
    store = _setup(tmp_path, monkeypatch, T_US, T_US)  # v2 caught up with v1 (internal, owned by risk-team)
    monkeypatch.setenv("FS_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("FS_AUTH", "on")
    monkeypatch.setenv("FS_TOKEN", AccessStore(tmp_path / "d.db").issue("someone", team, admin=admin))
    monkeypatch.setattr(subprocess, "Popen", _DoneJob)
    monkeypatch.setattr(_DoneJob, "started", 0)
    code = backfill.main(["user.txn_count_1h@2", "--promote"])
    err = capsys.readouterr().err
    assert store.catalog().get("user", "txn_count_1h").version == (2 if promoted else 1)
    if promoted:
        assert code == 0 and "promoted: user.txn_count_1h: v2" in err
    else:  # refused before the job: a backfill of hours is not spent on a promotion that cannot happen
        assert code == 1 and _DoneJob.started == 0
        assert err.splitlines()[-1] == (
            "error: team ml-team may not activate user/txn_count_1h@2: it is owned by team risk-team"
        )
