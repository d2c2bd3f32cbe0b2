"""A backfill that stops stops its job (``jobs.backfill`` runs the stream job as a child process): stopped by
SIGTERM, Ctrl-C or its time limit, it left the job computing and writing into the offline table and Cassandra
after it had said nothing was done ("active versions untouched")."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from jobs import backfill
from tests.unit.test_oracle_lifecycle_promotion import T_US, _setup

_real_popen = subprocess.Popen
_real_sleep = time.sleep  # waiting for a child sleeps: the checks below run with the real one


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[bytes]]:
    """The backfill's job as a real child that would run for ten minutes."""
    _setup(tmp_path, monkeypatch, T_US, T_US)
    monkeypatch.setenv("FS_STATE_DIR", str(tmp_path))
    started: list[subprocess.Popen[bytes]] = []

    def popen(_cmd: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(_real_popen(["sleep", "600"], stdout=kwargs["stdout"], stderr=kwargs["stderr"]))
        return started[-1]

    monkeypatch.setattr(subprocess, "Popen", popen)
    return started


def _stopped(child: subprocess.Popen[bytes]) -> bool:
    try:
        child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        child.kill()
        return False
    return True


def test_sigterm_stops_the_job_and_exits_143(
    job: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def terminated(seconds: float) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        _real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", terminated)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        backfill.main(["user.txn_count_1h@2"])
    monkeypatch.setattr(time, "sleep", _real_sleep)
    assert stopped.value.code == 143
    assert len(job) == 1 and _stopped(job[0]) and job[0].returncode == -signal.SIGKILL
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is the command's only


def test_ctrl_c_stops_the_job(job: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(_s: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", interrupted)
    with pytest.raises(KeyboardInterrupt):
        backfill.main(["user.txn_count_1h@2"])
    monkeypatch.setattr(time, "sleep", _real_sleep)
    assert len(job) == 1 and _stopped(job[0])


def test_the_time_limit_stops_the_job(job: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch) -> None:
    from registry.core.errors import FeatureStoreError
    from registry.core.settings import Settings

    with pytest.raises(FeatureStoreError, match="backfill exceeded 0s; active versions untouched"):
        backfill.run(Settings.from_env(), ["user.txn_count_1h@2"], timeout_s=0.01, progress_every_s=0.05)
    assert len(job) == 1 and _stopped(job[0])
