"""Data-quality statistics per feature version and hour, and PSI drift, over a local Iceberg offline table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from serving.offline.statistics import drift as drift_of
from serving.offline.statistics import hourly, psi
from sinks.iceberg.as_of import read_point
from sinks.iceberg.writer import OfflineWriter, ensure_table
from sinks.records import FeatureRow

H = 3_600_000  # ms
T0 = 1_700_000_000_000 // H * H  # an hour boundary (ms)


def _table(tmp_path: Path) -> Any:
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri())
    return ensure_table(catalog, "ns")


def _write(table: Any, rows: list[tuple[FeatureDefinition, str, Any, int]]) -> None:
    writer = OfflineWriter(table)
    for d, entity, value, end in rows:
        writer.add(FeatureRow.of(d, entity, value, end - H, end))
    writer.flush()


def test_hourly_counts_rates_moments_and_quantiles(tmp_path: Path, make_definition: Any) -> None:
    count = make_definition(name="n", value_type="long")
    merchant = make_definition(name="m", value_type="string", aggregation={"function": "last", "field": "merchant_id"})
    table = _table(tmp_path)
    first = [0, 0, 1, 2, 3, 4, 5, 6, 7, 100]  # ends in the first hour (one exactly at its start)
    rows: list[tuple[FeatureDefinition, str, Any, int]] = [
        (count, f"u{i}", v, T0 + i * 60_000) for i, v in enumerate(first)
    ]
    rows += [(count, "u0", 5, T0 + H), (count, "u1", 7, T0 + H + 1)]  # the next hour, from its first ms
    rows += [(merchant, "u0", "a", T0 + 5), (merchant, "u1", None, T0 + 6)]
    _write(table, rows)
    stats = hourly(table, read_point(table, None), "user", [count, merchant], T0 * 1000, (T0 + 2 * H) * 1000)
    by = {(s["feature"], s["hour"]): s for s in stats}
    one = by[("n", "2023-11-14T22:00:00+00:00")]
    assert (one["count"], one["nulls"], one["zeros"]) == (10, 0, 2)
    assert one["zero_rate"] == 0.2 and one["null_rate"] == 0.0
    assert one["mean"] == pytest.approx(np.mean(first)) and one["stddev"] == pytest.approx(np.std(first))
    assert one["p50"] == pytest.approx(np.quantile(first, 0.5), abs=1.0) and one["p99"] <= 100
    two = by[("n", "2023-11-14T23:00:00+00:00")]
    assert (two["count"], two["mean"]) == (2, 6.0)
    text = by[("m", "2023-11-14T22:00:00+00:00")]
    assert (text["count"], text["nulls"], text["null_rate"], text["mean"], text["p50"]) == (2, 1, 0.5, None, None)
    # The range is half-open on window ends: [since, until).
    assert hourly(table, read_point(table, None), "user", [count], T0 * 1000, (T0 + H) * 1000)[-1]["count"] == 10


def test_the_report_measures_every_version_offline_as_in_the_serving_log(tmp_path: Path, make_definition: Any) -> None:
    """Design §9, statistics: both sources measure the same features, every version of the entity type's. Offline
    took the active versions only, so a pinned or backfilled version's served hours had no offline hours beside."""
    from serving.offline.statistics import report
    from sinks.serving_log import ensure_log_table

    v1, v2 = make_definition(name="n", version=1), make_definition(name="n", version=2)
    catalog = FeatureCatalog([v1, v2], active={("user", "n"): 1})  # v2 registered, not active
    table = _table(tmp_path)
    _write(table, [(v1, "u0", 3, T0 + 60_000), (v2, "u0", 4, T0 + 60_000), (v2, "u1", 6, T0 + 120_000)])
    log = ensure_log_table(SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri()), "ns")
    out = report(table, log, catalog, None, "user", T0 * 1000, (T0 + H) * 1000)
    offline = {(s["version"], s["count"], s["mean"]) for s in out["hourly"] if s["source"] == "offline"}
    assert offline == {(1, 1, 3.0), (2, 2, 5.0)}


