"""The decoder against the docs' dead-letter contract (README "The stream job", design §5.3 and §6 "Bad input").

Every input is either an event in the reader schema's shape that breaks none of the documented rules, or a
``DecodeError`` with one of the documented reasons; nothing else ever comes out (design §10: "random bytes must
yield ``DecodeError`` only"). Where the docs fix the reason (the frame, a known record's content, the 1 h and 1970
bounds, an int's 32 bits), a model written from them says which.
"""

from __future__ import annotations

import io
import json
import math
import struct
from typing import Any

import fastavro
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from registry.core.errors import DecodeError
from schemas import load_schema, schema_text
from schemas.wire import frame
from udfs.decode import MAX_FUTURE_MS, EventDecoder

NOW_MS = 1_700_000_000_000
READER = load_schema("card_transaction")

# design §6 "Bad input": the decoder's reasons, in its order (timestamp_mismatch needs the Kafka timestamp).
REASONS = (
    "empty",
    "truncated",
    "bad_magic",
    "unknown_schema_id",
    "bad_writer_schema",
    "undecodable",
    "missing_field",
    "bad_key",
    "non_finite",
    "future_timestamp",
    "bad_timestamp",
    "timestamp_mismatch",
)
CONTENT_REASONS = ("missing_field", "bad_key", "non_finite", "future_timestamp", "bad_timestamp")

V1, V_LAST_STRING, V_FLOAT, V_BAD, V_INTS = 1, 2, 3, 4, 5
# A writer whose last field is a string (a bad length there must not read "the rest"), one of float amounts,
# and one with writer-only ints in a field, a union, an array, a map and a nested record.
LAST_STRING = {**READER, "fields": [*READER["fields"], {"name": "channel", "type": "string"}]}
FLOAT_AMOUNT = {
    **READER,
    "fields": [f if f["name"] != "amount" else {"name": "amount", "type": "float"} for f in READER["fields"]],
}
INT_FIELDS = [
    {"name": "n", "type": "int"},
    {"name": "u", "type": ["null", "int"]},
    {"name": "a", "type": {"type": "array", "items": "int"}},
    {"name": "m", "type": {"type": "map", "values": "int"}},
    {"name": "r", "type": {"type": "record", "name": "Inner", "fields": [{"name": "i", "type": "int"}]}},
]
INTS = {**READER, "fields": [*READER["fields"], *INT_FIELDS]}
SCHEMAS = {
    V1: schema_text("card_transaction"),
    V_LAST_STRING: json.dumps(LAST_STRING),
    V_FLOAT: json.dumps(FLOAT_AMOUNT),
    V_BAD: '{"type": "record", "name": "Broken", "fields": [{"name": "x", "type": "nope"}]}',
    V_INTS: json.dumps(INTS),
}
WRITERS = {V1: READER, V_LAST_STRING: LAST_STRING, V_FLOAT: FLOAT_AMOUNT, V_INTS: INTS}
# The same shape with every int a long: writes values an int cannot hold, byte for byte as a 64-bit varint.
INTS_AS_LONGS = json.loads(json.dumps(INTS).replace('"int"', '"long"'))


def decoder() -> EventDecoder:
    return EventDecoder(SCHEMAS.get, READER, timestamp_field="event_time", clock_ms=lambda: NOW_MS)


def body(record: dict[str, Any], schema: dict[str, Any] = READER) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


def outcome(payload: bytes | None) -> dict[str, Any] | str:
    """The decoded event, or the reason; any other exception fails the test."""
    try:
        return decoder().decode(payload)
    except DecodeError as exc:
        assert exc.reason in REASONS, exc
        assert str(exc) == f"{exc.reason}: {exc.detail}"
        return exc.reason


def assert_valid_event(event: dict[str, Any]) -> None:
    """What an accepted event is, by the docs: the reader's fields, required ones present and ``*_id`` strings
    not empty, floats finite, the event time from 1970 to now + 1 h (exactly 1 h ahead included)."""
    assert list(event) == [f["name"] for f in READER["fields"]]
    for name, value in event.items():
        assert value is not None
        if name.endswith("_id"):
            assert isinstance(value, str) and value
        if isinstance(value, float):
            assert math.isfinite(value)
    assert type(event["event_time"]) is int
    assert 0 <= event["event_time"] <= NOW_MS + MAX_FUTURE_MS


