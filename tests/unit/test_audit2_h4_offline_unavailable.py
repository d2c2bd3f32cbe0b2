"""The offline writer's flush names a storage or catalog it cannot use as StoreUnavailableError (design §6, "Iceberg
catalog or storage down": I/O error → StoreUnavailableError), in the identity check as in the append, and keeps
what it buffered."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from registry.core.errors import StoreUnavailableError
from sinks.iceberg.writer import OfflineWriter, ensure_table
from sinks.records import WindowResults
from tests.unit.conftest import build_definition

END_MS = 1_900_000_000_000 - 1_900_000_000_000 % 3_600_000


def _results(entity_id: str) -> WindowResults:
    feature = build_definition()
    return WindowResults(
        (feature,),
        [entity_id],
        np.array([END_MS - 3_600_000], dtype=np.int64),
        np.array([END_MS], dtype=np.int64),
        np.array([1], dtype=np.int64),
        [[1 if feature.value_type == "long" else 1.0]],
    )


def _delete_data_files(root: Path) -> None:
    for data in root.glob("warehouse/**/*.parquet"):
        data.unlink()


def _warehouse_as_a_file(root: Path) -> None:
    shutil.rmtree(root / "warehouse")
    (root / "warehouse").write_text("")


def _catalog_as_a_folder(root: Path) -> None:
    os.remove(root / "catalog.db")
    (root / "catalog.db").mkdir()


def _catalog_not_a_database(root: Path) -> None:
    (root / "catalog.db").write_bytes(b"not a database" * 100)  # sqlalchemy's DatabaseError, not OperationalError


def _table_dropped_from_the_catalog(root: Path) -> None:
    import sqlite3

    with sqlite3.connect(root / "catalog.db") as db:  # pyiceberg's NoSuchTableError at the look before the check
        db.execute("DELETE FROM iceberg_tables")
    db.close()


@pytest.mark.parametrize(
    "breaks",
    [
        _delete_data_files,
        _warehouse_as_a_file,
        _catalog_as_a_folder,
        _catalog_not_a_database,
        _table_dropped_from_the_catalog,
    ],
)
def test_a_flush_against_broken_storage_raises_store_unavailable(
    tmp_path: Path, breaks: Callable[[Path], None]
) -> None:
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=(tmp_path / "warehouse").as_uri())
    table = ensure_table(catalog, "ns")
    first = OfflineWriter(table)
    first.add_results(_results("a"))
    first.flush()
    breaks(tmp_path)
    writer = OfflineWriter(table)
    writer.add_results(_results("b"))
    with pytest.raises(StoreUnavailableError) as raised:
        writer.flush()
    assert "\n" not in str(raised.value)
    assert len(writer) == 1  # kept for the retry after a restart
