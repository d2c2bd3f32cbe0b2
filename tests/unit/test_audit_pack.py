"""Audit of the online layout at its edges (docs/design.md §5.9, §5.2): packs and the cells before them.

Every value of every type round-trips through a pack bit-exactly, with 1 to 256 members; a blob that is not
one the layout writes (a boolean byte other than 0 or 1, bytes that are not UTF-8, an old cell neither a value
nor ``NULL``) and a key the layout never writes are a ``ValueError``, never a value; the writer's TTL rule is
strict at exactly ``W + ttl``."""

from __future__ import annotations

import math
import struct
from datetime import timedelta

import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.value_types import ValueType
from sinks.cassandra import layout
from sinks.cassandra.writer import MAX_TTL_S, Values, newest_cells
from sinks.records import FeatureRow

MIN = 60_000
T0 = 1_900_000_000_000 // (60 * MIN) * 60 * MIN


def _bits(value: object) -> object:
    return struct.pack(">d", value) if isinstance(value, float) else (type(value), value)


def _round_trip(members: list[layout.Member], values: list[object]) -> list[object]:
    """Encode ``values`` (given in ``members``' order) as the writer does and decode them through the key."""
    order = layout.pack_order(members)
    by_member = dict(zip(members, values, strict=True))
    blob = layout.pack(tuple(order)).encode(T0 * 1000 + 7, T0, [by_member[m] for m in order])
    ts, end, decoded = layout.parse_pack_key(layout.pack(tuple(order)).key).decode(blob)
    assert (ts, end) == (T0 * 1000 + 7, T0)
    got = dict(zip(order, decoded, strict=True))
    return [got[m] for m in members]


EDGES: dict[ValueType, list[object]] = {
    "long": [-(2**63), 2**63 - 1, 0, -1, None],
    "double": [
        -0.0,
        0.0,
        math.nan,
        struct.unpack(">d", bytes.fromhex("7ff8000000000001"))[0],  # a NaN with a payload
        struct.unpack(">d", bytes.fromhex("fff0000000000001"))[0],  # a signalling-pattern NaN, negative
        math.inf,
        -math.inf,
        5e-324,
        -5e-324,
        2.2250738585072009e-308,  # the largest subnormal
        1.7976931348623157e308,
        None,
    ],
    "string": ["", "é", "𝄞\U0010ffff", "\x00", "a" * 1_000_000, "\ufeff,*@:", None],
    "boolean": [True, False, None],
}


@pytest.mark.parametrize("value_type", list(EDGES))
def test_every_edge_value_round_trips_bit_exactly_alone_and_beside_every_type(value_type: ValueType) -> None:
    for value in EDGES[value_type]:
        (got,) = _round_trip([("f", 1, value_type)], [value])
        assert _bits(got) == _bits(value)
        others: list[layout.Member] = [("a", 2**31 - 1, "string"), ("z", 1, "long"), ("m", 1, "boolean")]
        got_all = _round_trip([("f", 1, value_type), *others], [value, "", None, False])
        assert [_bits(v) for v in got_all] == [_bits(v) for v in [value, "", None, False]]


@pytest.mark.parametrize("n", [1, 7, 8, 9, 255, 256])
def test_a_pack_of_1_to_256_members_round_trips_and_257_is_refused(n: int) -> None:
    types: list[ValueType] = ["long", "double", "string", "boolean"]
    members: list[layout.Member] = [(f"f{i:03d}" + "x" * 59, 2**31 - 1, types[i % 4]) for i in range(n)]
    values = [EDGES[t][i % len(EDGES[t])] for i, (_, _, t) in enumerate(members)]
    assert [_bits(v) for v in _round_trip(members, values)] == [_bits(v) for v in values]
    if n == 256:
        with pytest.raises(ValueError, match="1 to 256"):
            layout.Pack(tuple(layout.pack_order([*members, ("g", 1, "long")])))
    with pytest.raises(ValueError, match="1 to 256"):
        layout.Pack(())


def test_a_boolean_byte_other_than_0_or_1_is_refused_not_read_as_true() -> None:
    one: tuple[layout.Member, ...] = (("f", 1, "boolean"),)
    several: tuple[layout.Member, ...] = (
        ("a", 1, "long"),
        ("b", 1, "boolean"),
        ("c", 1, "boolean"),
        ("s", 1, "string"),
    )
    # A boolean's byte: after the write time, the window end, the bitmap (one byte) and the fixed values before it.
    cases: list[tuple[tuple[layout.Member, ...], list[object], list[int]]] = [
        (one, [True], [17]),
        (several, [5, False, True, "x"], [25, 26]),
    ]
    for members, values, where in cases:
        p = layout.pack(members)
        blob = p.encode(1, 2, values)
        for at in where:
            for byte in (2, 0xFF):
                bad = bytearray(blob)
                bad[at] = byte
                with pytest.raises(ValueError, match="boolean byte"):
                    p.decode(bytes(bad))
        assert p.decode(blob) == (1, 2, values)


def test_a_pack_string_that_is_not_utf8_is_a_valueerror_naming_the_pack() -> None:
    p = layout.pack((("f", 1, "string"),))
    blob = p.encode(1, 2, ["é"])
    with pytest.raises(ValueError, match="not a blob of pack"):
        p.decode(blob[:-1])  # cut inside the two bytes of "é"