def test_psi_is_zero_for_the_same_distribution_and_grows_with_a_shift() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(0, 1, 20_000)
    same, near, far = (psi(reference, rng.normal(mean, 1, 20_000)) for mean in (0, 0.5, 1.5))
    assert same is not None and near is not None and far is not None
    assert same < 0.01 and 0.1 < near < far
    assert psi(reference, np.array([])) is None and psi(np.array([np.nan]), reference) is None


def test_psi_matches_its_formula_by_hand() -> None:
    reference = np.arange(10.0)  # deciles at 1..9: one value per bin
    current = np.array([0.0, 0.0, 0.0, 0.0, 9.0])  # 0.8 in the first bin, 0.2 in the last
    ref = np.full(10, 0.1)
    cur = np.array([0.8] + [1e-4] * 8 + [0.2])
    assert psi(reference, current) == pytest.approx(float(np.sum((cur - ref) * np.log(cur / ref))))


def test_drift_against_a_pinned_snapshot(tmp_path: Path, shipped_catalog: FeatureCatalog) -> None:
    count, total = shipped_catalog.get("user", "txn_count_1h"), shipped_catalog.get("user", "txn_amount_sum_1h")
    table = _table(tmp_path)
    rng = np.random.default_rng(2)
    _write(table, [(count, f"u{i}", int(v), T0) for i, v in enumerate(rng.poisson(5, 500))])
    _write(table, [(total, f"u{i}", float(v), T0) for i, v in enumerate(rng.normal(50, 10, 500))])
    pinned = read_point(table, None)
    later = T0 + 24 * H
    _write(table, [(count, f"u{i}", int(v), later) for i, v in enumerate(rng.poisson(5, 500))])  # unchanged
    _write(table, [(total, f"u{i}", float(v), later) for i, v in enumerate(rng.normal(80, 10, 500))])  # shifted
    scores = drift_of(table, pinned, read_point(table, None), "user", [count, total], later * 1000, (later + 1) * 1000)
    by = {s["feature"]: s for s in scores}
    assert by["txn_count_1h"]["psi"] < 0.1 and by["txn_amount_sum_1h"]["psi"] > 0.25
    assert by["txn_amount_sum_1h"]["reference_values"] == 500 and by["txn_amount_sum_1h"]["current_values"] == 500
    assert not math.isnan(by["txn_count_1h"]["psi"])


