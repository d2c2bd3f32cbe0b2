"""Hourly statistics over values holding NaN and infinities, against a brute-force reference.

The rule (serving/offline/statistics.py, docs/design.md §9 "Statistics"): mean, stddev (population) and the
p01/p50/p99 quantiles are of an hour's finite values only (nulls, NaN and infinities left out of every one of
them; none: null); ``count`` counts every value, ``nulls`` the nulls, ``zeros`` the values equal to 0 (a NaN or an
infinity is neither). Before, a NaN made the hour's mean and stddev NaN (null once written as JSON) while the
quantiles skipped it, and an infinity made the mean infinite (null in JSON) and the stddev NaN."""

from __future__ import annotations

import math
import random
import statistics as py_statistics
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from registry.core.definitions import FeatureDefinition
from serving.offline.statistics import HOUR_US, QUANTILES, _summaries, hourly
from sinks.iceberg.as_of import read_point
from sinks.iceberg.writer import OfflineWriter, ensure_table
from sinks.records import FeatureRow

H = 3_600_000  # ms
T0 = 1_700_000_000_000 // H * H  # an hour boundary (ms)
_SPECIAL = [math.nan, math.inf, -math.inf, None, 0.0, -0.0]


def _reference(values: list[float | None]) -> dict[str, Any]:
    """One hour's statistics, computed the slow, obvious way from the rule."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    quantiles: list[float | None] = [None] * len(QUANTILES)
    if finite:
        quantiles = [float(q) for q in pc.tdigest(pa.array(finite, pa.float64()), q=list(QUANTILES)).to_pylist()]
    return {
        "count": len(values),
        "nulls": sum(v is None for v in values),
        "zeros": sum(v is not None and v == 0 for v in values),  # NaN == 0 is False; -0.0 is a zero
        "mean": py_statistics.fmean(finite) if finite else None,
        "stddev": py_statistics.pstdev(finite) if finite else None,
        **{f"p{round(q * 100):02d}": v for q, v in zip(QUANTILES, quantiles, strict=True)},
        "_range": (min(finite), max(finite)) if finite else None,
    }


def _check(entry: dict[str, Any], ref: dict[str, Any]) -> None:
    assert (entry["count"], entry["nulls"], entry["zeros"]) == (ref["count"], ref["nulls"], ref["zeros"])
    assert entry["null_rate"] == ref["nulls"] / ref["count"] and entry["zero_rate"] == ref["zeros"] / ref["count"]
    for name in ("mean", "stddev", "p01", "p50", "p99"):
        got, want = entry[name], ref[name]
        if want is None:
            assert got is None, (name, got)
            continue
        assert got is not None and math.isfinite(got), (name, got)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9), (name, got, want)
    if ref["_range"] is not None:
        low, high = ref["_range"]
        assert all(low <= entry[p] <= high for p in ("p01", "p50", "p99"))


def _definition(make_definition: Any) -> FeatureDefinition:
    return make_definition(name="amount_last", value_type="double", aggregation={"function": "last", "field": "amount"})


def test_seeded_hours_match_the_reference(make_definition: Any) -> None:
    """Many random hours mixing finite values with NaN, infinities, nulls and zeros (``_summaries`` directly)."""
    d = _definition(make_definition)
    rng = random.Random(20261204)
    for _ in range(300):
        hours = rng.randint(1, 3)
        values: list[float | None] = []
        hour_of: list[int] = []
        for h in range(hours):
            for _ in range(rng.randint(1, 40)):
                values.append(rng.choice(_SPECIAL) if rng.random() < 0.3 else round(rng.gauss(0, 50), 3))
                hour_of.append(h)
        entries = _summaries(
            "offline",
            "user",
            d,
            pa.array([T0 * 1000 + h * HOUR_US for h in hour_of], pa.int64()).to_numpy(),
            pa.array(values, pa.float64()),
            pa.array([0.0] * len(values)),
        )
        assert len(entries) == hours
        for h, entry in enumerate(entries):
            _check(entry, _reference([v for v, at in zip(values, hour_of, strict=True) if at == h]))


@pytest.mark.parametrize(
    ("values", "mean", "stddev", "p50"),
    [
        ([1.0, 3.0, math.nan], 2.0, 1.0, None),
        ([1.0, 3.0, math.inf], 2.0, 1.0, None),
        ([1.0, 3.0, -math.inf, math.inf], 2.0, 1.0, None),
        ([math.nan, math.inf, None], None, None, None),
        ([5.0, math.nan], 5.0, 0.0, 5.0),
    ],
    ids=["NaN", "+inf", "both infinities", "no finite value", "one finite value"],
)
def test_an_hour_of_the_offline_table_follows_the_rule(
    tmp_path: Path, make_definition: Any, values: list[float | None], mean: float | None, stddev: float | None, p50: Any
) -> None:
    d = _definition(make_definition)
    table = ensure_table(SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri()), "ns")
    writer = OfflineWriter(table)
    for i, v in enumerate(values):
        writer.add(FeatureRow.of(d, f"u{i}", v, T0 - H + i, T0 + i))
    writer.flush()
    [entry] = hourly(table, read_point(table, None), "user", [d], T0 * 1000, (T0 + H) * 1000)
    _check(entry, _reference(values))
    assert (entry["mean"], entry["stddev"]) == (mean, stddev)
    if p50 is not None:
        assert entry["p50"] == p50


def test_a_drift_entry_counts_the_values_its_score_compared(make_definition: Any) -> None:
    """PSI leaves NaN out (docs/design.md §9), so ``reference_values``/``current_values`` do too. Before, a NaN was
    counted as a value the score compared."""
    from serving.offline.statistics import _psi_entry, psi

    d = _definition(make_definition)
    before = [1.0, math.nan, None, 2.0, math.inf, 3.0]
    now = [math.nan, 3.0, None, -math.inf]
    entry = _psi_entry("offline", "user", d, pa.array(before, pa.float64()), pa.array(now, pa.float64()))
    assert entry is not None
    assert (entry["reference_values"], entry["current_values"]) == (4, 2)  # infinities are compared (outer bins)
    finite_or_inf = [[v for v in values if v is not None and not math.isnan(v)] for values in (before, now)]
    expected = psi(*(pa.array(v, pa.float64()).to_numpy() for v in finite_or_inf))
    assert entry["psi"] == expected
