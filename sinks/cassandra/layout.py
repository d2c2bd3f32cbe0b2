"""The online store's layout in Cassandra, derived here and nowhere else.

One row per entity ``(entity_type, entity_id)`` (its partition) holds the whole feature vector in one
map column, ``cells map<text, blob>``: one cell per feature version, so a serving read is one
single-partition, single-row query whose cost barely grows with the number of features (a batch may read
several partitions with one ``IN``: ``select_vectors_cql``). Each cell is
written on its own ``USING TIMESTAMP <feature time in µs>`` and ``TTL``, so a write of an older window
never overwrites a newer one, whatever order writes arrive in, replays are idempotent, and each
feature keeps its own TTL: per feature, exactly the rules of one row per feature.

A cell's key is ``<name>@<version>:<type letter>`` (``l``, ``d``, ``s``, ``b``; a version's value
type never changes). Its blob holds the window end (epoch ms, 8 bytes, big-endian signed) and the value
in Cassandra's own serialization of its type (``bigint`` / ``double``: 8 bytes big-endian; ``text``:
UTF-8; ``boolean``: one byte 0 or 1), or ``NULL`` (nine ``0xff`` bytes) for no value: for ``long``,
``double`` and ``boolean`` the value first, then the end (one C-level ``struct`` call decodes both);
for ``text`` the end first, then the value. Two cells of one feature written with one write time hold
one window end, so Cassandra, which keeps the greater blob compared as unsigned bytes, keeps the value
``registry.core.timeline.tie_key`` ranks higher: no value above every value (no UTF-8 text starts with
``0xff``; ``NULL`` is a byte longer than any fixed-size value, and after eight ``0xff`` its ninth byte
meets the end's first, ``0x00`` for every window end from 1970 to 2^56 ms, some two million years on), then the greater
serialized value. The online store keeps no window start or write instant (the offline table has both).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from registry.core.value_types import SPECS, VALUE_COLUMNS, VALUE_TYPES, ValueType
from sinks.names import LEGACY_ONLINE_TABLE, ONLINE_TABLE, PROGRESS_TABLE

TABLE = ONLINE_TABLE
LEGACY_TABLE = LEGACY_ONLINE_TABLE
__all__ = ["LEGACY_TABLE", "PROGRESS_TABLE", "TABLE"]
PROGRESS_TTL_S = 86_400  # a writer that stopped (rescaled away) stops holding its stream back after a day

LETTERS: dict[ValueType, str] = {"long": "l", "double": "d", "string": "s", "boolean": "b"}
_TYPES: dict[str, ValueType] = {letter: t for t, letter in LETTERS.items()}
assert set(LETTERS) == set(VALUE_TYPES)
NULL = b"\xff" * 9
_END = struct.Struct(">q")
_FIXED: dict[ValueType, struct.Struct] = {
    "long": struct.Struct(">qq"),
    "double": struct.Struct(">dq"),
    "boolean": struct.Struct(">?q"),
}  # (value, window end)


def keyspace_ddl(keyspace: str, replication_factor: int = 1) -> str:
    return (
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
        f"{{'class': 'SimpleStrategy', 'replication_factor': {replication_factor}}}"
    )


def table_ddl(keyspace: str) -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {keyspace}.{TABLE} ("
        "entity_type text, entity_id text, cells map<text, blob>, PRIMARY KEY ((entity_type, entity_id)))",
        f"CREATE TABLE IF NOT EXISTS {keyspace}.{PROGRESS_TABLE} ("
        "stream text, writer text, closed_through timestamp, updated_at timestamp, PRIMARY KEY (stream, writer))",
    ]


# --- cells ----------------------------------------------------------------------------------------


def cell_key(name: str, version: int, value_type: ValueType) -> str:
    return f"{name}@{version}:{LETTERS[value_type]}"


def parse_cell_key(key: str) -> tuple[str, int, ValueType]:
    """``(name, version, value type)`` of a cell key; ValueError for anything else."""
    ref, _, letter = key.rpartition(":")
    name, _, version = ref.rpartition("@")
    if not name or letter not in _TYPES or not version.isdigit():
        raise ValueError(f"not an online cell key: {key!r}")
    return name, int(version), _TYPES[letter]


def encode_cell(value_type: ValueType, value: object, end_ms: int) -> bytes:
    """A cell's blob: the value as Cassandra serializes its type (``NULL`` for none) and the window end."""
    fixed = _FIXED.get(value_type)
    if fixed is not None:
        return NULL + _END.pack(end_ms) if value is None else fixed.pack(value, end_ms)
    return _END.pack(end_ms) + (NULL if value is None else str(value).encode())