def test_gauges_carry_the_latest_hour_and_the_drift(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from serving.offline.statistics import write_metrics

    hours = [
        {"entity_type": "user", "feature": "n", "version": 1, "null_rate": 0.5, "zero_rate": 0.1},
        {"entity_type": "user", "feature": "n", "version": 1, "null_rate": 0.25, "zero_rate": 0.0},
    ]
    drifts = [
        {"entity_type": "user", "feature": "n", "version": 1, "psi": 0.3, "training_set": "abc"},
        {"entity_type": "user", "feature": "m", "version": 1, "psi": None, "training_set": "abc"},
    ]
    path = tmp_path / "stats.prom"
    write_metrics(hours, drifts, path)
    samples = {
        (s.name, s.labels.get("feature"), s.labels.get("training_set")): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }
    assert {
        s.labels["source"] for family in text_string_to_metric_families(path.read_text()) for s in family.samples
    } == {"offline"}
    assert samples == {
        ("fs_feature_null_rate", "n", None): 0.25,
        ("fs_feature_zero_rate", "n", None): 0.0,
        ("fs_feature_psi", "n", "abc"): 0.3,
    }


def _record(served_ms: int, entity: str, values: list[Any], ends: list[int | None]) -> bytes:
    import orjson

    from serving.online.vectors import format_ms

    return orjson.dumps(
        {
            "served_at": served_ms,
            "entity_type": "user",
            "entity_id": entity,
            "names": ["txn_count_1h", "txn_amount_sum_1h"],
            "versions": [1, 1],
            "values": values,
            "feature_timestamps": [None if e is None else format_ms(e) for e in ends],
            "statuses": ["present" if e is not None else "missing" for e in ends],
        }
    )


def _land(log: Any, records: list[bytes]) -> None:
    from sinks.serving_log import Batch

    batch = Batch.empty()
    for offset, record in enumerate(records):
        batch.add(record, "t", 0, offset)
    log.append(batch.to_arrow())


def test_hourly_counts_each_window_once_by_the_row_the_join_reads(tmp_path: Path, make_definition: Any) -> None:
    """Every revision of a window was a row of the hour (count 3, mean 2.0 where the join reads one 3): late events'
    partial values biased the moments, and the drift's reference differed from what the model was trained on."""
    count = make_definition(name="n", value_type="long")
    table = _table(tmp_path)
    writer = OfflineWriter(table)
    for revision, value in ((1, 1), (2, 2), (3, 3)):
        writer.add(FeatureRow.of(count, "u1", value, T0, T0 + 60_000, revision))
    writer.add(FeatureRow.of(count, "u2", 10, T0, T0 + 60_000, 0))  # another entity's window at the same end
    writer.flush()
    (hour,) = hourly(table, read_point(table, None), "user", [count], T0 * 1000, (T0 + H) * 1000)
    assert (hour["count"], hour["mean"]) == (2, 6.5)


def test_served_hourly_counts_what_was_served_by_hour_of_serving(
    tmp_path: Path, shipped_catalog: FeatureCatalog
) -> None:
    from serving.offline.statistics import served_hourly
    from sinks.serving_log import ensure_log_table

    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri())
    log = ensure_log_table(catalog, "ns")
    records = [
        _record(T0 + 60_000, "a", [3, 7.5], [T0, T0]),  # 1 minute old when served
        _record(T0 + 120_000, "b", [0, 0.5], [T0, T0]),  # 2 minutes old
        _record(T0 + 180_000, "c", [None, None], [None, None]),  # missing: a null, no age
        _record(T0 + H, "a", [5, 1.0], [T0 + H - 60_000, T0 + H - 60_000]),  # the next hour, from its first ms
    ]
    _land(log, records)
    _land(log, records)  # the same batch landed twice (at least once): counted once
    stats = served_hourly(log, shipped_catalog, T0 * 1000, (T0 + 2 * H) * 1000)
    by = {(s["feature"], s["hour"]): s for s in stats}
    first = by[("txn_count_1h", "2023-11-14T22:00:00+00:00")]
    assert first["source"] == "serving_log"
    assert (first["count"], first["nulls"], first["zeros"], first["mean"]) == (3, 1, 1, 1.5)
    assert first["null_rate"] == pytest.approx(1 / 3) and first["zero_rate"] == pytest.approx(1 / 3)
    assert first["lag_p50_ms"] == pytest.approx(90_000, rel=0.5) and first["lag_p99_ms"] <= 120_000
    amount = by[("txn_amount_sum_1h", "2023-11-14T22:00:00+00:00")]
    assert (amount["count"], amount["mean"]) == (3, 4.0)
    assert by[("txn_count_1h", "2023-11-14T23:00:00+00:00")]["count"] == 1
    # [since, until) on serving time: the hour at `until` is out.
    assert {s["hour"] for s in served_hourly(log, shipped_catalog, T0 * 1000, (T0 + H) * 1000)} == {
        "2023-11-14T22:00:00+00:00"
    }


