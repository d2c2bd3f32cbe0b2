"""Entity keys: the one rule that turns an entity's key fields into the ``entity_id`` both stores hold.

An entity type is keyed by one event field (``user_id``) or by several (``user_id`` and
``merchant_id``: a pair). The stores keep one string column either way: a single key is its value as
a string; a composite key is its values as strings, in the definition's key order, each with ``\\``
written ``\\\\`` and ``|`` written ``\\|``, joined by ``|``. The escapes make the encoding one-to-one:
``("a|b", "c")`` and ``("a", "b|c")`` never share an id. A null component makes the whole id null
(no row is written or matched for it).

The same rule is spelled three ways, all here: in Python (the online API), over Arrow arrays (the
point-in-time join's label frames) and as a Flink SQL expression (the window job).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the definition model imports this module and stays light: Arrow is imported where used
    import pyarrow as pa

SEPARATOR = "|"
ESCAPE = "\\"
MAX_KEY_FIELDS = 8
MAX_KEY_CHARS = 256
"""The longest single-key entity id, or value of one composite key field, in characters (Unicode code points; a
composite id, its values escaped and joined, may be longer): the online API serves 1-256 of them
(``serving/online/keys.py``), and the stream job dead-letters a longer key value as ``bad_key`` (``udfs/decode.py``;
Cassandra refuses a partition key over 65,535 bytes, which a longer value could pass)."""


def encode(values: Sequence[str]) -> str:
    """The ``entity_id`` of one key: ``values`` in the entity's key order (one value: itself)."""
    if len(values) == 1:
        return values[0]
    return SEPARATOR.join(v.replace(ESCAPE, ESCAPE * 2).replace(SEPARATOR, ESCAPE + SEPARATOR) for v in values)


def decode(entity_id: str, arity: int) -> tuple[str, ...]:
    """The key values an ``entity_id`` of an entity with ``arity`` key fields encodes; ValueError if none."""
    if arity == 1:
        return (entity_id,)
    parts: list[str] = []
    current: list[str] = []
    chars = iter(entity_id)
    for c in chars:
        if c == ESCAPE:
            nxt = next(chars, None)
            if nxt not in (ESCAPE, SEPARATOR):
                raise ValueError(f"{entity_id[:300]!r} is not an encoded key: a lone {ESCAPE!r}")
            current.append(nxt)
        elif c == SEPARATOR:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
    parts.append("".join(current))
    if len(parts) != arity:
        raise ValueError(f"{entity_id[:300]!r} encodes {len(parts)} key values, not {arity}")
    return tuple(parts)


def encode_arrays(columns: Sequence[pa.Array | pa.ChunkedArray]) -> pa.Array | pa.ChunkedArray:
    """``encode`` over aligned columns (any types castable to string): one ``entity_id`` per row, null where
    any component is null."""
    import pyarrow.compute as pc

    strings = [_key_text(c) for c in columns]
    if len(strings) == 1:
        return strings[0]
    escaped = [
        pc.replace_substring(pc.replace_substring(s, ESCAPE, ESCAPE * 2), SEPARATOR, ESCAPE + SEPARATOR)
        for s in strings
    ]
    return pc.binary_join_element_wise(*escaped, SEPARATOR, null_handling="emit_null")


def _key_text(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A key column as the job spells its values (Flink's ``CAST(... AS STRING)`` of a string, int or long field).
    A floating-point or decimal column's whole values are the integers they are: Arrow writes 12345678901.0 as
    ``1.2345678901e+10``, -0.0 as ``-0`` and a decimal 7.00 as ``7.00``, none of them a stored id (pandas makes an
    integer id column with a missing value float64); a NaN or an infinity is null; other values keep Arrow's text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if pa.types.is_decimal(kind) and kind.scale < 0:  # 7E+2 (no floor in Arrow): a whole number, written out
        kind = pa.decimal128(38, 0) if pa.types.is_decimal128(kind) else pa.decimal256(76, 0)
    elif pa.types.is_floating(kind):
        kind = pa.float64()  # half floats have no floor in Arrow; every one is a double
    elif not pa.types.is_decimal(kind):
        return column.cast(pa.string())
    values = column.cast(kind)
    if pa.types.is_floating(kind):  # a NaN or an infinity is no id: null, as a missing value (pandas' NaN is one)
        values = pc.if_else(pc.is_finite(values), values, pa.scalar(None, kind))
        floor = pc.floor(values)
        within = pc.and_(pc.greater_equal(values, -(2.0**63)), pc.less(values, 2.0**63))
        whole = pc.and_(pc.equal(floor, values), within)
        integers = pc.cast(pc.if_else(whole, values, pa.scalar(0, kind)), pa.int64(), safe=False)
    else:  # whole, and within int64: the integer read back is the same number
        floor = pc.floor(values)
        wide = pa.decimal128(38, 0) if pa.types.is_decimal128(kind) else pa.decimal256(76, 0)
        units = pc.cast(floor, wide)
        integers = pc.cast(units, pa.int64(), safe=False)
        whole = pc.and_(pc.equal(floor, values), pc.equal(pc.cast(integers, wide), units))
    return pc.if_else(whole, integers.cast(pa.string()), values.cast(pa.string()))


def decode_arrays(entity_ids: pa.Array, arity: int) -> list[pa.Array]:
    """``decode`` over an array of ids: one string array per key field (nulls stay null). Ids without a
    backslash split in Arrow; a batch holding one is decoded id by id."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if arity == 1:
        return [entity_ids]
    if not pc.any(pc.match_substring(entity_ids, ESCAPE)).as_py():
        parts = pc.split_pattern(entity_ids, SEPARATOR)
        if pc.sum(pc.not_equal(pc.list_value_length(parts), arity)).as_py():  # None: no id to judge
            raise ValueError(f"ids that do not encode {arity} key values")
        return [pc.list_element(parts, i) for i in range(arity)]
    rows = [None if i is None else decode(i, arity) for i in entity_ids.to_pylist()]
    return [pa.array([None if r is None else r[i] for r in rows], pa.string()) for i in range(arity)]


def encode_sql(fields: Sequence[str], ident: Callable[[str], str]) -> str:
    """``encode`` as a Flink SQL expression over the event fields ``fields`` (quoted by ``ident``).

    Standard SQL string literals take ``\\`` literally, so ``'\\'`` is one backslash; ``||`` and
    ``REPLACE`` return NULL for a NULL input, as ``encode_arrays`` does."""
    cast = [f"CAST({ident(f)} AS STRING)" for f in fields]
    if len(cast) == 1:
        return cast[0]
    escaped = [f"REPLACE(REPLACE({c}, '{ESCAPE}', '{ESCAPE * 2}'), '{SEPARATOR}', '{ESCAPE}{SEPARATOR}')" for c in cast]
    return f" || '{SEPARATOR}' || ".join(escaped)
