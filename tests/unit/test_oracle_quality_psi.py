"""Oracle checks of the drift score (design §9, ``serving.offline.statistics``): the population
stability index of the current values against the reference's, over ten bins at the reference's
deciles, nulls left out, empty bins at a share of 0.0001: ``sum((cur - ref) * ln(cur / ref))``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from serving.offline.statistics import psi


def _brute_psi(reference: list[float], current: list[float]) -> float | None:
    """From the doc's words alone, in plain Python: the nine interior deciles of the reference cut ten
    bins (a value on a cut goes to the bin above it); a bin's share is its values over all values, 0.0001
    for an empty one."""
    reference = [v for v in reference if not math.isnan(v)]
    current = [v for v in current if not math.isnan(v)]
    if not reference or not current:
        return None
    cuts = [float(np.quantile(reference, k / 10)) for k in range(1, 10)]

    def shares(values: list[float]) -> list[float]:
        counts = [0] * 10
        for v in values:
            counts[sum(1 for c in cuts if c <= v)] += 1
        return [c / len(values) if c else 1e-4 for c in counts]

    ref, cur = shares(reference), shares(current)
    return sum((c - r) * math.log(c / r) for r, c in zip(ref, cur, strict=True))


DISTINCT = arrays(np.float64, st.integers(10, 200), elements=st.floats(-1e6, 1e6, allow_nan=False), unique=True)


@settings(max_examples=50, deadline=None)
@given(DISTINCT.filter(lambda a: (len(a) - 1) % 2 and (len(a) - 1) % 5), DISTINCT)
def test_psi_of_distinct_values_is_the_doc_formula(reference: np.ndarray, current: np.ndarray) -> None:
    # Sizes whose deciles all fall between two reference values (see the test below for one on a value).
    got, want = psi(reference, current), _brute_psi(list(reference), list(current))
    assert got is not None and want is not None
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_a_decile_that_is_a_reference_value_cuts_at_that_value() -> None:
    reference = np.arange(21.0)  # its deciles are 2, 4, ..., 18 exactly
    current = np.array([6.0, 12.0, 14.0] * 5)
    assert psi(reference, current) == pytest.approx(_brute_psi(list(reference), list(current)), rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, st.integers(1, 200), elements=st.floats(-1e3, 1e3, allow_nan=False)))
def test_the_same_values_score_zero_and_nulls_are_left_out(values: np.ndarray) -> None:
    assert psi(values, values.copy()) == 0.0
    assert psi(values, np.concatenate([values, [np.nan] * 7])) == 0.0
    assert psi(values, np.array([])) is None and psi(np.array([np.nan]), values) is None


@pytest.mark.parametrize(
    ("reference", "current"),
    [
        ([0.0] * 95 + [1.0, 2.0, 3.0, 4.0, 5.0], [100.0] * 100),  # a count mostly 0 when trained, now all 100
        ([0.0] * 50, [1.0] * 50),  # a boolean: all false when trained, now all true
        ([5.0] * 10, [6.0] * 10),  # one value when trained, another now
    ],
)
def test_a_shift_off_a_repeated_reference_value_is_drift(reference: list[float], current: list[float]) -> None:
    score = psi(np.array(reference), np.array(current))
    assert score is not None and score > 0.25


def test_infinite_values_are_values_not_nulls() -> None:
    reference = np.arange(100.0)
    score = psi(reference, np.array([np.inf] * 99 + [1.0]))  # 99 % of today's values are +inf
    brute = _brute_psi(list(reference), [np.inf] * 99 + [1.0])
    assert score == pytest.approx(brute)