def test_a_value_logged_expired_or_missing_counts_as_a_null_and_other_types_stay_out(
    tmp_path: Path, shipped_catalog: FeatureCatalog
) -> None:
    """`value_json` alone was read: an `expired` 7 counted as a value (the API logs null there, a log written
    otherwise did not); and the serving log's hours covered every entity type's features, not the one asked."""
    import orjson

    from serving.offline.statistics import served_hourly
    from sinks.serving_log import ensure_log_table

    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri())
    log = ensure_log_table(catalog, "ns")
    expired = orjson.loads(_record(T0 + 60_000, "a", [7, 2.0], [T0, T0]))
    expired["statuses"] = ["expired", "present"]
    merchant = {**expired, "entity_type": "merchant", "statuses": ["present", "present"]}
    _land(log, [orjson.dumps(expired), orjson.dumps(merchant)])
    count = shipped_catalog.get("user", "txn_count_1h", 1)
    both = FeatureCatalog([*shipped_catalog, count.model_copy(update={"entity": "merchant"})])
    assert {s["entity_type"] for s in served_hourly(log, both, T0 * 1000, (T0 + H) * 1000)} == {"user", "merchant"}
    hours = served_hourly(log, both, T0 * 1000, (T0 + H) * 1000, entity_type="user")
    by = {s["feature"]: s for s in hours}
    assert {s["entity_type"] for s in hours} == {"user"}
    assert (by["txn_count_1h"]["count"], by["txn_count_1h"]["nulls"]) == (1, 1)
    assert (by["txn_amount_sum_1h"]["count"], by["txn_amount_sum_1h"]["mean"]) == (1, 2.0)
    only = served_hourly(
        log, shipped_catalog, T0 * 1000, (T0 + H) * 1000, only=[shipped_catalog.get("user", "txn_amount_sum_1h", 1)]
    )
    assert [s["feature"] for s in only] == ["txn_amount_sum_1h"]


@pytest.mark.parametrize(
    ("value_type", "logged", "expected"),
    [
        ("string", ['"ok"', '""', "5", "true", '{"a":1}', '["m"]', "null", None], ['"ok"', '""', *[None] * 6]),
        ("long", ["5", "5.5", '"5"', "true", "[1]", "null"], [5.0, 5.5, None, None, None, None]),
        ("boolean", ["true", "false", "1", '"true"', "null"], [True, False, None, None, None]),
    ],
)
def test_a_logged_value_not_of_the_features_type_is_a_null(
    value_type: str, logged: list[str | None], expected: list[Any]
) -> None:
    """Design §9: a logged value not of the feature's type counts as a null. A string feature's served 5, true, an
    object or an array counted as values (nulls 0 of 5 where 4 were not strings)."""
    import pyarrow as pa

    from serving.offline.statistics import served_values

    assert served_values(pa.array(logged, pa.string()), value_type).to_pylist() == expected


