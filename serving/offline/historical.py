"""Point-in-time correct training sets from the offline (Iceberg) table.

For every label row, in input order, exactly one output row: each feature's value is that of the
latest window ending at or before the row's timestamp, resolved by the same rule serving uses
(``registry.core.timeline``): a later closed window with no row means an empty window, and a stored
row older than the TTL is expired. "Closed" offline means closed by the label time *and* reached by
the data: the latest window end stored for the feature bounds it, as stream progress does online.
Ties on a window end (a window recomputed and re-ingested) resolve to the latest ingestion, then
the highest revision, then the greatest value: never to the physical order of rows.

``as_of`` pins what the join sees: a snapshot id, or a time (the snapshot current then, and only
rows ingested by then, so a later backfill cannot leak into an earlier dataset).

Memory is bounded by the chunk, not the input: labels are joined ``chunk_rows`` at a time (sorted by
time, so a chunk spans a short time range), and each chunk reads only the rows of its entities with
window ends in ``[earliest label - ttl, latest label]`` (``sinks.iceberg.reader``). Peak memory is
about ``chunk_rows`` labels plus the offline rows of those labels' entities within that range, plus
the output columns (a streaming caller, ``join_label_batches`` or the CLI, does not hold those).
The join itself is vectorized (``serving.offline.asof_join``), never row by row.

A composite-keyed entity type (``user_id`` and ``merchant_id``) takes one label column per key field
(``entity_column="user_id,merchant_id"``, in the entity's key order); they are encoded into the
stored ``entity_id`` by the job's own rule (``registry.core.entity_keys``), and a null in any of them
matches nothing. The label frame keeps its columns as they are.
"""

from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the modules below load is the command's one line too, not a traceback
    from registry.core.interrupt import exit_on_ctrl_c

    exit_on_ctrl_c()

import argparse
import numbers
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from registry.access import guard_catalog
from registry.core import entity_keys
from registry.core.arguments import ArgumentParser, feature_names, whole
from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DatasetError, DefinitionError
from registry.core.request_features import LABEL_TIME_COLUMN
from registry.core.shown import error_line, shown
from registry.core.timeline import Rule
from registry.core.value_types import arrow_type
from serving.offline.asof_join import LabelKeys, join_feature
from serving.offline.command_io import check_out_path, command_failures, open_labels, parse_as_of, write_parquet
from serving.offline.feature_resolution import check_columns, resolve_columns, resolve_unchecked
from serving.offline.request_columns import Column, assemble, check_request_fields, stored_of
from sinks.iceberg.as_of import ReadPoint, read_point
from sinks.iceberg.reader import Band, FeaturePieces, data_reach, lookup, micros, planned_files, planned_rows, read_rows

if TYPE_CHECKING:
    from pyiceberg.table import Table

DEFAULT_CHUNK_ROWS = 250_000
ROWS_PER_READ = 16_000_000  # offline rows read at once (~50 bytes each in memory); more are read in feature groups


def check_chunk_rows(chunk_rows: object) -> None:
    """DatasetError for a ``chunk_rows`` that is not a whole number of at least 1 (``True`` was taken as 1: a
    join 150 times slower, without a word; a float or None raised deep inside)."""
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, numbers.Integral) or chunk_rows < 1:
        raise DatasetError(f"chunk_rows must be positive (a whole number of at least 1), not {chunk_rows!r}")


def check_labels(labels: object) -> None:
    """DatasetError for labels that are not a pyarrow Table (a pandas or polars DataFrame failed deep inside with an
    AttributeError): converted by the caller, the join's output is a Table of the same columns."""
    if isinstance(labels, pa.Table):
        return
    kind = f"{type(labels).__module__}.{type(labels).__qualname__}"
    hint = ""
    name = type(labels).__name__
    if kind.startswith("pandas.") and name == "DataFrame":
        hint = ": convert it with pyarrow.Table.from_pandas(labels, preserve_index=False)"
    elif kind.startswith("polars.") and name == "DataFrame":
        hint = ": convert it with labels.to_arrow()"
    elif kind.startswith("polars.") and name == "LazyFrame":
        hint = ": convert it with labels.collect().to_arrow()"
    elif isinstance(labels, pa.RecordBatch):
        hint = ": make it one with pyarrow.Table.from_batches([labels]), or stream batches with join_label_batches"
    raise DatasetError(f"labels must be a pyarrow.Table, not {kind}{hint}")


