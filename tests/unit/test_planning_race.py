"""pyiceberg 0.8.1 plans a scan's manifests on a thread pool and tests every data file with one shared, stateful
evaluator: a thread switch mixed one file's statistics with another's filter test, and a plan came back a file
short (1 in ~20 plans of 600 files on a loaded machine): a training set then missed that file's rows, silently.
``sinks.iceberg.planning_race`` serialises the evaluators' ``eval``; here both kinds are hammered from threads."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pyiceberg.conversions import to_bytes
from pyiceberg.expressions import EqualTo, GreaterThanOrEqual
from pyiceberg.expressions.visitors import _ExpressionEvaluator, _InclusiveMetricsEvaluator
from pyiceberg.schema import Schema
from pyiceberg.typedef import Record
from pyiceberg.types import LongType, NestedField

import sinks.iceberg  # noqa: F401  # applies the fix on import, as every reader and writer of the tables does

SCHEMA = Schema(NestedField(1, "x", LongType(), required=True))


@pytest.fixture(autouse=True)
def switching_often() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # a thread switch between nearly any two bytecodes
    yield
    sys.setswitchinterval(before)


class _File:
    """What the metrics evaluator reads of a data file: its counts and bounds of column x."""

    def __init__(self, low: int, high: int) -> None:
        self.record_count = 10
        self.value_counts = {1: 10}
        self.null_value_counts = {1: 0}
        self.nan_value_counts: dict[int, int] = {}
        self.lower_bounds = {1: to_bytes(LongType(), low)}
        self.upper_bounds = {1: to_bytes(LongType(), high)}


def _hammer(evaluate: Callable[[Any], bool], cases: list[tuple[Any, bool]]) -> int:
    """Wrong answers of ``evaluate`` (one shared instance's eval) called from 4 threads at once."""

    def run(offset: int) -> int:
        wrong = 0
        for i in range(20_000):
            subject, expected = cases[(i + offset) % len(cases)]
            wrong += evaluate(subject) != expected
        return wrong

    with ThreadPoolExecutor(4) as pool:
        return sum(pool.map(run, range(4)))


def test_one_metrics_evaluator_shared_by_threads_answers_each_file_by_its_own_statistics() -> None:
    evaluate = _InclusiveMetricsEvaluator(SCHEMA, GreaterThanOrEqual("x", 100)).eval  # as plan_files shares it
    assert _hammer(evaluate, [(_File(0, 50), False), (_File(90, 200), True)]) == 0


def test_one_partition_evaluator_shared_by_threads_answers_each_record_by_its_own_values() -> None:
    evaluate = _ExpressionEvaluator(SCHEMA, EqualTo("x", 7), case_sensitive=True).eval
    assert _hammer(evaluate, [(Record(x=7), True), (Record(x=8), False)]) == 0
