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
        key = layout.cell_key("txn_count", 12, value_type)
        assert layout.parse_cell_key(key) == ("txn_count", 12, value_type)
    for bad in ["txn", "txn@1", "txn@x:l", "txn@1:q", "@1:l", "txn@-1:l", "txn@count@12:l"]:  # no "@" in a name
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
    assert layout.count_values([(cells,)]) == 3 and layout.count_values([]) == 0


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


# --- packs: one cell for the features of one window -------------------------------------------------


def _members(rng: random.Random, n: int) -> list[layout.Member]:
    names = rng.sample([f"f{i}" for i in range(40)], n)
    return layout.pack_order([(name, rng.randint(1, 3), rng.choice(VALUE_TYPES)) for name in names])


@pytest.mark.parametrize("seed", range(40))
def test_a_pack_decodes_to_its_values_write_time_and_window_end(seed: int) -> None:
    rng = random.Random(seed)
    members = _members(rng, rng.choice([1, 2, 7, 8, 9, 17, 40]))
    one = layout.pack(tuple(members))
    pools = {t: _samples(t, rng) for t in VALUE_TYPES}
    for _ in range(20):
        values = [rng.choice(pools[t]) if rng.random() < 0.8 else None for _, _, t in members]
        ts, end = rng.randint(-(2**62), 2**62), rng.choice([0, END, -1, 2**62])
        got_ts, got_end, got = one.decode(one.encode(ts, end, values))
        assert (got_ts, got_end, got) == (ts, end, values)
        assert [type(v) for v in got] == [type(v) for v in values]
    assert layout.parse_pack_key(one.key) is one
    assert layout.values_in(one.key) == len(members) and layout.values_in(layout.cell_key("a", 1, "long")) == 1


@pytest.mark.parametrize("value_type", VALUE_TYPES)
def test_blobs_of_a_one_feature_pack_order_as_tie_key(value_type: ValueType) -> None:
    """Cassandra keeps the greater of two blobs of one key and write time: for a pack of one feature that must be
    the value the tie rule keeps, as for a feature's own cell."""
    one = layout.pack((("a", 1, value_type),))
    values = _samples(value_type, random.Random(value_type))
    by_blob = sorted(values, key=lambda v: one.encode(END * 1000 + 3, END, [v]))
    by_tie = sorted(values, key=lambda v: tie_key(v, value_type))
    assert [tie_key(v, value_type) for v in by_blob] == [tie_key(v, value_type) for v in by_tie]


def test_pack_keys_and_blobs_of_another_shape_are_refused() -> None:
    with pytest.raises(ValueError, match="1 to 256 members"):
        layout.Pack(())
    with pytest.raises(ValueError, match="1 to 256 members"):
        layout.Pack(tuple((f"f{i:03d}", 1, "long") for i in range(257)))
    with pytest.raises(ValueError, match="pack_order"):
        layout.Pack((("b", 1, "long"), ("a", 1, "long")))
    with pytest.raises(ValueError, match="pack_order"):
        layout.Pack((("a", 1, "string"), ("b", 1, "long")))
    with pytest.raises(ValueError, match="pack_order"):
        layout.Pack((("a", 1, "long"), ("a", 1, "long")))
    for bad in ["a@1:l", "*", "*a@1:l,", "*a@1:q"]:
        with pytest.raises(ValueError, match="not an online"):
            layout.parse_pack_key(bad)
    fixed = layout.pack((("a", 1, "long"), ("b", 1, "double")))
    blob = fixed.encode(1, 2, [3, 4.0])
    for wrong in (blob[:-1], blob + b"\x00"):
        with pytest.raises(ValueError, match="not a blob of pack"):
            fixed.decode(wrong)
    texts = layout.pack((("a", 1, "long"), ("s", 1, "string"), ("t", 1, "string")))
    with pytest.raises(ValueError, match="3 strings, not 2"):
        texts.decode(texts.encode(1, 2, [3, "x", "y"]) + b"\xffz")


