"""The stream job's decoder runs in the JVM (``jobs/java/decode``, #12 item 1); the Python decoder
(``udfs.decode.EventDecoder``, unit-tested in ``tests/unit/test_decode.py``) stays the reference. Here both
decode the same records against the same real schema registry, and must agree on every one: the event's
values, or the rejection reason and its detail. The records: good ones on three writer schemas (the reader's,
one with a field more, one with the amount as float, and the rest of WRITERS), every rejection of the unit tests (over-long
entity keys of a composite key among them: both decoders are given ``KEY_FIELDS``), and 5,000 seeded
random corruptions (bytes flipped, cut, inserted, appended) of good records, and writer schemas the
registry accepts that a stricter Avro parser or resolver would read differently.
"""

from __future__ import annotations

import io
import json
import random
import time
from collections.abc import Iterator
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema

from jobs.registry_client import registry_client, schema_lookup
from registry.core.errors import DecodeError
from registry.core.settings import Settings
from schemas import load_schema
from schemas.wire import frame
from tests.unit.test_avro_ints import PLACES as INT_PLACES
from tests.unit.test_avro_ints import as_long, wide_varint
from udfs.decode import MAX_FUTURE_MS, EventDecoder

pytestmark = pytest.mark.integration

READER = load_schema("card_transaction")
EVOLVED = {**READER, "fields": [*READER["fields"][:3], {"name": "channel", "type": "string"}, *READER["fields"][3:]]}
FLOAT_AMOUNT = {
    **READER,
    "fields": [f if f["name"] != "amount" else {"name": "amount", "type": "float"} for f in READER["fields"]],
}


def _with(
    fields: dict[str, Any] | None = None, extra: list[dict[str, Any]] | None = None, **top: Any
) -> dict[str, Any]:
    """READER with some fields' types replaced, ``extra`` fields inserted after merchant_id, top-level keys set."""
    replaced = [{**f, "type": (fields or {}).get(f["name"], f["type"])} for f in READER["fields"]]
    return {**READER, **top, "fields": [*replaced[:3], *(extra or []), *replaced[3:]]}


# Writer schemas the registry accepts and the two decoders must read alike.
WRITERS: dict[str, dict[str, Any]] = {
    "reader": READER,
    "evolved": EVOLVED,
    "float": FLOAT_AMOUNT,
    # A union's default may fit any branch (Avro 1.12 Java accepts it, and so does the registry).
    "union_default": _with(extra=[{"name": "channel", "type": ["null", "string"], "default": "web"}]),
    "int_default": _with(extra=[{"name": "shard", "type": "int", "default": 2**31 - 1}]),
    # Record names: another name does not resolve; another namespace or a reader alias does.
    "renamed": _with(name="Transaction"),
    "namespaced": _with(namespace="elsewhere.events"),
    # Logical types of the writer are not applied: the values are the primitives.
    "micros": _with({"event_time": {"type": "long", "logicalType": "timestamp-micros"}}),
    "plain_long": _with({"event_time": "long"}),
    "uuid": _with({"transaction_id": {"type": "string", "logicalType": "uuid"}}),
    "enum": _with(extra=[{"name": "channel", "type": {"type": "enum", "name": "Channel", "symbols": ["app", "web"]}}]),
    # A writer-only array, skipped when reading.
    "tags": _with(extra=[{"name": "tags", "type": {"type": "array", "items": "long"}}]),
    "nulls": _with(extra=[{"name": "pad", "type": {"type": "array", "items": "null"}, "default": []}]),
    # Writer-only ints in every place one can sit (``INT_PLACES``): held to 32 bits although skipped.
    **{f"ints_{place}": _with(extra=[{"name": "extra", "type": extra}]) for place, (extra, _) in INT_PLACES.items()},
}


KEY_FIELDS = ("user_id", "merchant_id")  # a composite key: both held to 256 characters (``bad_key``)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


EVENT_MS = _now_ms() - 5_000  # in the past whenever the tests run
EVENT: dict[str, Any] = {
    "transaction_id": "txn_1",
    "user_id": "user_00001",
    "merchant_id": "merchant_0001",
    "amount": 12.5,
    "currency": "EUR",
    "event_time": EVENT_MS,
}


