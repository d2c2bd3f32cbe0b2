from __future__ import annotations

import io
import json
import struct
from typing import Any

import fastavro
import pytest

from registry.core.errors import DecodeError, SchemaError
from schemas import load_schema, schema_text
from schemas.wire import frame, unframe
from udfs.decode import EventDecoder

NOW_MS = 1_700_000_000_000
READER = load_schema("card_transaction")
V1, V2, V_FLOAT, V_BAD = 1, 2, 3, 4

# The producer's newer schema: one field more, in another position (a reader on v1 ignores it).
EVOLVED = {
    **READER,
    "fields": [
        *READER["fields"][:3],
        {"name": "channel", "type": "string"},
        *READER["fields"][3:],
    ],
}
# An older producer that wrote the amount as float (promoted to double by Avro resolution).
FLOAT_AMOUNT = {
    **READER,
    "fields": [f if f["name"] != "amount" else {"name": "amount", "type": "float"} for f in READER["fields"]],
}

SCHEMAS = {
    V1: schema_text("card_transaction"),
    V2: json.dumps(EVOLVED),
    V_FLOAT: json.dumps(FLOAT_AMOUNT),
    V_BAD: '{"type": "record", "name": "Broken", "fields": [{"name": "x", "type": "nope"}]}',
}

EVENT = {
    "transaction_id": "txn_1",
    "user_id": "user_00001",
    "merchant_id": "merchant_0001",
    "amount": 12.5,
    "currency": "EUR",
    "event_time": NOW_MS - 5_000,
}


class CountingLookup:
    def __init__(self, schemas: dict[int, str]) -> None:
        self.schemas = schemas
        self.calls: list[int] = []

    def __call__(self, schema_id: int) -> str | None:
        self.calls.append(schema_id)
        return self.schemas.get(schema_id)


def body(record: dict[str, Any], schema: dict[str, Any] = READER) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


def decoder(**kwargs: Any) -> EventDecoder:
    kwargs.setdefault("clock_ms", lambda: NOW_MS)
    return EventDecoder(CountingLookup(SCHEMAS), READER, timestamp_field="event_time", **kwargs)


def reason_of(payload: bytes | None, dec: EventDecoder | None = None) -> str:
    with pytest.raises(DecodeError) as info:
        (dec or decoder()).decode(payload)
    assert isinstance(info.value, SchemaError)
    assert str(info.value).startswith(f"{info.value.reason}: ")
    return info.value.reason


def test_good_record() -> None:
    record = decoder().decode(frame(V1, body(EVENT)))
    assert record == EVENT
    assert type(record["event_time"]) is int


def test_writer_schema_is_looked_up_once_per_id() -> None:
    lookup = CountingLookup(SCHEMAS)
    dec = EventDecoder(lookup, READER, timestamp_field="event_time", clock_ms=lambda: NOW_MS)
    for _ in range(3):
        dec.decode(frame(V1, body(EVENT)))
    assert lookup.calls == [V1]


def test_frame_layout() -> None:
    payload = frame(258, b"xyz")
    assert payload == b"\x00\x00\x00\x01\x02xyz"
    schema_id, rest = unframe(payload)
    assert schema_id == 258
    assert bytes(rest) == b"xyz"


def test_schema_evolution_extra_writer_field() -> None:
    written = {**EVENT, "channel": "web"}
    record = decoder().decode(frame(V2, body(written, EVOLVED)))
    assert record == EVENT
    assert list(record) == [f["name"] for f in READER["fields"]]


