"""A table's metadata JSON files out of its metadata log are deleted (design §9 "Retention", §5.7, §8).

Every commit writes a whole new ``<n>-<uuid>.metadata.json`` holding every snapshot kept; pyiceberg 0.8.1 keeps
the last 100 in the metadata log and never deletes the others (Iceberg's ``delete-after-commit`` is not
implemented). Nothing did: retention's orphan pass skipped every ``.metadata.json``, and the events archiver and
the serving log's landing, which commit every few seconds for days, piled up ~10 GiB a day. The serving log's
landing never expired its snapshots either, so each of those files grew with every append."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from sinks.iceberg.maintenance import METADATA_GRACE_S, remove_old_metadata, remove_orphan_files
from sinks.serving_log import ServingLogSink

APPENDS = 106


def _table(tmp_path: Path, appends: int = APPENDS) -> Any:
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField

    catalog = SqlCatalog("unit", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=(tmp_path / "wh").as_uri())
    catalog.create_namespace("fs")
    table = catalog.create_table("fs.t", Schema(NestedField(1, "n", LongType(), required=False)))
    for n in range(appends):
        table.append(pa.table({"n": pa.array([n], pa.int64())}))
    return table.refresh()


def _metadata_files(tmp_path: Path) -> set[Path]:
    return set((tmp_path / "wh").rglob("*.metadata.json"))


def _age(paths: set[Path], seconds: float) -> None:
    then = time.time() - seconds
    for path in paths:
        os.utime(path, (then, then))


def _kept(table: Any) -> set[Path]:
    return {
        Path(u.removeprefix("file://"))
        for u in [table.metadata_location, *(e.metadata_file for e in table.metadata.metadata_log)]
    }


def test_old_metadata_files_out_of_the_log_go_and_the_table_reads_the_same(tmp_path: Path) -> None:
    table = _table(tmp_path)
    files = _metadata_files(tmp_path)
    kept = _kept(table)
    assert len(files) == APPENDS + 1 and len(kept) == 101 and kept <= files  # the log holds the last 100
    _age(files, METADATA_GRACE_S + 60)
    young = min(files - kept)
    _age({young}, METADATA_GRACE_S - 60)  # a commit in progress writes its file before the catalog points at it
    assert remove_old_metadata(table) == len(files) - len(kept) - 1
    assert _metadata_files(tmp_path) == kept | {young}
    again = table.refresh()
    assert sorted(again.scan().to_arrow()["n"].to_pylist()) == list(range(APPENDS))
    assert len(again.metadata.snapshots) == APPENDS  # time travel untouched: the snapshots are in the current file
    again.append(pa.table({"n": pa.array([APPENDS], pa.int64())}))  # and it commits on
    assert again.refresh().scan().to_arrow().num_rows == APPENDS + 1


def test_retentions_orphan_pass_deletes_metadata_files_out_of_the_log_past_its_cutoff(tmp_path: Path) -> None:
    table = _table(tmp_path)
    files = _metadata_files(tmp_path)
    kept = _kept(table)
    _age(files, 2 * 86_400)
    assert remove_orphan_files(table, older_than_s=86_400) == len(files) - len(kept)
    assert _metadata_files(tmp_path) == kept
    assert table.refresh().scan().to_arrow().num_rows == APPENDS


def test_the_serving_logs_landing_expires_its_old_snapshots_and_metadata_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = _table(tmp_path, appends=5)
    _age(_metadata_files(tmp_path), METADATA_GRACE_S + 60)
    time.sleep(0.01)
    sink = ServingLogSink(None, table, expire_after_s=0.005)  # type: ignore[arg-type]
    sink._maintain()
    after = table.refresh()
    assert [s.snapshot_id for s in after.metadata.snapshots] == [after.current_snapshot().snapshot_id]
    assert sorted(after.scan().to_arrow()["n"].to_pylist()) == list(range(5))
    assert _metadata_files(tmp_path) == _kept(after)
    before = len(after.metadata.snapshots)
    after.append(pa.table({"n": pa.array([5], pa.int64())}))
    sink._maintain()  # within ten minutes of the last round: nothing
    assert len(table.refresh().metadata.snapshots) == before + 1


def test_a_stale_copy_of_the_table_never_deletes_the_catalogs_current_metadata(tmp_path: Path) -> None:
    """An idle landing holds the table as it last appended; an erasure (another process) commits since. Its round
    decided what to keep from its own copy, deleted the catalog's current file and left the table unloadable."""
    stale = _table(tmp_path, appends=5)
    other = stale.catalog.load_table("fs.t")
    other.append(pa.table({"n": pa.array([5], pa.int64())}))
    other.append(pa.table({"n": pa.array([6], pa.int64())}))
    current = other.metadata_location
    _age(_metadata_files(tmp_path), METADATA_GRACE_S + 60)  # the landing was idle for longer than the grace
    remove_old_metadata(stale)
    assert stale.metadata_location != current  # the caller's copy is left as it was: decided from a fresh load
    fresh = stale.catalog.load_table("fs.t")
    assert sorted(fresh.scan().to_arrow()["n"].to_pylist()) == list(range(7))
    assert _metadata_files(tmp_path) == _kept(fresh)


def test_a_cutoff_below_the_grace_keeps_young_metadata_files(tmp_path: Path) -> None:
    """``--orphans-older-than 0s`` deletes young data files no snapshot reaches (documented: only when nothing
    writes), never a metadata file younger than ``METADATA_GRACE_S``: a commit in progress writes its file first."""
    table = _table(tmp_path, appends=3)
    young = tmp_path / "wh" / "fs.db" / "t" / "metadata" / "00099-in-progress.metadata.json"
    young.write_text("{}")
    remove_orphan_files(table, older_than_s=0)
    assert young.exists()


def test_a_stale_copys_expiry_keeps_the_young_snapshots_another_writer_made(tmp_path: Path) -> None:
    """The young snapshots to keep (``expire_older_than``'s) were chosen once, from the caller's copy: when another
    writer had committed since, the retry (after the lost race) expired that writer's snapshots, however young."""
    from sinks.iceberg.maintenance import expire_snapshots

    table = _table(tmp_path, appends=2)
    time.sleep(0.05)
    since_ms = time.time_ns() // 1_000_000  # the cutoff: the two appends above are older
    landing = table.catalog.load_table("fs.t")  # the landing's copy, before another writer's three appends
    other = table.catalog.load_table("fs.t")
    for n in range(3):
        other.append(pa.table({"n": pa.array([10 + n], pa.int64())}))
    young = {s.snapshot_id for s in other.refresh().metadata.snapshots[-3:]}
    after, _ = expire_snapshots(landing, since_ms=since_ms)
    assert {s.snapshot_id for s in after.metadata.snapshots} == young  # the two older ones went, no other
