"""Decode Confluent-framed Avro events and validate them before they reach a window.

These are the rules, and this is their reference: the stream job decodes in the JVM
(``jobs/java/decode``, no Python per event) by the same rules, reasons and order, and
``tests/integration/test_java_decoder.py`` holds the two to the same answer record by record.

A record that fails here raises DecodeError with a short ``reason`` (the dead-letter topic keys on
it). ``check_events`` holds a table of events (a batch source) to the same rules, a column at a time. A schema registry that cannot be reached is *not* a bad record: that raises
StoreUnavailableError so the job fails and restarts from its checkpoint instead of dead-lettering
good data.

The rules, in their order: the Confluent frame (``empty``, ``truncated``, ``bad_magic``); the writer
schema by id (``unknown_schema_id``, ``bad_writer_schema``); the Avro body against it (``undecodable``);
then the record: a required field null, or a required ``*_id`` or entity-key string empty (``missing_field``); a
string value of an entity key field (``key_fields``, every field of a composite key) of more than
``MAX_KEY_CHARS`` (``registry.core.entity_keys``) characters, counted in code points (``bad_key``: the stores could not hold it as a
key, and one such record must not stop the job); a float NaN or infinite (``non_finite``); the event
time more than ``max_future_ms`` ahead of the clock (``future_timestamp``) or before 1970
(``bad_timestamp``); and, for a Kafka record, an event time that is not the record's timestamp
(``timestamp_mismatch``).
"""

from __future__ import annotations

import io
import json
import math
import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.compute as pc
from fastavro.types import Schema

from registry.core.entity_keys import MAX_KEY_CHARS
from registry.core.errors import DecodeError, SchemaError
from schemas.wire import unframe
from udfs.avro_ints import MalformedBody, check_body, counts_items_of_no_data, may_hold_a_long_varint, walks

# Event times further ahead of the wall clock are a producer's broken clock: dead-lettered as
# ``future_timestamp``, and kept out of the watermark (``jobs.sql.source_ddl``). Kafka 4 brokers
# refuse such records already (``log.message.timestamp.after.max.ms``, 1 h by default).
MAX_FUTURE_MS = 3_600_000


SchemaLookup = Callable[[int], str | None]
"""Returns the writer schema text for a registry id, None if the registry has no such id."""


_TOO_DEEP = "Avro body does not match schema id {}: nested deeper than the Python decoder reads"


def _check(writer: Schema, body: bytes | memoryview, schema_id: int) -> None:
    """``check_body``, its refusals as ``undecodable``."""
    try:
        check_body(writer, body)
    except MalformedBody as exc:
        raise DecodeError("undecodable", f"Avro body does not match schema id {schema_id}: {exc}") from None
    except RecursionError:
        raise DecodeError("undecodable", _TOO_DEEP.format(schema_id)) from None