def _body(record: dict[str, Any], schema: dict[str, Any] = READER) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


class Decoders:
    """The two decoders, one registry; ``ids``: writer schema name -> registry id."""

    def __init__(self, settings: Settings, ids: dict[str, int], key_fields: tuple[str, ...] = KEY_FIELDS) -> None:
        from jobs.decoder import decoder_jar, event_decoder

        self.ids = ids
        self.python = EventDecoder(
            schema_lookup(settings.schema_registry_url, settings.token),
            READER,
            timestamp_field="event_time",
            key_fields=key_fields,
        )
        from pyflink.util.java_utils import add_jars_to_context_class_loader

        avro = sorted(settings.flink_jars_dir.glob("flink-sql-avro-*.jar"))
        add_jars_to_context_class_loader([decoder_jar(settings).as_uri(), avro[0].as_uri()])
        self.java = event_decoder(settings, READER, "event_time", key_fields)

    def python_answer(self, payload: bytes | None, record_ms: int) -> tuple[str, Any]:
        try:
            event = self.python.decode_record(payload, record_ms)
        except DecodeError as exc:
            return exc.reason, exc.detail
        return "ok", [event[f["name"]] for f in READER["fields"]]

    def java_answer(self, payload: bytes | None, record_ms: int) -> tuple[str, Any]:
        try:
            values = self.java.decode(payload, record_ms)
        except Exception as exc:  # py4j's Py4JJavaError, carrying the Java exception
            rejected = getattr(exc, "java_exception", None)
            if rejected is None or rejected.getClass().getName() != "featurestore.job.Rejected":
                raise
            return str(rejected.reason()), str(rejected.detail())
        return "ok", list(values)

    def agree(self, payload: bytes | None, record_ms: int = EVENT_MS) -> tuple[str, Any]:
        """Both answers, checked equal (an Avro library's own message may differ in wording); the answer."""
        py, java = self.python_answer(payload, record_ms), self.java_answer(payload, record_ms)
        assert py[0] == java[0], (payload, py, java)
        if py[0] in ("undecodable", "bad_writer_schema") and not py[1].endswith("trailing bytes after the Avro record"):
            prefix = py[1].split(":", 1)[0]  # the libraries' own messages follow the colon
            assert java[1].startswith(prefix + ":"), (payload, py, java)
        else:
            assert py[1] == java[1], (payload, py, java)
        return py


def _head_and_tail() -> tuple[bytes, bytes]:
    """The body of ``EVENT`` as the fields before an inserted writer-only field and the fields after it."""
    head = _body(
        {k: EVENT[k] for k in ("transaction_id", "user_id", "merchant_id")},
        {"type": "record", "name": "H", "fields": READER["fields"][:3]},
    )
    tail = _body(
        {k: EVENT[k] for k in ("amount", "currency", "event_time")},
        {"type": "record", "name": "T", "fields": READER["fields"][3:]},
    )
    return head, tail


@pytest.fixture(scope="module")
def decoders(it_settings: Settings, run_id: str) -> Iterator[Decoders]:
    client = registry_client(it_settings.schema_registry_url, it_settings.token)
    schemas = WRITERS
    ids = {
        name: client.register_schema(f"javadecoder-{run_id}-{name}", Schema(json.dumps(schema), "AVRO"))
        for name, schema in schemas.items()
    }
    yield Decoders(it_settings, ids)
    for name in schemas:
        client.delete_subject(f"javadecoder-{run_id}-{name}", permanent=False)


