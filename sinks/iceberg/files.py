"""The data files a scan plans, read as Arrow record batches: directly where a file allows it.

pyiceberg's own reader (``ArrowScan``) handles every case Iceberg allows (delete files, renamed or
added columns, other timestamp units) but decodes strings in full and re-projects every batch in
Python. Most of the offline table's files are the plain case: written by this project, no delete
files, every requested column present under its current name and field id. Those are read here
with Arrow's dataset scanner directly: low-cardinality string columns stay dictionary-encoded (a
lookup runs over a row group's few distinct ids, not over every row), and the row filter is pushed
down to Parquet's row-group statistics. Every other file goes through ``ArrowScan`` unchanged, so
the batches a caller sees may be dictionary-encoded or not and must be handled either way.
"""

from __future__ import annotations

import bisect
import copy
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table

T = TypeVar("T")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# A grown span past what a timestamp filter can spell (years 1 to 9999, ``datetime``'s range) is unbounded there.
_EARLIEST_US = (date(2, 1, 1) - date(1970, 1, 1)).days * 86_400_000_000
_LATEST_US = (date(9999, 1, 1) - date(1970, 1, 1)).days * 86_400_000_000

_FIELD_ID = b"PARQUET:field_id"
GROUP_ROWS = 262_144  # rows per group of consecutive files read by one thread


