"""Audit of the local stack's lifecycle (README "make up / make down", design §3.7) where it still ended in a
traceback, a hang or a false "stopped". Stand-in processes (``sleep``) and temp folders only: the shared services,
their ports and their state directory are never touched."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

from infra import stack
from infra.process import PidFile
from infra.settings import StackSettings


def test_down_stops_a_process_of_ours_that_does_not_lead_its_own_process_group(tmp_path: Path) -> None:
    """``terminate`` signalled the process group named by the PID only: a recorded process that is not a group
    leader (no such group) was reported stopped and its PID file removed while it ran on."""
    settings = dataclasses.replace(StackSettings.from_env(), state_dir=tmp_path)
    proc = subprocess.Popen(["sleep", "60"])  # in this test's process group, not its own
    try:
        (tmp_path / "registry").mkdir()
        PidFile(tmp_path / "registry" / "pid").write(proc.pid)
        stack.down(settings, ["registry"])
        assert proc.wait(timeout=10) is not None
        assert not (tmp_path / "registry" / "pid").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