def test_good_records_of_three_writer_schemas_decode_alike(decoders: Decoders) -> None:
    ids = decoders.ids
    assert decoders.agree(frame(ids["reader"], _body(EVENT))) == ("ok", list(EVENT.values()))
    evolved = _body({**EVENT, "channel": "web"}, EVOLVED)
    assert decoders.agree(frame(ids["evolved"], evolved)) == ("ok", list(EVENT.values()))
    floated = _body({**EVENT, "amount": 2.5}, FLOAT_AMOUNT)
    assert decoders.agree(frame(ids["float"], floated)) == ("ok", list({**EVENT, "amount": 2.5}.values()))
    assert decoders.agree(frame(ids["reader"], _body({**EVENT, "currency": "", "amount": -0.0})))[0] == "ok"
    assert decoders.agree(frame(ids["reader"], _body({**EVENT, "event_time": 0})), 0)[0] == "ok"
    # Keys of 256 characters: 😀 is 2 UTF-16 units (Java's String.length() would say 512), é 2 bytes of UTF-8.
    for user_id, merchant_id in (("u" * 256, "m" * 256), ("😀" * 256, "é" * 256)):
        keyed = {**EVENT, "user_id": user_id, "merchant_id": merchant_id}
        assert decoders.agree(frame(ids["reader"], _body(keyed))) == ("ok", list(keyed.values()))


# Writer schemas Avro Java's parser refuses, and so the registry (it used to accept them, as fastavro does).
REFUSED: dict[str, dict[str, Any]] = {
    "int_default_out_of_range": _with(extra=[{"name": "shard", "type": "int", "default": 2**40}]),
    "odd_name": _with(extra=[{"name": "device-id", "type": "string"}]),
}


def test_writer_schemas_avro_java_refuses_are_refused_by_the_registry(it_settings: Settings, run_id: str) -> None:
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    client = registry_client(it_settings.schema_registry_url, it_settings.token)
    for name, schema in REFUSED.items():
        with pytest.raises(SchemaRegistryError) as refused:
            client.register_schema(f"javadecoder-{run_id}-{name}", Schema(json.dumps(schema), "AVRO"))
        assert (refused.value.http_status_code, refused.value.error_code) == (422, 42201), name


def test_writer_schemas_the_registry_accepts_decode_alike(decoders: Decoders) -> None:
    ids = decoders.ids
    values = list(EVENT.values())
    for name, extra in (
        ("union_default", {"channel": "app"}),
        ("int_default", {"shard": 7}),
    ):
        assert decoders.agree(frame(ids[name], _body({**EVENT, **extra}, WRITERS[name]))) == ("ok", values), name
    assert decoders.agree(frame(ids["renamed"], _body(EVENT, WRITERS["renamed"])))[0] == "undecodable"
    assert decoders.agree(frame(ids["namespaced"], _body(EVENT, WRITERS["namespaced"]))) == ("ok", values)
    assert decoders.agree(frame(ids["uuid"], _body(EVENT, WRITERS["uuid"]))) == ("ok", values)  # not a UUID: a string
    in_micros = EVENT_MS * 1000
    written = _body({**EVENT, "event_time": in_micros}, WRITERS["plain_long"])  # timestamp-micros has these bytes
    assert decoders.agree(frame(ids["micros"], written), in_micros)[0] == "future_timestamp"
    assert decoders.agree(frame(ids["plain_long"], written), in_micros)[0] == "future_timestamp"
    assert decoders.agree(frame(ids["plain_long"], _body(EVENT, WRITERS["plain_long"]))) == ("ok", values)


