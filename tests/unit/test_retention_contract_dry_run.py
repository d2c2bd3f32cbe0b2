"""``retention --dry-run`` names what the run will do (docs/design.md §9, "Retention"): the snapshots it would
keep and the manifests keeping them are those the run then reports, also when a recent manifest pins a
snapshot that is gone already (an erasure or ``--expire-pinned`` expired it)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from registry.training_sets import TrainingSetStore
from serving.offline.retention import apply_retention
from sinks.iceberg.maintenance import expire_snapshots
from tests.unit.test_retention import CATALOG, NOW, _manifest, _write
from tests.unit.test_training_sets import iceberg_table


@pytest.mark.parametrize("rows_to_delete", [True, False])
def test_a_dry_run_keeps_and_names_what_the_run_keeps_and_names(tmp_path: Path, rows_to_delete: bool) -> None:
    table = iceberg_table(tmp_path / "t")
    snapshots = _write(table)
    store = TrainingSetStore(tmp_path / "ts.db")
    gone = _manifest(snapshots[0], NOW - timedelta(days=1))  # recent, but its snapshot was expired since
    pinned = _manifest(snapshots[1], NOW - timedelta(days=2))
    store.record(gone)
    store.record(pinned)
    table, _ = expire_snapshots(table, keep=[snapshots[1]])  # snapshots[0] goes (an erasure keeps no pins)
    now = NOW if rows_to_delete else NOW - timedelta(days=400)  # a year earlier nothing is past retention
    current = table.metadata.current_snapshot_id  # before the run (its delete commits a new one)
    dry = apply_retention(table, CATALOG, store, now=now, dry_run=True)
    real = apply_retention(table.refresh(), CATALOG, store, now=now, orphans_older_than_s=0)
    assert (dry.rows_removed_total > 0) is rows_to_delete
    assert dry.rows_removed == real.rows_removed
    assert sorted(s for s in real.snapshots_kept if s in {*snapshots, current}) == dry.snapshots_kept
    assert snapshots[0] not in dry.snapshots_kept
    assert dry.manifests_keeping_snapshots == real.manifests_keeping_snapshots == {str(snapshots[1]): [pinned.id]}
    assert sorted(dry.snapshots_expired) == sorted(s for s in real.snapshots_expired if s in {*snapshots, current})
    assert dry.manifests_invalidated == real.manifests_invalidated