def test_served_drift_and_the_stored_report(tmp_path: Path, shipped_catalog: FeatureCatalog) -> None:
    from datetime import UTC, datetime, timedelta

    from registry.quality import QualityStore
    from serving.offline.statistics import served_drift, store
    from sinks.serving_log import ensure_log_table

    count, total = shipped_catalog.get("user", "txn_count_1h"), shipped_catalog.get("user", "txn_amount_sum_1h")
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri())
    table, log = ensure_table(catalog, "ns"), ensure_log_table(catalog, "ns")
    rng = np.random.default_rng(3)
    _write(table, [(count, f"u{i}", int(v), T0) for i, v in enumerate(rng.poisson(5, 400))])
    _write(table, [(total, f"u{i}", float(v), T0) for i, v in enumerate(rng.normal(50, 10, 400))])
    pinned = read_point(table, None)
    # Served: counts as trained, amounts shifted by three standard deviations.
    _land(
        log, [_record(T0 + H, f"u{i}", [int(rng.poisson(5)), float(rng.normal(80, 10))], [T0, T0]) for i in range(400)]
    )
    scores = served_drift(table, pinned, log, "user", [count, total], T0 * 1000, (T0 + 2 * H) * 1000)
    by = {s["feature"]: s for s in scores}
    assert by["txn_count_1h"]["psi"] < 0.1 and by["txn_amount_sum_1h"]["psi"] > 0.25
    assert by["txn_amount_sum_1h"]["source"] == "serving_log" and by["txn_amount_sum_1h"]["current_values"] == 400

    quality = QualityStore(tmp_path / "q.db")
    since, until = datetime.fromtimestamp(T0 / 1000, UTC), datetime.fromtimestamp((T0 + 2 * H) / 1000, UTC)
    report = {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "hourly": [*hourly(table, read_point(table, None), "user", [count], T0 * 1000, (T0 + 2 * H) * 1000)],
        "drift": [{**s, "training_set": "ts"} for s in scores],
    }
    store(quality, report, until)
    kept = quality.feature("user", "txn_amount_sum_1h", 1, since, until + timedelta(hours=1))
    assert [(d["source"], d["training_set"]) for d in kept["drift"]] == [("serving_log", "ts")]
    assert quality.feature("user", "txn_count_1h", 1, since, until)["hourly"][0]["count"] == 400


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--training-set", "ts", "--fail-above", "-1"], "argument --fail-above: must be a number of 0 or more"),
        (["--training-set", "ts", "--fail-above", "nan"], "argument --fail-above: must be a number of 0 or more"),
        (["--fail-above", "0.2"], "argument --fail-above: needs --training-set"),
        (["--every", "0s"], "argument --every: must be a positive duration"),
        (["--every", "soon"], "argument --every: duration 'soon' is not"),
        (["--since", "1 d"], "argument --since: duration '1 d' is not"),
        (
            ["--metrics-file", "/no/such/folder/x.prom"],
            "argument --metrics-file: folder /no/such/folder does not exist",
        ),
    ],
)
def test_options_are_checked_before_anything_is_read(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from serving.offline import statistics

    with pytest.raises(SystemExit) as caught:
        statistics.main(argv)
    assert caught.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_mean_and_stddev_of_finite_values_near_the_largest_double_are_finite() -> None:
    """The mean and stddev of finite values are finite: the sum of two doubles near the largest one overflowed,
    and the hour's mean was infinite (null once stored and served) and its stddev NaN (infinite for values whose
    squares overflow)."""
    from types import SimpleNamespace

    from serving.offline.statistics import _summaries

    d: Any = SimpleNamespace(name="f", version=1)
    cases = [
        ([1e308, 1e308], 1e308, 0.0),
        ([1.7e308, -1.7e308, math.nan, None], 0.0, 1.7e308),
        ([1e200, -1e200], 0.0, 1e200),  # squares past the largest double
        ([1.5e308, 1.5e308, 1.0], float(np.mean(np.array([1.5e308, 1.5e308, 1.0]) / 2) * 2), None),
    ]
    for values, mean, stddev in cases:
        assert isinstance(values, list)
        n = len(values)
        hours = np.zeros(n, np.int64)
        (entry,) = _summaries("offline", "user", d, hours, pa.array(values, pa.float64()), pa.array([0.0] * n))
        assert entry["mean"] == pytest.approx(mean, rel=1e-12), values
        assert math.isfinite(entry["stddev"]), values
        if stddev is not None:
            assert entry["stddev"] == pytest.approx(stddev, rel=1e-12), values
        finite = [v for v in values if v is not None and math.isfinite(v)]
        assert min(finite) <= entry["p01"] <= entry["p50"] <= entry["p99"] <= max(finite), values  # not scaled
    # Ordinary values are unchanged by it.
    (entry,) = _summaries("offline", "user", d, np.zeros(3, np.int64), pa.array([1.0, 2.0, 4.0]), pa.array([0.0] * 3))
    assert (entry["mean"], entry["stddev"]) == (pytest.approx(7 / 3), pytest.approx(float(np.std([1.0, 2.0, 4.0]))))