def test_skipped_blocks_and_varints_are_held_to_the_record(decoders: Decoders) -> None:
    """A writer-only array in blocks (a negative count is followed by the block's byte size), lengths and varints
    that run past the record or past 32 bits: read alike, and refused alike."""
    head, tail = _head_and_tail()
    tags = frame(decoders.ids["tags"], b"")
    cases = {
        "plain": wide_varint(2) + wide_varint(1) + wide_varint(2) + wide_varint(0),
        "sized": wide_varint(-2) + wide_varint(2) + wide_varint(1) + wide_varint(2) + wide_varint(0),
        "two_blocks": wide_varint(-1)
        + wide_varint(1)
        + wide_varint(5)
        + wide_varint(1)
        + wide_varint(9)
        + wide_varint(0),
        "size_negative": wide_varint(-2) + wide_varint(-2) + wide_varint(1) + wide_varint(2) + wide_varint(0),
        "size_past_end": wide_varint(-2) + wide_varint(10_000) + wide_varint(1) + wide_varint(2) + wide_varint(0),
        "size_zero": wide_varint(-2) + wide_varint(0) + wide_varint(1) + wide_varint(2) + wide_varint(0),
    }
    answers = {name: decoders.agree(tags + head + array + tail)[0] for name, array in cases.items()}
    assert answers["plain"] == answers["sized"] == answers["two_blocks"] == "ok", answers
    assert answers["size_negative"] == answers["size_past_end"] == "undecodable", answers
    v1 = frame(decoders.ids["reader"], b"")
    past_end = v1 + wide_varint(2**31 - 1) + b"txn_1"  # a string length far beyond the record: no huge buffer
    negative = v1 + wide_varint(-3) + b"txn_1"
    assert decoders.agree(past_end)[0] == decoders.agree(negative)[0] == "undecodable"


def test_an_array_counting_more_items_than_bytes_left_is_refused_alike(decoders: Decoders) -> None:
    """2^62 nulls (items of no data) in a 46-byte record: both decoders looped over them, reading no byte, and the
    stream job hung on the record. Now a block may count at most the bytes left, in both; up to that it decodes."""
    head, tail = _head_and_tail()
    nulls = frame(decoders.ids["nulls"], b"")
    left = len(wide_varint(0) + tail)  # after the count: the block's end and the fields after it
    started = time.monotonic()
    assert decoders.agree(nulls + head + wide_varint(2**62) + wide_varint(0) + tail)[0] == "undecodable"
    assert decoders.agree(nulls + head + wide_varint(left + 1) + wide_varint(0) + tail)[0] == "undecodable"
    assert (
        decoders.agree(nulls + head + wide_varint(-(2**62)) + wide_varint(0) + wide_varint(0) + tail)[0] == "ok"
    )  # by its size
    assert decoders.agree(nulls + head + wide_varint(left) + wide_varint(0) + tail)[0] == "ok"
    assert time.monotonic() - started < 30


def test_varints_past_64_bits_and_negative_indexes_are_refused_alike(decoders: Decoders) -> None:
    """The JVM decoder read an int written as 2^64 + 5 as 5 (Avro drops the bits past 64) where the Python one
    refused it; the Python one took union index -1 as the last branch (Python's negative indexing) where the JVM
    refused it. Now every varint past 10 bytes or 64 bits, and every negative index, is refused by both; the
    widest legal ones decode."""
    head, tail = _head_and_tail()
    cases = [
        ("ints_field", wide_varint(2**64 + 5), "undecodable"),
        ("ints_union", wide_varint(-1) + wide_varint(1) + b"x", "undecodable"),
        ("enum", wide_varint(-1), "undecodable"),
        ("tags", wide_varint(1) + bytes([0xFF] * 9 + [0x02]) + wide_varint(0), "undecodable"),
        ("tags", bytes([0x80] * 10 + [0x00]), "undecodable"),
        ("ints_field", wide_varint(-(2**31)), "ok"),
        ("enum", wide_varint(1), "ok"),
        ("tags", wide_varint(2) + wide_varint(-(2**63)) + wide_varint(2**63 - 1) + wide_varint(0), "ok"),
    ]
    for writer, extra, expected in cases:
        assert decoders.agree(frame(decoders.ids[writer], head + extra + tail))[0] == expected, (writer, extra)


@pytest.mark.parametrize("place", sorted(INT_PLACES))
def test_writer_only_ints_are_held_to_32_bits_alike(decoders: Decoders, place: str) -> None:
    """An int outside 32 bits is malformed wherever it sits, read or skipped: both decoders refuse it (the
    Python one used to skip a writer-only one unread, so a backfill from the archive kept what the stream
    dead-lettered); the bounds themselves decode."""
    _, put = INT_PLACES[place]
    writer = WRITERS[f"ints_{place}"]
    answers = {
        value: decoders.agree(
            frame(decoders.ids[f"ints_{place}"], _body({**EVENT, "extra": put(value)}, as_long(writer)))
        )
        for value in (-(2**31) - 1, -(2**31), 2**31 - 1, 2**31, 2**40)
    }
    assert [answer[0] for answer in answers.values()] == ["undecodable", "ok", "ok", "undecodable", "undecodable"]
    assert (
        answers[2**40][1]
        == f"Avro body does not match schema id {decoders.ids[f'ints_{place}']}: {2**40} is not an int"
    )