def _fixed(layout: struct.Struct) -> Callable[[bytes], tuple[object, int]]:
    unpack, size = layout.unpack, layout.size

    def decode(blob: bytes) -> tuple[object, int]:
        if len(blob) == size:
            return unpack(blob)  # type: ignore[no-any-return]
        return None, _END.unpack_from(blob, len(NULL))[0]

    return decode


def _string(blob: bytes) -> tuple[object, int]:
    end: int = _END.unpack_from(blob)[0]
    if blob[8:9] == b"\xff":
        return None, end
    return blob[8:].decode(), end


DECODERS: dict[ValueType, Callable[[bytes], tuple[object, int]]] = {
    "long": _fixed(_FIXED["long"]),
    "double": _fixed(_FIXED["double"]),
    "string": _string,
    "boolean": _fixed(_FIXED["boolean"]),
}
"""Value type -> blob decoder giving ``(value, window end ms)``."""

FAST: dict[ValueType, Callable[[bytes], tuple[object, int]]] = {
    "long": _FIXED["long"].unpack,
    "double": _FIXED["double"].unpack,
    "string": _string,
    "boolean": _FIXED["boolean"].unpack,
}
"""The same, in C where the type has a fixed size: ``struct.error`` for a cell without a value (use ``DECODERS``)."""


def decode_cell(value_type: ValueType, blob: bytes) -> tuple[object, int]:
    return DECODERS[value_type](blob)


# --- statements -----------------------------------------------------------------------------------


def update_cells_cql(keyspace: str) -> str:
    """Add cells to an entity's map, all with one write time and TTL (``cells + ?`` appends: no read)."""
    return (
        f"UPDATE {keyspace}.{TABLE} USING TIMESTAMP ? AND TTL ? SET cells = cells + ? "
        "WHERE entity_type = ? AND entity_id = ?"
    )


def select_vector_cql(keyspace: str) -> str:
    return f"SELECT cells FROM {keyspace}.{TABLE} WHERE entity_type = ? AND entity_id = ?"


def select_vectors_cql(keyspace: str, partitions: int) -> str:
    """Several entities' rows of one entity type in one query, ``partitions`` ids bound (a repeated id is
    read once: Cassandra deduplicates an ``IN`` on the partition key), each row with its ``entity_id``."""
    marks = ", ".join("?" * partitions)
    return f"SELECT entity_id, cells FROM {keyspace}.{TABLE} WHERE entity_type = ? AND entity_id IN ({marks})"


def progress_cql(keyspace: str) -> str:
    return (
        f"INSERT INTO {keyspace}.{PROGRESS_TABLE} (stream, writer, closed_through, updated_at) VALUES (?, ?, ?, ?) "
        f"USING TIMESTAMP ? AND TTL {PROGRESS_TTL_S}"
    )


def select_progress_cql(keyspace: str) -> str:
    return f"SELECT stream, writer, closed_through FROM {keyspace}.{PROGRESS_TABLE}"


def select_progress_ms_cql(keyspace: str) -> str:
    """``select_progress_cql`` with ``closed_through`` as epoch milliseconds."""
    return f"SELECT stream, writer, toUnixTimestamp(closed_through) FROM {keyspace}.{PROGRESS_TABLE}"


def erase_entity_cql(keyspace: str) -> str:
    """Delete an entity's partition at a write time (``USING TIMESTAMP``): cells written later with an
    older write time (a replay of old windows) stay deleted."""
    return f"DELETE FROM {keyspace}.{TABLE} USING TIMESTAMP ? WHERE entity_type = ? AND entity_id = ?"


# --- the layout before (one clustering row per feature version), read only by the migration -------


def legacy_table_ddl(keyspace: str) -> str:
    value_columns = ", ".join(f"{col} {SPECS[t].cql}" for t, col in VALUE_COLUMNS.items())
    return (
        f"CREATE TABLE IF NOT EXISTS {keyspace}.{LEGACY_TABLE} ("
        "entity_type text, entity_id text, feature_name text, feature_version int, "
        f"{value_columns}, feature_ts timestamp, window_start timestamp, written_at timestamp, "
        "PRIMARY KEY ((entity_type, entity_id), feature_name, feature_version))"
    )


def legacy_select_cql(keyspace: str) -> str:
    """Every legacy row with its write time and remaining TTL (those of ``feature_ts``, written with the value)."""
    cols = ", ".join(VALUE_COLUMNS.values())
    return (
        f"SELECT entity_type, entity_id, feature_name, feature_version, {cols}, toUnixTimestamp(feature_ts), "
        f"WRITETIME(feature_ts), TTL(feature_ts) FROM {keyspace}.{LEGACY_TABLE}"
    )


def count_cells(rows: Any) -> int:
    """The number of cells the rows of ``select_vector_cql`` hold."""
    return sum(len(cells or ()) for (cells,) in rows)
