"""Avro varints held to what the stream job's JVM decoder reads, wherever the writer put them.

fastavro reads a varint of any length for an ``int`` and skips a writer-only one without looking at it, lets a
negative union or enum index pick a branch or symbol from the end (Python's negative indexing), and drops or
wraps the bits of a varint beyond 64. Avro's Java reader, held to fastavro by ``jobs/java/decode``'s
``CheckedDecoder``, refuses all of these: a varint of more than 10 bytes or with bits beyond 64 (a long, a
length, a count, an int or an index, read or skipped), an int, enum index or union index outside 32 bits, and a
negative union or enum index (an enum index past the symbols it lets through when it skips the enum, and so does
this walk). A record the live stream dead-letters must not be accepted by the Python decoder, nor one it accepts
refused (``jobs.history`` backfills with it: the offline rows would then count an event the online ones never saw,
or miss one they saw), so after fastavro has decoded a body this walks the writer's data once more and finds the
first such varint, or an index past a union's branches, a length past the record's end, or an array or map block counting more items
than the bytes left (``check_body``). A writer schema with an array of items that hold no data (null, an empty
record, a size-0 fixed: ``counts_items_of_no_data``) has its bodies walked before fastavro reads them, which would
loop over 2^62 such items in a 46-byte record.

Like the JVM decoder, it does not look inside an array or map block written with its byte size (a negative
item count): such a block of a writer-only field is skipped by that size (its count and size varints are
checked). A body is walked when its writer schema holds an ``int``, a union or an enum (``walks``), or when it
holds nine bytes in a row with the high bit set (``may_hold_a_long_varint``): without those, nothing else is left
for the walk to find, and the reader's own schema is decoded at fastavro's speed (measured by ``bench.archive``:
49-51K events/s when every body was walked, 63-69K with this, 68-72K before the walk).
"""

from __future__ import annotations

import re
from typing import Any

_PRIMITIVE_SIZES = {"null": 0, "boolean": 1, "float": 4, "double": 8}
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


_LONG_RUN = re.compile(rb"[\x80-\xff]{9}")  # nine bytes with the continuation bit: the start of a varint past 63 bits


def walks(schema: Any, seen: set[str] | None = None) -> bool:
    """Whether a parsed writer schema (``fastavro.parse_schema``) has an ``int``, a union or an enum anywhere: the
    bodies ``check_body`` must walk whatever their bytes. Without them only a varint past 64 bits is left to find,
    which needs nine bytes in a row with the high bit set (``may_hold_a_long_varint``)."""
    seen = set() if seen is None else seen
    if isinstance(schema, str):
        return schema == "int"
    if isinstance(schema, list):
        return True
    kind = schema["type"]
    if kind in ("record", "error"):
        if schema["name"] in seen:
            return False
        seen.add(schema["name"])
        return any(walks(f["type"], seen) for f in schema["fields"])
    if kind == "array":
        return walks(schema["items"], seen)
    if kind == "map":
        return walks(schema["values"], seen)
    if kind == "enum":
        return True
    if kind == "fixed":
        return False
    return walks(kind, seen)


def _definitions(schema: Any, out: dict[str, Any]) -> dict[str, Any]:
    """Every named type ``schema`` defines, by name (a parsed schema names a type fully once, then by name)."""
    if isinstance(schema, list):
        for branch in schema:
            _definitions(branch, out)
    elif isinstance(schema, dict):
        name = schema.get("name")
        if isinstance(name, str) and schema.get("type") in ("record", "error", "enum", "fixed"):
            if name in out:
                return out
            out[name] = schema
        for field in schema.get("fields", ()):
            _definitions(field["type"], out)
        for key in ("items", "values"):
            if key in schema:
                _definitions(schema[key], out)
    return out


def _holds_no_data(schema: Any, named: dict[str, Any], visiting: frozenset[str] = frozenset()) -> bool:
    """Whether a value of ``schema`` may be written in no byte: null, a record of such fields (an empty record
    too), a size-0 fixed. A union, enum, array or map writes at least its index or count."""
    if isinstance(schema, str):
        if schema in named and schema not in visiting:
            return _holds_no_data(named[schema], named, visiting)
        return schema == "null"
    if isinstance(schema, list):
        return False
    kind = schema["type"]
    if kind in ("record", "error"):
        inside = visiting | {schema["name"]}
        return all(_holds_no_data(f["type"], named, inside) for f in schema["fields"])
    if kind == "fixed":
        return int(schema["size"]) == 0
    return kind == "null"


