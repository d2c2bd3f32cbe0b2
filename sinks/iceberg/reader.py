"""Reads of the offline (Iceberg) table for point-in-time joins and exports.

Three questions, each answered with bounded memory:

- *What does a read see?* (``read_point``, in ``sinks.iceberg.as_of``) One snapshot, and optionally only
  rows ingested at or before a time. ``as_of`` given as a time resolves to the snapshot that was current
  then *and* filters ``ingested_at``, so a row committed later never leaks in, even when snapshots are coarse.
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
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from registry.core.definitions import FeatureDefinition
from registry.core.value_types import VALUE_COLUMNS, arrow_type
from sinks.iceberg.as_of import FIRST_US, LAST_US, ReadPoint, iso_us
from sinks.iceberg.files import GROUP_ROWS, FileReader, PlannedFiles, file_groups, group_pool

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table

_DAY_US = 86_400_000_000
_COLUMN_TYPES = {column: arrow_type(t, large_strings=True) for t, column in VALUE_COLUMNS.items()}
_ADDED_TYPES = {"revision": pa.int64(), **_COLUMN_TYPES}  # the columns a table may have gained since a snapshot


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
    from pyiceberg.expressions import AlwaysFalse, And, EqualTo, GreaterThanOrEqual, In, LessThanOrEqual

    if (hi_us is not None and hi_us < FIRST_US) or (lo_us is not None and lo_us > LAST_US):
        return AlwaysFalse()  # a band wholly before year 1 or after 9999 (labels Arrow holds): no row ends in it
    names = sorted({d.name for d in definitions})
    terms = [
        EqualTo("entity_type", entity_type),
        In("feature_name", names) if len(names) > 1 else EqualTo("feature_name", names[0]),
    ]
    if lo_us is not None and lo_us > FIRST_US:  # a band reaching before year 1 (a TTL back from early labels)
        terms.append(GreaterThanOrEqual("event_time", iso_us(lo_us)))
    if hi_us is not None and hi_us < LAST_US:
        terms.append(LessThanOrEqual("event_time", iso_us(hi_us)))
    if point.ingested_until_us is not None:
        terms.append(LessThanOrEqual("ingested_at", iso_us(point.ingested_until_us)))
    return And(*terms)


def _scan(
    table: Table,
    point: ReadPoint,
    expression: BooleanExpression,
    columns: Sequence[str],
    transform: Callable[[pa.Table], pa.Table | None],
    row_filter: BooleanExpression | None = None,
) -> list[pa.Table]:
    """``transform`` of what the scan yields, in groups of ~``GROUP_ROWS`` rows read in parallel,
    results in file order.

    ``expression`` chooses the files; ``row_filter`` (default: the same) the rows Arrow returns, when
    the transform applies the rest itself more cheaply. Rows are transformed (filtered) as they are
    read, so memory holds what the transform keeps plus one group in flight per reader thread,
    never the unfiltered scan. (One transform per group rather than per file: a lookup such as
    ``index_in`` over 100K entity ids costs as much to set up as to run on a small file.)
    """
    from pyiceberg.io import PYARROW_USE_LARGE_TYPES_ON_READ
    from pyiceberg.io.pyarrow import ArrowScan

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
            if pending_rows >= GROUP_ROWS:
                flush()
        flush()
        return out

    groups = file_groups(tasks, GROUP_ROWS)
    return [part for parts in group_pool().map(read, groups) for part in parts]  # not pyiceberg's pool


_PER_US = {"s": (1_000_000, 1), "ms": (1000, 1), "us": (1, 1), "ns": (1, 1000)}  # unit -> (multiply, divide)


def micros(ts: pa.Array | pa.ChunkedArray, *, ceil: bool = False) -> np.ndarray:
    """Epoch microseconds of a timestamp column: exact for s, ms and µs; nanoseconds floored (or ceiled)."""
    raw = ts.cast(pa.int64()).to_numpy()
    multiply, divide = _PER_US[ts.type.unit]
    if divide == 1:
        return raw * multiply
    floor = raw // divide
    return floor + (raw % divide != 0) if ceil else floor  # not -(-raw // divide): -raw wraps at the int64 minimum


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
class FeaturePieces:
    """One feature version's rows of a chunk as read: pieces (slices of batches) not yet concatenated,
    so that callers concatenate each feature where they join it (in parallel)."""

    pieces: Sequence[FeatureRows]
    value_type: pa.DataType

    def rows(self) -> FeatureRows:
        if not self.pieces:
            empty = np.empty(0, np.int64)
            return FeatureRows(empty, empty, empty, empty, pa.array([], self.value_type))

        def joined(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in self.pieces])

        values = [p.values if p.values.type == self.value_type else p.values.cast(self.value_type) for p in self.pieces]
        return FeatureRows(
            joined("code"), joined("end_us"), joined("ingested_us"), joined("revision"), pa.concat_arrays(values)
        )

    def end_us(self) -> list[np.ndarray]:
        return [p.end_us for p in self.pieces]


class _VersionFilter:
    """Which rows of a batch belong to the requested feature versions (several versions of one name too)."""

    def __init__(self, definitions: Sequence[FeatureDefinition]) -> None:
        index = {name: i for i, name in enumerate(dict.fromkeys(d.name for d in definitions))}
        self._names = pa.array(list(index), pa.string())
        self._keys = np.array([index[d.name] << 32 | d.version for d in definitions], dtype=np.int64)

    def mask(self, rows: pa.Table | pa.RecordBatch) -> np.ndarray:
        """Per row, whether it is of a requested feature version."""
        index = lookup(rows.column("feature_name"), self._names)
        version = rows.column("feature_version").to_numpy().astype(np.int64)
        return (index >= 0) & np.isin(index << 32 | version, self._keys)


def lookup(column: pa.Array | pa.ChunkedArray, values: pa.Array) -> np.ndarray:
    """Per row, the index of its value in ``values`` (distinct strings), or -1.

    A dictionary-encoded column is looked up once per distinct value of its dictionary, not per row.
    """
    if isinstance(column, pa.ChunkedArray):
        if column.num_chunks == 1:
            column = column.chunk(0)
        else:
            parts = [lookup(c, values) for c in column.chunks]
            return np.concatenate(parts) if parts else np.empty(0, np.int64)
    if pa.types.is_dictionary(column.type):
        found = _lookup_distinct(column.dictionary, values)
        if not len(found):
            return np.full(len(column), -1, np.int64)
        indices = column.indices
        if indices.null_count:
            return np.where(
                indices.is_null().to_numpy(zero_copy_only=False), -1, found[indices.fill_null(0).to_numpy()]
            )
        return found[indices.to_numpy()]
    value_set = values if values.type == column.type else values.cast(column.type)
    found = pc.index_in(column, value_set=value_set)
    return (found.fill_null(-1) if found.null_count else found).to_numpy(zero_copy_only=False).astype(np.int64)


def _lookup_distinct(dictionary: pa.Array, values: pa.Array) -> np.ndarray:
    """``lookup`` of a dictionary's entries. Arrow's ``index_in`` builds a hash table of the value set on
    every call, the larger side here as a rule (a chunk's 100K entity ids against a file's ~20K): when the
    values outnumber the entries and the entries are distinct, hash the entries and probe the values
    instead (4x less CPU measured), inverting the answer."""
    if len(values) <= len(dictionary) or dictionary.null_count:
        return lookup(dictionary, values)
    entries = dictionary if dictionary.type == values.type else dictionary.cast(values.type)
    if pc.count_distinct(entries).as_py() != len(entries):
        return lookup(dictionary, values)  # a repeated entry: each occurrence needs its own answer
    position = pc.index_in(values, value_set=entries)  # per value, its entry, or null
    found = np.full(len(entries), -1, np.int64)
    present = position.is_valid().to_numpy(zero_copy_only=False)
    # Reversed, so that of repeated values the first one's index is the one kept (as ``index_in`` answers).
    found[position.drop_null().to_numpy().astype(np.int64)[::-1]] = np.flatnonzero(present)[::-1]
    return found


def _us(column: pa.Array) -> np.ndarray:
    """A timestamp column (µs, no nulls) as epoch µs, without a copy where possible."""
    return column.cast(pa.int64()).to_numpy()


def _time_filter(column: str, lo_us: int | None, hi_us: int | None) -> ds.Expression | None:
    unit = pa.timestamp("us", tz="UTC")
    terms = []
    if lo_us is not None:
        terms.append(pc.field(column) >= pa.scalar(lo_us, unit))
    if hi_us is not None:
        terms.append(pc.field(column) <= pa.scalar(hi_us, unit))
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else terms[0] & terms[1]


def _runs(feature: np.ndarray) -> list[tuple[int, int]]:
    """``[a, b)`` ranges of consecutive rows of one feature index."""
    edges = [0, *(np.flatnonzero(feature[1:] != feature[:-1]) + 1).tolist(), len(feature)]
    return list(itertools.pairwise(edges))


def _matches(column: pa.Array | pa.ChunkedArray, value: pa.Array) -> np.ndarray | None:
    """Per row, whether the column holds ``value`` (a one-string array); None when every row does
    (a dictionary-encoded column whose dictionary is that value alone: the usual case)."""
    if isinstance(column, pa.ChunkedArray) and column.num_chunks == 1:
        column = column.chunk(0)
    if (
        isinstance(column, pa.DictionaryArray)
        and not column.null_count
        and (lookup(column.dictionary, value) == 0).all()
    ):
        return None
    return lookup(column, value) == 0


def _revisions(column: pa.Array | pa.ChunkedArray | None, rows: int) -> np.ndarray:
    """The revision column as int64 (null, or a table written before revisions existed: 0)."""
    if column is None:
        return np.zeros(rows, np.int64)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        column = column.fill_null(0)
    return column.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def planned_files(
    table: Table, point: ReadPoint, entity_type: str, definitions: Sequence[FeatureDefinition]
) -> PlannedFiles | None:
    """The files of ``definitions`` at ``point`` planned once for many reads (``read_rows``, ``planned_rows``
    of any of them within the span they ask); None when the point sees no snapshot."""
    if point.snapshot_id is None or not definitions:
        return None
    return PlannedFiles(
        table,
        point.snapshot_id,
        lambda lo_us, hi_us: _filter(entity_type, definitions, point, lo_us, hi_us),
        time_column="event_time",
        key_column="feature_name",
    )


def _band_tasks(files: PlannedFiles, bands: Sequence[Band]) -> list[Any]:
    return files.tasks(min(b.lo_us for b in bands), max(b.hi_us for b in bands), [b.definition.name for b in bands])


def planned_rows(
    table: Table, point: ReadPoint, entity_type: str, bands: Sequence[Band], files: PlannedFiles | None = None
) -> int:
    """Rows of the data files a ``read_rows`` of ``bands`` would open (before row groups are skipped);
    ``files``: planned by ``planned_files`` for the same point, entity type and a superset of the features."""
    if point.snapshot_id is None or not bands:
        return 0
    if files is not None:
        return sum(task.file.record_count for task in _band_tasks(files, bands))
    definitions = [b.definition for b in bands]
    expression = _filter(entity_type, definitions, point, min(b.lo_us for b in bands), max(b.hi_us for b in bands))
    scan = table.scan(row_filter=expression, snapshot_id=point.snapshot_id)
    return sum(task.file.record_count for task in scan.plan_files())


def read_rows(
    table: Table,
    point: ReadPoint,
    entity_type: str,
    bands: Sequence[Band],
    entities: pa.Array,
    files: PlannedFiles | None = None,
) -> list[FeaturePieces]:
    """Per band, the rows whose entity is one of ``entities`` (distinct strings), filtered as read;
    ``files`` as for ``planned_rows`` (else the table is planned for this read).

    Files are read in parallel (``sinks.iceberg.files``): entity ids and feature names stay
    dictionary-encoded, so matching them costs a lookup per distinct value, and each batch's rows are
    split by feature as they arrive (files are sorted by feature: usually one slice per batch).
    """
    from pyiceberg.expressions import EqualTo

    definitions = [b.definition for b in bands]
    targets = [_COLUMN_TYPES[VALUE_COLUMNS[d.value_type]] for d in definitions]
    if point.snapshot_id is None or not bands:
        return [FeaturePieces([], t) for t in targets]
    # The columns of the schema the snapshot read was written under: a scan at a snapshot projects its own schema, so
    # a column added since (``revision`` in a table written before revisions existed, a value column) is not there.
    at_read = set(schema_at(table, point.snapshot_id).column_names)
    value_columns = sorted({VALUE_COLUMNS[d.value_type] for d in definitions} & at_read)
    column_of = [VALUE_COLUMNS[d.value_type] for d in definitions]
    # A name may be asked at several versions (a request feature's input beside another version of it): rows are
    # matched to their name, then to each requested version of it.
    by_name: dict[str, list[int]] = {}
    for i, d in enumerate(definitions):
        by_name.setdefault(d.name, []).append(i)
    names = pa.array(list(by_name), pa.string())
    of_name = list(by_name.values())
    versions = np.array([d.version for d in definitions], dtype=np.int64)
    wanted_ids = entities.cast(pa.string())
    of_type_array = pa.array([entity_type], pa.string())
    revised = "revision" in at_read
    # Each feature's own band, applied as rows are read: the scan's filter can only take their union.
    lo_us = np.array([b.lo_us for b in bands], dtype=np.int64)
    hi_us = np.array([b.hi_us for b in bands], dtype=np.int64)
    until_us = point.ingested_until_us
    lo, hi = min(b.lo_us for b in bands), max(b.hi_us for b in bands)

    def consume(batches: Iterator[pa.RecordBatch]) -> list[list[FeatureRows]]:
        out: list[list[FeatureRows]] = [[] for _ in bands]
        for batch in batches:
            if not batch.num_rows:
                continue
            feature = lookup(batch.column("feature_name"), names)
            if len(_runs(feature)) >= 4 * len(of_name):  # not sorted by feature (a foreign file): sort the batch
                order = np.argsort(feature, kind="stable")
                batch, feature = batch.take(pa.array(order)), feature[order]
            of_type = _matches(batch.column("entity_type"), of_type_array)  # None: every row is of the type
            code = lookup(batch.column("entity_id"), wanted_ids)
            end_us = _us(batch.column("event_time"))
            ingested_us = _us(batch.column("ingested_at"))
            version = batch.column("feature_version").to_numpy()
            revision = _revisions(batch.column("revision") if revised else None, batch.num_rows)
            # Files are sorted by feature: a batch is a few runs of one feature each, each tested against
            # its feature's own version and band with scalar comparisons on views, no per-row gathers.
            for a, b in _runs(feature):
                if feature[a] < 0:
                    continue
                end = end_us[a:b]
                found = code[a:b] >= 0
                if until_us is not None:
                    found &= ingested_us[a:b] <= until_us
                if of_type is not None:
                    found &= of_type[a:b]
                for i in of_name[feature[a]]:
                    keep = found & (version[a:b] == versions[i]) & (end >= lo_us[i]) & (end <= hi_us[i])
                    column = column_of[i]  # a value column the snapshot's schema lacks: its rows hold no value
                    values = batch.column(column) if column in at_read else pa.nulls(batch.num_rows, targets[i])
                    if kept := _kept(values, a, b, keep):
                        at, values = kept
                        out[i].append(FeatureRows(code[at], end_us[at], ingested_us[at], revision[at], values))
        return out

    columns = (
        "entity_type",
        "entity_id",
        "feature_name",
        "feature_version",
        "event_time",
        "ingested_at",
        *(("revision",) if revised else ()),
        *value_columns,
    )
    arrow_filter = (pc.field("entity_type") == entity_type) & pc.field("feature_name").isin(names)
    times = _time_filter("event_time", lo, hi)
    if times is not None:
        arrow_filter &= times
    if until_us is not None:
        arrow_filter &= pc.field("ingested_at") <= pa.scalar(until_us, pa.timestamp("us", tz="UTC"))
    reader = FileReader(
        table,
        point.snapshot_id,
        _filter(entity_type, definitions, point, lo, hi),
        EqualTo("entity_type", entity_type),
        arrow_filter,
        columns,
        dictionary_columns=("entity_type", "entity_id", "feature_name"),
        column_keys=(
            "feature_name",
            {
                c: list(dict.fromkeys(d.name for d in definitions if VALUE_COLUMNS[d.value_type] == c))
                for c in value_columns
            },
        ),
        tasks=None if files is None else _band_tasks(files, bands),
    )
    parts = reader.map(consume)  # in file order
    return [FeaturePieces([piece for part in parts for piece in part[i]], targets[i]) for i in range(len(bands))]


def _kept(values: pa.Array, a: int, b: int, keep: np.ndarray) -> tuple[slice | np.ndarray, pa.Array] | None:
    """Where the kept rows of ``[a, b)`` are (``keep`` per row of it) and their ``values``; None when none is."""
    if keep.all():
        return slice(a, b), values.slice(a, b - a)
    if keep.any():
        at = a + np.flatnonzero(keep)
        return at, values.take(at)
    return None


def scan_at(table: Table, point: ReadPoint, row_filter: BooleanExpression, fields: Sequence[str]) -> pa.Table:
    """``fields`` of the rows ``row_filter`` selects at ``point``'s snapshot. A scan at a snapshot projects that
    snapshot's schema, so a column added since (``revision``, a value column) is absent there: it comes back as
    nulls of its type."""
    present = set(schema_at(table, point.snapshot_id).column_names)
    rows = table.scan(
        row_filter=row_filter, selected_fields=tuple(f for f in fields if f in present), snapshot_id=point.snapshot_id
    ).to_arrow()
    for name in fields:
        if name not in present:
            rows = rows.append_column(name, pa.nulls(rows.num_rows, _ADDED_TYPES[name]))
    return rows


def schema_at(table: Table, snapshot_id: int | None) -> Schema:
    """The schema a scan of ``snapshot_id`` projects (the snapshot's own; the table's current one without it)."""
    snapshot = table.snapshot_by_id(snapshot_id) if snapshot_id is not None else None
    if snapshot is not None and snapshot.schema_id is not None:
        return table.schemas().get(snapshot.schema_id, table.schema())
    return table.schema()


def _event_time_bounds(
    table: Table, point: ReadPoint, entity_type: str, definitions: Sequence[FeatureDefinition]
) -> tuple[int, int] | None:
    """(lowest, highest) event time in µs over the files that may hold the features; None if unknown."""
    files = planned_files(table, point, entity_type, definitions)
    return (0, -1) if files is None else files.time_bounds()


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
        unique = pc.unique(rows.column("entity_id").filter(pa.array(wanted.mask(rows))).cast(pa.string()))
        return pa.table({"entity_id": unique})

    expression = _filter(entity_type, definitions, point, None, until_us)
    parts = _scan(table, point, expression, ("entity_id", "feature_name", "feature_version"), ids)
    if not parts:
        return pa.array([], pa.string())
    unique = pc.unique(pa.chunked_array([c for p in parts for c in p.column(0).chunks], pa.string()))
    return unique.take(pc.sort_indices(unique))