def _cells(rng: random.Random) -> tuple[dict[str, bytes], dict[tuple[str, int], tuple[object, int]]]:
    """A row mixing features' own cells and packs that overlap, and the value the rule keeps per feature
    (brute force: every candidate of a feature with its write time, a feature's own cell at its window end
    and revision 0; the greatest write time, then the greatest ``tie_key``)."""
    types = {f"f{i}": rng.choice(VALUE_TYPES) for i in range(8)}
    pools = {t: _samples(t, rng)[:12] for t in VALUE_TYPES}
    cells: dict[str, bytes] = {}
    candidates: dict[tuple[str, int], list[tuple[int, tuple[int, int | bytes], object, int]]] = {}
    ends = [END, END + 300_000, END + 600_000]
    for name in rng.sample(sorted(types), rng.randint(0, 4)):  # own cells, as written before packs
        end, value = rng.choice(ends), rng.choice(pools[types[name]])
        cells[layout.cell_key(name, 1, types[name])] = layout.encode_cell(types[name], value, end)
        candidates.setdefault((name, 1), []).append((end * 1000, tie_key(value, types[name]), value, end))
    for _ in range(rng.randint(1, 4)):
        members = layout.pack_order([(n, 1, types[n]) for n in rng.sample(sorted(types), rng.randint(1, 5))])
        end = rng.choice(ends)
        ts = end * 1000 + rng.choice([0, 0, 1, 2])
        values = [rng.choice(pools[t]) for _, _, t in members]
        one = layout.pack(tuple(members))
        if one.key in cells:
            continue  # one key holds one blob
        cells[one.key] = one.encode(ts, end, values)
        for (name, version, t), value in zip(members, values, strict=True):
            candidates.setdefault((name, version), []).append((ts, tie_key(value, t), value, end))
    expected = {ref: max(c, key=lambda c: (c[0], c[1]))[2:] for ref, c in candidates.items()}
    return cells, expected  # type: ignore[return-value]


@pytest.mark.parametrize("seed", range(60))
def test_a_vector_of_packs_and_cells_keeps_per_feature_the_newest(seed: int) -> None:
    rng = random.Random(seed)
    cells, expected = _cells(rng)
    items = list(cells.items())
    rng.shuffle(items)
    assert _vector([(dict(items),)]) == expected
    assert layout.count_values([(cells,)]) == sum(layout.values_in(k) for k in cells)


def test_a_vector_of_one_pack_decodes_the_drivers_own_map() -> None:
    from cassandra.cqltypes import lookup_casstype

    members = layout.pack_order([(f"f{i:02d}", 1, VALUE_TYPES[i % 4]) for i in range(60)])
    one = layout.pack(tuple(members))
    values: list[object] = [
        {"long": i, "double": i / 2, "string": f"s{i}", "boolean": i % 3 == 0}[t] for i, (_, _, t) in enumerate(members)
    ]
    values[5] = values[-1] = None
    cells = {one.key: one.encode(END * 1000 + 1, END, values)}
    map_type = lookup_casstype("MapType(UTF8Type, BytesType)")
    decoded = map_type.deserialize(map_type.serialize(cells, 5), 5)
    expected = {(name, version): (value, END) for (name, version, _), value in zip(members, values, strict=True)}
    assert _vector([(decoded,)]) == expected
    assert layout.count_values([(decoded,)]) == 60


@pytest.mark.parametrize("key", ["A B@1:l", "a@@1:l", "a@2147483648:l", "a@0:l", "a@1:x", "@1:l", "a\n@1:l"])
def test_a_cell_key_the_layout_does_not_write_is_refused(key: str) -> None:
    """Only a name of the registry's grammar and a version from 1 to 2^31-1: ``A B``, ``a@`` and version 0 or 2^31
    were read as features."""
    with pytest.raises(ValueError, match="not an online cell key"):
        layout.parse_cell_key(key)
    with pytest.raises(ValueError, match="not an online cell key"):
        layout.parse_pack_key("*" + key)
    assert layout.parse_cell_key("txn_count_1h@2147483647:d") == ("txn_count_1h", 2_147_483_647, "double")


def test_a_cell_this_build_cannot_read_still_counts_and_never_stops_the_count() -> None:
    """An erasure counts the cells it deletes before deleting them: a damaged pack key raised there, and the
    entity's row was never deleted, on every run."""
    cells = {"*a@1:l": b"", "*a@01:l": b"", layout.cell_key("b", 1, "long"): b""}
    assert layout.count_values([(cells,)]) == 3
