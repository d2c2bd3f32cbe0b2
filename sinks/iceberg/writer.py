"""Offline writer: every window result appended to the Iceberg table, with its ingestion time.

Commits are idempotent: a flush appends only rows whose identity (entity, feature, version,
window end, revision) the table does not hold yet, so a replay after a crash (at-least-once
delivery from the stream job) adds no duplicate, and a result is never lost to a replay either.
With a ``TableReach`` (the stream job's writer) only the rows the table can hold already, those at or
below its reach, are checked; the rest are appended without reading the table (``sinks.iceberg.reach``).
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from registry.core.errors import StoreUnavailableError
from registry.core.value_types import VALUE_COLUMNS
from sinks.iceberg import layout as offline_layout
from sinks.iceberg.tables import COMMIT_RETRIES, WHOLE_BOUNDS, create_or_load
from sinks.records import FeatureRow, WindowResults

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from sinks.iceberg.reach import TableReach

_APPEND_ATTEMPTS = 10
"""Commit attempts of one flush: writers of one job commit to one table, and each retry looks again and checks the
identities it must (a scan), so under load the others may commit again meanwhile; 5 back-to-back attempts were lost in a row at
parallelism 2 on a machine with a load of 11."""
_BACKOFF_S = (0.05, 2.0)  # the first retry's wait at most, and any retry's: doubled each time, each drawn at random


def commit_backoff_s(attempt: int, draw: Callable[[], float] = random.random) -> float:
    """The wait before retry ``attempt`` (1, 2, ...) of a lost commit: a random share of ``first * 2**(attempt - 1)``,
    capped (full jitter: racing writers that lost together do not retry together)."""
    first, cap = _BACKOFF_S
    return draw() * min(cap, first * 2 ** min(attempt - 1, 16))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def ensure_table(catalog: Catalog, namespace: str) -> Table:
    """Load the offline table, creating namespace and table and adding missing columns on first use.

    Safe to call from any number of processes at once (``create_or_load``). The stream job calls this
    once in the client that plans it (``jobs.feature_job.prepare_stores``); its writers only ``load_table``.
    """
    identifier = f"{namespace}.{offline_layout.TABLE}"
    table = create_or_load(
        catalog, namespace, offline_layout.TABLE, offline_layout.SCHEMA, offline_layout.PARTITION_SPEC
    )
    return _add_missing_columns(catalog, identifier, table)


STATISTICS_BYTES = 4096
"""Arrow's Parquet writer (pyarrow 16, its ``max_statistics_size``) drops a row group's min or max statistic longer
than this many bytes, each on its own, and its reader then reports the one kept as both, with an empty other: a row
group holding ``a`` and a longer value reads back as min ``a``, max ``''``. pyiceberg 0.8.1 takes that for the file's
upper bound, and Arrow prunes the row group by it, so a filter on the column found no row of that file, whatever its
value (an erasure then deleted nothing). ``statistics_groups`` keeps such values out of other values' files."""


def statistics_groups(rows: pa.Table, columns: Iterable[str]) -> list[pa.Table]:
    """``rows`` (one table, the common case) or, when one of ``columns`` holds a value of more than
    ``STATISTICS_BYTES`` bytes, its rows grouped by which of ``columns`` hold such a value, each group in input
    order: a file written from one group holds in each of those columns only such values (Arrow then keeps neither
    statistic, and nothing is pruned by them) or none (whole statistics). Nulls count as short."""
    codes: np.ndarray | None = None
    for bit, name in enumerate(c for c in sorted(columns) if c in rows.column_names):
        long = pc.fill_null(pc.greater(pc.binary_length(rows.column(name)), STATISTICS_BYTES), False)
        flags = np.asarray(long.to_numpy(zero_copy_only=False), dtype=np.int64) << bit
        codes = flags if codes is None else codes | flags
    if codes is None or not codes.any():
        return [rows]
    return [rows.filter(pa.array(codes == code)) for code in np.unique(codes).tolist()]