def test_every_rejection_has_the_same_reason_and_detail(decoders: Decoders) -> None:
    ids = decoders.ids
    v1 = ids["reader"]
    unknown = max(ids.values()) + 100_000
    cases = [
        (None, "empty"),
        (b"", "empty"),
        (b"\x00", "truncated"),
        (b"\x00\x00\x00\x01", "truncated"),
        (b"\x01\x00\x00\x00\x01" + _body(EVENT), "bad_magic"),
        (b"\xff\x00\x00\x00\x01" + _body(EVENT), "bad_magic"),
        (frame(unknown, _body(EVENT)), "unknown_schema_id"),
        (b"\x00\xff\xff\xff\xff" + _body(EVENT), "unknown_schema_id"),  # ids are unsigned
        (frame(v1, b""), "undecodable"),
        (frame(v1, b"\xff" * 10), "undecodable"),
        (frame(v1, b"\x02a"), "undecodable"),
        (frame(v1, _body(EVENT)[:-3]), "undecodable"),
        (frame(v1, _body(EVENT) + b"\x00\x00"), "undecodable"),
        (frame(ids["evolved"], _body(EVENT)), "undecodable"),  # reader-schema bytes announced as the evolved one
        (frame(v1, _body(EVENT).replace(b"user_00001", b"user\xff0001")), "undecodable"),  # not UTF-8
        (frame(v1, _body({**EVENT, "amount": float("nan")})), "non_finite"),
        (frame(v1, _body({**EVENT, "amount": float("inf")})), "non_finite"),
        (frame(v1, _body({**EVENT, "amount": float("-inf")})), "non_finite"),
        (frame(ids["float"], _body({**EVENT, "amount": float("nan")}, FLOAT_AMOUNT)), "non_finite"),
        (frame(v1, _body({**EVENT, "user_id": ""})), "missing_field"),
        (frame(v1, _body({**EVENT, "transaction_id": ""})), "missing_field"),
        (frame(v1, _body({**EVENT, "user_id": "u" * 257})), "bad_key"),
        (frame(v1, _body({**EVENT, "user_id": "é" * 300})), "bad_key"),
        (frame(v1, _body({**EVENT, "user_id": "😀" * 257})), "bad_key"),
        (frame(v1, _body({**EVENT, "user_id": "u" * 70_000})), "bad_key"),  # past Cassandra's 65,535 bytes
        (frame(v1, _body({**EVENT, "merchant_id": "m" * 257})), "bad_key"),  # the second field of the key
        (frame(v1, _body({**EVENT, "user_id": "u" * 300, "merchant_id": "m" * 400})), "bad_key"),
        (frame(v1, _body({**EVENT, "user_id": "u" * 300, "merchant_id": ""})), "missing_field"),  # checked first
        (frame(v1, _body({**EVENT, "user_id": "u" * 300, "amount": float("nan")})), "bad_key"),  # before non_finite
        (frame(v1, _body({**EVENT, "user_id": "u" * 300, "event_time": -1})), "bad_key"),
        (frame(ids["evolved"], _body({**EVENT, "channel": "c", "user_id": "u" * 257}, EVOLVED)), "bad_key"),
        (frame(v1, _body({**EVENT, "event_time": _now_ms() + MAX_FUTURE_MS + 600_000})), "future_timestamp"),
        (frame(v1, _body({**EVENT, "event_time": -1})), "bad_timestamp"),
    ]
    for payload, reason in cases:
        assert decoders.agree(payload, EVENT_MS)[0] == reason, payload
    too_long = decoders.agree(frame(v1, _body({**EVENT, "user_id": "é" * 300})))  # the same detail from both
    assert too_long == ("bad_key", "key field 'user_id' is 300 characters (at most 256)")
    both = decoders.agree(frame(v1, _body({**EVENT, "user_id": "u" * 300, "merchant_id": "m" * 400})))
    assert both == ("bad_key", "key field 'user_id' is 300 characters (at most 256)")  # the first key field over it
    good = frame(v1, _body(EVENT))
    for off_by in (-1, 1):
        assert decoders.agree(good, EVENT_MS + off_by)[0] == "timestamp_mismatch"


