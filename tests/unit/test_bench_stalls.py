"""The serving bench's stall probe and its rounds summary (bench/stalls.py, bench/serving_table.py)."""

from __future__ import annotations

import os
import time

import pytest

from bench import stalls
from bench.serving_table import rounds_summary


def test_the_probe_counts_a_sleep_that_woke_past_the_threshold_as_a_stall(monkeypatch: pytest.MonkeyPatch) -> None:
    real_sleep = time.sleep
    calls = 0

    def sleep(seconds: float) -> None:
        nonlocal calls
        calls += 1
        real_sleep(seconds + (0.03 if calls == 3 else 0.0))  # the third sleep wakes 30 ms late

    monkeypatch.setattr(stalls.time, "sleep", sleep)
    with stalls.StallProbe() as probe:
        while calls < 10:
            real_sleep(0.005)
    result = probe.result()
    assert result.sleeps >= 10
    assert result.stalls >= 1
    assert result.worst_ms >= 30.0
    assert result.late_ms >= 30.0
    assert f"more than {stalls.STALL_MS:g} ms late {result.stalls} times" in result.describe()


def test_a_probe_that_saw_no_stall_says_so() -> None:
    result = stalls.Stalls(sleeps=900, stalls=0, worst_ms=0.4, late_ms=0.0, busy_cores=None)
    assert (
        result.describe() == "a 1 ms sleep woke more than 5 ms late 0 times in 900 (0 ms late in all, at worst 0.4 ms)"
    )


def test_the_machine_s_busy_cores_are_measured_over_the_probe_s_life() -> None:
    with stalls.StallProbe() as probe:
        deadline = time.perf_counter() + 0.3
        while time.perf_counter() < deadline:  # one core busy here, whatever else runs
            pass
    busy = probe.result().busy_cores
    assert busy is not None
    assert 0.5 <= busy <= (os.cpu_count() or 1)
    assert "the machine's CPUs" in probe.result().describe()


def test_the_rounds_summary_gives_the_p99_of_the_rounds_samples_pooled() -> None:
    """Not the median of the rounds' p99s: a round whose tail is long pulls the pooled p99 up."""
    quiet = [1.0] * 100
    slow = [1.0] * 97 + [30.0, 40.0, 50.0]
    line = rounds_summary(1000.0, [quiet, quiet, slow])
    assert line.startswith("p99 at 1,000 requests/s over 3 rounds pooled: 1.00 ms (n=300;")
    assert line.endswith("the rounds' own p99s from 1.00 to 40.00 ms)")
    # 3 of 200 pooled samples past 1 %: the pooled p99 is among them (the median round p99 was 1.00)
    assert rounds_summary(1000.0, [quiet, slow]).startswith("p99 at 1,000 requests/s over 2 rounds pooled: 30.00 ms")
    assert "pooled: max 5.00 ms (n=3;" in rounds_summary(1000.0, [[1.0, 5.0], [2.0]])