def test_schema_evolution_float_promoted_to_double() -> None:
    record = decoder().decode(frame(V_FLOAT, body({**EVENT, "amount": 2.5}, FLOAT_AMOUNT)))
    assert record == {**EVENT, "amount": 2.5}
    assert type(record["amount"]) is float


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (None, "empty"),
        (b"", "empty"),
        (b"\x00", "truncated"),
        (b"\x00\x00\x00\x01", "truncated"),
        (b"\x01\x00\x00\x00\x01" + body(EVENT), "bad_magic"),
        (b"\xff\x00\x00\x00\x01" + body(EVENT), "bad_magic"),
        (frame(99, body(EVENT)), "unknown_schema_id"),
        (frame(V_BAD, body(EVENT)), "bad_writer_schema"),
        (frame(V1, b""), "undecodable"),
        (frame(V1, b"\xff" * 10), "undecodable"),
        (frame(V1, b"\x02a"), "undecodable"),
        (frame(V1, body(EVENT)[:-3]), "undecodable"),
        (frame(V1, body(EVENT) + b"\x00"), "undecodable"),
        (frame(V2, body(EVENT)), "undecodable"),  # v1 bytes announced as v2
        (frame(V1, body({**EVENT, "amount": float("nan")})), "non_finite"),
        (frame(V1, body({**EVENT, "amount": float("inf")})), "non_finite"),
        (frame(V1, body({**EVENT, "amount": float("-inf")})), "non_finite"),
        (frame(V1, body({**EVENT, "user_id": ""})), "missing_field"),
        (frame(V1, body({**EVENT, "transaction_id": ""})), "missing_field"),
        (frame(V1, body({**EVENT, "event_time": NOW_MS + 3_600_001})), "future_timestamp"),
        (frame(V1, body({**EVENT, "event_time": -1})), "bad_timestamp"),
    ],
)
def test_rejection_reasons(payload: bytes | None, reason: str) -> None:
    assert reason_of(payload) == reason


def test_trailing_bytes_detail() -> None:
    with pytest.raises(DecodeError) as info:
        decoder().decode(frame(V1, body(EVENT) + b"\x00\x00"))
    assert info.value.reason == "undecodable"
    assert info.value.detail == "2 trailing bytes after the Avro record"


def test_details_name_the_problem() -> None:
    with pytest.raises(DecodeError) as info:
        decoder().decode(frame(V1, body({**EVENT, "user_id": ""})))
    assert info.value.detail == "required field 'user_id' is missing or empty"
    with pytest.raises(DecodeError) as info:
        decoder().decode(frame(99, body(EVENT)))
    assert info.value.detail == "schema id 99 is not in the schema registry"
    with pytest.raises(DecodeError) as info:
        decoder().decode(b"\x07\x00\x00\x00\x01")
    assert info.value.detail == "first byte is 7, not the Confluent magic byte 0"


def test_empty_currency_is_not_a_missing_id() -> None:
    record = decoder().decode(frame(V1, body({**EVENT, "currency": ""})))
    assert record["currency"] == ""


def test_an_empty_required_key_is_missing_whatever_the_fields_name() -> None:
    """Only `*_id` names were held non-empty: a key field named `currency` made an entity "" in both stores,
    which the API cannot serve (ids are 1-256 characters)."""
    assert refusal(keyed("currency"), {**EVENT, "currency": ""}) == (
        "missing_field",
        "required field 'currency' is missing or empty",
    )


def test_future_timestamp_boundary_uses_injected_clock() -> None:
    at_limit = {**EVENT, "event_time": NOW_MS + 3_600_000}
    assert decoder().decode(frame(V1, body(at_limit)))["event_time"] == NOW_MS + 3_600_000
    clock = [NOW_MS]
    dec = decoder(clock_ms=lambda: clock[0], max_future_ms=1_000)
    payload = frame(V1, body({**EVENT, "event_time": NOW_MS + 1_001}))
    assert reason_of(payload, dec) == "future_timestamp"
    clock[0] = NOW_MS + 1  # the same record, a millisecond later, is acceptable
    assert dec.decode(payload)["event_time"] == NOW_MS + 1_001


def test_epoch_zero_is_a_valid_timestamp() -> None:
    assert decoder().decode(frame(V1, body({**EVENT, "event_time": 0})))["event_time"] == 0