def entity_columns(entity_column: str) -> list[str]:
    """The label columns holding an entity's key: one, or (a composite key) several, comma-separated,
    in the entity's key order."""
    return [c.strip() for c in entity_column.split(",")]


def _check_schema(schema: pa.Schema, definitions: Sequence[Column], entity_column: str, timestamp_column: str) -> None:
    columns = entity_columns(entity_column)
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise DefinitionError(f"label frame has no entity column {', '.join(repr(c) for c in missing)}")
    for c in sorted({*columns, timestamp_column} & set(schema.names)):
        if schema.names.count(c) > 1:
            raise DefinitionError(f"label frame has {schema.names.count(c)} columns named {c!r}: which one is meant?")
    for c in columns:  # ids are compared as strings (``registry.core.entity_keys``): strings or numbers spell them
        if not _holds_ids(schema.field(c).type):  # a boolean spells true where the job's CAST gives TRUE, ...
            raise DefinitionError(
                f"label column {c!r} must hold entity ids (strings or numbers), not {schema.field(c).type}"
            )
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise DefinitionError(
            f"entity column(s) {twice} named more than once in {entity_column!r}: give each key field once"
        )
    for d in stored_of(definitions):
        fields = list(d.source.key_fields)
        # The key's own field names in another order would join each field's ids to another's, silently.
        if len(fields) != len(columns) or (set(columns) == set(fields) and columns != fields):
            raise DefinitionError(
                f"{d.entity}.{d.name} v{d.version} is keyed by {fields}: give "
                f"{len(fields)} entity column(s), comma-separated in that order, not {columns}"
            )
    clash = [d.name for d in definitions if d.name in schema.names]
    if clash:
        raise DefinitionError(f"label frame already has column(s) named like features: {clash}")
    if timestamp_column not in schema.names:
        raise DefinitionError(f"label frame has no {timestamp_column!r} column (columns: {schema.names})")
    ts_type = schema.field(timestamp_column).type
    if not pa.types.is_timestamp(ts_type):
        raise DefinitionError(f"label column {timestamp_column!r} must be a timestamp, not {ts_type}")
    check_request_fields(schema, definitions)


