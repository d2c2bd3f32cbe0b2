"""How much the machine itself delays a runnable thread while a benchmark runs.

A latency target of a few milliseconds on a machine whose CPUs are shared (by the server, Cassandra,
the load generator, and a hypervisor's other guests) is met or missed by scheduling as much as by the
code measured. ``StallProbe`` puts a number on it: a thread that sleeps 1 ms at a time and records
how far past each due time it woke. It runs in the benchmark's own process, which otherwise waits on
the load generator (a blocked ``subprocess.run`` holds no GIL), so what it measures is the operating
system's delay of one more runnable thread, not Python's.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

SLEEP_S = 0.001
STALL_MS = 5.0  # an oversleep past this counts as a stall: the size of #19's p99 target


def cpu_ticks() -> tuple[int, int] | None:
    """The machine's CPU time so far, ``(busy, total)`` in clock ticks over every CPU (Linux ``/proc/stat``;
    idle and I/O wait are not busy), or None where there is no such file."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest time is within user)
    return total - fields[3] - fields[4], total


@dataclass(frozen=True)
class Stalls:
    sleeps: int  # 1 ms sleeps taken
    stalls: int  # of which woke more than ``STALL_MS`` late
    worst_ms: float  # the latest wake-up, in ms past its due time
    late_ms: float  # the sum of the stalls' lateness
    busy_cores: float | None  # the machine's CPUs in use meanwhile, every process's, in cores

    def describe(self) -> str:
        busy = (
            f"; the machine's CPUs {self.busy_cores:.2f} of {os.cpu_count()} busy"
            if self.busy_cores is not None
            else ""
        )
        return (
            f"a 1 ms sleep woke more than {STALL_MS:g} ms late {self.stalls} times in {self.sleeps:,} "
            f"({self.late_ms:.0f} ms late in all, at worst {self.worst_ms:.1f} ms){busy}"
        )


class StallProbe:
    """A context manager: while open, a daemon thread sleeps 1 ms at a time and records its lateness."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stall-probe", daemon=True)
        self._sleeps = 0
        self._stalls = 0
        self._worst_s = 0.0
        self._late_s = 0.0
        self._ticks: tuple[int, int] | None = None
        self._busy_cores: float | None = None

    def _run(self) -> None:
        threshold_s = STALL_MS / 1000
        while not self._stop.is_set():
            started = time.perf_counter()
            time.sleep(SLEEP_S)
            late = time.perf_counter() - started - SLEEP_S
            self._sleeps += 1
            if late > self._worst_s:
                self._worst_s = late
            if late > threshold_s:
                self._stalls += 1
                self._late_s += late

    def __enter__(self) -> StallProbe:
        self._ticks = cpu_ticks()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        now = cpu_ticks()
        if self._ticks is not None and now is not None and now[1] > self._ticks[1]:
            self._busy_cores = (now[0] - self._ticks[0]) / (now[1] - self._ticks[1]) * (os.cpu_count() or 1)

    def result(self) -> Stalls:
        return Stalls(self._sleeps, self._stalls, self._worst_s * 1000, self._late_s * 1000, self._busy_cores)
