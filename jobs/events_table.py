"""A source's events read from a table instead of its topic: Parquet files or an Iceberg table.

A batch run (``python -m jobs.feature_job --events LOCATION``) feeds the stream job's own window SQL
and writer from such a table, so a definition computes its windows the same way from either input.
This module only reads: the table's columns named like the fields of the source's reader schema
(``schemas/<event_schema>.avsc``), cast to the field types, the timestamp field as epoch
milliseconds, sorted by it; and it splits off the records the stream's decoder would dead-letter
(``udfs.decode.check_events``).

Locations: ``iceberg:<namespace>.<table>`` (a table of the offline store's catalog), or a path to a
Parquet file or a directory of them (read recursively). Columns the schema does not name are
ignored; a field without a column, or a column whose type cannot hold the field's, is an
``EventsTableError`` before anything runs. Accepted column types per field type: ``long`` and
``int``: integers that fit (checked value by value); ``double`` and ``float``: floating point (a ``float``
field's values rounded to the nearest float32, as an Avro writer rounds them), or integers a ``double`` holds
within ±2^53 and a ``float`` within ±2^24 (checked value by value); ``string``: strings (plain, large or
dictionary-encoded); ``boolean``: booleans. The
timestamp field: integers (epoch milliseconds) or timestamps of any unit (naive ones are UTC), floored
to the millisecond.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from registry.core.definitions import Source
from registry.core.errors import EventsTableError
from schemas import field_type, load_schema
from udfs.decode import check_events

_ARROW = {
    "string": pa.string(),
    "double": pa.float64(),
    "float": pa.float32(),
    "long": pa.int64(),
    "int": pa.int32(),
    "boolean": pa.bool_(),
}
_ICEBERG_PREFIX = "iceberg:"
_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


@dataclass(frozen=True)
class Events:
    """A table of events split as the decoder would: ``valid`` sorted by event time, ``rejected`` with
    ``reason`` and ``detail`` columns."""

    valid: pa.Table
    rejected: pa.Table

    def reasons(self) -> dict[str, int]:
        """Rejected records per reason."""
        if not self.rejected.num_rows:
            return {}
        counts = pc.value_counts(self.rejected.column("reason")).to_pylist()
        return {c["values"]: c["counts"] for c in counts}


def arrow_schema(source: Source) -> pa.Schema:
    """The Arrow schema of a source's events: one column per reader-schema field (the timestamp as int64 ms)."""
    fields = []
    for field in load_schema(source.event_schema)["fields"]:
        avro = field_type(field)
        if avro not in _ARROW:
            raise EventsTableError(f"event field {field['name']!r}: Avro type {avro!r} is not supported")
        fields.append(pa.field(field["name"], _ARROW[avro]))
    return pa.schema(fields)


def read_raw(location: str, columns: list[str], catalog: Callable[[], Any]) -> pa.Table:
    """The named columns of the table at ``location``, as stored (``catalog`` opens the Iceberg catalog).

    EventsTableError if the files of a directory store a column in different types: ``read_events`` casts
    each file's columns on their own."""
    parts = _read_parts(location, columns, catalog)
    try:
        return pa.concat_tables([part for _, part in parts])
    except pa.ArrowInvalid as exc:
        raise EventsTableError(f"events table {location!r}: its files store columns in different types") from exc


def _read_parts(location: str, columns: list[str], catalog: Callable[[], Any]) -> list[tuple[str, pa.Table]]:
    """The named columns of the table at ``location`` as stored, one part per Parquet file of a directory (files
    may differ in their columns' types: each is cast by the rules on its own), each with the name errors give it."""
    if location.startswith(_ICEBERG_PREFIX):
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        name = location.removeprefix(_ICEBERG_PREFIX)
        try:
            table = catalog().load_table(name)
        except (NoSuchTableError, NoSuchNamespaceError, ValueError) as exc:
            raise EventsTableError(f"events table {name!r}: not in the Iceberg catalog ({exc})") from exc
        _check_present(f"events table {location!r}", table.schema().column_names, columns)
        return [(f"events table {location!r}", table.scan(selected_fields=tuple(columns)).to_arrow())]
    import pyarrow.dataset as ds

    path = Path(location)
    try:
        found = path.exists()
    except OSError as exc:  # a name longer than the system takes, ...: one line, not a traceback
        raise EventsTableError(f"events table {location!r}: {exc.strerror or exc}") from None
    if not found:
        raise EventsTableError(f"events table {location!r}: no such file or directory")
    parts = []
    unreadable = []  # a directory's files that are not Parquet: with no Parquet file beside them, it holds none
    named = f"events table {location!r}"
    try:
        # Each file as it is stored: a dataset would take the first file's schema for all and cast the others to
        # it (a timestamp in microseconds read as epoch ms, booleans as the strings "true"), or fill a missing
        # column with nulls. An empty schema: finding the files reads none of them, so each error names its file.
        # INT96 (Spark's and Hive's legacy timestamp) read in milliseconds, the events' unit: in nanoseconds, Arrow's
        # default, a time outside 1677-2262 wrapped to another one 584 years away and was counted there.
        parquet = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(coerce_int96_timestamp_unit="ms"))
        for fragment in ds.dataset(path, format=parquet, schema=pa.schema([])).get_fragments():
            if path.is_dir():
                named = f"events table {location!r}, file {str(Path(fragment.path).relative_to(path))!r}"
            try:
                stored = fragment.physical_schema
            except (pa.ArrowInvalid, OSError) as exc:
                unreadable.append(f"{named}: not readable as Parquet ({exc})")
                continue
            _check_present(named, stored.names, columns)
            parts.append((named, fragment.to_table(columns=columns, schema=stored)))
    except (pa.ArrowInvalid, OSError) as exc:
        raise EventsTableError(f"{named}: not readable as Parquet ({exc})") from exc
    if unreadable and (parts or not path.is_dir()):  # never a file left out of the table silently
        raise EventsTableError(unreadable[0])
    skipped = _marked(path) if path.is_dir() else []
    if not parts:
        held = f" ({unreadable[0].removeprefix(f'events table {location!r}, ')})" if unreadable else ""
        if skipped and not held:
            held = f" (not read: {_listed(skipped)}; {_MARKED})"
        raise EventsTableError(f"events table {location!r}: no Parquet file in the directory{held}")
    if skipped:  # said, not silent: a Spark or Hive output folder holds such markers beside its data
        print(f"[events] events table {location!r}: not read: {_listed(skipped)} ({_MARKED})", file=sys.stderr)
    return parts


