"""Reads of the offline (Iceberg) table for point-in-time joins and exports.

Three questions, each answered with bounded memory:

- *What does a read see?* (``read_point``) One snapshot, and optionally only rows ingested at or
  before a time. ``as_of`` given as a time resolves to the snapshot that was current then *and*
  filters ``ingested_at``, so a row committed later never leaks in, even when snapshots are coarse.
- *Which rows can answer a chunk of labels?* (``read_rows``) Per feature version, only windows ending
  in ``[earliest label - ttl, latest label]``: an older row is expired for every label of the chunk,
  a newer one is in every label's future. Rows of entities the chunk does not name are dropped batch
  by batch as they are read, so what stays in memory is bounded by the chunk's entities and time span.
- *How far does the data reach?* (``data_reach``) The latest window end stored per feature version,
  over the whole history: the offline counterpart of stream progress (``registry.core.timeline``). Read
  in widening bands down from the newest file's upper bound, so it usually touches one day of data.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from registry.core.definitions import FeatureDefinition
from registry.core.errors import DatasetError
from registry.core.value_types import VALUE_COLUMNS, arrow_type

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_US = 86_400_000_000
_COLUMN_TYPES = {column: arrow_type(t, large_strings=True) for t, column in VALUE_COLUMNS.items()}


def epoch_us(at: datetime) -> int:
    """Exact epoch microseconds of a timezone-aware datetime."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise DatasetError(f"as_of must be timezone-aware, not the naive {at.isoformat()}")
    return (at - _EPOCH) // timedelta(microseconds=1)


def iso_us(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=us)).isoformat()


@dataclass(frozen=True, slots=True)
class ReadPoint:
    """What a read sees. ``snapshot_id`` None means the table had no snapshot yet: nothing is visible."""

    snapshot_id: int | None
    ingested_until_us: int | None = None  # only rows with ingested_at <= this (epoch µs)


