"""A table created on storage that cannot take it (the warehouse's disk full or read-only; here a file where the
namespace's folder goes): StoreUnavailableError naming the table, so the stream job's start and the serving log's
landing end with their one ``error:`` line; the OSError reached them raw, a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

from registry.core.errors import StoreUnavailableError
from registry.core.settings import Settings
from sinks.iceberg.writer import ensure_table
from sinks.serving_log import ensure_log_table


@pytest.mark.parametrize("ensure", [ensure_table, ensure_log_table])
def test_a_table_the_storage_refuses_is_the_store_unavailable_naming_it(
    tmp_path: Path, ensure: Callable[[Catalog, str], Table]
) -> None:
    (tmp_path / "wh").mkdir()
    (tmp_path / "wh" / "ns.db").write_text("a file where the namespace's folder goes")
    catalog = SqlCatalog("c", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "wh").as_uri())
    with pytest.raises(StoreUnavailableError, match=r"cannot create or load the table ns\.\w+: \w*Error"):
        ensure(catalog, "ns")
    (tmp_path / "wh" / "ns.db").unlink()
    assert ensure(catalog, "ns").name()[0] == "ns"  # room again: made


def test_a_table_is_made_in_a_namespace_of_the_longest_length(tmp_path: Path) -> None:
    """Two levels of 126 bytes each were accepted (each under the 250 a level was allowed), and the first table's
    creation failed with errno 36: pyiceberg makes one folder of the whole namespace."""
    from sinks.factory import connect_iceberg
    from sinks.iceberg.writer import ensure_table

    at_most = "x" * 125 + "." + "y" * 126
    settings = Settings(
        iceberg_catalog_uri=f"sqlite:///{tmp_path}/c.db",
        iceberg_warehouse=str(tmp_path / "wh"),
        iceberg_namespace=at_most,
    )
    ensure_table(connect_iceberg(settings), at_most)
    assert [p.name for p in (tmp_path / "wh").iterdir()] == [at_most + ".db"]
