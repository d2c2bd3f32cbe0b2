"""Run one function in several processes at the same moment, for race tests.

Processes are spawned (nothing inherited: each opens its stores itself, as the job's workers and the
services do) and meet at a barrier before each round. Failures come back as tracebacks on a queue,
drained while the workers run, so a full pipe never blocks a worker's exit.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import time
from collections.abc import Callable
from typing import Any


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
