"""The online store's layout in Cassandra, derived here and nowhere else.

One row per entity ``(entity_type, entity_id)`` (its partition) holds the whole feature vector in one
map column, ``cells map<text, blob>``, so a serving read is one single-partition, single-row query (a batch
may read several partitions with one ``IN``: ``select_vectors_cql``). The writer puts the values of one
entity that share a window end, a write time and a TTL (one window of a window group, as a rule) into one
cell, a pack (``Pack``: its key lists the members, its blob holds the write time, the window end, a null
bitmap and the values), so a 100-feature read decodes one cell. Each pack is written on its own ``USING
TIMESTAMP <feature time in µs>`` and ``TTL``, so a write of an older window never overwrites a newer one,
whatever order writes arrive in, replays are idempotent, and each value keeps its own TTL (values of
different TTLs go into different packs). A feature in several cells (packs of other member sets, or its
own cell from the layout before packs) is read from the one of the greatest write time
(``sinks.cassandra.reader``).

A feature's own cell (written before packs, still read): key ``<name>@<version>:<type letter>`` (``l``,
``d``, ``s``, ``b``; a version's value type never changes); blob the window end (epoch ms, 8 bytes,
big-endian signed) and the value in Cassandra's own serialization of its type (``bigint`` / ``double``: 8
bytes big-endian; ``text``: UTF-8; ``boolean``: one byte 0 or 1), or ``NULL`` (nine ``0xff`` bytes) for no
value: for ``long``, ``double`` and ``boolean`` the value first, then the end (one C-level ``struct`` call
decodes both); for ``text`` the end first, then the value. Two such cells of one feature written with one
write time hold one window end, so Cassandra, which keeps the greater blob compared as unsigned bytes (of two
written within one second; of two seconds apart the later written: docs/design.md §5.1),
keeps the value ``registry.core.timeline.tie_key`` ranks higher: no value above every value (no UTF-8 text
starts with ``0xff``; ``NULL`` is a byte longer than any fixed-size value, and after eight ``0xff`` its
ninth byte meets the end's first, ``0x00`` for every window end from 1970 to 2^56 ms, some two million
years on), then the greater serialized value; a pack of one value orders the same way. The online store
keeps no window start or write instant (the offline table has both).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable
from functools import lru_cache
from operator import itemgetter
from typing import Any

from registry.core.definitions import MAX_TTL, MAX_VERSION, NAME_PATTERN
from registry.core.value_types import SPECS, VALUE_COLUMNS, VALUE_TYPES, ValueType
from sinks.names import LEGACY_ONLINE_TABLE, ONLINE_TABLE, PROGRESS_TABLE

TABLE = ONLINE_TABLE

EXPIRED_GRACE_S = 3_600
"""How long a cell outlives its value's TTL (its Cassandra TTL is the value's remaining TTL plus this, at most
Cassandra's longest, ``ttl_cap_s``): for that hour serving reads the value as ``expired`` (null), then ``missing``."""
LEGACY_TABLE = LEGACY_ONLINE_TABLE
__all__ = ["LEGACY_TABLE", "PROGRESS_TABLE", "TABLE"]
PROGRESS_TTL_S = 86_400  # a writer that stopped (rescaled away) stops holding its stream back after a day
LAST_KNOWN_WRITER = "*"
"""The ``writer`` of a stream's row that outlives its writers' rows: the latest window end any writer closed (its
write time is that end, so it only moves forward), kept as long as the stream's longest feature TTL (plus the
expired grace), past which every value it could decide reads ``expired`` anyway. Readers take it only when no
writer's own row is left (a stream without progress for a day), so a quiet entity never goes back to an older
window once its writers' rows expire."""


LAST_EXPIRY_S = 2_147_483_646
"""The latest second (2038-01-19T03:14:06Z) a cell may expire at: Cassandra 5.0 refuses a write whose TTL, counted
from its own clock, ends later (``InvalidRequest`` "exceeds maximum supported expiration date", its expiration date
overflow policy, REJECT by default) while its ``storage_compatibility_mode`` is ``CASSANDRA_4``, its default
(``Cell.getVersionedMaxDeletiontionTime``; CASSANDRA-14227's 2106 needs ``NONE``). In December 2026 that is any TTL
over about 11 years, shorter than Cassandra's longest TTL (``MAX_TTL``, 20 years)."""
EXPIRY_MARGIN_S = 3_600  # how far this clock may run behind Cassandra's before a TTL cut to LAST_EXPIRY_S is refused