def expected_reason(record: dict[str, Any]) -> str | None:
    """The docs' content rules for a record that decodes, in the decoder's order (design §6)."""
    if any(name.endswith("_id") and record[name] == "" for name in ("transaction_id", "user_id", "merchant_id")):
        return "missing_field"
    if not math.isfinite(record["amount"]):
        return "non_finite"
    if record["event_time"] > NOW_MS + MAX_FUTURE_MS:  # "more than 1 h ... exactly 1 h ahead is accepted"
        return "future_timestamp"
    if record["event_time"] < 0:  # "before 1970"
        return "bad_timestamp"
    return None


def frame_reason(payload: bytes | None) -> str | None:
    """The docs' frame rules: empty, shorter than the 5-byte header, magic byte not 0, id not in the registry."""
    if not payload:
        return "empty"
    if len(payload) < 5:
        return "truncated"
    if payload[0] != 0:
        return "bad_magic"
    if struct.unpack(">I", payload[1:5])[0] not in SCHEMAS:
        return "unknown_schema_id"
    return None


ids = st.sampled_from(["", "u", "user_00001", "é", "\x00", "x" * 300])
records = st.fixed_dictionaries(
    {
        "transaction_id": ids,
        "user_id": ids,
        "merchant_id": ids,
        "amount": st.floats(allow_nan=True, allow_infinity=True),
        "currency": st.text(max_size=5),
        "event_time": st.one_of(
            st.integers(-(2**63), 2**63 - 1),
            st.integers(NOW_MS + MAX_FUTURE_MS - 2, NOW_MS + MAX_FUTURE_MS + 2),
            st.integers(-2, 2),
        ),
    }
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.one_of(st.none(), st.binary(max_size=64)))
@example(None)
@example(b"")
@example(b"\x00\x00\x00\x00")
def test_random_bytes_are_refused_by_frame_or_body(payload: bytes | None) -> None:
    got = outcome(payload)
    want = frame_reason(payload)
    if want is not None:
        assert got == want
    elif isinstance(got, dict):
        assert_valid_event(got)
    else:
        assert got not in ("empty", "truncated", "bad_magic", "unknown_schema_id")


@FUZZ
@given(st.sampled_from(sorted(SCHEMAS)), st.binary(max_size=80))
def test_random_bodies_under_every_known_id(schema_id: int, data: bytes) -> None:
    got = outcome(frame(schema_id, data))
    if schema_id == V_BAD:
        assert got == "bad_writer_schema"
    elif isinstance(got, dict):
        assert_valid_event(got)
    else:
        assert got in ("undecodable", *CONTENT_REASONS)


def _writer_record(schema_id: int, record: dict[str, Any]) -> dict[str, Any]:
    extra = {"channel": "web", "n": 1, "u": None, "a": [2], "m": {"k": 3}, "r": {"i": 4}}
    names = [f["name"] for f in WRITERS[schema_id]["fields"]]
    return {name: record[name] if name in record else extra[name] for name in names}


@FUZZ
@given(records, st.sampled_from([V1, V_LAST_STRING, V_INTS]))
def test_a_well_formed_record_is_decoded_or_refused_as_the_docs_say(record: dict[str, Any], schema_id: int) -> None:
    got = outcome(frame(schema_id, body(_writer_record(schema_id, record), WRITERS[schema_id])))
    want = expected_reason(record)
    if want is None:
        assert got == record
    else:
        assert got == want


@FUZZ
@given(records, st.sampled_from([V1, V_LAST_STRING, V_INTS]), st.data())
def test_truncated_or_extended_avro_is_undecodable(record: dict[str, Any], schema_id: int, data: st.DataObject) -> None:
    good = body(_writer_record(schema_id, record), WRITERS[schema_id])
    cut = data.draw(st.integers(0, len(good) - 1))
    assert outcome(frame(schema_id, good[:cut])) == "undecodable"
    more = data.draw(st.binary(min_size=1, max_size=8))
    assert outcome(frame(schema_id, good + more)) == "undecodable"