def test_an_empty_key_not_named_like_an_id_is_missing_alike(decoders: Decoders, it_settings: Settings) -> None:
    """Only `*_id` fields were held non-empty: a source keyed by `currency` wrote an entity "" to both stores."""
    by_currency = Decoders(it_settings, decoders.ids, key_fields=("currency",))
    v1 = decoders.ids["reader"]
    assert by_currency.agree(frame(v1, _body({**EVENT, "currency": ""}))) == (
        "missing_field",
        "required field 'currency' is missing or empty",
    )
    assert decoders.agree(frame(v1, _body({**EVENT, "currency": ""})))[0] == "ok"  # not a key there


def test_random_corruptions_get_the_same_answer(decoders: Decoders) -> None:
    ids = decoders.ids
    rng = random.Random(20261201)
    goods = [
        frame(ids["reader"], _body(EVENT)),
        frame(ids["evolved"], _body({**EVENT, "channel": "app"}, EVOLVED)),
        frame(ids["float"], _body({**EVENT, "amount": 7.25}, FLOAT_AMOUNT)),
        frame(ids["tags"], _body({**EVENT, "tags": [3, -1, 2**40]}, WRITERS["tags"])),
        frame(ids["int_default"], _body({**EVENT, "shard": -5}, WRITERS["int_default"])),
    ]
    answers: dict[str, int] = {}
    for _ in range(5_000):
        payload = bytearray(rng.choice(goods))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(5, len(payload))  # the frame's id is kept: the body is what gets corrupted
            action = rng.randrange(4)
            if action == 0:
                payload[at] = rng.randrange(256)
            elif action == 1:
                del payload[at:]
                if len(payload) <= 5:
                    payload += bytes([rng.randrange(256)])
            elif action == 2:
                payload.insert(at, rng.randrange(256))
            else:
                payload += bytes([rng.randrange(256)])
        reason = decoders.agree(bytes(payload))[0]
        answers[reason] = answers.get(reason, 0) + 1
    assert answers.get("undecodable", 0) > 500 and answers.get("ok", 0) > 50, answers


def test_a_registry_that_cannot_answer_fails_the_task_fast_and_dead_letters_nothing(
    decoders: Decoders, it_settings: Settings
) -> None:
    """A registry that is down is not a bad record: the decoder raises (the task fails and the job restarts from
    its checkpoint) within the client's bounds, 3 attempts of at most 1 s, instead of rejecting good data."""
    import socket

    from jobs.decoder import event_decoder

    with socket.socket() as closed:  # a port with nothing listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    down = event_decoder(
        it_settings.model_copy(update={"schema_registry_url": f"http://127.0.0.1:{port}"}), READER, "event_time"
    )
    started = time.monotonic()
    with pytest.raises(Exception) as info:
        down.decode(frame(decoders.ids["reader"], _body(EVENT)), EVENT_MS)
    java = getattr(info.value, "java_exception", None)
    assert java is not None and java.getClass().getName() == "java.io.IOException", info.value
    assert "schema registry unreachable" in str(java.getMessage())
    assert time.monotonic() - started < 6.0  # refused at once: 0.3 s of waits, the rest slack


