"""Oracle checks of the deployment gate's guardrails (README "Serving log and parity", design §9):
a share or score exactly at its threshold passes, anything above it is refused, and a refusal's
numbers read as above the threshold they name."""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from registry.gate import Guardrails, ServedHealth, _drift_problems, _health_problems

KEY = ("user", "n", 1)


def _numbers(message: str) -> list[Decimal]:
    """The numbers a refusal shows as `X% > Y%` or `PSI X ... (> Y)`."""
    found = (
        re.search(r"\(([\d.E+-]+)% > ([\d.E+-]+)%\)", message)
        or re.search(r": ([\d.E+-]+)% of values .*\(> ([\d.E+-]+)%\)", message)
        or re.search(r"PSI ([\d.E+-]+) .*\(> ([\d.E+-]+)\)", message)
    )
    assert found, message
    return [Decimal(found[1]), Decimal(found[2])]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 12), st.integers(0, 12), st.data())
def test_a_stale_share_exactly_at_the_threshold_passes_and_one_value_more_is_refused(
    twos: int, fives: int, data: st.DataObject
) -> None:
    served = 2**twos * 5**fives  # k / served is a finite decimal: the threshold can be written exactly
    stale = data.draw(st.integers(0, served - 1))
    threshold = float(str(Decimal(stale) / Decimal(served)))  # as `--max-stale-share` would parse it
    assert _health_problems("f", ServedHealth(served, stale, 0.0, 0.0), Guardrails({}, max_stale_share=threshold)) == []
    refused = _health_problems(
        "f", ServedHealth(served, stale + 1, 0.0, 0.0), Guardrails({}, max_stale_share=threshold)
    )
    assert len(refused) == 1 and "served stale" in refused[0]
    shown, limit = _numbers(refused[0])
    assert shown > limit  # the message never reads "1.00% > 1.00%"


@settings(max_examples=300, deadline=None)
@given(
    st.floats(0, 1, allow_nan=False),
    st.floats(0, 1, allow_nan=False),
    st.sampled_from(["stale", "mismatch", "missing"]),
)
def test_shares_are_refused_exactly_when_above_the_threshold(share: float, threshold: float, what: str) -> None:
    if what == "stale":
        served = 10**6
        stale = round(share * served)
        health, guard = ServedHealth(served, stale, 0.0, 0.0), Guardrails({}, max_stale_share=threshold)
        # Brute force from the doc: refused when the share is above the threshold as written (its shortest
        # decimal: `0.3` means 3/10, not the binary float just below it).
        above = Fraction(stale, served) > Fraction(repr(threshold))
    else:
        health = ServedHealth(1, 0, share if what == "mismatch" else 0.0, share if what == "missing" else 0.0)
        guard, above = Guardrails({}, max_parity_ratio=threshold), share > threshold
    problems = _health_problems("f", health, guard)
    assert len(problems) == int(above)
    for p in problems:
        shown, limit = _numbers(p)
        assert shown > limit, p


@settings(max_examples=300, deadline=None)
@given(
    st.floats(0, 1e6, allow_nan=False) | st.just(float("inf")),
    st.floats(0, 1e6, allow_nan=False),
)
def test_a_drift_score_is_refused_exactly_when_above_max_psi_and_says_so(score: float, max_psi: float) -> None:
    problems = _drift_problems("f", (score, "ts", "serving_log"), Guardrails({}, max_psi=max_psi))
    assert len(problems) == int(score > max_psi)
    assert _drift_problems("f", (max_psi, "ts", "offline"), Guardrails({}, max_psi=max_psi)) == []
    for p in problems:
        assert "of its served values" in p and "training set ts" in p
        if score != float("inf"):
            shown, limit = _numbers(p)
            assert shown > limit, p
            assert Decimal(repr(max_psi)) == limit  # the threshold as given, not rounded


def test_refusals_show_the_digits_that_put_them_above_the_threshold() -> None:
    stale = _health_problems("f", ServedHealth(100_000, 1004, 0.0, 0.0), Guardrails({}))
    assert stale == [
        "f: served stale in 1004 of 100000 logged values in the last 24h (1.004% > 1.00%): it missed its freshness SLO"
    ]
    drift = _drift_problems("f", (0.2504, "ts", "offline"), Guardrails({}))
    assert drift == ["f: drifted from training set ts in the last 24h: PSI 0.2504 of its offline values (> 0.25)"]
    tiny = _health_problems("f", ServedHealth(10, 0, 0.00002, 0.0), Guardrails({}, max_parity_ratio=0.00001))
    assert tiny == [
        "f: 0.002% of values served in the last 24h mismatched offline (> 0.001%): online and offline disagree"
    ]
    assert _drift_problems("f", (float("inf"), "ts", "offline"), Guardrails({}, max_psi=-0.0)) == [
        "f: drifted from training set ts in the last 24h: PSI inf of its offline values (> 0)"
    ]
