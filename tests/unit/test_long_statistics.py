"""Values longer than 4,096 bytes in a column read by value (an entity id, an archive's record key).

Arrow's Parquet writer (pyarrow 16) drops a row group's min or max statistic longer than 4,096 bytes, each on its
own, and its reader then reports the one kept as both, with an empty max: a row group holding ``a`` and such a value
reads as min ``a``, max ``''``. pyiceberg 0.8.1 takes that as the file's upper bound, so a scan for any value of the
column planned no file holding one (and Arrow's own row-group pruning, which pyiceberg's reader pushes the filter to,
skipped the row group): an erasure found none of the rows of every entity sharing a file with such an id, said it
deleted nothing, and left them. A composite entity id reaches it (up to 8 fields of 256 characters, escaped), and a
Kafka record key of any length. Our writers put rows with such a value in files of their own, where the column's
row groups hold only such values (then Arrow keeps neither statistic and nothing is pruned by them)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import EqualTo

from registry.core.entity_keys import encode
from serving.offline.erasure import erase_archive, erase_table
from sinks import archive
from sinks.iceberg.writer import append_rows, ensure_table
from sinks.serving_log import ARROW_SCHEMA as LOG_SCHEMA
from sinks.serving_log import ServingLogSink, ensure_log_table
from tests.unit.test_offline_append import _rows

STATISTICS_BYTES = 4096
LONG_ID = encode(["é" * 256] * 8)  # a composite id of 8 fields of 256 characters: 4,103 bytes


def _catalog(tmp_path: Path) -> SqlCatalog:
    return SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri())


def test_arrow_drops_a_long_max_alone_and_reads_the_min_back_as_both(tmp_path: Path) -> None:
    """What the writers work around (if this fails, the installed pyarrow no longer does it)."""
    for size, kept in ((STATISTICS_BYTES, True), (STATISTICS_BYTES + 1, False)):
        pq.write_table(pa.table({"s": ["a", "b" * size]}), tmp_path / "s.parquet")
        statistics = pq.ParquetFile(tmp_path / "s.parquet").metadata.row_group(0).column(0).statistics
        assert statistics.has_min_max and statistics.min == "a"
        assert statistics.max == ("b" * size if kept else "")


def test_an_offline_entity_id_over_4096_bytes_leaves_the_other_ids_of_its_append_erasable(tmp_path: Path) -> None:
    assert len(LONG_ID.encode()) > STATISTICS_BYTES
    table = ensure_table(_catalog(tmp_path), "ns")
    rows = _rows(4)
    ids = pa.array(["u1", "u2", LONG_ID, "u3"], rows.schema.field("entity_id").type)
    rows = rows.set_column(1, rows.schema.field("entity_id"), ids)
    entity_type = rows.column("entity_type")[0].as_py()
    append_rows(table, rows)
    table = table.refresh()
    for entity_id in ("u1", "u2", LONG_ID, "u3"):
        assert table.scan(row_filter=EqualTo("entity_id", entity_id)).to_arrow().num_rows == 1, entity_id[:8]
    table, erased, _ = erase_table(table, entity_type, "u2")
    assert erased.rows_removed == 1
    assert sorted(table.scan().to_arrow().column("entity_id").to_pylist()) == sorted(["u1", LONG_ID, "u3"])


def test_a_serving_log_entity_id_over_4096_bytes_leaves_the_other_ids_erasable(tmp_path: Path) -> None:
    log = ensure_log_table(_catalog(tmp_path), "ns")
    rows = []
    for i, entity_id in enumerate(("u1", LONG_ID, "u2")):
        row: dict[str, object] = {f.name: None for f in LOG_SCHEMA}
        row.update(
            served_at=1_000_000,
            entity_type="user",
            entity_id=entity_id,
            feature_name="f",
            feature_version=1,
            status="present",
            kafka_topic="t",
            kafka_partition=0,
            kafka_offset=i,
            position=0,
            request_id="r",
        )
        rows.append(row)
    ServingLogSink(None, log)._append(pa.Table.from_pylist(rows, LOG_SCHEMA))  # type: ignore[arg-type]
    log = log.refresh()
    table, erased, _ = erase_table(log, "user", "u1", served_until_ms=2_000)
    assert erased.rows_removed == 1
    assert sorted(table.scan().to_arrow().column("entity_id").to_pylist()) == sorted([LONG_ID, "u2"])


def _message(offset: int, key: bytes) -> Any:
    return SimpleNamespace(
        partition=lambda: 0,
        offset=lambda: offset,
        error=lambda: None,
        timestamp=lambda: (1, 1_800_000_000_000),
        value=lambda: b"v",
        key=lambda: key,
    )


def test_an_archive_record_key_over_4096_bytes_leaves_the_other_keys_erasable(tmp_path: Path) -> None:
    table = archive.ensure_table(_catalog(tmp_path), "ns", "events")
    archiver = archive.Archiver(None, table, "events")  # type: ignore[arg-type]
    keys = [b"u1", b"\xff" * (STATISTICS_BYTES + 1), b"u2"]
    archiver._append([_message(i, k) for i, k in enumerate(keys)], {0: 3})
    table = table.refresh()
    table, erased = erase_archive(table, "u2")
    assert erased.rows_removed == 1
    assert sorted(table.scan().to_arrow().column("key").to_pylist()) == sorted(keys[:2])
