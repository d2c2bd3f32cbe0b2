"""Avro ints held to 32 bits wherever the writer put them, as the stream job's JVM decoder holds them.

fastavro reads a varint of any length for an ``int`` and skips a writer-only one without looking at it; Avro's
Java reader, held to fastavro by ``jobs/java/decode``'s ``CheckedDecoder``, refuses any int, read or skipped,
that does not fit 32 bits. A record the live stream dead-letters must not be accepted by the Python decoder
(``jobs.history`` backfills with it: the offline rows would then count an event the online ones never saw), so
after fastavro has decoded a body this walks the writer's data once more and finds such an int.

Like the JVM decoder, it does not look inside an array or map block written with its byte size (a negative
item count): such a block of a writer-only field is skipped by that size. Only writer schemas that hold an
``int`` somewhere are walked (``holds_int``): for the others there is nothing to find.
"""

from __future__ import annotations

from typing import Any

_PRIMITIVE_SIZES = {"null": 0, "boolean": 1, "float": 4, "double": 8}
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


def holds_int(schema: Any, seen: set[str] | None = None) -> bool:
    """Whether a parsed writer schema (``fastavro.parse_schema``) has an ``int`` anywhere."""
    seen = set() if seen is None else seen
    if isinstance(schema, str):
        return schema == "int"
    if isinstance(schema, list):
        return any(holds_int(s, seen) for s in schema)
    kind = schema["type"]
    if kind in ("record", "error"):
        if schema["name"] in seen:
            return False
        seen.add(schema["name"])
        return any(holds_int(f["type"], seen) for f in schema["fields"])
    if kind == "array":
        return holds_int(schema["items"], seen)
    if kind == "map":
        return holds_int(schema["values"], seen)
    if kind in ("enum", "fixed"):
        return False
    return holds_int(kind, seen)


def int_outside_32_bits(schema: Any, body: bytes | memoryview) -> int | None:
    """The first ``int`` in ``body`` (written with the parsed writer ``schema``, already decoded cleanly by
    fastavro) whose value does not fit 32 bits, or None."""
    named: dict[str, Any] = {}
    pos = 0

    def varint() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            byte = body[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7

    def blocks(item: Any) -> int | None:
        nonlocal pos
        while (count := varint()) != 0:
            if count < 0:  # a block with its byte size: skipped by it, as the JVM decoder skips it
                size = varint()  # read before `pos +=` loads pos: varint() moves it
                pos += size
                continue
            for _ in range(count):
                found = item()
                if found is not None:
                    return found
        return None

    def walk(s: Any) -> int | None:
        nonlocal pos
        if isinstance(s, str):
            if s in named:
                return walk(named[s])
            if s == "int":
                value = varint()
                return value if not INT_MIN <= value <= INT_MAX else None
            if s == "long":
                varint()
            elif s in ("bytes", "string"):
                length = varint()
                pos += length
            else:
                pos += _PRIMITIVE_SIZES[s]
            return None
        if isinstance(s, list):
            return walk(s[varint()])
        kind = s["type"]
        if kind in ("record", "error"):
            named[s["name"]] = s
            for field in s["fields"]:
                found = walk(field["type"])
                if found is not None:
                    return found
            return None
        if kind == "enum":
            named[s["name"]] = s
            varint()
            return None
        if kind == "fixed":
            named[s["name"]] = s
            pos += s["size"]
            return None
        if kind == "array":
            return blocks(lambda: walk(s["items"]))
        if kind == "map":
            return blocks(lambda: walk("string") or walk(s["values"]))
        return walk(kind)

    return walk(schema)
