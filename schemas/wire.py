"""Confluent wire format: magic byte 0, a 4-byte big-endian schema id, then the Avro binary body."""

from __future__ import annotations

import struct

from registry.core.errors import DecodeError

MAGIC = 0
_HEADER = struct.Struct(">bI")


def frame(schema_id: int, body: bytes) -> bytes:
    return _HEADER.pack(MAGIC, schema_id) + body


def unframe(payload: bytes | None) -> tuple[int, memoryview]:
    """Split a framed payload into (schema id, Avro body); DecodeError if it is not framed."""
    if not payload:
        raise DecodeError("empty", "record value is empty or null")
    if len(payload) < _HEADER.size:
        raise DecodeError("truncated", f"{len(payload)} bytes is shorter than the 5-byte header")
    magic, schema_id = _HEADER.unpack_from(payload)
    if magic != MAGIC:
        raise DecodeError("bad_magic", f"first byte is {magic}, not the Confluent magic byte 0")
    return schema_id, memoryview(payload)[_HEADER.size :]