def test_header_is_big_endian_signed_magic() -> None:
    # A schema id above 2**31 is still an unsigned 4-byte id.
    payload = struct.pack(">bI", 0, 2**32 - 1) + body(EVENT)
    assert reason_of(payload) == "unknown_schema_id"


def test_a_record_is_refused_when_its_kafka_timestamp_is_not_its_event_time() -> None:
    payload = frame(V1, body(EVENT))
    at = int(str(EVENT["event_time"]))
    assert decoder().decode_record(payload, at) == EVENT
    for off_by in (-1, 1):
        with pytest.raises(DecodeError) as info:
            decoder().decode_record(payload, at + off_by)
        assert info.value.reason == "timestamp_mismatch"
    assert reason_of(b"\x01abcd") == "bad_magic"  # the content is judged first: a bad frame keeps its own reason
    with pytest.raises(DecodeError, match="bad_magic"):
        decoder().decode_record(b"\x01abcd", 0)


@pytest.mark.parametrize(
    ("name", "namespace", "resolves"),
    [("Txn", "old.ns", True), ("Txn", "x.y", True), ("Txn", None, True), ("Other", "old.ns", False)],
)
def test_a_reader_alias_matches_by_unqualified_name(name: str, namespace: str | None, resolves: bool) -> None:
    """As record names resolve (and as the JVM decoder resolves aliases): namespaces are ignored."""
    writer = {k: v for k, v in READER.items() if k != "namespace"} | {"name": name}
    if namespace is not None:
        writer["namespace"] = namespace
    reader = {**READER, "aliases": ["old.ns.Txn"]}
    decoder = EventDecoder({9: json.dumps(writer)}.get, reader, timestamp_field="event_time", clock_ms=lambda: NOW_MS)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(writer), EVENT)
    if resolves:
        assert decoder.decode(frame(9, out.getvalue()))["user_id"] == "user_00001"
    else:
        with pytest.raises(DecodeError) as refused:
            decoder.decode(frame(9, out.getvalue()))
        assert refused.value.reason == "undecodable"


# ``bad_key``: an entity key value longer than the stores hold (design §5.3, §5.8).
def keyed(*key_fields: str, reader: dict[str, Any] = READER, writer_id: int = V1) -> EventDecoder:
    schemas = {**SCHEMAS, writer_id: json.dumps(reader)}
    return EventDecoder(
        schemas.get, reader, timestamp_field="event_time", key_fields=key_fields, clock_ms=lambda: NOW_MS
    )


def refusal(dec: EventDecoder, event: dict[str, Any], writer: dict[str, Any] = READER, writer_id: int = V1) -> Any:
    with pytest.raises(DecodeError) as info:
        dec.decode(frame(writer_id, body(event, writer)))
    return info.value.reason, info.value.detail


def test_a_key_of_256_characters_is_accepted_and_257_is_bad_key() -> None:
    dec = keyed("user_id")
    assert dec.decode(frame(V1, body({**EVENT, "user_id": "u" * 256})))["user_id"] == "u" * 256
    assert refusal(dec, {**EVENT, "user_id": "u" * 257}) == (
        "bad_key",
        "key field 'user_id' is 257 characters (at most 256)",
    )
    assert refusal(dec, {**EVENT, "user_id": "u" * 70_000})[0] == "bad_key"  # Cassandra's limit is 65,535 bytes


def test_key_length_is_counted_in_characters_not_bytes_or_utf16_units() -> None:
    dec = keyed("user_id")
    assert refusal(dec, {**EVENT, "user_id": "é" * 300}) == (
        "bad_key",
        "key field 'user_id' is 300 characters (at most 256)",
    )
    for fits in ("é" * 256, "😀" * 256, "a" + "€" * 255):  # 512, 1,024 and 766 bytes; 😀 is two UTF-16 units
        assert dec.decode(frame(V1, body({**EVENT, "user_id": fits})))["user_id"] == fits
    assert refusal(dec, {**EVENT, "user_id": "😀" * 257})[1] == "key field 'user_id' is 257 characters (at most 256)"