def _holds_ids(kind: pa.DataType) -> bool:
    """Whether an entity column of this type holds ids: strings (or bytes, read as UTF-8) or numbers (integers,
    floating point, decimals), dictionary-encoded or not; booleans, times, nulls and nested types do not."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
    )


_LABEL_LIMIT_US = 2**62
"""Label times are held within ±2**62 µs (about 146,000 years either side of 1970): a label beyond reads
what one at the limit reads, which is exact, since every stored window end lies in years 1-9999 and the
longest TTL is 20 years (nothing, or expired). Converted unbounded, a label in seconds or milliseconds
past int64 µs wrapped around to some other time, and one near int64's ends overflowed the join's bands."""


def _label_micros(ts: pa.Array | pa.ChunkedArray, column: str) -> LabelTimes:
    """Label times in epoch µs, exactly: floored and ceiled views differ only for nanosecond labels."""
    if ts.null_count:
        raise DefinitionError(f"label column {column!r} has {ts.null_count} null timestamps")
    per_unit = {"s": 1_000_000, "ms": 1000, "us": 1}.get(ts.type.unit)
    if per_unit is not None and len(ts):  # nanoseconds stay within the limit once in µs
        raw = ts.cast(pa.int64()).to_numpy()
        bound = _LABEL_LIMIT_US // per_unit
        if raw.min() < -bound or raw.max() > bound:
            ts = pa.array(np.clip(raw, -bound, bound), ts.type)
    floor = micros(ts)  # a naive timestamp is taken as UTC
    return LabelTimes(floor, micros(ts, ceil=True) if ts.type.unit == "ns" else floor)


@dataclass(frozen=True, slots=True)
class LabelTimes:
    """Label times in epoch µs: ``floor_us`` for "at or before the label", ``ceil_us`` for the TTL test."""

    floor_us: np.ndarray
    ceil_us: np.ndarray

    def take(self, at: np.ndarray) -> LabelTimes:
        return LabelTimes(self.floor_us[at], self.ceil_us[at])


def output_schema(labels: pa.Schema, definitions: Sequence[Column]) -> pa.Schema:
    """Label columns (metadata kept), then one nullable column per feature in request order."""
    schema = labels
    for d in definitions:
        schema = schema.append(pa.field(d.name, arrow_type(d.value_type)))
    return schema


class PointInTimeJoin:
    """One join request pinned to one read point; chunks of labels are joined independently.

    A label's answer depends only on its own entity and time (and on the data's reach, read once
    over the whole history), never on which other labels share its chunk.
    """

    def __init__(
        self,
        table: Table,
        definitions: Sequence[FeatureDefinition],
        entity_type: str,
        point: ReadPoint,
        *,
        rows_per_read: int = ROWS_PER_READ,
    ) -> None:
        self._table = table
        self.definitions = list(definitions)
        self._entity_type = entity_type
        self.point = point
        self._reach = data_reach(table, point, entity_type, self.definitions)
        self._rows_per_read = rows_per_read
        self._files = planned_files(
            table, point, entity_type, self.definitions
        )  # planned on first read, for all chunks

    def join(self, entities: pa.Array, times: LabelTimes) -> list[pa.Array]:
        """One array per feature, aligned with ``entities`` (strings, nulls allowed) and ``times``."""
        n = len(times.floor_us)
        if n == 0 or not self.definitions:
            return [pa.nulls(n, arrow_type(d.value_type)) for d in self.definitions]
        # Codes in the ids' sorted order, the order the offline files keep rows in (``sinks.iceberg.layout``):
        # a feature's rows read from one file are then already sorted by (code, window end).
        distinct = pc.unique(entities.drop_null())
        distinct = distinct.take(pc.sort_indices(distinct))
        label_code = lookup(entities, distinct)
        lo, hi = int(times.ceil_us.min()), int(times.floor_us.max())
        bands = [Band(d, lo - Rule.of(d).ttl_us, hi) for d in self.definitions]
        # Keys sized by the bands (every row read ends inside its band), so that features can be read a
        # few at a time when the chunk's files hold more than ``rows_per_read`` rows: memory holds one
        # group's rows, not the chunk's every row.
        edges = [np.array([b.lo_us, b.hi_us], dtype=np.int64) for b in bands]
        keys = LabelKeys.build(label_code, times.floor_us, edges, times.ceil_us)
        per_read = len(bands)
        if keys.times is None:  # as many groups of features as it takes to keep each read near rows_per_read
            planned = planned_rows(self._table, self.point, self._entity_type, bands, self._files)
            per_read = -(-len(bands) // max(1, -(-planned // self._rows_per_read)))
        out: list[pa.Array] = []
        for start in range(0, len(bands), per_read):
            group = list(range(start, min(start + per_read, len(bands))))
            rows = read_rows(
                self._table, self.point, self._entity_type, [bands[i] for i in group], distinct, self._files
            )
            if keys.times is not None:  # times too far apart to pack: ranked over the rows' own window ends
                keys = LabelKeys.build(label_code, times.floor_us, [e for r in rows for e in r.end_us()], times.ceil_us)

            def one(
                j: int, group: list[int] = group, rows: list[FeaturePieces] = rows, keys: LabelKeys = keys
            ) -> pa.Array:
                d, mine = self.definitions[group[j]], rows[j].rows()
                return join_feature(
                    keys,
                    mine.code,
                    mine.end_us,
                    mine.ingested_us,
                    mine.revision,
                    mine.values,
                    d,
                    self._reach.get((d.name, d.version)),
                )

            # numpy's sorts and searches and Arrow's takes release the GIL: features join in parallel.
            with ThreadPoolExecutor(max_workers=min(len(group), os.cpu_count() or 1)) as pool:
                out.extend(pool.map(one, range(len(group))))
            del rows, one
            release_memory()
        return out


def _trim() -> Callable[[], object]:
    """glibc's ``malloc_trim(0)``, or a no-op elsewhere."""
    import ctypes
    import ctypes.util

    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0)