class EventDecoder:
    """Turns framed bytes into a validated event dict in the reader schema's shape."""

    def __init__(
        self,
        lookup: SchemaLookup,
        reader_schema: dict[str, Any],
        *,
        timestamp_field: str,
        key_fields: tuple[str, ...] = (),
        max_future_ms: int = MAX_FUTURE_MS,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        """``key_fields``: the source's entity key fields (``Source.key_fields``), held to ``MAX_KEY_CHARS``."""
        self._lookup = lookup
        self._reader: Schema = fastavro.parse_schema(float_defaults(unqualified_aliases(primitive(reader_schema))))
        # each writer schema, parsed; whether its bodies are walked; whether before fastavro reads them
        self._writers: dict[int, tuple[Schema, bool, bool]] = {}
        self._timestamp_field = timestamp_field
        self._max_future_ms = max_future_ms
        self._clock_ms = clock_ms
        self._required = required_fields(reader_schema, timestamp_field)
        self._float_fields = float_fields(reader_schema)
        self._key_fields = tuple(key_fields)
        self._field_names = [f["name"] for f in reader_schema["fields"]]  # the reader's order, as the JVM decoder's

    def _writer(self, schema_id: int) -> tuple[Schema, bool, bool]:
        writer = self._writers.get(schema_id)
        if writer is None:
            text = self._lookup(schema_id)
            if text is None:
                raise DecodeError("unknown_schema_id", f"schema id {schema_id} is not in the schema registry")
            try:
                parsed = fastavro.parse_schema(primitive(json.loads(text)))
            except Exception as exc:
                raise DecodeError("bad_writer_schema", f"schema id {schema_id}: {exc}") from exc
            writer = self._writers[schema_id] = (parsed, walks(parsed), counts_items_of_no_data(parsed))
        return writer

    def decode(self, payload: bytes | None) -> dict[str, Any]:
        schema_id, body = unframe(payload)
        writer, walked, first = self._writer(schema_id)
        buf = _Body(body)
        if first:  # an array of items holding no data: its count checked before fastavro loops over it
            _check(writer, body, schema_id)
        try:
            record = fastavro.schemaless_reader(buf, writer, self._reader)
        except RecursionError:  # a recursive type nested past Python's stack (the JVM decoder reads deeper)
            raise DecodeError("undecodable", _TOO_DEEP.format(schema_id)) from None
        except Exception as exc:
            raise DecodeError("undecodable", f"Avro body does not match schema id {schema_id}: {exc!r}") from exc
        # fastavro reads (or skips) a varint whatever its length and takes a negative index from the end; the
        # JVM decoder refuses both, and an Avro int is 32 bits wherever it is (udfs.avro_ints). Walked once.
        if not first and (walked or may_hold_a_long_varint(body)):
            _check(writer, body, schema_id)
        if buf.tell() != len(body):
            raise DecodeError("undecodable", f"{len(body) - buf.tell()} trailing bytes after the Avro record")
        if not isinstance(record, dict):
            raise DecodeError("undecodable", "Avro body is not a record")
        for name in self._float_fields:  # an int or long promoted to a float is a float (fastavro kept every digit)
            value = record.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                record[name] = _as_float(value, "float")
        self._validate(record)
        return record

    def decode_record(self, payload: bytes | None, record_ms: int) -> dict[str, Any]:
        """``decode`` a Kafka record's value, and refuse it as ``timestamp_mismatch`` if its event time
        is not the record's timestamp (``record_ms``): the stream windows by the record timestamp, so
        producers must set it to the event time."""
        event = self.decode(payload)
        if event[self._timestamp_field] != record_ms:
            raise DecodeError(
                "timestamp_mismatch",
                f"{self._timestamp_field}={event[self._timestamp_field]} but the Kafka timestamp is "
                f"{record_ms}; producers must set the record timestamp to the event time",
            )
        return event

    def _validate(self, record: dict[str, Any]) -> None:
        # The rules, in this order, are also check_events's (a table of events): keep the two in step.
        for name in self._required:
            value = record.get(name)
            if value is None or (
                isinstance(value, str) and (name.endswith("_id") or name in self._key_fields) and not value
            ):
                raise DecodeError("missing_field", f"required field {name!r} is missing or empty")
        for name in self._key_fields:
            value = record.get(name)
            if isinstance(value, str) and len(value) > MAX_KEY_CHARS:
                raise DecodeError("bad_key", key_too_long(name, len(value)))
        for name in self._field_names:  # not the record's order (the writer's, defaults last): the JVM names the
            value = record.get(name)  # reader's first non-finite field, and a record with two named the other
            if isinstance(value, float) and not math.isfinite(value):
                raise DecodeError("non_finite", f"field {name!r} is {value}")
        ts = record[self._timestamp_field]
        ts_ms = _epoch_ms(ts)
        record[self._timestamp_field] = ts_ms
        if ts_ms > self._clock_ms() + self._max_future_ms:
            raise DecodeError(
                "future_timestamp", f"{self._timestamp_field}={ts_ms} is beyond now + {self._max_future_ms} ms"
            )
        if ts_ms < 0:
            raise DecodeError("bad_timestamp", f"{self._timestamp_field}={ts_ms} is before 1970")


class _Body(io.BytesIO):
    """An Avro body that refuses to be read short. fastavro checks the length of what it reads but not of what it
    skips: a writer-only string or bytes at the end of a record, cut short or of a negative length (``read(-n)``
    reads the rest), was accepted. Avro's Java reader, the live job's (``CheckedDecoder``), refuses both."""

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0:
            raise EOFError(f"malformed data: a length of {size}")
        data = super().read(size)
        if len(data) < size:
            raise EOFError(f"a length of {size} runs past the record's end ({len(data)} bytes left)")
        return data


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_ms(value: Any) -> int:
    """Epoch milliseconds of an event time: the decoders apply no logical types (``primitive``), so it is an int
    already; a datetime is converted."""
    if isinstance(value, int):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(milliseconds=1)


def key_too_long(name: str, chars: int) -> str:
    """The detail of a ``bad_key`` dead letter."""
    return f"key field {name!r} is {chars} characters (at most {MAX_KEY_CHARS})"


def required_fields(reader_schema: dict[str, Any], timestamp_field: str | None = None) -> list[str]:
    """The fields an event must carry: those whose type is not a union with null, and the event time."""
    return [
        f["name"]
        for f in reader_schema["fields"]
        if not (isinstance(f["type"], list) and "null" in f["type"]) or f["name"] == timestamp_field
    ]


def float_fields(reader_schema: dict[str, Any]) -> list[str]:
    """The reader fields of type ``float``, alone or in a union: Avro resolution promotes a writer's ``int`` or
    ``long`` to a 32-bit float (Avro Java, the JVM decoder's: 2^40 + 1 is 1099511627776.0), where fastavro gives the
    whole number as a double."""
    out = []
    for field in reader_schema.get("fields", []):
        branches = field["type"] if isinstance(field["type"], list) else [field["type"]]
        if any(b == "float" or (isinstance(b, dict) and b.get("type") == "float") for b in branches):
            out.append(field["name"])
    return out


def unqualified_aliases(reader_schema: dict[str, Any]) -> dict[str, Any]:
    """The reader record with its aliases cut to their unqualified names. A writer record resolves to the reader
    by unqualified name, namespaces ignored, as Avro's resolution compares record names: the reader's own name
    or one of its aliases. fastavro compares a qualified alias with the writer's full name only (an alias
    ``old.ns.Txn`` missed a writer ``Txn`` of another namespace that the JVM decoder resolves)."""
    aliases = reader_schema.get("aliases")
    if not aliases:
        return reader_schema
    return {**reader_schema, "aliases": [str(alias).rsplit(".", 1)[-1] for alias in aliases]}


_NON_FINITE_DEFAULTS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _as_float(value: float, avro_type: str) -> float:
    """A number as the JVM decoder holds it: a ``double``, or for a ``float`` the nearest 32-bit float (infinite past
    its range, as Java's cast), which is what fastavro reads from a written float."""
    value = float(value)
    if avro_type == "double":
        return value
    try:
        return struct.unpack("<f", struct.pack("<f", value))[0]  # type: ignore[no-any-return]
    except OverflowError:
        return math.copysign(math.inf, value)


def float_defaults(reader_schema: dict[str, Any]) -> dict[str, Any]:
    """The reader record with the defaults of its ``float`` and ``double`` fields (alone, or a union's first branch)
    as the JVM decoder's Avro reads them. fastavro keeps a default as written: ``"NaN"`` (which Avro Java reads as
    NaN, dead-lettered ``non_finite``) came out as the string ``"NaN"``, which a table of events could not hold (the
    archive read failed); ``1`` as an int; and a ``float``'s ``0.1`` unrounded where the JVM reads 0.100000001490116.
    A default the JVM refuses (text other than NaN and the infinities, a boolean, text in a union) is a SchemaError."""
    fields = []
    for field in reader_schema.get("fields", []):
        avro_type, union = field.get("type"), False
        if isinstance(avro_type, list) and avro_type:
            avro_type, union = avro_type[0], True
        if isinstance(avro_type, dict):
            avro_type = avro_type.get("type")
        if avro_type in ("float", "double") and "default" in field:
            value = field["default"]
            if isinstance(value, str) and not union and value in _NON_FINITE_DEFAULTS:
                value = _NON_FINITE_DEFAULTS[value]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SchemaError(
                    f"Invalid default for field {field.get('name')}: {json.dumps(value)} not a {avro_type}"
                )
            field = {**field, "default": _as_float(value, avro_type)}
        fields.append(field)
    return {**reader_schema, "fields": fields} if "fields" in reader_schema else reader_schema


def primitive(schema: Any) -> Any:
    """``schema`` without its logical types: the decoders read Avro's primitives (a ``timestamp-millis`` is its
    long), so a writer schema's logical types never change a value (fastavro would apply the writer's)."""
    if isinstance(schema, dict):
        return {k: primitive(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [primitive(v) for v in schema]
    return schema


def _not_utf8(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Per row, whether a string column's value is not UTF-8 (a null is not): Parquet readers do not check it, and
    such a value failed far downstream (``to_pandas``) where the decoders dead-letter the record. Values are read
    one by one only in a chunk Arrow finds invalid."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = []
    for chunk in chunks:
        try:
            chunk.validate(full=True)
        except pa.ArrowInvalid:
            raw = chunk.view(pa.large_binary() if pa.types.is_large_string(chunk.type) else pa.binary())
            parts.append(pa.array([v is not None and not _is_utf8(v) for v in raw.to_pylist()], pa.bool_()))
        else:
            parts.append(pa.repeat(pa.scalar(False), len(chunk)))
    return pa.concat_arrays(parts) if parts else pa.array([], pa.bool_())


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def check_events(
    events: pa.Table,
    reader_schema: dict[str, Any],
    *,
    timestamp_field: str,
    now_ms: int,
    key_fields: tuple[str, ...] = (),
    max_future_ms: int = MAX_FUTURE_MS,
) -> tuple[pa.Table, pa.Table]:
    """Split a table of events into those that pass ``EventDecoder``'s rules and those that do not.

    ``events`` has one column per reader-schema field, in the schema's types (the timestamp field as
    epoch milliseconds, int64). The rules are the decoder's, in its order, so a record gets the reason
    the stream would dead-letter it with: a required field null, or a required ``*_id`` or entity-key string empty
    (``missing_field``); a string value of a ``key_fields`` field longer than ``MAX_KEY_CHARS`` characters
    (``bad_key``); a float field NaN or infinite (``non_finite``); the timestamp beyond
    ``now_ms + max_future_ms`` (``future_timestamp``) or before 1970 (``bad_timestamp``). Before them all, as the
    decoders read the body first, a string that is not UTF-8 (``undecodable``), which a Parquet reader lets
    through. Details are the decoders' texts, a row at a time.

    Returns ``(valid, rejected)``: ``rejected`` is the failing rows with two more columns, ``reason``
    and ``detail``, as a dead letter has.
    """
    n = events.num_rows
    reason = pa.nulls(n, pa.string())
    detail = pa.nulls(n, pa.string())

    def flag(failed: pa.ChunkedArray | pa.Array, why: str, what: str | pa.ChunkedArray | pa.Array) -> None:
        nonlocal reason, detail
        failed = pc.fill_null(failed, True)
        first = pc.and_(failed, pc.is_null(reason))  # the first rule a row fails gives its reason
        reason = pc.if_else(first, pa.scalar(why), reason)
        detail = pc.if_else(first, pa.scalar(what) if isinstance(what, str) else what, detail)

    fields = [f["name"] for f in reader_schema["fields"] if f["name"] in events.column_names]  # the reader's order
    for name in fields:  # first, as the decoders read a string that is not UTF-8: the body does not decode
        column = events.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            flag(_not_utf8(column), "undecodable", f"field {name!r} is not UTF-8")
    for name in required_fields(reader_schema, timestamp_field):
        column = events.column(name)
        failed = pc.is_null(column)
        if (name.endswith("_id") or name in key_fields) and (
            pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        ):
            failed = pc.or_(failed, pc.equal(pc.utf8_length(column), 0))
        flag(failed, "missing_field", f"required field {name!r} is missing or empty")
    for name in key_fields:
        column = events.column(name) if name in events.column_names else None
        if column is None or not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue  # an integer key is never too long
        chars = pc.utf8_length(column)  # code points, as Python's len
        too_long = pc.fill_null(pc.greater(chars, MAX_KEY_CHARS), False)  # a null key is not this rule's
        # key_too_long's text, a row at a time
        what = pc.binary_join_element_wise(
            f"key field {name!r} is ", chars.cast(pa.string()), f" characters (at most {MAX_KEY_CHARS})", ""
        )
        flag(too_long, "bad_key", what)
    for name in fields:  # the reader's order: of two fields not finite, the first is named, as by the decoders
        column = events.column(name)
        if pa.types.is_floating(column.type):
            not_finite = pc.fill_null(pc.invert(pc.is_finite(column)), False)  # a null (optional field) is not
            shown = pc.if_else(pc.is_nan(column), "nan", pc.if_else(pc.greater(column, 0), "inf", "-inf"))
            flag(not_finite, "non_finite", pc.binary_join_element_wise(f"field {name!r} is ", shown, ""))
    ts = events.column(timestamp_field)
    at = pc.binary_join_element_wise(f"{timestamp_field}=", ts.cast(pa.string()), "")  # the decoders' text
    flag(
        pc.greater(ts, now_ms + max_future_ms),
        "future_timestamp",
        pc.binary_join_element_wise(at, f" is beyond now + {max_future_ms} ms", ""),
    )
    flag(pc.less(ts, 0), "bad_timestamp", pc.binary_join_element_wise(at, " is before 1970", ""))
    bad = pc.is_valid(reason)
    rejected = (
        events.filter(bad).append_column("reason", reason.filter(bad)).append_column("detail", detail.filter(bad))
    )
    return events.filter(pc.invert(bad)), rejected
