"""Offline statistics (docs/design.md §9, "Statistics") against a brute force, on a real Iceberg table.

Per feature version and hour of window end (floored to the hour, UTC), over the visible rows with window
ends in ``[since, until)``: count, nulls, zeros, their rates, the mean and population standard deviation
of the non-null values, and the ingestion lag; boundaries at the microsecond (an end exactly at ``until``
is out, one exactly at ``since`` in) and ends exactly on an hour in that hour.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.offline.statistics import HOUR_US, hourly
from sinks.iceberg import layout as offline_layout
from sinks.iceberg.as_of import iso_us, read_point
from tests.unit.conftest import build_definition
from tests.unit.test_training_sets import iceberg_table

D = build_definition(name="amount_sum", value_type="double", aggregation={"function": "sum", "field": "amount"})
H0 = 1_764_000_000_000_000 // HOUR_US * HOUR_US  # an hour boundary (µs)
# (window end µs, value, ingestion lag µs): on, just before and just after hour boundaries; nulls and zeros.
ROWS = [
    (H0 - 1, 1.5, 1_000), (H0, 0.0, 2_000), (H0 + 1, None, 3_000), (H0 + 7, 4.0, 4_000),
    (H0 + HOUR_US - 1, -2.0, 10_000), (H0 + HOUR_US, 3.0, 5_000), (H0 + HOUR_US, 3.0, 6_000),
    (H0 + 2 * HOUR_US + 500, None, 1_000),
]  # fmt: skip
EDGES = sorted({end + d for end, _, _ in ROWS for d in (-1, 0, 1)} | {H0 - HOUR_US, H0 + 3 * HOUR_US})


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Any:
    table = iceberg_table(Path(tmp_path_factory.mktemp("stats")))
    schema = offline_layout.arrow_schema()
    cols: dict[str, list[Any]] = {f.name: [] for f in schema}
    for i, (end, value, lag) in enumerate(ROWS):
        for c, v in (
            ("entity_type", "user"), ("entity_id", f"u{i}"), ("feature_name", D.name), ("feature_version", 1),
            ("event_time", end), ("window_start", end - HOUR_US), ("value_long", None), ("value_double", value),
            ("value_string", None), ("value_boolean", None), ("ingested_at", end + lag), ("revision", 0),
        ):  # fmt: skip
            cols[c].append(v)
    table.append(pa.Table.from_arrays([pa.array(cols[f.name], f.type) for f in schema], schema=schema))
    return table.refresh()


@settings(max_examples=25, deadline=None)
@given(since=st.sampled_from(EDGES), until=st.sampled_from(EDGES))
def test_hourly_equals_a_brute_force(table: Any, since: int, until: int) -> None:
    if until <= since:
        return
    got = hourly(table, read_point(table, None), "user", [D], since, until)
    hours: dict[int, list[tuple[float | None, int]]] = {}
    for end, value, lag in ROWS:
        if since <= end < until:
            hours.setdefault(end // HOUR_US * HOUR_US, []).append((value, lag))
    assert [g["hour"] for g in got] == [iso_us(h) for h in sorted(hours)]
    for g, h in zip(got, sorted(hours), strict=True):
        values = [v for v, _ in hours[h] if v is not None]
        count, nulls = len(hours[h]), sum(v is None for v, _ in hours[h])
        assert (g["count"], g["nulls"], g["zeros"]) == (count, nulls, sum(v == 0 for v in values))
        assert g["null_rate"] == nulls / count and g["zero_rate"] == sum(v == 0 for v in values) / count
        if values:
            mean = sum(values) / len(values)
            assert g["mean"] == pytest.approx(mean)
            assert g["stddev"] == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)))
            assert min(values) <= g["p01"] <= g["p50"] <= g["p99"] <= max(values)
        else:
            assert g["mean"] is None and g["p50"] is None
        lags_ms = sorted(lag / 1000 for _, lag in hours[h])
        assert lags_ms[0] <= g["lag_p50_ms"] <= g["lag_p99_ms"] <= lags_ms[-1]