_MARKED = "a file or folder whose name starts with '_' or '.' is a marker or hidden, as Spark and Hive write them"


def _marked(folder: Path) -> list[str]:
    """The files under ``folder`` a dataset leaves out (a name on their path starting with ``_`` or ``.``,
    pyarrow's ``ignore_prefixes``), relative to it, sorted."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and any(part.startswith(("_", ".")) for part in p.relative_to(folder).parts)
    )


def _listed(names: list[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(repr(n) for n in names[:shown]) + more


def _check_present(named: str, have: list[str], columns: list[str]) -> None:
    missing = [c for c in columns if c not in have]
    if missing:
        raise EventsTableError(f"{named}: no column for event field(s) {', '.join(missing)}")


def _epoch_ms(column: pa.ChunkedArray, name: str) -> pa.Array:
    """Event times as epoch milliseconds: integers as they are, timestamps floored to the millisecond."""
    if pa.types.is_integer(column.type):
        return _cast(column, pa.int64(), name)
    if not pa.types.is_timestamp(column.type):
        raise EventsTableError(f"timestamp field {name!r} is {column.type}: epoch milliseconds or a timestamp")
    raw = column.combine_chunks().cast(pa.timestamp(column.type.unit)).cast(pa.int64())
    values = raw.fill_null(0).to_numpy(zero_copy_only=False)
    unit_ns = _UNIT_NS[column.type.unit]
    if unit_ns > _UNIT_NS["ms"]:  # seconds: held within int64 first (a far-future time stays far future)
        factor = unit_ns // _UNIT_NS["ms"]
        bound = np.iinfo(np.int64).max // factor
        ms = np.clip(values, -bound, bound) * factor
    else:
        ms = np.floor_divide(values, _UNIT_NS["ms"] // unit_ns)
    return pa.array(ms, pa.int64(), mask=raw.is_null().to_numpy(zero_copy_only=False))


def _cast(column: pa.ChunkedArray, to: pa.DataType, name: str) -> pa.Array:
    have = column.type
    if pa.types.is_dictionary(have):
        have = have.value_type
    allowed = {
        "int64": pa.types.is_integer,
        "int32": pa.types.is_integer,
        "double": lambda t: pa.types.is_floating(t) or pa.types.is_integer(t),
        "float": lambda t: pa.types.is_floating(t) or pa.types.is_integer(t),
        "string": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
        "bool": pa.types.is_boolean,
    }[str(to)]
    if not allowed(have):
        raise EventsTableError(f"event field {name!r}: a column of {column.type} cannot hold {to}")
    try:
        return column.combine_chunks().cast(to)  # a safe cast: an integer that does not fit fails
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise EventsTableError(f"event field {name!r}: {exc}") from exc


def read_events(location: str, source: Source, catalog: Callable[[], Any], *, now_ms: int) -> Events:
    """The source's events in the table at ``location``, checked and sorted by event time (stable)."""
    schema = arrow_schema(source)
    parts = []
    for named, raw in _read_parts(location, schema.names, catalog):
        try:
            columns = [
                _epoch_ms(raw.column(f.name), f.name)
                if f.name == source.timestamp_field
                else _cast(raw.column(f.name), f.type, f.name)
                for f in schema
            ]
        except EventsTableError as exc:  # which table (and file), as for a missing column: a run may read several
            raise EventsTableError(f"{named}: {exc}") from None
        parts.append(pa.Table.from_arrays(columns, schema=schema))
    events = pa.concat_tables(parts)
    valid, rejected = check_events(
        events,
        load_schema(source.event_schema),
        timestamp_field=source.timestamp_field,
        now_ms=now_ms,
        key_fields=source.key_fields,
    )
    order = pc.sort_indices(valid, sort_keys=[(source.timestamp_field, "ascending")])
    return Events(valid.take(order), rejected)
