"""Avro ints outside 32 bits are refused wherever the writer put them (``udfs.avro_ints``), as the JVM decoder
refuses them: a record the live stream dead-letters is not accepted by the Python decoder either."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.core.errors import DecodeError
from schemas import load_schema
from schemas.wire import frame
from tests.unit.test_decode import EVENT
from udfs.avro_ints import INT_MAX, INT_MIN, int_outside_32_bits
from udfs.decode import EventDecoder

NOW_MS = 1_700_000_000_000
READER = load_schema("card_transaction")

# Where an int can sit, each as a writer-only field ("extra") and a value that puts `v` there.
PLACES: dict[str, tuple[Any, Any]] = {
    "field": ("int", lambda v: v),
    "union": (["null", "string", "int"], lambda v: v),
    "array": ({"type": "array", "items": "int"}, lambda v: [1, v, 2]),
    "map": ({"type": "map", "values": ["null", "int"]}, lambda v: {"a": None, "b": v}),
    "record": (
        {"type": "record", "name": "Inner", "fields": [{"name": "s", "type": "string"}, {"name": "n", "type": "int"}]},
        lambda v: {"s": "x", "n": v},
    ),
    "nested": ({"type": "array", "items": {"type": "map", "values": "int"}}, lambda v: [{}, {"k": v}]),
}


def as_long(schema: Any) -> Any:
    """``schema`` with every int a long: what a writer that put a wider value there wrote."""
    if schema == "int":
        return "long"
    if isinstance(schema, list):
        return [as_long(s) for s in schema]
    if isinstance(schema, dict):
        return {k: as_long(v) for k, v in schema.items()}
    return schema


def _writer(extra: Any) -> dict[str, Any]:
    return {**READER, "fields": [*READER["fields"][:3], {"name": "extra", "type": extra}, *READER["fields"][3:]]}


def _body(schema: Any, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


def _decoder(writer: dict[str, Any]) -> EventDecoder:
    return EventDecoder({7: json.dumps(writer)}.get, READER, timestamp_field="event_time", clock_ms=lambda: NOW_MS)


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("value", [INT_MIN - 1, INT_MAX + 1, 2**40, -(2**62)])
def test_a_writer_only_int_outside_32_bits_is_undecodable(place: str, value: int) -> None:
    extra, put = PLACES[place]
    body = _body(as_long(_writer(extra)), {**EVENT, "extra": put(value)})
    with pytest.raises(DecodeError) as refused:
        _decoder(_writer(extra)).decode(frame(7, body))
    assert refused.value.reason == "undecodable"
    assert refused.value.detail == f"Avro body does not match schema id 7: {value} is not an int"


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("value", [INT_MIN, -1, 0, INT_MAX])
def test_ints_at_the_bounds_decode(place: str, value: int) -> None:
    extra, put = PLACES[place]
    body = _body(_writer(extra), {**EVENT, "extra": put(value)})
    assert _decoder(_writer(extra)).decode(frame(7, body))["amount"] == 12.5


def test_a_block_written_with_its_byte_size_is_skipped_by_it() -> None:
    """As the JVM decoder skips it: the ints inside are not looked at (documented in ``udfs.avro_ints``)."""
    writer = _writer({"type": "array", "items": "int"})
    head = _body({"type": "record", "name": "H", "fields": READER["fields"][:3]}, EVENT)
    tail = _body({"type": "record", "name": "T", "fields": READER["fields"][3:]}, EVENT)
    items = _body({"type": "record", "name": "I", "fields": [{"name": "v", "type": "long"}]}, {"v": 2**40})
    count = _body({"type": "record", "name": "C", "fields": [{"name": "c", "type": "long"}]}, {"c": -1})
    size = _body({"type": "record", "name": "S", "fields": [{"name": "s", "type": "long"}]}, {"s": len(items)})
    block = count + size + items + b"\x00"
    assert _decoder(writer).decode(frame(7, head + block + tail))["user_id"] == "user_00001"


def test_a_reader_long_promoted_from_a_writer_int_is_held_to_32_bits() -> None:
    reader = {**READER, "fields": [*READER["fields"], {"name": "n", "type": "long", "default": 0}]}
    writer = {**READER, "fields": [*READER["fields"], {"name": "n", "type": "int"}]}
    body = _body(as_long(writer), {**EVENT, "n": 2**31})
    decoder = EventDecoder({7: json.dumps(writer)}.get, reader, timestamp_field="event_time", clock_ms=lambda: NOW_MS)
    with pytest.raises(DecodeError, match="2147483648 is not an int"):
        decoder.decode(frame(7, body))


def wide_varint(n: int) -> bytes:
    """``n`` zigzag-encoded as Avro writes a long (any width: the encoder of a writer that is wrong)."""
    raw = (n << 1) ^ (n >> 70)
    out = bytearray()
    while True:
        byte = raw & 0x7F
        raw >>= 7
        if raw:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _with_extra(extra: Any, extra_bytes: bytes) -> bytes:
    """A body of ``_writer(extra)`` whose ``extra`` field is the raw ``extra_bytes``."""
    head = _body({"type": "record", "name": "H", "fields": READER["fields"][:3]}, {k: EVENT[k] for k in _HEAD})
    tail = _body({"type": "record", "name": "T", "fields": READER["fields"][3:]}, {k: EVENT[k] for k in _TAIL})
    return head + extra_bytes + tail


_HEAD = [f["name"] for f in READER["fields"][:3]]
_TAIL = [f["name"] for f in READER["fields"][3:]]
_ENUM = {"type": "enum", "name": "Channel", "symbols": ["app", "web"]}
_TEN_BYTES_OVER_64 = bytes([0xFF] * 9 + [0x02])  # a 10th byte above 1: bits beyond 64, which fastavro drops
_ELEVEN_BYTES = bytes([0x80] * 10 + [0x00])


@pytest.mark.parametrize(
    ("extra", "extra_bytes", "detail"),
    [
        (["null", "string"], wide_varint(-1) + wide_varint(1) + b"x", "a union index -1 is not one of 0-1"),
        (["null", "string"], wide_varint(2), ""),  # fastavro refuses it itself
        (_ENUM, wide_varint(-1), "an enum index -1 is not one of 0-1"),
        (_ENUM, wide_varint(2**31), "2147483648 is not an int"),
        ("long", _TEN_BYTES_OVER_64, "a varint longer than 64 bits"),
        ("long", _ELEVEN_BYTES, "a varint longer than 64 bits"),
        ("int", wide_varint(2**64 + 5), "a varint longer than 64 bits"),  # wraps to 5 in 64 bits: was accepted
        ("string", wide_varint(2**64 + 2) + b"ab", "a varint longer than 64 bits"),  # was an IndexError
        ("string", wide_varint(-(2**63)) + b"ab", ""),  # refused by fastavro's reading itself
        ({"type": "array", "items": "long"}, wide_varint(-1) + wide_varint(2**40) + b"x", ""),
    ],
)
def test_what_the_jvm_decoder_refuses_is_undecodable(extra: Any, extra_bytes: bytes, detail: str) -> None:
    """Each is a body fastavro decodes (or decoded) without complaint, where the JVM decoder refuses it: a record
    the live stream dead-letters that a backfill from the archive would have counted (or failed the whole
    backfill on, with an IndexError)."""
    with pytest.raises(DecodeError) as refused:
        _decoder(_writer(extra)).decode(frame(7, _with_extra(extra, extra_bytes)))
    assert refused.value.reason == "undecodable"
    assert refused.value.detail.startswith(f"Avro body does not match schema id 7: {detail}")


@pytest.mark.parametrize(
    ("extra", "extra_bytes"),
    [
        ("long", wide_varint(-(2**63))),  # ten bytes, the 10th byte 1: the widest long
        ("long", wide_varint(2**63 - 1)),
        (["null", "string"], wide_varint(1) + wide_varint(1) + b"x"),
        (_ENUM, wide_varint(1)),
        ("string", wide_varint(0)),
    ],
)
def test_the_widest_legal_varints_and_indexes_decode(extra: Any, extra_bytes: bytes) -> None:
    assert _decoder(_writer(extra)).decode(frame(7, _with_extra(extra, extra_bytes)))["amount"] == 12.5


@pytest.mark.parametrize("index", [2, 5, INT_MAX])
def test_a_writer_only_enum_index_past_its_symbols_decodes_as_the_jvm_skips_it(index: int) -> None:
    """Avro's Java reader checks an enum's index against its symbols only when it reads the enum; the job's reader
    schemas have no enum, so the stream skips it and accepts the record. The walk refused it (``an enum index 2 is
    not one of 0-1``): a backfill from the archive lost an event the stream counted."""
    assert _decoder(_writer(_ENUM)).decode(frame(7, _with_extra(_ENUM, wide_varint(index))))["amount"] == 12.5


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(sorted(PLACES)), min_size=1, max_size=4),
    st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), min_size=4, max_size=4),
)
def test_the_first_int_outside_32_bits_against_a_brute_force_reference(places: list[str], values: list[int]) -> None:
    """Several int places in one record, written as longs: the answer is the first value, in field order, that
    does not fit 32 bits (the reference reads the values back from the record fastavro decodes)."""
    fields = [{"name": f"f{i}", "type": PLACES[p][0]} for i, p in enumerate(places)]
    for i, field in enumerate(fields):  # named types once per schema
        if isinstance(field["type"], dict) and field["type"].get("type") == "record":
            field["type"] = {**field["type"], "name": f"Inner{i}"}
    schema = {"type": "record", "name": "R", "fields": fields}
    record = {f"f{i}": PLACES[p][1](values[i]) for i, p in enumerate(places)}
    body = _body(as_long(schema), record)
    expected = next((v for v in values[: len(places)] if not INT_MIN <= v <= INT_MAX), None)
    assert int_outside_32_bits(fastavro.parse_schema(schema), body) == expected


def test_bodies_are_walked_only_where_the_jvm_could_refuse_what_fastavro_read() -> None:
    """The walk cost a third of an archive backfill's decoding (72K -> 50K events/s): the reader's schema (strings,
    a double, a long) is not walked unless a body holds nine high-bit bytes in a row (a varint past 63 bits)."""
    from udfs.avro_ints import may_hold_a_long_varint, walks

    assert not walks(fastavro.parse_schema(READER))
    for extra in ("int", ["null", "string"], _ENUM, {"type": "array", "items": {"type": "map", "values": "int"}}):
        assert walks(fastavro.parse_schema(_writer(extra))), extra
    assert not walks(fastavro.parse_schema(_writer({"type": "array", "items": "long"})))
    assert may_hold_a_long_varint(b"x" + _TEN_BYTES_OVER_64) and may_hold_a_long_varint(_ELEVEN_BYTES)
    assert not may_hold_a_long_varint(wide_varint(-(2**62)) + b"plain")  # nine bytes: the 9th has no high bit


_NO_DATA_ITEMS = {
    "null": "null",
    "empty record": {"type": "record", "name": "Empty", "fields": []},
    "size-0 fixed": {"type": "fixed", "name": "Nothing", "size": 0},
    "record of nulls": {"type": "record", "name": "Nulls", "fields": [{"name": "a", "type": "null"}]},
}


@pytest.mark.parametrize("items", sorted(_NO_DATA_ITEMS))
def test_an_array_of_items_holding_no_data_may_not_count_more_items_than_bytes_left(items: str) -> None:
    """2^62 nulls in a 46-byte record: fastavro (and the JVM decoder) looped over them for ever, reading no byte,
    and the stream job hung on the one record. Refused as undecodable, as the JVM decoder refuses it; a count up to
    the bytes left still decodes."""
    writer = _writer({"type": "array", "items": _NO_DATA_ITEMS[items]})
    head = _body({"type": "record", "name": "H", "fields": READER["fields"][:3]}, EVENT)
    tail = _body({"type": "record", "name": "T", "fields": READER["fields"][3:]}, EVENT)
    with pytest.raises(DecodeError) as refused:
        _decoder(writer).decode(frame(7, head + wide_varint(2**62) + b"\x00" + tail))
    assert refused.value.reason == "undecodable"
    assert "a block of 4611686018427387904 items with" in refused.value.detail
    fits = len(b"\x00" + tail)  # the bytes left after the count
    assert _decoder(writer).decode(frame(7, head + wide_varint(fits) + b"\x00" + tail))["amount"] == 12.5
    with pytest.raises(DecodeError, match=f"a block of {fits + 1} items with {fits} bytes left"):
        _decoder(writer).decode(frame(7, head + wide_varint(fits + 1) + b"\x00" + tail))


def test_an_array_of_items_holding_data_is_read_as_before() -> None:
    writer = _writer({"type": "array", "items": ["null", "int"]})
    body = _body(writer, {**EVENT, "extra": [None] * 50})
    assert _decoder(writer).decode(frame(7, body))["amount"] == 12.5


def test_a_recursive_field_nested_past_the_python_stack_is_undecodable_not_a_recursion_error() -> None:
    """A writer-only ``Node {next: [null, Node]}`` 1,500 deep: a bare RecursionError stopped an archive read
    (``jobs.history`` catches DecodeError). Known difference (design §5.3): the JVM decoder reads it."""
    node = {"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"], "default": None}]}
    writer = _writer(["null", node])
    head = _body({"type": "record", "name": "H", "fields": READER["fields"][:3]}, EVENT)
    tail = _body({"type": "record", "name": "T", "fields": READER["fields"][3:]}, EVENT)
    deep = b"\x02" * 1_501 + b"\x00"  # the union's Node branch, 1,500 nodes each opening the next, then null
    with pytest.raises(DecodeError, match="nested deeper than the Python decoder reads") as refused:
        _decoder(writer).decode(frame(7, head + deep + tail))
    assert refused.value.reason == "undecodable"
    shallow = b"\x02" * 11 + b"\x00"
    assert _decoder(writer).decode(frame(7, head + shallow + tail))["amount"] == 12.5