def read_point(table: Table, as_of: int | datetime | None) -> ReadPoint:
    """Resolve ``as_of``: None = the table's current snapshot, an int = that snapshot id, a
    timezone-aware datetime = the snapshot current at that time plus rows ingested by then."""
    if as_of is None:
        current = table.current_snapshot()
        return ReadPoint(current.snapshot_id if current is not None else None)
    if isinstance(as_of, bool) or not isinstance(as_of, int | datetime):
        raise DatasetError(f"as_of must be a snapshot id (int) or a timezone-aware datetime, not {as_of!r}")
    if isinstance(as_of, int):
        if table.snapshot_by_id(as_of) is None:
            raise DatasetError(f"the offline table has no snapshot {as_of} (never existed, or expired)")
        return ReadPoint(as_of)
    until_us = epoch_us(as_of)
    snapshot = table.snapshot_as_of_timestamp(until_us // 1000)
    return ReadPoint(snapshot.snapshot_id if snapshot is not None else None, until_us)


def point_from(snapshot_id: int | None, ingested_until_us: int | None, table: Table) -> ReadPoint:
    """A read point recorded earlier (a manifest), checked against the table."""
    if snapshot_id is not None and table.snapshot_by_id(snapshot_id) is None:
        raise DatasetError(f"the offline table has no snapshot {snapshot_id} any more (expired?): cannot rebuild")
    return ReadPoint(snapshot_id, ingested_until_us)


def _filter(
    entity_type: str,
    definitions: Sequence[FeatureDefinition],
    point: ReadPoint,
    lo_us: int | None = None,
    hi_us: int | None = None,
) -> BooleanExpression:
    """Rows of the features' names with window ends in ``[lo_us, hi_us]`` (epoch µs), visible at ``point``.

    Kept simple on purpose (names, one time range): it prunes partitions and files; the exact
    per-feature version and time band are applied to the rows in numpy, which is cheaper than an
    expression with one branch per feature evaluated on every row.
    """
    from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, In, LessThanOrEqual

    names = sorted({d.name for d in definitions})
    terms = [
        EqualTo("entity_type", entity_type),
        In("feature_name", names) if len(names) > 1 else EqualTo("feature_name", names[0]),
    ]
    if lo_us is not None:
        terms.append(GreaterThanOrEqual("event_time", iso_us(lo_us)))
    if hi_us is not None:
        terms.append(LessThanOrEqual("event_time", iso_us(hi_us)))
    if point.ingested_until_us is not None:
        terms.append(LessThanOrEqual("ingested_at", iso_us(point.ingested_until_us)))
    return And(*terms)


_GROUP_ROWS = 262_144  # rows a reader thread gathers before one transform: lookups set up once per group


def _groups(tasks: Sequence[Any], rows: int) -> list[list[Any]]:
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


def _scan(
    table: Table,
    point: ReadPoint,
    expression: BooleanExpression,
    columns: Sequence[str],
    transform: Callable[[pa.Table], pa.Table | None],
    row_filter: BooleanExpression | None = None,
) -> list[pa.Table]:
    """``transform`` of what the scan yields, in groups of ~``_GROUP_ROWS`` rows read in parallel,
    results in file order.

    ``expression`` chooses the files; ``row_filter`` (default: the same) the rows Arrow returns, when
    the transform applies the rest itself more cheaply. Rows are transformed (filtered) as they are
    read, so memory holds what the transform keeps plus one group in flight per reader thread,
    never the unfiltered scan. (One transform per group rather than per file: a lookup such as
    ``index_in`` over 100K entity ids costs as much to set up as to run on a small file.)
    """
    from pyiceberg.io import PYARROW_USE_LARGE_TYPES_ON_READ
    from pyiceberg.io.pyarrow import ArrowScan
    from pyiceberg.utils.concurrent import ExecutorFactory

    if point.snapshot_id is None:
        return []
    scan = table.scan(row_filter=expression, selected_fields=tuple(columns), snapshot_id=point.snapshot_id)
    tasks = list(scan.plan_files())
    # 32-bit string offsets: no copy of every string into large_string (~20 % of a scan); a group is far
    # below 2 GiB, and what is kept across groups is cast back to large types by the transform.
    io = copy.copy(scan.io)
    io.properties = {**scan.io.properties, PYARROW_USE_LARGE_TYPES_ON_READ: "False"}
    reader = ArrowScan(
        scan.table_metadata,
        io,
        scan.projection(),
        row_filter if row_filter is not None else scan.row_filter,
        scan.case_sensitive,
    )

    def read(group: list[Any]) -> list[pa.Table]:
        out: list[pa.Table] = []
        pending: list[pa.RecordBatch] = []
        pending_rows = 0

        def flush() -> None:
            nonlocal pending, pending_rows
            if pending_rows:
                kept = transform(pa.Table.from_batches(pending))
                if kept is not None and kept.num_rows:
                    out.append(kept)
            pending, pending_rows = [], 0

        for batch in reader.to_record_batches(group):
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= _GROUP_ROWS:
                flush()
        flush()
        return out

    groups = _groups(tasks, _GROUP_ROWS)
    return [part for parts in ExecutorFactory.get_or_create().map(read, groups) for part in parts]


_PER_US = {"s": (1_000_000, 1), "ms": (1000, 1), "us": (1, 1), "ns": (1, 1000)}  # unit -> (multiply, divide)


def micros(ts: pa.Array | pa.ChunkedArray, *, ceil: bool = False) -> np.ndarray:
    """Epoch microseconds of a timestamp column: exact for s, ms and µs; nanoseconds floored (or ceiled)."""
    raw = ts.cast(pa.int64()).to_numpy()
    multiply, divide = _PER_US[ts.type.unit]
    if divide == 1:
        return raw * multiply
    return -(-raw // divide) if ceil else raw // divide


@dataclass(frozen=True, slots=True)
class Band:
    """Rows of one feature version with window ends in ``[lo_us, hi_us]`` (epoch µs)."""

    definition: FeatureDefinition
    lo_us: int
    hi_us: int


@dataclass(frozen=True)
class FeatureRows:
    """One feature version's rows of a chunk: entity code, window end and ingestion (epoch µs), revision, value."""

    code: np.ndarray
    end_us: np.ndarray
    ingested_us: np.ndarray
    revision: np.ndarray
    values: pa.Array


@dataclass(frozen=True)
class RowBlock:
    """Offline rows for one chunk of labels, grouped by band (numpy columns; values stay in Arrow).

    ``code`` indexes the chunk's entity values; ``rows_for(i)`` are band ``i``'s rows (``read_rows``
    keeps nothing outside the bands).
    """

    code: np.ndarray  # every row, grouped by band
    end_us: np.ndarray
    ingested_us: np.ndarray
    revision: np.ndarray
    values: dict[str, pa.ChunkedArray]  # value column -> values in the block's original row order
    order: np.ndarray  # grouped position -> original row
    starts: np.ndarray  # band i's rows are [starts[i], starts[i + 1])
    bands: Sequence[Band]

    def __len__(self) -> int:
        return len(self.code)

    def rows_for(self, i: int) -> FeatureRows:
        at = slice(int(self.starts[i]), int(self.starts[i + 1]))
        column = self.values[VALUE_COLUMNS[self.bands[i].definition.value_type]]
        return FeatureRows(
            self.code[at],
            self.end_us[at],
            self.ingested_us[at],
            self.revision[at],
            column.take(pa.array(self.order[at])).combine_chunks(),
        )

    @classmethod
    def of(cls, rows: pa.Table, bands: Sequence[Band]) -> RowBlock:
        """From the kept batches as they are (values are not copied: ``take`` reads chunked arrays)."""
        feature = rows.column("feature").to_numpy().astype(np.int16)
        order = np.argsort(feature, kind="stable")  # a radix sort: linear in the rows
        starts = np.searchsorted(feature[order], np.arange(len(bands) + 1))
        return cls(
            code=rows.column("code").to_numpy()[order].astype(np.int64),
            end_us=micros(rows.column("event_time"))[order],
            ingested_us=micros(rows.column("ingested_at"))[order],
            revision=rows.column("revision").to_numpy()[order].astype(np.int64),
            values={c: rows.column(c) for c in rows.column_names[5:]},
            order=order,
            starts=starts,
            bands=bands,
        )


class _VersionFilter:
    """Which rows of a batch belong to the requested feature versions (one version per name)."""

    def __init__(self, definitions: Sequence[FeatureDefinition]) -> None:
        self._names = pa.array([d.name for d in definitions], pa.string())
        self._versions = np.array([d.version for d in definitions], dtype=np.int64)

    def mask(self, rows: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """(index of the feature per row, 0 if none; whether the row is of a requested feature version)."""
        names = rows.column("feature_name")
        index = pc.index_in(names, value_set=self._names.cast(names.type)).fill_null(-1).to_numpy()
        version = rows.column("feature_version").to_numpy()
        safe = np.maximum(index, 0)
        return safe, (index >= 0) & (self._versions[safe] == version)


def _large(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column.cast(pa.large_string()) if pa.types.is_string(column.type) else column


def read_rows(table: Table, point: ReadPoint, entity_type: str, bands: Sequence[Band], entities: pa.Array) -> RowBlock:
    """Rows for ``bands`` whose entity is one of ``entities`` (distinct strings), filtered as read."""
    from pyiceberg.expressions import EqualTo

    definitions = [b.definition for b in bands]
    value_columns = sorted({VALUE_COLUMNS[d.value_type] for d in definitions})
    versions = _VersionFilter(definitions)
    value_sets = {t: entities.cast(t) for t in (pa.string(), pa.large_string())}
    revised = "revision" in table.schema().column_names  # tables written before revisions existed lack it
    # Each feature's own band, applied as rows are read: the scan's filter can only take their union.
    lo_us = np.array([b.lo_us for b in bands], dtype=np.int64)
    hi_us = np.array([b.hi_us for b in bands], dtype=np.int64)
    until_us = point.ingested_until_us

    def keep(rows: pa.Table) -> pa.Table | None:
        ids = rows.column("entity_id")
        code = pc.index_in(ids, value_set=value_sets[ids.type]).fill_null(-1).to_numpy()
        index, of_version = versions.mask(rows)
        end_us = rows.column("event_time").cast(pa.int64()).to_numpy()
        wanted = (code >= 0) & of_version & (end_us >= lo_us[index]) & (end_us <= hi_us[index])
        if until_us is not None:
            wanted &= rows.column("ingested_at").cast(pa.int64()).to_numpy() <= until_us
        revision = rows.column("revision").fill_null(0) if revised else pa.array(np.zeros(rows.num_rows, np.int64))
        kept = pa.Table.from_arrays(
            [
                pa.array(code),
                pa.array(index),
                rows.column("event_time"),
                rows.column("ingested_at"),
                revision,
                *(_large(rows.column(c)) for c in value_columns),
            ],
            names=["code", "feature", "event_time", "ingested_at", "revision", *value_columns],
        )
        return kept if wanted.all() else kept.filter(pa.array(wanted))

    expression = _filter(entity_type, definitions, point, min(b.lo_us for b in bands), max(b.hi_us for b in bands))
    columns = (
        "entity_id",
        "feature_name",
        "feature_version",
        "event_time",
        "ingested_at",
        *(("revision",) if revised else ()),
        *value_columns,
    )
    # Files are chosen by the whole expression; rows by the entity type only (Arrow skips even that where
    # a row group's statistics settle it): names, versions, bands and ingestion are checked in `keep`.
    parts = _scan(table, point, expression, columns, keep, row_filter=EqualTo("entity_type", entity_type))
    if not parts:
        schema = pa.schema(
            [
                ("code", pa.int32()),
                ("feature", pa.int64()),
                ("event_time", pa.timestamp("us")),
                ("ingested_at", pa.timestamp("us")),
                ("revision", pa.int64()),
                *((c, _COLUMN_TYPES[c]) for c in value_columns),
            ]
        )
        return RowBlock.of(schema.empty_table(), bands)
    return RowBlock.of(pa.concat_tables(parts), bands)


def _event_time_bounds(
    table: Table, point: ReadPoint, entity_type: str, definitions: Sequence[FeatureDefinition]
) -> tuple[int, int] | None:
    """(lowest, highest) event time in µs over the files that may hold the features; None if unknown."""
    from pyiceberg.conversions import from_bytes
    from pyiceberg.types import PrimitiveType

    field = table.schema().find_field("event_time")
    assert isinstance(field.field_type, PrimitiveType)
    scan = table.scan(row_filter=_filter(entity_type, definitions, point), snapshot_id=point.snapshot_id)
    lows, highs = [], []
    for task in scan.plan_files():
        lower = (task.file.lower_bounds or {}).get(field.field_id)
        upper = (task.file.upper_bounds or {}).get(field.field_id)
        if lower is None or upper is None:
            return None
        lows.append(int(from_bytes(field.field_type, lower)))
        highs.append(int(from_bytes(field.field_type, upper)))
    if not highs:
        return (0, -1)  # no file can hold the features
    return min(lows), max(highs)


def data_reach(
    table: Table, point: ReadPoint, entity_type: str, definitions: Sequence[FeatureDefinition]
) -> dict[tuple[str, int], int]:
    """The latest window end (epoch µs) visible per feature version, any entity, whole history.

    Reads bands of event time down from the newest file's upper bound (one day, then 4x wider each
    time) and stops per feature at the first band holding one of its rows: memory is bounded by the
    rows of the band, usually the last day.
    """
    if point.snapshot_id is None or not definitions:
        return {}
    bounds = _event_time_bounds(table, point, entity_type, definitions)
    if bounds is None:  # a file without statistics: one full read of two columns
        return _latest_ends(table, point, entity_type, definitions, None, None)
    lowest, highest = bounds
    reach: dict[tuple[str, int], int] = {}
    remaining = list(definitions)
    hi: int | None = None  # the first band is open above: statistics only guide the search
    width = _DAY_US
    while remaining and (hi is None or hi > lowest):
        lo = (highest if hi is None else hi) - width
        found = _latest_ends(table, point, entity_type, remaining, lo, None if hi is None else hi - 1)
        reach.update(found)
        remaining = [d for d in remaining if (d.name, d.version) not in found]
        hi, width = lo, width * 4
    return reach


def _latest_ends(
    table: Table,
    point: ReadPoint,
    entity_type: str,
    definitions: Sequence[FeatureDefinition],
    lo_us: int | None,
    hi_us: int | None,
) -> dict[tuple[str, int], int]:
    wanted = {(d.name, d.version) for d in definitions}

    def latest(rows: pa.Table) -> pa.Table | None:
        return rows.group_by(["feature_name", "feature_version"]).aggregate([("event_time", "max")])

    best: dict[tuple[str, int], int] = {}
    expression = _filter(entity_type, definitions, point, lo_us, hi_us)
    for part in _scan(table, point, expression, ("feature_name", "feature_version", "event_time"), latest):
        ends = micros(part.column("event_time_max"))
        for name, version, end in zip(
            part.column("feature_name").to_pylist(), part.column("feature_version").to_pylist(), ends, strict=True
        ):
            if (name, version) in wanted:
                best[(name, version)] = max(best.get((name, version), int(end)), int(end))
    return best


def distinct_entities(
    table: Table, point: ReadPoint, entity_type: str, definitions: Sequence[FeatureDefinition], until_us: int
) -> pa.Array:
    """Every entity id with a visible row of the feature versions ending at or before ``until_us``, sorted.

    Memory: the distinct ids (deduplicated per batch as read), not the rows.
    """
    wanted = _VersionFilter(definitions)

    def ids(rows: pa.Table) -> pa.Table | None:
        unique = pc.unique(rows.column("entity_id").filter(pa.array(wanted.mask(rows)[1])).cast(pa.string()))
        return pa.table({"entity_id": unique})

    expression = _filter(entity_type, definitions, point, None, until_us)
    parts = _scan(table, point, expression, ("entity_id", "feature_name", "feature_version"), ids)
    if not parts:
        return pa.array([], pa.string())
    unique = pc.unique(pa.chunked_array([c for p in parts for c in p.column(0).chunks], pa.string()))
    return unique.take(pc.sort_indices(unique))