release_memory = _trim()
"""Hand the memory a group's arrays held back to the operating system. The join's threads allocate
from several malloc arenas, which otherwise keep what one chunk freed: the process's resident size
then grows with the number of chunks, not with the largest chunk."""


def _entities(labels: pa.Table | pa.RecordBatch, entity_column: str) -> pa.Array:
    """The labels' entity ids, encoded from their key column(s) as the job encodes them."""
    columns = entity_columns(entity_column)
    try:
        strings = entity_keys.encode_arrays([labels.column(c) for c in columns])
    except pa.ArrowInvalid as exc:  # bytes that are not UTF-8: no id is spelled so
        which = f"column {columns[0]!r}" if len(columns) == 1 else f"columns {', '.join(repr(c) for c in columns)}"
        raise DefinitionError(f"label {which} must hold entity ids (strings or numbers): {exc}") from None
    return strings.combine_chunks() if isinstance(strings, pa.ChunkedArray) else strings


def join_labels(
    table: Table,
    definitions: Sequence[Column],
    labels: pa.Table,
    *,
    entity_type: str,
    entity_column: str,
    timestamp_column: str,
    point: ReadPoint,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> pa.Table:
    """The in-memory join: labels sorted by time, joined ``chunk_rows`` at a time, put back in input order."""
    check_chunk_rows(chunk_rows)
    check_labels(labels)
    _check_schema(labels.schema, definitions, entity_column, timestamp_column)
    times = _label_micros(labels.column(timestamp_column), timestamp_column)
    schema = output_schema(labels.schema, definitions)
    if labels.num_rows == 0:
        empty = [pa.array([], arrow_type(d.value_type)) for d in definitions]
        return pa.Table.from_arrays([*labels.columns, *empty], schema=schema)
    stored = stored_of(definitions)
    join = PointInTimeJoin(table, stored, entity_type, point, rows_per_read=ROWS_PER_READ)
    entities = _entities(labels, entity_column)
    order = np.argsort(times.floor_us, kind="stable")
    parts: list[list[pa.Array]] = [[] for _ in stored]
    for start in range(0, len(order), chunk_rows):
        at = order[start : start + chunk_rows]
        for part, array in zip(parts, join.join(entities.take(pa.array(at)), times.take(at)), strict=True):
            part.append(array)
    back = np.empty_like(order)
    back[order] = np.arange(len(order))  # from time-sorted positions back to input order
    columns = [pa.concat_arrays(part).take(pa.array(back)) for part in parts]
    return pa.Table.from_arrays([*labels.columns, *assemble(definitions, stored, columns, labels)], schema=schema)


def _conformed(batch: Any, schema: pa.Schema, number: int) -> pa.RecordBatch:
    """The batch with the columns of ``schema``, in its order: a DefinitionError naming the difference for a batch
    that lacks one, has another or one of another type. The output's label columns are named by ``schema``'s
    order: a batch whose columns came in another order was labelled by position (ids under the notes' name)."""
    if not isinstance(batch, pa.RecordBatch):
        raise DefinitionError(f"label batch {number} is a {type(batch).__name__}, not a pyarrow.RecordBatch")
    if batch.schema.names != schema.names:
        missing = [n for n in schema.names if n not in batch.schema.names]
        extra = [n for n in batch.schema.names if n not in schema.names]
        if missing or extra or len(set(batch.schema.names)) != len(batch.schema.names):
            raise DefinitionError(
                f"label batch {number} has the columns {batch.schema.names}, not labels_schema's {schema.names}"
                f" (missing {missing}, not in it {extra})"
            )
        batch = batch.select(schema.names)
    for field, given in zip(schema, batch.schema, strict=True):
        if given.type != field.type:
            raise DefinitionError(
                f"label batch {number}: column {field.name!r} is {given.type}, not labels_schema's {field.type}"
            )
    return batch


def join_label_batches(
    table: Table,
    definitions: Sequence[Column],
    labels_schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    *,
    entity_type: str,
    entity_column: str,
    timestamp_column: str,
    point: ReadPoint,
) -> Iterator[pa.RecordBatch]:
    """The streaming join: one output batch per input batch, in input order, for inputs larger than RAM.

    Each batch is one chunk (its size bounds memory); the result equals ``join_labels``'s. A batch
    reads the rows of its own time range (plus the TTLs): label files sorted by time read the least.
    Each batch holds ``labels_schema``'s columns, of its types, in its order or another (put in its order);
    anything else is a DefinitionError naming the batch and the column. A Table is read as its batches.
    """
    _check_schema(labels_schema, definitions, entity_column, timestamp_column)
    schema = output_schema(labels_schema, definitions)
    stored = stored_of(definitions)
    join = PointInTimeJoin(table, stored, entity_type, point, rows_per_read=ROWS_PER_READ)
    batches = iter(batches.to_batches() if isinstance(batches, pa.Table) else batches)
    for number, given in enumerate(batches, 1):
        batch = _conformed(given, labels_schema, number)
        if nulls := batch.column(timestamp_column).null_count:  # counted to the end: the count names them all
            nulls += sum(rest.column(timestamp_column).null_count for rest in batches)
            raise DefinitionError(f"label column {timestamp_column!r} has {nulls} null timestamps")
        times = _label_micros(batch.column(timestamp_column), timestamp_column)
        columns = join.join(_entities(batch, entity_column), times)
        yield pa.RecordBatch.from_arrays(
            [*batch.columns, *assemble(definitions, stored, columns, batch)], schema=schema
        )


def get_historical_features(
    table: Table,
    catalog: FeatureCatalog,
    labels: pa.Table,
    features: list[str],
    *,
    entity_type: str,
    entity_column: str,
    timestamp_column: str = LABEL_TIME_COLUMN,
    snapshot_id: int | None = None,
    as_of: int | datetime | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> pa.Table:
    """Label columns (all, in input order) plus one column per feature, point-in-time correct.

    Args:
        features: names (the active version) or ``name@vN`` (a pinned version); a request-time
            feature's request fields are the label columns of those names.
        snapshot_id: read this snapshot (same as ``as_of=<snapshot id>``).
        as_of: a snapshot id, or a timezone-aware time: the snapshot current then, and only rows
            ingested at or before it. Default: the table's current snapshot.
        chunk_rows: labels joined at a time; bounds memory, never changes the result.

    ``serving.offline.training.build_training_set`` returns the same table with its manifest.
    """
    definitions = resolve_columns(catalog, entity_type, features)
    if snapshot_id is not None and as_of is not None:
        raise DatasetError("give either snapshot_id or as_of, not both")
    point = read_point(table, as_of if as_of is not None else snapshot_id)
    return join_labels(
        table,
        definitions,
        labels,
        entity_type=entity_type,
        entity_column=entity_column,
        timestamp_column=timestamp_column,
        point=point,
        chunk_rows=chunk_rows,
    )


@dataclass(frozen=True)
class EntityFeatures:
    """One entity type's part of a multi-entity join: its label column(s) and its features."""

    entity_type: str
    entity_column: str  # one column, or one per key field, comma-separated (a composite key)
    features: Sequence[str]


def get_historical_vectors(
    table: Table,
    catalog: FeatureCatalog,
    labels: pa.Table,
    parts: Sequence[EntityFeatures],
    *,
    timestamp_column: str = LABEL_TIME_COLUMN,
    snapshot_id: int | None = None,
    as_of: int | datetime | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> pa.Table:
    """The offline side of ``POST /v1/vectors``: features of several entity types joined onto one label
    frame (a user's features by ``user_id``, the user x merchant pair's by ``user_id,merchant_id``), every
    part at one read point. Label columns, then each part's features in order; a feature name given by
    two parts is a ``DefinitionError`` (one column per name)."""
    if not parts:
        raise DatasetError("give at least one entity type's features")
    check_labels(labels)
    check_chunk_rows(chunk_rows)
    if snapshot_id is not None and as_of is not None:
        raise DatasetError("give either snapshot_id or as_of, not both")
    columns = [resolve_unchecked(catalog, p.entity_type, p.features) for p in parts]
    check_columns(catalog, [c for part in columns for c in part])  # every part's features checked together
    names = [c.name for part in columns for c in part]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DefinitionError(f"feature name(s) {twice} given by more than one entity type: one column per name")
    point = read_point(table, as_of if as_of is not None else snapshot_id)
    out = labels
    for part, definitions in zip(parts, columns, strict=True):
        out = join_labels(
            table,
            definitions,
            out,
            entity_type=part.entity_type,
            entity_column=part.entity_column,
            timestamp_column=timestamp_column,
            point=point,
            chunk_rows=chunk_rows,
        )
    return out


def add_join_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--labels",
        required=True,
        type=Path,
        help="Parquet: entity column, timestamp column, anything else (carried through)",
    )
    parser.add_argument("--out", required=True, type=Path, help="the Parquet file to write (its folder must exist)")
    parser.add_argument("--entity-type", required=True, help="the entity type the features belong to (e.g. user)")
    parser.add_argument(
        "--entity-column",
        required=True,
        help="label column of the entity id; for a composite key, one column per key field, comma-separated "
        "in the entity's key order (e.g. user_id,merchant_id)",
    )
    parser.add_argument(
        "--timestamp-column",
        default=LABEL_TIME_COLUMN,
        help="label column of the label time (default: event_timestamp)",
    )
    parser.add_argument(
        "--features", required=True, type=feature_names, help="comma-separated names; name@vN pins a version"
    )
    parser.add_argument("--snapshot-id", type=whole(0, 2**63 - 1), help="read this Iceberg snapshot")
    parser.add_argument(
        "--as-of", help="ISO-8601 time with zone, or epoch ms: the snapshot then, rows ingested by then"
    )
    parser.add_argument(
        "--chunk-rows", type=whole(1), default=DEFAULT_CHUNK_ROWS, help="labels per chunk (bounds memory)"
    )


def main(argv: list[str] | None = None) -> int:
    from registry.core.settings import settings_for_command
    from registry.definition_store import DefinitionStore
    from sinks.factory import connect_iceberg
    from sinks.iceberg.writer import load_table

    parser = ArgumentParser(
        prog="python -m serving.offline.historical",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_join_arguments(parser)
    args = parser.parse_args(argv)
    settings = settings_for_command()
    try:
        if args.labels.resolve() == args.out.resolve():
            raise DatasetError(f"--out {shown(args.out)} is the labels file: writing it would replace the labels")
        check_out_path(args.out)
        label_schema, label_batches = open_labels(args.labels, args.chunk_rows)  # bad input before any service
        registry = DefinitionStore.existing(  # before the catalog: a missing registry is named, nothing created
            settings.definitions_db, name=f"FS_DEFINITIONS_DB={shown(settings.definitions_db)}"
        )
        table = load_table(connect_iceberg(settings), settings.iceberg_namespace)
        definitions = resolve_columns(
            guard_catalog(
                registry.catalog(),
                settings,
                action="historical_features",
            ),
            args.entity_type,
            args.features.split(","),
        )
        point = read_point(table, parse_as_of(args.snapshot_id, args.as_of))
        schema = output_schema(label_schema, definitions)
        batches = join_label_batches(
            table,
            definitions,
            label_schema,
            label_batches,
            entity_type=args.entity_type,
            entity_column=args.entity_column,
            timestamp_column=args.timestamp_column,
            point=point,
        )
        rows = write_parquet(batches, schema, args.out)
    except command_failures() as exc:  # OSError: an --out that cannot be written
        print(error_line(exc), file=sys.stderr)
        return 1
    print(f"wrote {rows} rows to {shown(args.out)} (snapshot {point.snapshot_id})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from registry.core.interrupt import run_command

    sys.exit(run_command(main, None))