def test_every_field_of_a_composite_key_is_held_to_the_limit() -> None:
    dec = keyed("user_id", "merchant_id")
    assert refusal(dec, {**EVENT, "merchant_id": "m" * 257}) == (
        "bad_key",
        "key field 'merchant_id' is 257 characters (at most 256)",
    )
    both = {**EVENT, "user_id": "u" * 300, "merchant_id": "m" * 400}  # the first key field over it is named
    assert refusal(dec, both)[1] == "key field 'user_id' is 300 characters (at most 256)"
    assert dec.decode(frame(V1, body({**EVENT, "user_id": "u" * 256, "merchant_id": "m" * 256})))


def test_bad_key_comes_after_missing_field_and_before_non_finite_and_the_timestamp() -> None:
    dec = keyed("user_id", "merchant_id")
    long_key = {**EVENT, "user_id": "u" * 257}
    assert refusal(dec, {**long_key, "merchant_id": ""})[0] == "missing_field"  # an empty *_id key: as before
    assert refusal(dec, {**EVENT, "user_id": ""})[0] == "missing_field"
    assert refusal(dec, {**long_key, "amount": float("nan")})[0] == "bad_key"
    assert refusal(dec, {**long_key, "event_time": NOW_MS + 3_600_001})[0] == "bad_key"
    assert refusal(dec, {**long_key, "event_time": -1})[0] == "bad_key"


def test_only_the_key_fields_are_held_to_the_limit_and_none_without_key_fields() -> None:
    long_currency = {**EVENT, "currency": "c" * 1_000, "transaction_id": "t" * 1_000}
    assert keyed("user_id").decode(frame(V1, body(long_currency))) == long_currency
    assert decoder().decode(frame(V1, body({**EVENT, "user_id": "u" * 1_000})))["user_id"] == "u" * 1_000


def test_an_integer_key_is_never_bad_key_and_an_optional_null_or_empty_key_is_as_before() -> None:
    fields = [f for f in READER["fields"] if f["name"] != "user_id"]
    reader = {
        **READER,
        "fields": [
            {"name": "account", "type": "long"},
            {"name": "shop_id", "type": ["null", "string"], "default": None},
            *fields,
        ],
    }
    dec = keyed("account", "shop_id", reader=reader, writer_id=7)
    base = {k: v for k, v in EVENT.items() if k != "user_id"}
    for account, shop in ((2**62, None), (-(2**63), ""), (7, "s" * 256)):
        event = {**base, "account": account, "shop_id": shop}
        assert dec.decode(frame(7, body(event, reader))) == event
    assert refusal(dec, {**base, "account": 1, "shop_id": "s" * 257}, reader, 7)[0] == "bad_key"


def _with_default(avro_type: Any, default: Any) -> EventDecoder:
    """A decoder whose reader has a field ``score`` (of ``avro_type``, default ``default``) that V1 writers lack."""
    reader = {**READER, "fields": [*READER["fields"], {"name": "score", "type": avro_type, "default": default}]}
    return EventDecoder(CountingLookup(SCHEMAS), reader, timestamp_field="event_time", clock_ms=lambda: NOW_MS)


@pytest.mark.parametrize(("default", "shown"), [("NaN", "nan"), ("Infinity", "inf"), ("-Infinity", "-inf")])
def test_a_non_finite_double_default_is_non_finite_as_the_jvm_reads_it(default: str, shown: str) -> None:
    # Avro Java (the stream's decoder) reads the default "NaN" as NaN and dead-letters the record non_finite;
    # fastavro returned the text "NaN" for a double field, which the archive read's table could not hold.
    with pytest.raises(DecodeError) as exc:
        _with_default("double", default).decode(frame(V1, body(EVENT)))
    assert (exc.value.reason, exc.value.detail) == ("non_finite", f"field 'score' is {shown}")