_POOL: list[ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()


def group_pool() -> ThreadPoolExecutor:
    """The threads groups of files are read on, as many as pyiceberg's pool has (its ``max-workers``). Not that
    pool: a file with delete files is read by pyiceberg, which reads the delete files on its own pool and waits for
    them, so groups read on that pool held all its workers waiting for work queued behind themselves (a hang as
    soon as groups of such files were at least as many as its workers)."""
    with _POOL_LOCK:
        if not _POOL:
            from pyiceberg.utils.concurrent import ExecutorFactory

            _POOL.append(ThreadPoolExecutor(ExecutorFactory.max_workers(), thread_name_prefix="offline-read"))
        return _POOL[0]


def file_groups(tasks: Sequence[Any], rows: int) -> list[list[Any]]:
    """Consecutive tasks (files) in groups of about ``rows`` rows, in order."""
    groups: list[list[Any]] = [[]]
    count = 0
    for task in tasks:
        if count >= rows:
            groups.append([])
            count = 0
        groups[-1].append(task)
        count += task.file.record_count
    return [g for g in groups if g]


def _plain(t: pa.DataType) -> pa.DataType:
    """The type with 64-bit string offsets taken as 32-bit ones (and dictionaries as their values)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return {pa.large_string(): pa.string(), pa.large_binary(): pa.binary()}.get(t, t)


class FileReader:
    """Batches of a planned scan's files, restricted to ``columns``.

    ``file_filter`` chooses the files (partitions and file statistics); ``row_filter`` (pyiceberg) is
    what ``ArrowScan`` applies to the rows of the files it reads; ``arrow_filter``, for the files read
    directly, skips the row groups whose statistics rule it out. All three may keep more rows than
    the caller wants: callers filter exactly themselves.
    """

    def __init__(
        self,
        table: Table,
        snapshot_id: int,
        file_filter: BooleanExpression,
        row_filter: BooleanExpression,
        arrow_filter: ds.Expression | None,
        columns: Sequence[str],
        dictionary_columns: Sequence[str] = (),
        column_keys: tuple[str, Mapping[str, Sequence[str]]] | None = None,
        tasks: Sequence[Any] | None = None,
    ) -> None:
        """``column_keys``: ``(key column, {column: keys})`` reads each such column only from the row
        groups whose key column's statistics may hold one of its keys (for the offline table: a value
        column only where a feature of its type may be; a row group of other features never needs it).
        Batches may then lack such a column, but only where no row has one of its keys. ``tasks``: the
        files to read when the caller chose them already (``PlannedFiles``), instead of planning the scan."""
        from pyiceberg.io import PYARROW_USE_LARGE_TYPES_ON_READ
        from pyiceberg.io.pyarrow import ArrowScan

        self._table = table
        scan = table.scan(row_filter=file_filter, selected_fields=tuple(columns), snapshot_id=snapshot_id)
        self.tasks = list(scan.plan_files() if tasks is None else tasks)
        schema = table.schema()
        self._columns = list(columns)
        self._ids = {c: schema.find_field(c).field_id for c in columns}
        self._expected = {f.name: f.type for f in schema.as_arrow() if f.name in self._ids}
        self._arrow_filter = arrow_filter
        self._column_keys = column_keys
        self._format = ds.ParquetFileFormat(
            read_options=ds.ParquetReadOptions(dictionary_columns=list(dictionary_columns)), pre_buffer=True
        )
        # 32-bit string offsets on the fallback path too: no copy of every string into large_string.
        io = copy.copy(scan.io)
        io.properties = {**scan.io.properties, PYARROW_USE_LARGE_TYPES_ON_READ: "False"}
        self._io = io
        self._fallback = ArrowScan(scan.table_metadata, io, scan.projection(), row_filter, scan.case_sensitive)

    def _direct(self, task: Any) -> Iterator[pa.RecordBatch] | None:
        """The file's batches read directly, or None where its layout needs pyiceberg's reader."""
        from pyiceberg.io.pyarrow import _fs_from_file_path, _parse_location

        if task.delete_files or str(task.file.file_format).upper().find("PARQUET") < 0:
            return None
        fs = _fs_from_file_path(task.file.file_path, self._io)
        _, _, path = _parse_location(task.file.file_path)
        source = fs.open_input_file(path)
        fragment = self._format.make_fragment(source)
        physical = fragment.physical_schema
        for name, field_id in self._ids.items():
            index = physical.get_field_index(name)
            if index < 0:
                source.close()
                return None
            field = physical.field(index)
            if (field.metadata or {}).get(_FIELD_ID) != str(field_id).encode():
                source.close()
                return None
            if _plain(field.type) != _plain(self._expected[name]):  # promoted since, or another unit or zone
                source.close()
                return None

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                # Row groups pruned by their statistics only: a row-by-row filter here costs more than
                # the caller's exact one, which runs on dictionary codes.
                part = fragment if self._arrow_filter is None else fragment.subset(self._arrow_filter)
                yield from ds.Scanner.from_fragment(part, columns=self._file_columns(fragment)).to_batches()
            finally:
                source.close()

        return batches()

    def _file_columns(self, fragment: ds.ParquetFileFragment) -> list[str]:
        """The columns worth reading from the file: those of ``column_keys`` only if one of their keys
        may be in one of its row groups (by the key column's statistics)."""
        if self._column_keys is None:
            return self._columns
        key_column, keys = self._column_keys
        metadata = fragment.metadata
        index = metadata.schema.to_arrow_schema().get_field_index(key_column)
        bounds = []
        for i in range(metadata.num_row_groups):
            statistics = metadata.row_group(i).column(index).statistics if index >= 0 else None
            if statistics is None or not statistics.has_min_max:
                return self._columns  # unknown: every column
            bounds.append((statistics.min, statistics.max))
        return [c for c in self._columns if c not in keys or any(lo <= k <= hi for lo, hi in bounds for k in keys[c])]

    def batches(self, tasks: Sequence[Any]) -> Iterator[pa.RecordBatch]:
        for task in tasks:
            direct = self._direct(task)
            if direct is None:
                yield from self._fallback.to_record_batches([task])
            else:
                yield from direct

    def map(self, consume: Callable[[Iterator[pa.RecordBatch]], T], rows: int = GROUP_ROWS) -> list[T]:
        """``consume`` of each group of consecutive files' batches, groups read in parallel, in file order."""
        groups = file_groups(self.tasks, rows)
        return list(group_pool().map(lambda g: consume(self.batches(g)), groups))


class PlannedFiles:
    """A scan's data files planned once for a span of event time, then chosen for each read by their own
    statistics instead of planning the table again.

    Planning reads and decodes the snapshot's manifests (pyiceberg, in Python): for a table of thousands
    of files, a tenth of a second or more per plan, paid by every chunk of labels and every group of
    features it reads. Here a read inside the planned span takes the planned files whose time column's
    bounds overlap ``[lo_us, hi_us]`` and whose key column's bounds may hold one of its keys; a read
    outside it plans once more, for the union of both spans. A file without such statistics is always
    taken. The choice may keep files a fresh plan would skip (partition pruning is not repeated), never leaves
    a file that may hold a row the read wants, and every caller filters rows exactly itself. A span grows
    geometrically (``_grown``). Not thread-safe: one join's reads call it one after another.
    """

    def __init__(
        self,
        table: Table,
        snapshot_id: int,
        plan_filter: Callable[[int | None, int | None], BooleanExpression],
        *,
        time_column: str,
        key_column: str,
    ) -> None:
        """``plan_filter(lo_us, hi_us)``: the file filter of a span (None: unbounded on that side)."""
        schema = table.schema()
        self._table = table
        self._snapshot_id = snapshot_id
        self._plan_filter = plan_filter
        self._time = schema.find_field(time_column)
        self._key = schema.find_field(key_column)
        self._span: tuple[int | None, int | None] | None = None
        self._tasks: list[Any] = []
        self._lows = np.empty(0, np.int64)
        self._highs = np.empty(0, np.int64)
        self._key_bounds: list[tuple[str, str] | None] = []
        self._unbounded = False  # a planned file lacks a time bound
        self.plans = 0  # how many times the table was planned (for tests and profiles)

    def tasks(self, lo_us: int | None, hi_us: int | None, keys: Sequence[str]) -> list[Any]:
        """The files a read of ``keys`` with times in ``[lo_us, hi_us]`` (inclusive; None: unbounded) needs,
        in plan order."""
        if not self._covers(lo_us, hi_us):
            self._plan(*self._grown(lo_us, hi_us))
        keep = np.ones(len(self._tasks), dtype=bool)
        if hi_us is not None:
            keep &= self._lows <= hi_us
        if lo_us is not None:
            keep &= self._highs >= lo_us
        ordered = sorted(keys)

        def may_hold(bounds: tuple[str, str] | None) -> bool:  # a key in [lower, upper]: the first key >= lower
            if bounds is None:
                return True
            at = bisect.bisect_left(ordered, bounds[0])
            return at < len(ordered) and ordered[at] <= bounds[1]

        return [
            task
            for task, kept, bounds in zip(self._tasks, keep.tolist(), self._key_bounds, strict=True)
            if kept and may_hold(bounds)
        ]

    def time_bounds(self) -> tuple[int, int] | None:
        """(lowest, highest) time over every file of the whole history (planned unbounded if it was not);
        None if a file has no statistics for it; ``(0, -1)`` if there is no file."""
        if self._span != (None, None):
            self._plan(None, None)
        if self._unbounded:
            return None
        if not len(self._tasks):
            return (0, -1)
        return int(self._lows.min()), int(self._highs.max())

    def _grown(self, lo_us: int | None, hi_us: int | None) -> tuple[int | None, int | None]:
        """The span to plan for a read outside the planned one: both, and on each side it grows by at least
        the planned span's width (reads moving along the time axis, as chunks of time-sorted labels do,
        plan a logarithmic number of times, and at most about twice the span they read)."""
        if self._span is None:
            return lo_us, hi_us
        lo, hi = self._span
        width = 0 if lo is None or hi is None else hi - lo
        if lo is not None:
            lo = None if lo_us is None else min(lo_us, lo - width) if lo_us < lo else lo
            lo = None if lo is not None and lo < _EARLIEST_US else lo
        if hi is not None:
            hi = None if hi_us is None else max(hi_us, hi + width) if hi_us > hi else hi
            hi = None if hi is not None and hi > _LATEST_US else hi
        return lo, hi

    def _covers(self, lo_us: int | None, hi_us: int | None) -> bool:
        if self._span is None:
            return False
        lo, hi = self._span
        return (lo is None or (lo_us is not None and lo_us >= lo)) and (
            hi is None or (hi_us is not None and hi_us <= hi)
        )

    def _plan(self, lo_us: int | None, hi_us: int | None) -> None:
        from pyiceberg.conversions import from_bytes

        scan = self._table.scan(row_filter=self._plan_filter(lo_us, hi_us), snapshot_id=self._snapshot_id)
        tasks = list(scan.plan_files())
        time_id, time_type = self._time.field_id, self._time.field_type
        key_id, key_type = self._key.field_id, self._key.field_type
        lows, highs, keys = [], [], []
        unbounded = False
        for task in tasks:
            lower, upper = task.file.lower_bounds or {}, task.file.upper_bounds or {}
            low, high = lower.get(time_id), upper.get(time_id)
            unbounded |= low is None or high is None
            lows.append(_INT64_MIN if low is None else int(from_bytes(time_type, low)))  # type: ignore[arg-type]
            highs.append(_INT64_MAX if high is None else int(from_bytes(time_type, high)))  # type: ignore[arg-type]
            key_low, key_high = lower.get(key_id), upper.get(key_id)
            # String bounds may be truncated (lower: a prefix, upper: rounded up): still bounds.
            keys.append(
                None
                if key_low is None or key_high is None
                else (str(from_bytes(key_type, key_low)), str(from_bytes(key_type, key_high)))  # type: ignore[arg-type]
            )
        self._tasks, self._key_bounds, self._unbounded = tasks, keys, unbounded
        self._lows, self._highs = np.array(lows, dtype=np.int64), np.array(highs, dtype=np.int64)
        self._span = (lo_us, hi_us)
        self.plans += 1
