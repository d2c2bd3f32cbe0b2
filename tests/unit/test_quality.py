"""The stored data-quality results (``registry.quality``): hours replaced, runs kept, half-open spans,
the gate's worst drift, and the refusals of bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from registry.quality import QualityStore

T0 = datetime(2026, 11, 30, 10, tzinfo=UTC)
H = timedelta(hours=1)


def _hour(hour: datetime, count: int, null_rate: float = 0.0, feature: str = "n") -> dict[str, object]:
    return {
        "entity_type": "user",
        "feature": feature,
        "version": 1,
        "hour": hour.isoformat(),
        "count": count,
        "nulls": round(count * null_rate),
        "zeros": 0,
        "null_rate": null_rate,
        "zero_rate": 0.0,
        "mean": 1.5,
        "stddev": None,
        "p01": None,
        "p50": 1.0,
        "p99": 2.0,
        "lag_p50_ms": 100.0,
        "lag_p99_ms": 900.0,
    }


def _drift(psi: float | None, feature: str = "n", training_set: str = "ts1") -> dict[str, object]:
    return {"entity_type": "user", "feature": feature, "version": 1, "training_set": training_set, "psi": psi}


def test_an_hour_written_again_replaces_the_stored_one(tmp_path: Path) -> None:
    store = QualityStore(tmp_path / "q.db")
    assert store.put_hourly("offline", [_hour(T0, 10), _hour(T0 + H, 5)], T0 + 2 * H) == 2
    store.put_hourly("offline", [_hour(T0 + H, 8)], T0 + 3 * H)  # the same hour, recomputed later
    store.put_hourly("serving_log", [_hour(T0 + H, 3, null_rate=1 / 3)], T0 + 3 * H)  # another source: kept apart
    hourly = store.feature("user", "n", 1, T0, T0 + 2 * H)["hourly"]
    assert [(h["hour"], h["source"], h["count"]) for h in hourly] == [
        ("2026-11-30T10:00:00.000000+00:00", "offline", 10),
        ("2026-11-30T11:00:00.000000+00:00", "offline", 8),
        ("2026-11-30T11:00:00.000000+00:00", "serving_log", 3),
    ]
    assert isinstance(hourly[0]["count"], int) and hourly[0]["mean"] == 1.5 and hourly[0]["stddev"] is None
    # [since, until): an hour at `since` is in, an hour at `until` is out.
    assert [h["count"] for h in store.feature("user", "n", 1, T0 + H, T0 + 2 * H)["hourly"]] == [8, 3]
    assert [h["count"] for h in store.feature("user", "n", 1, T0, T0 + H)["hourly"]] == [10]
    assert store.feature("user", "n", 2, T0, T0 + 2 * H)["hourly"] == []  # another version


def test_drift_and_parity_runs_are_kept_and_the_worst_drift_is_found(tmp_path: Path) -> None:
    store = QualityStore(tmp_path / "q.db")
    store.put_drift("offline", [_drift(0.05), _drift(0.4, "m")], T0 - H, T0, T0)
    store.put_drift("serving_log", [_drift(0.3)], T0 - H, T0, T0 + H)
    store.put_drift("offline", [_drift(0.9, training_set="old"), _drift(None, "k")], T0 - 2 * H, T0 - H, T0 - H)
    run = {"checked": 4, "mismatched": 1, "missing_offline": 0, "mismatch_ratio": 0.25, "missing_ratio": 0.0}
    store.put_parity(
        [{"entity_type": "user", "feature": "n", "version": 1, **run, "served": 5, "stale": 1}], T0, T0 + H, T0 + H
    )
    stored = store.feature("user", "n", None, T0, T0 + 2 * H)
    assert [(d["source"], d["psi"]) for d in stored["drift"]] == [("offline", 0.05), ("serving_log", 0.3)]
    assert stored["parity"][0]["mismatch_ratio"] == 0.25 and stored["parity"][0]["stale"] == 1
    # Since T0: the run of T0 - 1h is left out; a null score is never the worst.
    assert store.worst_drift(T0) == {
        ("user", "n", 1): (0.3, "ts1", "serving_log"),
        ("user", "m", 1): (0.4, "ts1", "offline"),
    }
    assert store.worst_drift(T0 - H)[("user", "n", 1)] == (0.9, "old", "offline")
    assert store.features() == [("user", "k", 1), ("user", "m", 1), ("user", "n", 1)]
    assert store.features("merchant") == []


def test_bad_input_is_refused_and_nothing_is_half_written(tmp_path: Path) -> None:
    store = QualityStore(tmp_path / "q.db")
    with pytest.raises(ValueError, match="source must be one of"):
        store.put_hourly("kafka", [_hour(T0, 1)], T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.feature("user", "n", 1, datetime(2026, 1, 1), T0)
    with pytest.raises(KeyError):
        store.put_hourly("offline", [_hour(T0, 1), {"entity_type": "user"}], T0)  # the second row is malformed
    assert store.feature("user", "n", 1, T0 - H, T0 + H)["hourly"] == []