def test_float_and_double_defaults_are_the_jvms_numbers() -> None:
    payload = frame(V1, body(EVENT))
    as_float = struct.unpack("<f", struct.pack("<f", 0.1))[0]
    assert _with_default("float", 0.1).decode(payload)["score"] == as_float  # 0.100000001490116, as a float written
    assert _with_default(["float", "null"], 0.1).decode(payload)["score"] == as_float
    one = _with_default("double", 1).decode(payload)["score"]
    assert (one, type(one)) == (1.0, float)
    with pytest.raises(DecodeError, match="non_finite"):  # past a float's range: infinite, as Java's cast
        _with_default("float", 1e39).decode(payload)


@pytest.mark.parametrize(("avro_type", "default"), [("double", "nan"), ("double", True), (["double", "null"], "NaN")])
def test_a_float_default_the_jvm_refuses_is_refused(avro_type: Any, default: Any) -> None:
    with pytest.raises(SchemaError, match="Invalid default for field score"):
        _with_default(avro_type, default)


@pytest.mark.parametrize(
    ("writer_type", "written", "read"),
    [("long", 2**40 + 1, 2.0**40), ("int", 2**24 + 1, 2.0**24), ("long", 2**62 - 1, 2.0**62), ("float", 0.1, None)],
)
@pytest.mark.parametrize("optional", [False, True])
def test_an_int_or_long_promoted_to_a_reader_float_is_a_32_bit_float(
    writer_type: str, written: Any, read: float | None, optional: bool
) -> None:
    # Avro Java (the stream's decoder) promotes 2^40 + 1 to the float 1099511627776.0; fastavro kept 1099511627777.0,
    # so a backfill from the archive (this decoder) computed other values than the stream.
    def amount_as(avro_type: str) -> dict[str, Any]:
        fields = [
            f if f["name"] != "amount" else {"name": "amount", "type": ["null", avro_type] if optional else avro_type}
            for f in READER["fields"]
        ]
        return {**READER, "fields": fields}

    writer, reader = amount_as(writer_type), amount_as("float")
    dec = EventDecoder({9: json.dumps(writer)}.get, reader, timestamp_field="event_time", clock_ms=lambda: NOW_MS)
    value = dec.decode(frame(9, body({**EVENT, "amount": written}, writer)))["amount"]
    assert value == (read if read is not None else struct.unpack("<f", struct.pack("<f", written))[0])


def test_of_several_non_finite_fields_the_readers_first_is_named_as_the_jvm_names_it() -> None:
    """fastavro's record holds the writer's order, reader defaults last: with ``score`` written before ``amount``,
    both not finite, the detail named ``score`` where the stream's JVM decoder, in the reader's order, names
    ``amount``; and a default ``NaN`` of a field the reader has first was named after the writer's ``amount``
    (audit, 2026-12-07)."""
    score = {"name": "score", "type": "double", "default": "NaN"}
    reader = {**READER, "fields": [*READER["fields"], score]}
    writer = {**reader, "fields": [score, *READER["fields"]]}
    lookup = CountingLookup({**SCHEMAS, 9: json.dumps(writer)})
    dec = EventDecoder(lookup, reader, timestamp_field="event_time", clock_ms=lambda: NOW_MS)
    with pytest.raises(DecodeError) as exc:
        dec.decode(frame(9, body({**EVENT, "amount": float("nan"), "score": float("inf")}, writer)))
    assert (exc.value.reason, exc.value.detail) == ("non_finite", "field 'amount' is nan")
    first = {**READER, "fields": [score, *READER["fields"]]}  # V1 writers lack score: its default, read first
    dec = EventDecoder(CountingLookup(SCHEMAS), first, timestamp_field="event_time", clock_ms=lambda: NOW_MS)
    with pytest.raises(DecodeError) as exc:
        dec.decode(frame(V1, body({**EVENT, "amount": float("inf")})))
    assert (exc.value.reason, exc.value.detail) == ("non_finite", "field 'score' is nan")