@FUZZ
@given(records, st.sampled_from([V1, V_LAST_STRING, V_FLOAT, V_INTS]), st.data())
def test_mutated_avro_is_an_event_or_a_documented_reason(
    record: dict[str, Any], schema_id: int, data: st.DataObject
) -> None:
    writer = WRITERS[schema_id]
    good = bytearray(body(_writer_record(schema_id, record), writer))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(good) - 1))
        good[at] = data.draw(st.integers(0, 255))
    got = outcome(frame(schema_id, bytes(good)))
    if isinstance(got, dict):
        assert_valid_event(got)
    else:
        assert got in ("undecodable", *CONTENT_REASONS)


EDGES = [-(2**31) - 1, -(2**31), 2**31 - 1, 2**31, -(2**63), 2**63 - 1]


@FUZZ
@given(
    st.sampled_from(["n", "u", "a", "m", "r"]),
    st.one_of(st.sampled_from(EDGES), st.integers(-(2**63), 2**63 - 1), st.integers(-(2**31) - 2, -(2**31) + 2)),
)
def test_a_writer_only_int_is_32_bits_wherever_it_is(field: str, value: int) -> None:
    """design §5.3: "an Avro int outside 32 bits (from -2^31 to 2^31-1 inclusive is in) wherever the writer put
    it, read or skipped as writer-only, in a field, union, array, map or nested record" is undecodable."""
    base = {"transaction_id": "t", "user_id": "u", "merchant_id": "m", "amount": 1.0, "currency": "EUR"}
    event = _writer_record(V_INTS, {**base, "event_time": NOW_MS})
    event[field] = {"n": value, "u": value, "a": [1, value], "m": {"k": value}, "r": {"i": value}}[field]
    got = outcome(frame(V_INTS, body(event, INTS_AS_LONGS)))
    inside = -(2**31) <= value <= 2**31 - 1
    if inside:
        assert isinstance(got, dict) and got["user_id"] == "u"
    else:
        assert got == "undecodable"


@FUZZ
@given(records, st.integers(-(2**63), 2**63 - 1))
def test_the_kafka_timestamp_must_be_the_event_time(record: dict[str, Any], kafka_ms: int) -> None:
    assume(expected_reason(record) is None)
    dec = decoder()
    payload = frame(V1, body(record))
    try:
        got: dict[str, Any] | str = dec.decode_record(payload, kafka_ms)
    except DecodeError as exc:
        got = exc.reason
    assert got == (record if kafka_ms == record["event_time"] else "timestamp_mismatch")


LAST_STRING_EVENT = {
    "transaction_id": "t",
    "user_id": "u",
    "merchant_id": "m",
    "amount": 1.0,
    "currency": "EUR",
    "event_time": NOW_MS,
    "channel": "web",
}


def test_a_writer_only_string_cut_short_at_the_end_is_undecodable() -> None:
    """Truncated Avro is undecodable (design §5.3), also where the cut falls in a writer-only field the reader
    skips: fastavro skipped its last string without checking that its bytes were there (Avro's Java reader, the
    live job's, refuses it: the two decoders disagreed, and a backfill through ``udfs.decode`` counted it)."""
    good = body(LAST_STRING_EVENT, LAST_STRING)
    assert outcome(frame(V_LAST_STRING, good)) == {k: v for k, v in LAST_STRING_EVENT.items() if k != "channel"}
    for cut in (1, 2, 3):
        assert outcome(frame(V_LAST_STRING, good[:-cut])) == "undecodable"


def test_a_writer_only_string_of_negative_length_is_undecodable() -> None:
    """A negative length is malformed Avro (Java: "Malformed data. Length is negative"); fastavro's skip read the
    rest of the body as the string, so it was accepted whatever followed."""
    good = body(LAST_STRING_EVENT, LAST_STRING)
    head = good[: -len(b"\x06web")]
    for length in (b"\x01", b"\x05", b"\x09"):  # zigzag -1, -3, -5
        assert outcome(frame(V_LAST_STRING, head + length + b"web")) == "undecodable"
        assert outcome(frame(V_LAST_STRING, head + length)) == "undecodable"