def counts_items_of_no_data(schema: Any) -> bool:
    """Whether a parsed writer schema has an array whose items may hold no data: its bodies are walked (and an
    array claiming more items than bytes left refused) before fastavro reads them, which would loop over each."""
    named = _definitions(schema, {})

    def arrays(s: Any, seen: set[str]) -> bool:
        if isinstance(s, str):
            return s in named and s not in seen and arrays(named[s], seen | {s})
        if isinstance(s, list):
            return any(arrays(b, seen) for b in s)
        kind = s["type"]
        if kind in ("record", "error"):
            inside = seen | {s["name"]}
            return any(arrays(f["type"], inside) for f in s["fields"])
        if kind == "array":
            return _holds_no_data(s["items"], named) or arrays(s["items"], seen)
        if kind == "map":
            return arrays(s["values"], seen)
        return False

    return arrays(schema, set())


def may_hold_a_long_varint(body: bytes | memoryview) -> bool:
    """Whether ``body`` has nine bytes in a row with the high bit set (one C scan): without such a run no varint
    in it is longer than 9 bytes, so none passes 63 bits."""
    return _LONG_RUN.search(body) is not None


class MalformedBody(ValueError):
    """A body fastavro decoded that the JVM decoder refuses; ``int_value`` is set when it is an int outside 32
    bits (the message is then ``<n> is not an int``)."""

    def __init__(self, message: str, int_value: int | None = None) -> None:
        super().__init__(message)
        self.int_value = int_value


def int_outside_32_bits(schema: Any, body: bytes | memoryview) -> int | None:
    """The first ``int`` in ``body`` (written with the parsed writer ``schema``, already decoded cleanly by
    fastavro) whose value does not fit 32 bits, or None; MalformedBody for anything else ``check_body`` refuses
    before it."""
    try:
        check_body(schema, body)
    except MalformedBody as exc:
        if exc.int_value is None:
            raise
        return exc.int_value
    return None


def check_body(schema: Any, body: bytes | memoryview) -> None:
    """Walk ``body`` (written with the parsed writer ``schema``, already decoded cleanly by fastavro) and raise
    MalformedBody at the first varint, index or length the JVM decoder refuses."""
    named: dict[str, Any] = {}
    pos = 0
    end = len(body)

    def varint() -> int:
        nonlocal pos
        raw = 0
        for shift in range(0, 64, 7):
            if pos >= end:
                raise MalformedBody("a varint runs past the record's end")
            byte = body[pos]
            pos += 1
            if shift == 63 and byte > 1:  # the 10th byte holds bit 63 only, and ends the varint
                raise MalformedBody("a varint longer than 64 bits")
            raw |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (raw >> 1) ^ -(raw & 1)
        raise AssertionError("unreachable: the 10th byte ends the varint or is refused")

    def int32() -> int:
        value = varint()
        if not INT_MIN <= value <= INT_MAX:
            raise MalformedBody(f"{value} is not an int", value)
        return value

    def index(count: int, what: str, *, past_the_end: bool = False) -> int:
        value = int32()
        if value < 0 or (value >= count and not past_the_end):
            raise MalformedBody(f"{what} index {value} is not one of 0-{count - 1}")
        return value

    def skip(size: int) -> None:
        nonlocal pos
        if size < 0 or size > end - pos:
            raise MalformedBody(f"a length of {size} runs past the record's end")
        pos += size

    def blocks(item: Any) -> None:
        while (count := varint()) != 0:
            if count < 0:  # a block with its byte size: skipped by it, as the JVM decoder skips it
                skip(varint())
                continue
            if count > end - pos:  # as the JVM decoder: items of no data (nulls) would loop without reading
                raise MalformedBody(f"a block of {count} items with {end - pos} bytes left")
            for _ in range(count):
                item()

    def entry(values: Any) -> None:
        walk("string")
        walk(values)

    def walk(s: Any) -> None:
        if isinstance(s, str):
            if s in named:
                walk(named[s])
            elif s == "int":
                int32()
            elif s == "long":
                varint()
            elif s in ("bytes", "string"):
                skip(varint())
            else:
                skip(_PRIMITIVE_SIZES[s])
            return
        if isinstance(s, list):
            walk(s[index(len(s), "a union")])
            return
        kind = s["type"]
        if kind in ("record", "error"):
            named[s["name"]] = s
            for field in s["fields"]:
                walk(field["type"])
        elif kind == "enum":
            named[s["name"]] = s
            # Past the symbols is let through, as the JVM decoder skips a writer-only enum (Avro's Java reader
            # checks the index only of an enum it reads, and the job's reader schemas have none): refused here, a
            # backfill from the archive lost an event the stream counted.
            index(len(s["symbols"]), "an enum", past_the_end=True)
        elif kind == "fixed":
            named[s["name"]] = s
            skip(s["size"])
        elif kind == "array":
            blocks(lambda: walk(s["items"]))
        elif kind == "map":
            blocks(lambda: entry(s["values"]))
        else:
            walk(kind)

    walk(schema)