def ttl_cap_s(now_ms: int) -> int:
    """The longest Cassandra TTL (s) a write at ``now_ms`` can carry: Cassandra's longest (``MAX_TTL``), ending at
    most at ``LAST_EXPIRY_S`` (less ``EXPIRY_MARGIN_S``), and at least 1 (0 would be no expiry at all)."""
    return max(1, min(int(MAX_TTL.total_seconds()), LAST_EXPIRY_S - EXPIRY_MARGIN_S - now_ms // 1000))


def last_known_ttl_s(longest_ttl_ms: int, now_ms: int) -> int:
    """The last-known row's Cassandra TTL for a stream whose longest feature TTL is ``longest_ttl_ms``, written at
    ``now_ms``: at least the writers' rows' day, at most the longest Cassandra takes then (``ttl_cap_s``)."""
    return min(max(PROGRESS_TTL_S, -(-longest_ttl_ms // 1000) + EXPIRED_GRACE_S), ttl_cap_s(now_ms))


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


_NAME = re.compile(NAME_PATTERN)


def cell_key(name: str, version: int, value_type: ValueType) -> str:
    return f"{name}@{version}:{LETTERS[value_type]}"


def parse_cell_key(key: str) -> tuple[str, int, ValueType]:
    """``(name, version, value type)`` of a cell key; ValueError for anything else."""
    ref, _, letter = key.rpartition(":")
    name, _, version = ref.rpartition("@")
    # The key the layout writes, nothing else: a feature name of the registry's grammar, a version of ASCII digits
    # without leading zeros (not `01`, nor `١`) from 1 to 2^31-1.
    if (
        _NAME.fullmatch(name) is None
        or letter not in _TYPES
        or not (version.isascii() and version.isdigit())
        or version != str(int(version))
        or not 1 <= int(version) <= MAX_VERSION
    ):
        raise ValueError(f"not an online cell key: {key!r}")
    return name, int(version), _TYPES[letter]


def encode_cell(value_type: ValueType, value: object, end_ms: int) -> bytes:
    """A cell's blob: the value as Cassandra serializes its type (``NULL`` for none) and the window end."""
    fixed = _FIXED.get(value_type)
    if fixed is not None:
        return NULL + _END.pack(end_ms) if value is None else fixed.pack(value, end_ms)
    return _END.pack(end_ms) + (NULL if value is None else str(value).encode())


def _fixed(value_type: ValueType) -> Callable[[bytes], tuple[object, int]]:
    layout = _FIXED[value_type]
    unpack, size, boolean = layout.unpack, layout.size, value_type == "boolean"

    def decode(blob: bytes) -> tuple[object, int]:
        if len(blob) == size and not (boolean and blob[0] > 1):
            return unpack(blob)  # type: ignore[no-any-return]
        if len(blob) == len(NULL) + _END.size and blob[: len(NULL)] == NULL:
            return None, _END.unpack_from(blob, len(NULL))[0]
        raise ValueError(f"not a {value_type} cell: {bytes(blob[:32]).hex()} ({len(blob)} bytes)")

    return decode


def _string(blob: bytes) -> tuple[object, int]:
    if len(blob) < _END.size:
        raise ValueError(f"not a string cell: {len(blob)} bytes")
    end: int = _END.unpack_from(blob)[0]
    text = blob[_END.size :]
    if text == NULL:
        return None, end
    try:
        return bytes(text).decode(), end
    except UnicodeDecodeError as exc:  # a 0xff (no UTF-8 text holds it) other than NULL, or cut bytes
        raise ValueError(f"not a string cell: {exc}") from None


DECODERS: dict[ValueType, Callable[[bytes], tuple[object, int]]] = {
    "long": _fixed("long"),
    "double": _fixed("double"),
    "string": _string,
    "boolean": _fixed("boolean"),
}
"""Value type -> blob decoder giving ``(value, window end ms)``; ValueError for a blob that is neither a value
of the type nor ``NULL`` (and the end)."""

FAST: dict[ValueType, Callable[[bytes], tuple[object, int]]] = {
    "long": _FIXED["long"].unpack,
    "double": _FIXED["double"].unpack,
    "string": _string,
    "boolean": DECODERS["boolean"],  # its byte is checked: 0 or 1
}
"""The same, in C where the type has a fixed size: ``struct.error`` for a cell without a value (use ``DECODERS``)."""


def decode_cell(value_type: ValueType, blob: bytes) -> tuple[object, int]:
    return DECODERS[value_type](blob)


# --- packs: one cell for the features of one window written together --------------------------------

PACK = "*"  # a pack's key starts with it; a feature's own cell key never does (a name starts with a letter)
PACK_MEMBERS = 256  # features a pack at most (ours: Cassandra 5.0 bounds no map key; ~25 characters a member)
_SEP = b"\xff"  # between a pack's strings: no UTF-8 text holds the byte 0xff
_PACK_HEAD = ">qq"  # write time (µs), window end (ms)
_CODES: dict[ValueType, str] = {"long": "q", "double": "d", "boolean": "?"}
_ZERO: dict[ValueType, object] = {"long": 0, "double": 0.0, "boolean": False}
Member = tuple[str, int, ValueType]
"""A pack member: feature name, version, value type."""


def member_rank(member: Member) -> tuple[bool, str]:
    return member[2] == "string", cell_key(*member)


def pack_order(members: list[Member]) -> list[Member]:
    """The order of a pack's members: fixed-size types first, then strings, each by cell key (one set of
    features has one key, whatever order its values arrived in)."""
    return sorted(members, key=member_rank)


class Pack:
    """The layout of one pack: its key, members in order and the struct of its fixed-size part.

    A pack is one map cell holding every value of one entity that one flush writes with one write time,
    TTL and window end (the features of one window group, as a rule). Key: ``*`` and the members' cell
    keys joined by ``,``, in ``pack_order``. Blob: the write time (µs, 8 bytes), the window end (ms, 8
    bytes), a bitmap of members without a value (bit ``i`` = ``0x80 >> i % 8`` of byte ``i // 8``), the
    fixed-size values in member order as Cassandra serializes them (a member without one holds zero), then
    the strings' UTF-8 bytes separated by ``0xff``. For one member the blob orders as ``tie_key`` (as a
    feature's own cell does), so Cassandra keeps of two single-feature packs of one write time written within
    one second the value the timeline's tie rule keeps (of two seconds apart, the later written: §5.1); of two
    packs of several members it keeps the greater blob whole.
    """

    __slots__ = ("boolean_bytes", "booleans", "fixed", "key", "members", "nulls", "refs", "strings", "types", "width")

    def __init__(self, members: tuple[Member, ...]) -> None:
        if not members or len(members) > PACK_MEMBERS:
            raise ValueError(f"a pack holds 1 to {PACK_MEMBERS} members, not {len(members)}")
        if list(members) != pack_order(list(members)) or len(set(members)) != len(members):
            raise ValueError("pack members must be distinct and in pack_order")
        self.members = members
        self.refs = tuple((name, version) for name, version, _ in members)
        if len(set(self.refs)) != len(members):
            raise ValueError("a pack holds a feature version once (its value type never changes)")
        self.types = tuple(t for _, _, t in members)
        self.key = PACK + ",".join(cell_key(*m) for m in members)
        self.width = (len(members) + 7) // 8
        self.strings = sum(t == "string" for t in self.types)
        self.fixed = struct.Struct(
            _PACK_HEAD + f"{self.width}s" + "".join(_CODES[t] for t in self.types[: -self.strings or None])
        )
        self.nulls = bytes(self.width)
        # Where a boolean's byte (0 or 1) sits in the blob, and a struct reading just those bytes as numbers in one
        # C call (the ``?`` of ``fixed`` reads any byte but 0 as true).
        booleans, skip, offset = [], ">", struct.calcsize(_PACK_HEAD) + self.width
        for t in self.types[: len(self.types) - self.strings]:
            if t == "boolean":
                skip += f"{offset - struct.calcsize(skip)}xB"
                booleans.append(offset)
            offset += struct.calcsize(">" + _CODES[t])
        self.booleans = tuple(booleans)
        self.boolean_bytes = struct.Struct(skip) if booleans else None

    def picker(self, refs: tuple[tuple[str, int], ...]) -> Callable[[list[object]], list[object]] | None:
        """A function taking, from a decoded pack's values, those of ``refs`` in that order; None when the pack
        lacks one of them."""
        index = {ref: i for i, ref in enumerate(self.refs)}
        positions = [index.get(ref) for ref in refs]
        if not positions or None in positions:
            return None
        if len(positions) == 1:
            (only,) = positions
            return lambda values: [values[only]]  # type: ignore[index]
        take = itemgetter(*positions)
        return lambda values: list(take(values))

    def encode(self, write_ts_us: int, end_ms: int, values: list[object]) -> bytes:
        """The blob of ``values`` (in member order, None for no value)."""
        bitmap = bytearray(self.width)
        fixed: list[object] = []
        texts: list[bytes] = []
        for i, (value, value_type) in enumerate(zip(values, self.types, strict=True)):
            if value is None:
                bitmap[i // 8] |= 0x80 >> (i % 8)
            if value_type == "string":
                texts.append(b"" if value is None else str(value).encode())
            else:
                fixed.append(_ZERO[value_type] if value is None else value)
        head = self.fixed.pack(write_ts_us, end_ms, bytes(bitmap), *fixed)
        return head + _SEP.join(texts) if texts else head

    def decode(self, blob: bytes) -> tuple[int, int, list[object]]:
        """``(write time µs, window end ms, values in member order)``; ValueError for a blob of another shape."""
        try:
            head = self.fixed.unpack_from(blob)
        except struct.error as exc:
            raise ValueError(f"not a blob of pack {self.key[:60]!r}: {exc}") from None
        values = list(head[3:])
        if self.strings:
            texts = blob[self.fixed.size :].split(_SEP)
            if len(texts) != self.strings:
                raise ValueError(f"not a blob of pack {self.key[:60]!r}: {len(texts)} strings, not {self.strings}")
            try:
                values.extend(map(bytes.decode, texts))
            except UnicodeDecodeError as exc:
                raise ValueError(f"not a blob of pack {self.key[:60]!r}: {exc}") from None
        elif len(blob) != self.fixed.size:
            raise ValueError(f"not a blob of pack {self.key[:60]!r}: {len(blob)} bytes, not {self.fixed.size}")
        if self.boolean_bytes is not None and max(self.boolean_bytes.unpack_from(blob)) > 1:
            raise ValueError(f"not a blob of pack {self.key[:60]!r}: a boolean byte not 0 or 1")
        if head[2] != self.nulls:
            bitmap = head[2]
            for i in range(len(values)):
                if bitmap[i // 8] & (0x80 >> (i % 8)):
                    values[i] = None
        return head[0], head[1], values


@lru_cache(maxsize=4_096)
def pack(members: tuple[Member, ...]) -> Pack:
    """The (cached) layout of a pack of ``members`` in ``pack_order``."""
    return Pack(members)


@lru_cache(maxsize=4_096)
def parse_pack_key(key: str) -> Pack:
    """The (cached) layout a pack key names; ValueError for anything else. Cached by key: the writer counts a
    flush's values by its packs' keys (``values_in``)."""
    if not key.startswith(PACK):
        raise ValueError(f"not an online pack key: {key[:60]!r}")
    return pack(tuple(parse_cell_key(member) for member in key[len(PACK) :].split(",")))


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
    """A writer's row and the stream's last-known row (``LAST_KNOWN_WRITER``, ``last_known_ttl_s``) in one
    single-partition batch; binds stream, writer, closed_through, updated_at, the write time, then stream,
    closed_through, updated_at, the write time again and the last-known row's TTL in seconds."""
    insert = f"INSERT INTO {keyspace}.{PROGRESS_TABLE} (stream, writer, closed_through, updated_at) VALUES "
    return (
        "BEGIN UNLOGGED BATCH "
        f"{insert}(?, ?, ?, ?) USING TIMESTAMP ? AND TTL {PROGRESS_TTL_S}; "
        f"{insert}(?, '{LAST_KNOWN_WRITER}', ?, ?) USING TIMESTAMP ? AND TTL ?; "
        "APPLY BATCH"
    )


VERSION_SEPARATOR = "|"


def version_stream(stream: str, entity: str, name: str, version: int) -> str:
    """The progress key of one feature version computed by a job of its own (a backfill, a job added by
    ``jobs.follow``): ``<stream>|<entity>.<name>@<version>``. Its rows say how far that job has written the
    version; a job computing the stream's versions together writes the stream's own key (``stream``)."""
    return f"{stream}{VERSION_SEPARATOR}{entity}.{name}@{version}"


def _version_label(key: str) -> tuple[str, str, int] | None:
    """``(entity, name, version)`` of a ``version_stream`` key, None for a stream's own key."""
    _, sep, ref = key.rpartition(VERSION_SEPARATOR)
    if not sep:
        return None
    qualified, _, version = ref.rpartition("@")
    entity, _, name = qualified.partition(".")
    try:
        return entity, name, int(version)
    except ValueError:
        return None


class Progress(dict[str, int]):
    """Each progress key's closed-through point (epoch ms), and ``own``: the ``(entity, name, version)`` of every
    version with a key of its own (``version_stream``), whose features are judged by it, not by their stream's."""

    __slots__ = ("own",)

    def __init__(self, points: dict[str, int]) -> None:
        super().__init__(points)
        self.own = frozenset(label for label in map(_version_label, points) if label is not None)


def stream_progress(rows: Iterable[tuple[str, str, int]]) -> Progress:
    """Each progress key's closed-through point from its ``(stream, writer, closed_through)`` rows: the minimum
    over its writers' own rows; the last-known row only for a key none of whose writers' rows is left. A key is a
    stream's, or one version's (``version_stream``)."""
    live: dict[str, int] = {}
    last: dict[str, int] = {}
    for stream, writer, closed in rows:
        if writer == LAST_KNOWN_WRITER:
            last[stream] = closed
        else:
            live[stream] = min(live.get(stream, closed), closed)
    return Progress(last | live)


def own_progress_cql(keyspace: str) -> str:
    """One row of a progress key (``version_stream``) written before its job: binds the key, the writer, closed_through,
    updated_at, the write time and the TTL in seconds."""
    return (
        f"INSERT INTO {keyspace}.{PROGRESS_TABLE} (stream, writer, closed_through, updated_at) "
        "VALUES (?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
    )


def select_progress_cql(keyspace: str) -> str:
    return f"SELECT stream, writer, closed_through FROM {keyspace}.{PROGRESS_TABLE}"


def select_progress_ms_cql(keyspace: str) -> str:
    """``select_progress_cql`` with ``closed_through`` as epoch milliseconds."""
    return f"SELECT stream, writer, toUnixTimestamp(closed_through) FROM {keyspace}.{PROGRESS_TABLE}"


def select_progress_ttl_cql(keyspace: str) -> str:
    """``select_progress_ms_cql`` with each row's remaining TTL in seconds (null: none)."""
    return (
        f"SELECT stream, writer, toUnixTimestamp(closed_through), TTL(closed_through) FROM {keyspace}.{PROGRESS_TABLE}"
    )


def newest_write_cql(keyspace: str) -> str:
    """The newest write time (µs) among an entity's cells (Cassandra 5's ``maxwritetime`` of the map), for an
    erasure's tombstone to lie at or above every cell it must delete."""
    return f"SELECT maxwritetime(cells) FROM {keyspace}.{TABLE} WHERE entity_type = ? AND entity_id = ?"


PARTITION_KEY_BYTES = 65_535
"""The longest partition key Cassandra holds, in bytes (its protocol's unsigned 16-bit length). The key of an
entity's partition is composite: each part, ``entity_type`` then ``entity_id``, costs its UTF-8 bytes plus 3
(a 2-byte length and an end byte), so with the type ``user`` an id of 65,525 bytes is the longest that fits."""


def partition_key_fits(entity_type: str, entity_id: str) -> bool:
    """Whether an entity's partition key is within ``PARTITION_KEY_BYTES``: no partition holds an entity beyond it
    (Cassandra refuses such a key in any statement; the driver cannot even route one part over 65,535 bytes)."""
    return len(entity_type.encode()) + 3 + len(entity_id.encode()) + 3 <= PARTITION_KEY_BYTES


def erase_entity_cql(keyspace: str) -> str:
    """Delete an entity's partition at a write time (``USING TIMESTAMP``): cells written later with an
    older write time (a replay of old windows) stay deleted."""
    return f"DELETE FROM {keyspace}.{TABLE} USING TIMESTAMP ? WHERE entity_type = ? AND entity_id = ?"


# --- the layout before (one clustering row per feature version), read by the migration and erasure ----


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


def legacy_entity_rows_cql(keyspace: str) -> str:
    """An entity's legacy rows (one per feature version), to count them, each with its write time (µs)."""
    return (
        f"SELECT feature_name, WRITETIME(feature_ts) FROM {keyspace}.{LEGACY_TABLE} "
        "WHERE entity_type = ? AND entity_id = ?"
    )


def legacy_erase_entity_cql(keyspace: str) -> str:
    """``erase_entity_cql`` of the legacy table."""
    return f"DELETE FROM {keyspace}.{LEGACY_TABLE} USING TIMESTAMP ? WHERE entity_type = ? AND entity_id = ?"


def values_in(key: str) -> int:
    """How many feature values a cell of this key holds: a pack's members, or one (a key this build cannot
    read too: it is a cell all the same, and counting it must not stop what counts, an erasure's delete)."""
    if not key.startswith(PACK):
        return 1
    try:
        return len(parse_pack_key(key).members)
    except ValueError:
        return 1


def count_values(rows: Any) -> int:
    """The number of feature values the rows of ``select_vector_cql`` hold (a pack's members each count)."""
    return sum(values_in(key) for (cells,) in rows for key in (cells or ()))