def test_a_hanging_registry_fails_the_task_within_the_bounds(decoders: Decoders, it_settings: Settings) -> None:
    """A registry that accepts connections and never answers: 3 attempts of 1 s and two short waits, then the
    decoder raises; it does not hang the task."""
    import socket

    from jobs.decoder import event_decoder

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the kernel's backlog; nothing ever reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        hanging = event_decoder(it_settings.model_copy(update={"schema_registry_url": url}), READER, "event_time")
        started = time.monotonic()
        with pytest.raises(Exception) as info:
            hanging.decode(frame(decoders.ids["reader"], _body(EVENT)), EVENT_MS)
        took = time.monotonic() - started
    java = getattr(info.value, "java_exception", None)
    assert java is not None and java.getClass().getName() == "java.io.IOException", info.value
    assert 2.9 < took < 8.0, took  # 3.3 s nominal; the rest is slack for a loaded machine


def test_a_restored_subtask_follows_each_partitions_progress_or_the_lowest(decoders: Decoders) -> None:
    """``PartitionProgress``, the decode operator's restore rule (design §5.3): at the parallelism that wrote the
    checkpoint a subtask takes its own entries, and its watermark is the larger of the one it had forwarded and the
    lowest over its partitions not idle at the checkpoint (or read since) of the larger of each one's stored and
    replayed progress, never going back (a partition replaying older records keeps its stored progress, one that
    moves on raises the combined); at another parallelism the lowest subtask watermark, fixed; an older job's
    entries (one watermark per subtask) count as subtask watermarks; with no entries, none."""
    from pyflink.java_gateway import get_gateway

    gateway = get_gateway()
    progress_class = gateway.jvm.featurestore.job.PartitionProgress
    none, subtask = -(2**63), -1
    ooo, future, idle_ms, now = 10, 1_000, 30_000, 1_000_000

    def entries(*rows: tuple[int, ...]) -> Any:
        out = gateway.jvm.java.util.ArrayList()
        for row in rows:
            array = gateway.new_array(gateway.jvm.long, len(row))
            for i, v in enumerate(row):
                array[i] = v
            out.add(array)
        return out

    def restored(rows: Any, index: int, parallelism: int) -> Any:
        progress = progress_class(ooo, future, idle_ms, now)
        progress.restore(rows, index, parallelism)
        return progress

    written = entries(
        (0, 2, 0, 100, 0),
        (0, 2, 1, 50, 0),
        (0, 2, 5, 10, 1),  # idle at the checkpoint: left out until it has a record again
        (0, 2, subtask, 50),
        (1, 2, 2, 500, 0),
        (1, 2, 3, 700, 0),
        (1, 2, subtask, 400),
    )
    mine = restored(written, 0, 2)
    assert mine.combined() == 50  # the partitions' combined watermark at the checkpoint
    mine.observe(1, 130 + ooo, now, now)  # partition 1 moves past partition 0's stored progress
    assert mine.combined() == 100
    mine.observe(0, 60 + ooo, now, now)  # partition 0 replays an older record: its stored progress stands
    assert mine.combined() == 100
    mine.observe(0, 150 + ooo, now + 1, now + 1)
    assert mine.combined() == 130
    mine.observe(4, 90 + ooo, now + 2, now + 2)  # a partition without an entry counts from its first record...
    assert mine.combined() == 130  # ... but the watermark never goes back
    mine.observe(4, 200 + ooo, now + 3, now + 3)
    mine.observe(1, 300 + ooo, now + 3, now + 3)
    assert mine.combined() == 150
    mine.observe(5, 20 + ooo, now + 4, now + 4)  # the idle one has a record again: it holds further progress back
    mine.observe(0, 400 + ooo, now + 4, now + 4)
    assert mine.combined() == 150
    assert sorted(tuple(e) for e in mine.entries(0, 2, 95, now + idle_ms + 3)) == [
        (0, 2, subtask, 95),
        (0, 2, 0, 400, 0),
        (0, 2, 1, 300, 1),  # its last record was an idle timeout before the checkpoint
        (0, 2, 4, 200, 1),
        (0, 2, 5, 20, 0),
    ]
    assert restored(written, 1, 2).combined() == 500  # its forwarded 400 is below its partitions' lowest
    idle = restored(entries((0, 1, 0, 100, 0), (0, 1, 1, 20, 1), (0, 1, subtask, 80)), 0, 1)
    assert idle.combined() == 100  # partition 1 was idle: partition 0 alone
    quiet = restored(entries((0, 1, 0, 100, 0), (0, 1, subtask, 80)), 0, 1)
    assert [tuple(e) for e in quiet.entries(0, 1, 100, now + idle_ms - 1)] == [(0, 1, 0, 100, 0), (0, 1, -1, 100)]
    assert [tuple(e) for e in quiet.entries(0, 1, 100, now + idle_ms)] == [(0, 1, 0, 100, 1), (0, 1, -1, 100)]
    rescaled = restored(written, 0, 3)
    assert rescaled.combined() == 50  # the lowest subtask watermark, fixed whatever the replay does
    rescaled.observe(0, 900, now, now)
    assert rescaled.combined() == 50
    assert sorted(tuple(e) for e in rescaled.entries(0, 3, 60, now)) == [(0, 3, subtask, 60), (0, 3, 0, 900 - ooo, 0)]
    assert restored(entries((0, 2, 5_000), (1, 2, 7_000)), 1, 2).combined() == 7_000  # an older job's entries
    assert restored(entries((0, 2, 5_000), (1, 2, 7_000)), 0, 1).combined() == 5_000
    assert restored(entries((0, 2, 0, 100, 0), (0, 2, subtask, none), (1, 2, subtask, 300)), 0, 3).combined() == none
    bare = restored(entries((0, 1, 0, none, 0), (0, 1, -7, 500, 0), (0, 1, subtask, none)), 0, 1)
    assert bare.combined() == none and not bare.restoredAny()  # no progress, no partition: passed over
    nothing = restored(entries(), 0, 1)
    assert nothing.combined() == none and not nothing.restoredAny()
    fresh = progress_class(ooo, future, idle_ms, now)  # not restored: no floor, but the progress for a checkpoint
    fresh.observe(3, 200, now, now)
    fresh.observe(3, now + future + 1, now, now)  # further ahead than the future limit: the epoch, i.e. nothing
    fresh.observe(3, 150, now, now)
    assert fresh.combined() == none
    assert [tuple(e) for e in fresh.entries(1, 2, none, now)] == [(1, 2, 3, 200 - ooo, 0), (1, 2, subtask, none)]
    assert fresh.candidate(now + future, now) == now + future - ooo  # exactly at the limit: still counts
    assert fresh.candidate(now + future + 1, now) == -ooo