@pytest.mark.parametrize("value_type", ["long", "double", "boolean", "string"])
def test_an_old_cell_neither_a_value_nor_null_is_refused(value_type: ValueType) -> None:
    value = {"long": 5, "double": 1.5, "boolean": True, "string": "hi"}[value_type]
    good, null = layout.encode_cell(value_type, value, T0), layout.encode_cell(value_type, None, T0)
    assert layout.decode_cell(value_type, good) == (value, T0)
    assert layout.decode_cell(value_type, null) == (None, T0)
    assert layout.FAST[value_type](null if value_type in ("string", "boolean") else good)[1] == T0
    bad = [b"", b"\x00" * 7]  # shorter than a window end
    if value_type != "string":  # cut, too long, NULL with one byte changed, 20 bytes
        bad += [good[:-1], good + b"\x00", b"\x00" + null[1:], b"\x01" * 20]
    else:  # a 0xff that is not NULL, a UTF-8 sequence cut
        bad += [good[:8] + b"\xffjunk", good[:8] + "é".encode()[:1]]
    if value_type == "boolean":
        bad += [b"\x02" + good[1:]]
    for blob in bad:
        with pytest.raises(ValueError, match=f"not a {value_type} cell"):
            layout.decode_cell(value_type, blob)
    if value_type == "boolean":
        with pytest.raises(ValueError, match="not a boolean cell"):
            layout.FAST["boolean"](b"\x02" + good[1:])  # the reader's first try


@pytest.mark.parametrize("key", ["*f@01:l", "*f@١:l", "f@01:l", "f@١:l", "*a@1:l,a@1:s"])
def test_a_key_the_layout_never_writes_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match=r"not an online cell key|a pack holds a feature version once"):
        layout.parse_pack_key(key) if key.startswith("*") else layout.parse_cell_key(key)


def _count() -> FeatureDefinition:
    return FeatureCatalog.from_folder().get("user", "txn_count_1h")


def _cells(now_ms: int, definition: FeatureDefinition) -> tuple[dict[tuple[int, int], dict[str, bytes]], int]:
    buffered = Values()
    buffered.add_row(FeatureRow.of(definition, "e", 1, T0 - 60 * MIN, T0, 1))
    cells, expired = newest_cells(buffered, now_ms)
    return cells.get(("user", "e"), {}), expired


def test_a_value_exactly_at_its_ttl_is_written_and_one_ms_past_it_is_not() -> None:
    definition = _count()
    ttl_ms = int(definition.ttl.total_seconds() * 1000)
    at, expired = _cells(T0 + ttl_ms, definition)
    assert expired == 0 and [ttl for _, ttl in at] == [layout.EXPIRED_GRACE_S]  # 0 s left + the grace hour
    one_s_left, _ = _cells(T0 + ttl_ms - 1_000, definition)
    ceil_up, _ = _cells(T0 + ttl_ms - 999, definition)
    assert [ttl for _, ttl in one_s_left] == [ttl for _, ttl in ceil_up] == [1 + layout.EXPIRED_GRACE_S]
    past, expired = _cells(T0 + ttl_ms + 1, definition)
    assert past == {} and expired == 1


def test_the_longest_ttl_is_cut_to_cassandras_longest() -> None:
    definition = _count().model_copy(update={"ttl": timedelta(days=7300)})
    cells, _ = _cells(T0 - 3_600_000, definition)  # a window an hour ahead of this clock
    # In 2030 20 years would end after 2038-01-19T03:14:06Z, the last expiry Cassandra 5.0 accepts by default.
    assert [ttl for _, ttl in cells] == [layout.LAST_EXPIRY_S - layout.EXPIRY_MARGIN_S - (T0 - 3_600_000) // 1000]
    assert layout.ttl_cap_s(0) == MAX_TTL_S == 630_720_000  # Cassandra's longest TTL, where 2038 is further


def _members() -> tuple[layout.Pack, layout.Pack]:
    counts = layout.pack(tuple(layout.pack_order([("a", 1, "long"), ("b", 1, "string")])))
    flags = layout.pack((("c", 1, "boolean"),))
    return counts, flags


def test_a_read_skips_a_cell_it_cannot_decode_counts_it_and_serves_the_rest() -> None:
    """A damaged pack, a damaged old cell and a key this build never writes are skipped (their features read
    as absent, so `missing`), counted, and never fail the read of the entity's other features."""
    from sinks.cassandra.reader import Undecodable, _vector

    counts, flags = _members()
    good = counts.encode(T0 * 1000, T0, [5, "x"])
    bad_flag = bytearray(flags.encode(T0 * 1000 + 1, T0, [True]))
    bad_flag[-1] = 2
    old = layout.encode_cell("double", 1.5, T0 - MIN)
    before = Undecodable.cells
    vector = _vector(
        [
            (
                {
                    counts.key: good,
                    flags.key: bytes(bad_flag),
                    layout.cell_key("d", 1, "double"): old,
                    layout.cell_key("e", 1, "long"): old + b"\x00",
                    "*zz@1:q": b"",
                    "f@01:l": old,
                },
            )
        ]
    )
    assert dict(vector) == {("a", 1): (5, T0), ("b", 1): ("x", T0), ("d", 1): (1.5, T0 - MIN)}
    assert Undecodable.cells - before == 4
    alone = _vector([({counts.key: good[:-1] + b"\xff"},)])  # its one pack, damaged: nothing of it is served
    assert dict(alone) == {} and Undecodable.cells - before == 5


def test_the_api_exposes_the_count_of_skipped_cells() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from serving.online.metrics import Metrics
    from sinks.cassandra.reader import Undecodable, _vector

    registry = CollectorRegistry()
    Metrics(registry)
    _vector([({"*zz@1:q": b""},)])
    line = next(x for x in generate_latest(registry).decode().splitlines() if x.startswith("fs_online_undecodable"))
    assert line == f"fs_online_undecodable_cells_total {float(Undecodable.cells)}"