def append_table(
    table: Table, rows: pa.Table, columns: Iterable[str], snapshot_properties: Mapping[str, str] | None = None
) -> None:
    """``table.append(rows, snapshot_properties)``: one snapshot, with a row holding a value of more than
    ``STATISTICS_BYTES`` bytes in one of ``columns`` (the columns read by value) written to files apart from the
    others (``statistics_groups``)."""
    from pyiceberg.io.pyarrow import _check_pyarrow_schema_compatible, _dataframe_to_data_files

    properties = dict(snapshot_properties or {})
    groups = statistics_groups(rows, columns)
    if len(groups) == 1:
        if properties:
            table.append(rows, snapshot_properties=properties)
        else:
            table.append(rows)
        return
    counter = itertools.count(0)  # one count over the groups: file names are the write's uuid and a task number
    with table.transaction() as tx:
        _check_pyarrow_schema_compatible(tx.table_metadata.schema(), provided_schema=rows.schema)
        with tx.update_snapshot(snapshot_properties=properties).fast_append() as append:
            for group in groups:
                for data_file in _dataframe_to_data_files(
                    table_metadata=tx.table_metadata,
                    write_uuid=append.commit_uuid,
                    df=group,
                    io=table.io,
                    counter=counter,
                ):
                    append.append_data_file(data_file)


