"""Retention against a brute-force model of docs/design.md §9 "Retention", on real Iceberg tables.

The model, from the docs only: a row of a defined feature version whose window end is earlier than
``now - offline_retention`` goes, one exactly at that instant (to the microsecond) stays, rows of
undefined versions stay; then every snapshot but the current one and those pinned by manifests recorded
in the last ``pin_days`` days (that still exist) is expired, and no file left on disk holds a removed row
except the files a kept pinned snapshot reaches. The dry run names the same rows, the same pre-existing
snapshots to expire and to keep, and the same invalidated manifests; a second run removes nothing.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.core.catalog import FeatureCatalog
from registry.training_sets import TrainingSetStore
from serving.offline.retention import apply_retention
from sinks.iceberg import layout as offline_layout
from tests.unit.conftest import build_definition
from tests.unit.test_retention import _manifest
from tests.unit.test_training_sets import iceberg_table

NOW = datetime(2026, 11, 30, 12, 0, 0, 123_456, tzinfo=UTC)  # microseconds, not whole milliseconds
NOW_US = (NOW - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
DAY_US = 86_400_000_000
A = build_definition(name="a_count", offline_retention="10d")
B = build_definition(name="b_count", version=2, offline_retention="1d")
UNDEFINED = build_definition(name="gone_count", offline_retention="1d")  # written, not in the catalog
CATALOG = FeatureCatalog([A, B])
# Offsets (µs) from each version's cutoff: around the boundary and far either side.
OFFSETS = st.sampled_from([-5 * DAY_US, -1, 0, 1, 7, DAY_US])

Row = tuple[str, int, str, int]  # feature name, version, entity id, window end µs


def _cutoff_us(d: Any) -> int:
    return NOW_US - int(d.offline_retention / timedelta(microseconds=1))


def _append(table: Any, rows: list[Row]) -> int:
    schema = offline_layout.arrow_schema()
    cols: dict[str, list[Any]] = {f.name: [] for f in schema}
    for name, version, entity, end_us in rows:
        cols["entity_type"].append("user")
        cols["entity_id"].append(entity)
        cols["feature_name"].append(name)
        cols["feature_version"].append(version)
        cols["event_time"].append(end_us)
        cols["window_start"].append(end_us - 3_600_000_000)
        cols["value_long"].append(1)
        for c in ("value_double", "value_string", "value_boolean"):
            cols[c].append(None)
        cols["ingested_at"].append(NOW_US - DAY_US * 400)
        cols["revision"].append(0)
    table.append(pa.Table.from_arrays([pa.array(cols[f.name], f.type) for f in schema], schema=schema))
    return int(table.metadata.current_snapshot_id)


def _rows(table: Any, snapshot_id: int | None = None) -> Counter[Row]:
    out = table.scan(snapshot_id=snapshot_id).to_arrow()
    us = out.column("event_time").cast(pa.int64()).to_pylist()
    return Counter(
        zip(out.column("feature_name").to_pylist(), out.column("feature_version").to_pylist(),
            out.column("entity_id").to_pylist(), us, strict=True)
    )  # fmt: skip


def _on_disk(folder: Path) -> set[Row]:
    out: set[Row] = set()
    for path in (folder / "wh").rglob("*.parquet"):
        t = pq.read_table(path)
        us = t.column("event_time").cast(pa.int64()).to_pylist()
        out |= set(
            zip(t.column("feature_name").to_pylist(), t.column("feature_version").to_pylist(),
                t.column("entity_id").to_pylist(), us, strict=True)
        )  # fmt: skip
    return out


def _past(row: Row) -> bool:
    """The model: a defined version's row whose window end is before now - its offline_retention."""
    name, version, _, end_us = row
    d = {(A.name, A.version): A, (B.name, B.version): B}.get((name, version))
    return d is not None and end_us < _cutoff_us(d)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    appends=st.lists(
        st.lists(st.tuples(st.sampled_from([A, B, UNDEFINED]), OFFSETS, st.sampled_from(["u1", "u2"])), min_size=1,
                 max_size=6),
        min_size=1,
        max_size=3,
    ),
    pins=st.lists(st.tuples(st.integers(0, 2), st.sampled_from([0.0, 1.0, 29.0, 30.0, 31.0, 400.0])), max_size=3),
    pin_days=st.sampled_from([0.0, 30.0, float("inf")]),
)  # fmt: skip
def test_retention_equals_the_documented_model(
    tmp_path_factory: Any, appends: list[list[tuple[Any, int, str]]], pins: list[tuple[int, float]], pin_days: float
) -> None:
    folder = tmp_path_factory.mktemp("ret")
    table = iceberg_table(folder)
    snapshots: list[int] = []
    written: Counter[Row] = Counter()
    for group in appends:
        rows = [(d.name, d.version, e, _cutoff_us(d) + off) for d, off, e in group]
        written.update(rows)
        snapshots.append(_append(table, rows))
        table = table.refresh()
    held = {s: _rows(table, s) for s in snapshots}
    store = TrainingSetStore(folder / "ts.db")
    manifests: dict[str, tuple[int, float]] = {}
    for n, (i, age_days) in enumerate(pins):
        m = _manifest(snapshots[min(i, len(snapshots) - 1)], NOW - timedelta(days=age_days), n)
        store.record(m)
        manifests[m.id] = (m.snapshot_id or 0, age_days)
    pinned = {s for s, age in manifests.values() if age <= pin_days}
    expected_removed = Counter({r: n for r, n in written.items() if _past(r)})

    dry = apply_retention(table, CATALOG, store, now=NOW, pin_days=pin_days, dry_run=True)
    assert _rows(table.refresh()) == written and [s.snapshot_id for s in table.refresh().snapshots()] == snapshots
    run = apply_retention(table.refresh(), CATALOG, store, now=NOW, pin_days=pin_days, orphans_older_than_s=0)
    table = table.refresh()

    assert _rows(table) == written - expected_removed
    counts: dict[str, int] = {}
    for (name, version, _, _), n in expected_removed.items():
        counts[f"user/{name}@{version}"] = counts.get(f"user/{name}@{version}", 0) + n
    assert run.rows_removed == dry.rows_removed == counts
    assert run.rows_removed_total == dry.rows_removed_total == expected_removed.total()
    # Snapshots: the current one and the pinned ones stay; every other pre-existing one goes.
    current_before = snapshots[-1]
    keep = pinned | ({current_before} if not expected_removed else set())
    remaining = {s.snapshot_id for s in table.snapshots()}
    assert remaining == keep | {table.metadata.current_snapshot_id}
    assert sorted(dry.snapshots_expired) == sorted(s for s in run.snapshots_expired if s in snapshots)
    assert set(dry.snapshots_expired) == set(snapshots) - keep
    assert sorted(dry.snapshots_kept) == sorted(s for s in run.snapshots_kept if s in snapshots) == sorted(keep)
    invalid = sorted(m for m, (s, _) in manifests.items() if s not in keep)
    assert dry.manifests_invalidated == run.manifests_invalidated == invalid
    keeping = {str(s): sorted(m for m, (p, age) in manifests.items() if p == s and age <= pin_days) for s in pinned}
    assert {k: sorted(v) for k, v in run.manifests_keeping_snapshots.items()} == keeping
    assert {k: sorted(v) for k, v in dry.manifests_keeping_snapshots.items()} == keeping
    past_held = {
        str(s): sum(n for r, n in held[s].items() if _past(r))
        for s in pinned
        if s != table.metadata.current_snapshot_id
    }
    assert run.rows_past_retention_in_kept_snapshots == past_held
    assert dry.rows_past_retention_in_kept_snapshots == past_held
    # Time travel and files: a removed row survives only where a kept pinned snapshot holds it.
    for s in remaining:
        assert _rows(table, s) == (held[s] if s in held else written - expected_removed)
    still_reachable = {r for s in pinned for r in held[s]}
    assert (_on_disk(folder) & set(expected_removed)) <= still_reachable
    again = apply_retention(table, CATALOG, store, now=NOW, pin_days=pin_days, orphans_older_than_s=0)
    assert again.rows_removed_total == 0 and again.snapshots_expired == [] and again.files_deleted == 0


def test_a_dry_run_with_nothing_to_delete_names_what_the_run_names(tmp_path: Path) -> None:
    """Nothing past retention and a training set pinning the current snapshot: the run keeps it as the current
    one and names no pinned snapshot holding rows past retention; the dry run says the same (it named the
    current snapshot with 0 rows)."""
    table = iceberg_table(tmp_path)
    snapshot = _append(table, [(A.name, A.version, "u1", _cutoff_us(A))])  # exactly at the limit: kept
    store = TrainingSetStore(tmp_path / "ts.db")
    store.record(_manifest(snapshot, NOW - timedelta(days=1), 0))
    dry = apply_retention(table.refresh(), CATALOG, store, now=NOW, dry_run=True)
    run = apply_retention(table.refresh(), CATALOG, store, now=NOW, orphans_older_than_s=0)
    assert run.rows_removed_total == dry.rows_removed_total == 0
    assert dry.rows_past_retention_in_kept_snapshots == run.rows_past_retention_in_kept_snapshots == {}
    assert dry.snapshots_kept == run.snapshots_kept == [snapshot] and dry.snapshots_expired == run.snapshots_expired
