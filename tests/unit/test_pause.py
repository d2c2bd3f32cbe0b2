"""``tests.processes.pause``, which the fault tests pause services with: it returns once every thread has stopped,
and a process that does not stop in time is resumed before the failure is raised (its caller's SIGCONT is in a
``finally`` the failure never reaches: the service stayed stopped for every later test)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests import processes
from tests.processes import thread_states  # bound here: the patch below replaces pause's, not this one

_BUSY = "import threading, time\nfor _ in range(3): threading.Thread(target=lambda: [0 for _ in iter(int, 1)], daemon=True).start()\ntime.sleep(60)"


@pytest.fixture
def busy() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", _BUSY], start_new_session=True)
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGCONT)
        process.kill()
        process.wait(timeout=30)


@pytest.mark.parametrize("group", [False, True])
def test_every_thread_has_stopped_when_pause_returns(busy: subprocess.Popen[bytes], group: bool) -> None:
    processes.pause(busy.pid, group=group)
    assert thread_states(busy.pid) == {"T"}
    (os.killpg if group else os.kill)(busy.pid, signal.SIGCONT)


def test_a_process_that_does_not_stop_in_time_is_resumed(
    busy: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(processes, "thread_states", lambda pid: {"R"})  # never seen stopped
    with pytest.raises(AssertionError, match=f"pid {busy.pid}: not stopped within 0.05 s of SIGSTOP"):
        processes.pause(busy.pid, timeout_s=0.05)
    assert "T" not in thread_states(busy.pid)
