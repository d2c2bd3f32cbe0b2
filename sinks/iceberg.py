"""Offline writer: every window result appended to the Iceberg table, with its ingestion time."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa

from registry.catalog import FeatureCatalog
from registry.errors import StoreUnavailableError
from sinks import offline_layout
from sinks.online_layout import VALUE_COLUMNS
from sinks.records import FeatureRow

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

_COMMIT_RETRIES = 5


def ensure_table(catalog: Catalog, namespace: str) -> Table:
    """Load the offline table, creating namespace and table on first use."""
    from pyiceberg.exceptions import NamespaceAlreadyExistsError, TableAlreadyExistsError

    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(namespace)
    identifier = f"{namespace}.{offline_layout.TABLE}"
    try:
        return catalog.create_table(
            identifier, schema=offline_layout.SCHEMA, partition_spec=offline_layout.PARTITION_SPEC
        )
    except TableAlreadyExistsError:
        return catalog.load_table(identifier)


class OfflineWriter:
    """Buffers rows and appends them as one Iceberg snapshot per ``flush``."""

    def __init__(
        self,
        table: Table,
        catalog: FeatureCatalog,
        *,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._table = table
        self._catalog = catalog
        self._clock_ms = clock_ms
        self._buffer: list[FeatureRow] = []
        self.written = 0

    def __len__(self) -> int:
        return len(self._buffer)

    def add(self, row: FeatureRow) -> None:
        self._buffer.append(row)

    def to_arrow(self, rows: list[FeatureRow], ingested_ms: int) -> pa.Table:
        columns: dict[str, list[object]] = {name: [] for name in offline_layout.arrow_schema().names}
        for row in rows:
            value_type = self._catalog.get(row.entity_type, row.feature_name, row.feature_version).value_type
            columns["entity_type"].append(row.entity_type)
            columns["entity_id"].append(row.entity_id)
            columns["feature_name"].append(row.feature_name)
            columns["feature_version"].append(row.feature_version)
            columns["event_time"].append(row.window_end_ms * 1000)
            columns["window_start"].append(row.window_start_ms * 1000)
            for vt, col in VALUE_COLUMNS.items():
                columns[col].append(row.value if vt == value_type else None)
            columns["ingested_at"].append(ingested_ms * 1000)
        schema = offline_layout.arrow_schema()
        arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
        table = pa.Table.from_arrays(arrays, schema=schema)
        return table.sort_by([(c, "ascending") for c in offline_layout.SORT_COLUMNS])

    def flush(self) -> None:
        from pyiceberg.exceptions import CommitFailedException

        if not self._buffer:
            return
        batch = self.to_arrow(self._buffer, self._clock_ms())
        for attempt in range(_COMMIT_RETRIES):
            try:
                self._table.append(batch)
                break
            except CommitFailedException as exc:
                # Another writer committed first: refresh metadata and retry on top of its snapshot.
                if attempt == _COMMIT_RETRIES - 1:
                    raise StoreUnavailableError(f"Iceberg commit lost {_COMMIT_RETRIES} races in a row") from exc
                self._table.refresh()
            except OSError as exc:
                raise StoreUnavailableError(f"Iceberg append failed: {exc}") from exc
        self.written += len(self._buffer)
        self._buffer.clear()
