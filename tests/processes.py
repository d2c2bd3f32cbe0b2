"""Processes in tests: one function run in several processes at the same moment (race tests), and a process
paused for a fault test.

``race``: processes are spawned (nothing inherited: each opens its stores itself, as the job's workers and the
services do) and meet at a barrier before each round. Failures come back as tracebacks on a queue,
drained while the workers run, so a full pipe never blocks a worker's exit.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_STOPPED = frozenset("TtZX")  # stopped, traced, or gone: runs no more code


def thread_states(pid: int) -> set[str]:
    """The states of the process's threads (``/proc/<pid>/task/*/stat``); none once it is gone."""
    states = set()
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                states.add(task.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0])
    return states


def _group(pgid: int) -> list[int]:
    """The processes of a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int(entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                    members.append(int(entry.name))
    return members


def pause(pid: int, *, group: bool = False, timeout_s: float = 30.0) -> None:
    """SIGSTOP the process (``group``: its process group), and return once every thread of it has stopped.

    ``kill`` returns when the signal is queued; each thread stops when it next handles it, which on a loaded
    machine took up to 30 ms (measured): a request sent at once was answered by a thread still running (a
    fault test's 'the store hangs' read got a 200)."""
    send = os.killpg if group else os.kill
    send(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout_s
    while not all(thread_states(p) <= _STOPPED for p in (_group(pid) if group else [pid])):
        if time.monotonic() >= deadline:  # resumed: the caller's SIGCONT is in a ``finally`` this never reaches
            send(pid, signal.SIGCONT)
            raise AssertionError(f"pid {pid}: not stopped within {timeout_s} s of SIGSTOP")
        time.sleep(0.001)


def race(target: Callable[..., None], *args: Any, processes: int, timeout_s: float = 300) -> list[str]:
    """Run ``target(*args, barrier, errors)`` in ``processes`` processes; the tracebacks they put on ``errors``."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    errors = ctx.Queue()
    workers = [ctx.Process(target=target, args=(*args, barrier, errors)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    failures: list[str] = []
    deadline = time.monotonic() + timeout_s
    while any(w.is_alive() for w in workers) and time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            failures.append(errors.get(timeout=0.2))
    for worker in workers:
        worker.join(timeout=10)
    with contextlib.suppress(queue.Empty):
        while True:
            failures.append(errors.get_nowait())
    assert all(w.exitcode == 0 for w in workers), [w.exitcode for w in workers]
    return failures
