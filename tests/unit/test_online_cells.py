"""The online store's cells (``sinks.cassandra.layout``): keys, blobs, and the tie order their bytes give.

Cassandra keeps, of two cells of one key written with one write time, the greater blob compared as
unsigned bytes (checked against the real store in tests/integration/test_tie_order.py). Two such cells
of one feature hold one window end, so their blobs must order exactly as ``tie_key`` orders the values.
"""

from __future__ import annotations

import math
import random
import struct

import pytest

from registry.core.timeline import tie_key
from registry.core.value_types import VALUE_TYPES, ValueType
from sinks.cassandra import layout
from sinks.cassandra.reader import _vector

END = 1_900_000_000_000


def _samples(value_type: ValueType, rng: random.Random) -> list[object]:
    fixed: dict[ValueType, list[object]] = {
        "long": [0, 1, -1, 2**63 - 1, -(2**63), 255, -256],
        "double": [0.0, -0.0, 1.5, -1.5, 1e300, -1e-300, math.inf, -math.inf],
        "string": ["", "a", "ab", "a\x00", "\u00e9", "\U0001f600", "z" * 300, "\x7f"],
        "boolean": [True, False],
    }
    out = [*fixed[value_type], None]
    for _ in range(200):
        if value_type == "long":
            out.append(rng.randint(-(2**63), 2**63 - 1))
        elif value_type == "double":
            out.append(struct.unpack(">d", rng.getrandbits(64).to_bytes(8, "big"))[0])
        elif value_type == "string":
            out.append(
                "".join(
                    chr(rng.choice([rng.randint(0, 0x7F), rng.randint(0x80, 0x10FFFF)]))
                    for _ in range(rng.randint(0, 6))
                )
                .encode("utf-8", "replace")
                .decode("utf-8", "replace")
            )
    return [v for v in out if not (isinstance(v, float) and math.isnan(v))]


@pytest.mark.parametrize("value_type", VALUE_TYPES)
def test_blobs_of_one_window_order_as_tie_key(value_type: ValueType) -> None:
    values = _samples(value_type, random.Random(value_type))
    by_blob = sorted(values, key=lambda v: layout.encode_cell(value_type, v, END))
    by_tie = sorted(values, key=lambda v: tie_key(v, value_type))
    assert [tie_key(v, value_type) for v in by_blob] == [tie_key(v, value_type) for v in by_tie]


@pytest.mark.parametrize("value_type", VALUE_TYPES)
@pytest.mark.parametrize("end_ms", [0, END, -1, 2**62])
def test_a_cell_decodes_to_its_value_and_window_end(value_type: ValueType, end_ms: int) -> None:
    for value in _samples(value_type, random.Random(1)):
        got = layout.decode_cell(value_type, layout.encode_cell(value_type, value, end_ms))
        assert got == (value, end_ms)
        assert type(got[0]) is type(value)


def test_cell_keys_name_the_feature_version_and_type() -> None:
    for value_type in VALUE_TYPES:
        key = layout.cell_key("txn@count", 12, value_type)
        assert layout.parse_cell_key(key) == ("txn@count", 12, value_type)
    for bad in ["txn", "txn@1", "txn@x:l", "txn@1:q", "@1:l", "txn@-1:l"]:
        with pytest.raises(ValueError, match="not an online cell key"):
            layout.parse_cell_key(bad)


def test_a_vector_is_the_cells_of_its_one_row() -> None:
    cells = {
        layout.cell_key("a", 1, "long"): layout.encode_cell("long", 7, END),
        layout.cell_key("a", 2, "double"): layout.encode_cell("double", None, END - 5),
        layout.cell_key("b", 1, "string"): layout.encode_cell("string", "x|y", END),
    }
    assert _vector([(cells,)]) == {("a", 1): (7, END), ("a", 2): (None, END - 5), ("b", 1): ("x|y", END)}
    assert _vector([]) == {} and _vector([(None,)]) == {}
    assert layout.count_cells([(cells,)]) == 3 and layout.count_cells([]) == 0


def test_a_vector_decodes_the_drivers_own_map() -> None:
    """The reader walks the driver's map type by its entries list: the driver's class must keep it."""
    from cassandra.cqltypes import lookup_casstype

    cells = {layout.cell_key(f"f{i}", 1, "double"): layout.encode_cell("double", i / 2, END) for i in range(50)}
    cells[layout.cell_key("g", 3, "boolean")] = layout.encode_cell("boolean", None, END)
    map_type = lookup_casstype("MapType(UTF8Type, BytesType)")
    decoded = map_type.deserialize(map_type.serialize(cells, 5), 5)
    assert hasattr(decoded, "_items")
    expected = {("g", 3): (None, END)} | {(f"f{i}", 1): (i / 2, END) for i in range(50)}
    assert _vector([(decoded,)]) == expected == _vector([(dict(cells),)])