def test_a_partitions_idleness_is_judged_by_a_clock_a_step_of_the_systems_time_does_not_move(
    decoders: Decoders,
) -> None:
    """Design §5.3: across a restore the decision is a run's that never stopped. Flink's source judges a partition
    idle by a monotonic clock; the checkpoint's entries judged it by the wall clock, so the system's time stepped
    60 s forward (NTP) 2 s after a partition's last record stored it as idle, and a restore left it out: the
    other partition's progress became the watermark and its replayed records were dead-lettered as too late."""
    from pyflink.java_gateway import get_gateway

    progress_class = get_gateway().jvm.featurestore.job.PartitionProgress
    subtask, ooo, idle_ms = -1, 10, 30_000
    opened = progress_class.monotonicMs()
    wall = 1_800_000_000_000
    stepped = progress_class(ooo, 1_000, idle_ms, opened)
    stepped.observe(0, 100_000 + ooo, wall, opened)
    stepped.observe(1, 10_000 + ooo, wall, opened)
    stepped.observe(0, 190_000 + ooo, wall + 62_000, opened + 2_000)  # the wall clock stepped 60 s meanwhile
    assert sorted(tuple(e) for e in stepped.entries(0, 1, 9_000, opened + 2_000)) == [
        (0, 1, subtask, 9_000),
        (0, 1, 0, 190_000, 0),
        (0, 1, 1, 10_000, 0),  # 2 s without a record: not idle, whatever the wall clock says
    ]
    assert [tuple(e) for e in stepped.entries(0, 1, 9_000, opened + idle_ms)][:2] == [
        (0, 1, 0, 190_000, 0),
        (0, 1, 1, 10_000, 1),  # an idle timeout without a record: idle
    ]
