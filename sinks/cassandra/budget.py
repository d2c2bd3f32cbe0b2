"""A request's read budget counted from its first read, across the reads it makes one after another.

A lookup reads the streams' progress first (when not cached), then the vectors: each read given the whole budget
answered (or failed) at up to twice it, three times when it first waited for a session. ``reads_from`` marks when a
request's reads began (the running loop's clock, in the task that makes them: a context variable, so the readers'
signatures stay those of any vector source); ``left_s`` is what a read then has of a budget.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

MIN_TIMEOUT_S = 0.001  # what a driver is given when nothing is left: its timer (and ours) fires at once

_STARTED: ContextVar[float | None] = ContextVar("featurestore_reads_started", default=None)


@contextmanager
def reads_from(started: float) -> Iterator[None]:
    """The reads made in this block (in this task, and tasks it starts) spend one budget from ``started``
    (``asyncio.get_running_loop().time()``)."""
    token = _STARTED.set(started)
    try:
        yield
    finally:
        _STARTED.reset(token)


def left_s(budget_s: float) -> float:
    """What is left of ``budget_s`` for a read made now: all of it outside ``reads_from``; 0 or less once spent."""
    started = _STARTED.get()
    if started is None:
        return budget_s
    return budget_s - (asyncio.get_running_loop().time() - started)