def load_table(catalog: Catalog, namespace: str) -> Table:
    """The offline table, which must exist (``ensure_table`` made it); StoreUnavailableError if not."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    identifier = f"{namespace}.{offline_layout.TABLE}"
    try:
        return catalog.load_table(identifier)
    except (NoSuchTableError, NoSuchNamespaceError) as exc:
        raise StoreUnavailableError(
            f"offline table {identifier} does not exist: the job's client creates it before the job starts"
        ) from exc


def _add_missing_columns(catalog: Catalog, identifier: str, table: Table) -> Table:
    """A table made by an older version of this layout gains the new optional columns (race-safe)."""
    from pyiceberg.exceptions import CommitFailedException

    for _ in range(COMMIT_RETRIES):
        names = table.schema().column_names
        missing = [f for f in offline_layout.SCHEMA.fields if f.name not in names]
        if not missing:
            return table
        try:
            with table.update_schema() as update:
                for field in missing:
                    update.add_column(field.name, field.field_type, doc=field.doc)
        except (CommitFailedException, ValueError):
            pass  # another process changed the schema first (ValueError: a column it just added): look again
        table = catalog.load_table(identifier)
    raise StoreUnavailableError(f"could not bring {identifier}'s schema up to date: {COMMIT_RETRIES} races lost")


_DAY_US = 86_400_000_000


def sorted_rows(rows: pa.Table) -> pa.Table:
    """``rows`` grouped by day of ``event_time`` (the partition) and, within a day, in the layout's sort order
    (``SORT_COLUMNS``, nulls last, ties in input order): what each data file holds. One stable numpy sort
    over an integer code: Arrow's multi-column ``sort_by`` compares the strings row by row (~1.5 s per
    million rows), and a 3-key ``lexsort`` costs 3x one sort. The keys (day; feature, version and entity
    as ranks among their distinct values; the window end as its offset within the day; the revision) are
    computed side by side (Arrow's hashing releases the GIL) and packed into one int64 code while their
    combined ranges fit, the rest sorted as further lexsort keys; ``append_rows`` then splits the days
    without reordering. A ranked string column is then rebuilt from its sorted distinct values (a gather
    from a small array: a third of the time of moving the strings themselves)."""
    day = rows.column("event_time").cast(pa.int64()).to_numpy() // _DAY_US
    first_day = int(day.min()) if rows.num_rows else 0
    packed = day - first_day
    span = int(packed.max()) + 1 if rows.num_rows else 1  # distinct values the packed code can take
    names = offline_layout.SORT_COLUMNS
    if rows.num_rows < _PARALLEL_TAKE_ROWS:
        keyed = [_sort_key(rows, name, day) for name in names]
    else:
        with ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, len(names))) as pool:
            keyed = list(pool.map(lambda name: _sort_key(rows, name, day), names))
    keys: list[np.ndarray] = []  # keys past what the code holds, for a lexsort
    for value, low, values, ranked, _ in keyed:
        if not ranked:
            if not keys and span * values <= _PACKED_VALUES:
                packed, span = packed * values + (value - low), span * values
            else:
                keys.append(value)
            continue
        span *= values
        if span > _PACKED_VALUES:  # cannot pack (billions of distinct keys): two stable sorts instead
            within = rows.sort_by([(c, "ascending") for c in names])
            days = within.column("event_time").cast(pa.int64()).to_numpy() // _DAY_US
            return within.take(pa.array(np.argsort(days, kind="stable")))
        packed = packed * values + value
    order = np.argsort(packed, kind="stable") if not keys else np.lexsort([*keys[::-1], packed])
    by_rank = {name: (key[0], key[4]) for name, key in zip(names, keyed, strict=True) if key[4] is not None}
    return _take(rows, order, by_rank)


def _sort_key(rows: pa.Table, name: str, day: np.ndarray) -> tuple[np.ndarray, int, int, bool, pa.Array | None]:
    """One sort column's key for ``sorted_rows``: (per row an int64, its lowest value, how many values it
    spans, whether it is a rank, the distinct values a string column's ranks index, or None). A string or a
    small integer (the version) is ranked among its distinct values, a null last; a time or the revision
    keeps its own order (``_wide_key``)."""
    column = rows.column(name)
    if pa.types.is_timestamp(column.type) or name == "revision":
        return (*_wide_key(column, day if name == "event_time" else None), False, None)
    distinct = pc.unique(column)  # a null, if any, is one of them: sorted last, matched by index_in
    distinct = distinct.take(pc.sort_indices(distinct))
    codes, cardinality = pc.index_in(column, value_set=distinct), len(distinct) + 1
    matched = not codes.null_count
    code = codes.fill_null(cardinality - 1).to_numpy().astype(np.int64)  # a null sorts last
    strings = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    return code, 0, cardinality, True, distinct if strings and matched else None


_PARALLEL_TAKE_ROWS = 100_000


def _take(
    rows: pa.Table, order: np.ndarray, by_rank: Mapping[str, tuple[np.ndarray, pa.Array]] | None = None
) -> pa.Table:
    """``rows.take(order)``, its columns moved on as many threads as there are cores (Arrow's take releases
    the GIL; ``Table.take`` moves one column after another): half the time on 2 cores. ``by_rank``: per
    column, (each row's index into the column's distinct values, those values): the column is gathered from
    them, which gives the same values."""
    at = pa.array(order)
    ranked = by_rank or {}

    def moved(name: str) -> pa.Array | pa.ChunkedArray:
        if name in ranked:
            code, distinct = ranked[name]
            return distinct.take(pa.array(code[order]))
        return rows.column(name).take(at)

    workers = min(os.cpu_count() or 1, rows.num_columns)
    if rows.num_rows < _PARALLEL_TAKE_ROWS or workers < 2:
        return pa.Table.from_arrays([moved(n) for n in rows.column_names], schema=rows.schema)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        columns = list(pool.map(moved, rows.column_names))
    return pa.Table.from_arrays(columns, schema=rows.schema)


_PACKED_VALUES = 2**63  # codes 0 .. 2**63 - 1: a non-negative int64


def _wide_key(column: pa.ChunkedArray, day: np.ndarray | None) -> tuple[np.ndarray, int, int]:
    """(per row an int64 that sorts as the column does with nulls last, its lowest value, how many values
    it spans). ``day``: the rows' days, for the window end, which is then keyed by its offset within its
    day (the day leads the order)."""
    if day is not None and not column.null_count:
        return column.cast(pa.int64()).to_numpy() - day * _DAY_US, 0, _DAY_US
    present = column.cast(pa.int64())
    if present.null_count == len(present):
        return np.zeros(len(present), np.int64), 0, 1
    low, high = (int(v.as_py()) for v in pc.min_max(present).values())
    last = high + 1 if present.null_count else high  # a null after every value
    if last >= np.iinfo(np.int64).max:  # no value left above it for a null: keyed as it is
        return present.fill_null(np.iinfo(np.int64).max).to_numpy(), 0, _PACKED_VALUES + 1
    return present.fill_null(last).to_numpy(), low, last - low + 1


def append_rows(table: Table, rows: pa.Table, snapshot_properties: Mapping[str, str] | None = None) -> None:
    """``table.append(rows, snapshot_properties)`` for the offline layout, as one snapshot, without pyiceberg 0.8.1's partitioning
    step (it turns every row's index into a Python int: about 2 s per million rows). The rows are split by
    day of ``event_time`` (the table's only partition field) with numpy and written as pyiceberg writes them:
    same files, statistics, field ids and commit."""
    import uuid

    from pyiceberg.io.pyarrow import _check_pyarrow_schema_compatible, bin_pack_arrow_table, write_file
    from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
    from pyiceberg.table import TableProperties, WriteTask
    from pyiceberg.utils.properties import property_as_int

    metadata = table.metadata
    schema = metadata.schema()
    _check_pyarrow_schema_compatible(schema, provided_schema=rows.schema)
    (field,) = metadata.spec().fields  # day(event_time): the layout's partition spec
    if not rows.num_rows:
        return
    day = rows.column("event_time").cast(pa.int64()).to_numpy() // _DAY_US
    if np.any(np.diff(day) < 0):  # not grouped by day yet (``sorted_rows`` groups them): a stable regroup
        order = np.argsort(day, kind="stable")  # keeps the sort order within each day
        rows, day = rows.take(pa.array(order)), day[order]
    bounds = np.flatnonzero(np.diff(day)) + 1
    starts, ends = np.concatenate(([0], bounds)), np.concatenate((bounds, [len(day)]))
    target = (
        property_as_int(
            metadata.properties,
            TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
            TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
        )
        or TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT
    )
    write_uuid = uuid.uuid4()
    tasks: list[WriteTask] = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        part = rows.slice(start, end - start)
        first = part.column("event_time")[0].as_py()  # a value of the day: the key applies the day transform
        key = PartitionKey(
            raw_partition_field_values=[PartitionFieldValue(field, first)],
            partition_spec=metadata.spec(),
            schema=schema,
        )
        for group in statistics_groups(part, WHOLE_BOUNDS):  # an id over 4,096 bytes in files of its own
            for batches in bin_pack_arrow_table(group, target):
                tasks.append(
                    WriteTask(
                        write_uuid=write_uuid,
                        task_id=len(tasks),
                        record_batches=batches,
                        partition_key=key,
                        schema=schema,
                    )
                )
    files = list(write_file(io=table.io, table_metadata=metadata, tasks=iter(tasks)))
    with (
        table.transaction() as tx,
        tx.update_snapshot(snapshot_properties=dict(snapshot_properties or {})).fast_append() as snapshot,
    ):
        for data_file in files:
            snapshot.append_data_file(data_file)


class OfflineWriter:
    """Buffers rows (``add``) and window results (``add_results``, as columns) and appends them as one
    Iceberg snapshot per ``flush``."""

    def __init__(
        self,
        table: Table,
        *,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        sleep: Callable[[float], None] = time.sleep,
        reach: TableReach | None = None,
    ) -> None:
        """``reach``: the table's reach in the features this writer writes, taken when it started
        (``TableReach(table, features)``): only rows at or below it are checked (the job never sends one identity twice
        to the same writer); without one, every row is (and repeated identities within a flush are dropped)."""
        self._table = table
        self._clock_ms = clock_ms
        self._sleep = sleep
        self._reach = reach
        self._buffer: list[FeatureRow] = []
        self._results: list[WindowResults] = []
        self.written = 0
        self.checked = 0  # rows that went through the identity check (a scan of the table's rows of their times)

    def __len__(self) -> int:
        return len(self._buffer) + sum(len(r) * len(r.features) for r in self._results)

    def add(self, row: FeatureRow) -> None:
        self._buffer.append(row)

    def add_results(self, results: WindowResults) -> None:
        if len(results):
            self._results.append(results)

    def to_arrow(self, rows: list[FeatureRow], ingested_ms: int) -> pa.Table:
        """``rows`` in the offline layout, sorted as a data file holds them."""
        return sorted_rows(self._rows_arrow(rows, ingested_ms))

    @staticmethod
    def _rows_arrow(rows: list[FeatureRow], ingested_ms: int) -> pa.Table:
        columns: dict[str, list[object]] = {name: [] for name in offline_layout.arrow_schema().names}
        for row in rows:
            value_type = row.defined_by.value_type
            columns["entity_type"].append(row.entity_type)
            columns["entity_id"].append(row.entity_id)
            columns["feature_name"].append(row.feature_name)
            columns["feature_version"].append(row.feature_version)
            columns["event_time"].append(row.window_end_ms * 1000)
            columns["window_start"].append(row.window_start_ms * 1000)
            for vt, col in VALUE_COLUMNS.items():
                columns[col].append(row.value if vt == value_type else None)
            columns["ingested_at"].append(ingested_ms * 1000)
            columns["revision"].append(row.revision)
        schema = offline_layout.arrow_schema()
        arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
        return pa.Table.from_arrays(arrays, schema=schema)

    @staticmethod
    def results_arrow(results: WindowResults, ingested_ms: int) -> pa.Table:
        """``results`` in the offline layout (unsorted), built column by column: a row per feature and result,
        the features one after another."""
        schema = offline_layout.arrow_schema()
        n = len(results)
        ids = pa.array(results.entity_ids, type=schema.field("entity_id").type)
        ends = pa.array(results.ends_ms * 1000, type=schema.field("event_time").type)
        starts = pa.array(results.starts_ms * 1000, type=schema.field("window_start").type)
        revisions = pa.array(results.revisions, type=schema.field("revision").type)
        ingested = pa.repeat(pa.scalar(ingested_ms * 1000, type=schema.field("ingested_at").type), n)
        parts = []
        for definition, values in zip(results.features, results.values, strict=True):
            value_column = VALUE_COLUMNS[definition.value_type]
            columns = {
                "entity_type": pa.repeat(pa.scalar(definition.entity, type=schema.field("entity_type").type), n),
                "entity_id": ids,
                "feature_name": pa.repeat(pa.scalar(definition.name, type=schema.field("feature_name").type), n),
                "feature_version": pa.repeat(
                    pa.scalar(definition.version, type=schema.field("feature_version").type), n
                ),
                "event_time": ends,
                "window_start": starts,
                "ingested_at": ingested,
                "revision": revisions,
            }
            for column in VALUE_COLUMNS.values():
                kind = schema.field(column).type
                columns[column] = pa.array(values, type=kind) if column == value_column else pa.nulls(n, type=kind)
            parts.append(pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema))
        return pa.concat_tables(parts)

    def flush(self) -> None:
        """Append what is buffered as one snapshot (only rows whose identity the table does not hold yet).

        Raises StoreUnavailableError when the catalog or the table's storage cannot be used, during the identity
        check as during the append (an I/O error; the catalog's database refusing, ``OperationalError``, or not one,
        its parent ``DatabaseError``; the table gone from the catalog), or after ``_APPEND_ATTEMPTS`` commit conflicts
        in a row, each retry after a random wait (``commit_backoff_s``); what is buffered then stays buffered."""
        from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
        from sqlalchemy.exc import DatabaseError

        unusable = (OSError, DatabaseError, NoSuchTableError)
        if not self._buffer and not self._results:
            return
        ingested_ms = self._clock_ms()
        parts = [self._rows_arrow(self._buffer, ingested_ms)] if self._buffer else []
        parts += [self.results_arrow(r, ingested_ms) for r in self._results]
        try:
            fresh = self._fresh(pa.concat_tables(parts) if len(parts) > 1 else parts[0])
        except unusable as exc:
            raise StoreUnavailableError(f"Iceberg table unreadable for the identity check: {_one_line(exc)}") from exc
        if not fresh.num_rows:
            self._buffer.clear()
            self._results.clear()
            return
        batch = sorted_rows(fresh)
        for attempt in range(_APPEND_ATTEMPTS):
            try:
                if attempt:  # another writer committed first: retry on top of its snapshot
                    self._sleep(commit_backoff_s(attempt))
                    # ... checking identities again: that writer may have committed some of these very rows (a
                    # failover's old attempt finishing its flush while the restored one replays), appended twice.
                    batch = self._fresh(batch)
                    if not batch.num_rows:
                        break
                append_rows(self._table, batch, self._reach.snapshot_properties if self._reach is not None else None)
                if self._reach is not None:
                    self._reach.appended(self._table)
                break
            except CommitFailedException as exc:
                if attempt == _APPEND_ATTEMPTS - 1:
                    raise StoreUnavailableError(f"Iceberg commit lost {_APPEND_ATTEMPTS} races in a row") from exc
            except unusable as exc:
                raise StoreUnavailableError(f"Iceberg append failed: {_one_line(exc)}") from exc
        self.written += batch.num_rows
        self._buffer.clear()
        self._results.clear()

    def _refresh(self) -> None:
        """The table's current snapshot, and with it the reach (the files others added since the last look)."""
        self._table.refresh()
        if self._reach is not None:
            self._reach.looked(self._table)

    def _fresh(self, rows: pa.Table) -> pa.Table:
        """``rows`` without those the table (looked at now) or an earlier row of ``rows`` holds, among the rows to
        check: all without a reach; with one, those at or below it after the look."""
        self._refresh()
        if self._reach is None:
            self.checked += rows.num_rows
            return self._new_rows(rows)
        held = self._reach.may_hold(rows.column("event_time").cast(pa.int64()).to_numpy())
        if not held.any():
            return rows
        self.checked += int(held.sum())
        if held.all():
            return self._new_rows(rows)
        mask = pa.array(held)
        return pa.concat_tables([self._new_rows(rows.filter(mask)), rows.filter(pc.invert(mask))])

    def _new_rows(self, rows: pa.Table) -> pa.Table:
        """The rows whose identity (``IDENTITY_COLUMNS``, no revision counting as 0) neither the table (as last
        refreshed) nor an earlier row of ``rows`` holds, in their order: a distinct and an anti-join in Arrow."""
        from pyiceberg.expressions import And, GreaterThanOrEqual, LessThanOrEqual

        bounds = pc.min_max(rows.column("event_time").cast(pa.int64()))
        lo, hi = _iso(bounds["min"].as_py() // 1000), _iso(bounds["max"].as_py() // 1000)
        existing = self._table.scan(
            row_filter=And(GreaterThanOrEqual("event_time", lo), LessThanOrEqual("event_time", hi)),
            selected_fields=offline_layout.IDENTITY_COLUMNS,
        ).to_arrow()
        keys = list(offline_layout.IDENTITY_COLUMNS)
        ours = _identities(rows).append_column("row", pa.array(np.arange(rows.num_rows, dtype=np.int64)))
        first = ours.group_by(keys, use_threads=False).aggregate([("row", "min")])
        if existing.num_rows:
            first = first.join(_identities(existing), keys=keys, join_type="left anti", use_threads=False)
        at = np.sort(first.column("row_min").to_numpy())
        return rows if len(at) == rows.num_rows else rows.take(pa.array(at))


def _one_line(exc: BaseException) -> str:
    """An error's message on one line (a database error's text spans several: the SQL, a link)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _identities(rows: pa.Table) -> pa.Table:
    """``rows``' identity columns in one set of types (strings, int64s; no revision is 0) for joining."""
    columns = []
    for name in offline_layout.IDENTITY_COLUMNS:
        column = rows.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = column.cast(pa.large_string())
        else:
            column = column.cast(pa.int64())
            if name == "revision":
                column = column.fill_null(0)
        columns.append(column)
    return pa.Table.from_arrays(columns, names=list(offline_layout.IDENTITY_COLUMNS))
