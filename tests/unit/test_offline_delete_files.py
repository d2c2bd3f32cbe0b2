"""A table another engine wrote delete files into (Spark's or Flink's merge-on-read, row-level deletes) is read with
its deletes applied, and without a hang: pyiceberg reads a file's delete files on its own thread pool and waits for
them, so the offline reads, which ran their groups of files on that same pool, held all its workers waiting for work
queued behind themselves (``sinks.iceberg.files.group_pool``). Here pyiceberg's pool has one worker, so one group
of such files was enough to hang every read."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.utils.concurrent import ExecutorFactory

from sinks.iceberg import layout as offline_layout
from sinks.iceberg.as_of import ReadPoint
from sinks.iceberg.reader import Band, distinct_entities, read_rows
from sinks.iceberg.writer import append_rows, ensure_table, sorted_rows
from tests.unit.test_offline_reads import T0_US, _brute_force, _counted, _definitions, _rows

T = TypeVar("T")
DELETED = 40  # rows of the first data file deleted by position


@pytest.fixture
def table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Two sorted appends, then a position-delete file on the first data file's first rows (format 2, as a
    merge-on-read engine commits it: a delete file whose rows name the data file and the positions)."""
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri())
    table = ensure_table(catalog, "ns")
    rng = np.random.default_rng(3)
    append_rows(table, sorted_rows(_rows(rng, 3_000)))
    append_rows(table, sorted_rows(_rows(rng, 2_000)))
    target = next(iter(catalog.load_table("ns." + offline_layout.TABLE).scan().plan_files())).file
    path = tmp_path / "w" / "position-deletes.parquet"
    pq.write_table(
        pa.table({"file_path": [target.file_path] * DELETED, "pos": pa.array(range(DELETED), pa.int64())}), path
    )
    unknown: dict[str, Any] = {  # no statistics: the delete file may hold any row of its partition
        **{k: {} for k in ("column_sizes", "value_counts", "null_value_counts", "nan_value_counts", "lower_bounds")},
        **{k: {} for k in ("upper_bounds",)},
        **{k: None for k in ("key_metadata", "split_offsets", "equality_ids", "sort_order_id")},
    }
    deletes = DataFile(
        content=DataFileContent.POSITION_DELETES,
        file_path=path.as_uri(),
        file_format=FileFormat.PARQUET,
        partition=target.partition,
        record_count=DELETED,
        file_size_in_bytes=os.path.getsize(path),
        **unknown,
    )
    deletes.spec_id = target.spec_id
    with table.transaction() as transaction, transaction.update_snapshot().fast_append() as append:
        append.append_data_file(deletes)
    table = catalog.load_table("ns." + offline_layout.TABLE)
    assert any(task.delete_files for task in table.scan().plan_files()), "the scenario needs a delete file"
    assert table.scan().to_arrow().num_rows == 5_000 - DELETED
    monkeypatch.setattr(ExecutorFactory, "_instance", ThreadPoolExecutor(1))  # one worker: one group hung it
    return table


def _within(call: Callable[[], T], timeout_s: float = 60) -> T:
    """``call()``'s answer, or a failure if it has none within ``timeout_s`` (it waits on itself)."""
    answer: list[T] = []
    reading = threading.Thread(target=lambda: answer.append(call()), daemon=True)
    reading.start()
    reading.join(timeout_s)
    if reading.is_alive():
        pytest.fail("the read waited on pyiceberg's pool from inside it")
    return answer[0]


def test_rows_are_read_with_their_delete_files_applied(table: Any, make_definition: Any) -> None:
    definitions = _definitions(make_definition)
    bands = [Band(d, T0_US, T0_US + 5 * 86_400_000_000) for d in definitions]
    entities = [f"u{i}" for i in range(40)]
    point = ReadPoint(table.current_snapshot().snapshot_id, None)
    got = _within(lambda: read_rows(table, point, "user", bands, pa.array(entities)))
    expected = [_brute_force(table, d, b, entities, None) for d, b in zip(definitions, bands, strict=True)]
    assert [_counted(pieces) for pieces in got] == expected  # the brute force reads through pyiceberg: deletes applied


def test_a_scan_over_groups_is_read_with_its_delete_files_applied(table: Any, make_definition: Any) -> None:
    definitions = _definitions(make_definition)
    point = ReadPoint(table.current_snapshot().snapshot_id, None)
    got = _within(lambda: distinct_entities(table, point, "user", definitions, T0_US + 5 * 86_400_000_000))
    rows = table.scan().to_arrow().to_pylist()
    wanted = {(d.name, d.version) for d in definitions}
    expected = sorted(
        {
            r["entity_id"]
            for r in rows
            if r["entity_type"] == "user" and (r["feature_name"], r["feature_version"]) in wanted
        }
    )
    assert got.to_pylist() == expected
