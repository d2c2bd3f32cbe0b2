"""A table of events as a batch source: read, cast, checked by the decoder's rules, sorted by event time."""

from __future__ import annotations

import math
import random
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.events_table import arrow_schema, read_events
from registry.core.definitions import Source
from registry.core.errors import DecodeError, EventsTableError
from schemas import load_schema
from udfs.decode import MAX_FUTURE_MS, EventDecoder, check_events

NOW_MS = 1_800_000_000_000
SOURCE = Source(
    topic="card_transactions",
    event_schema="card_transaction",
    subject="card_transactions-value",
    entity_key="user_id",
    timestamp_field="event_time",
    event_id_field="transaction_id",
)


def _no_catalog() -> Any:
    raise AssertionError("no catalog for a Parquet location")


def _events(n: int = 4, **overrides: pa.Array) -> pa.Table:
    columns: dict[str, pa.Array] = {
        "transaction_id": pa.array([f"t{i}" for i in range(n)]),
        "user_id": pa.array([f"u{i % 2}" for i in range(n)]),
        "merchant_id": pa.array(["m"] * n),
        "amount": pa.array([float(i) for i in range(n)]),
        "currency": pa.array(["EUR"] * n),
        "event_time": pa.array([NOW_MS - 1000 * (n - i) for i in range(n)], pa.int64()),
    }
    columns.update(overrides)
    return pa.table(columns)


def _decoder_reasons(decoder: EventDecoder, records: list[dict[str, Any]]) -> list[str | None]:
    """Per record, the reason ``EventDecoder``'s own rules refuse it (None: accepted): the reference."""
    return [None if answer is None else answer[0] for answer in _decoder_answers(decoder, records)]


def _decoder_answers(decoder: EventDecoder, records: list[dict[str, Any]]) -> list[tuple[str, str] | None]:
    """Per record, ``(reason, detail)`` of ``EventDecoder``'s own rules (None: accepted)."""
    answers: list[tuple[str, str] | None] = []
    for record in records:
        try:
            decoder._validate(dict(record))
            answers.append(None)
        except DecodeError as exc:
            answers.append((exc.reason, exc.detail))
    return answers


def _parquet(tmp_path: Path, table: pa.Table, name: str = "events.parquet") -> str:
    path = tmp_path / name
    pq.write_table(table, path)
    return str(path)


@pytest.mark.parametrize("keys", [("user_id", "merchant_id"), ("currency",)])
def test_batch_rules_give_every_record_the_reason_the_decoder_gives_it(keys: tuple[str, ...]) -> None:
    """check_events (a column at a time) against EventDecoder's own per-record rules, on random records; keyed
    by a composite key (every field of it is held to the length limit) and by a key not named `*_id` (an empty
    one is missing too)."""
    rng = random.Random(5)
    schema = load_schema("card_transaction")
    decoder = EventDecoder(
        lambda _: None, schema, timestamp_field="event_time", key_fields=keys, clock_ms=lambda: NOW_MS
    )
    records = []
    for i in range(2000):
        records.append(
            {
                "transaction_id": rng.choice([f"t{i}", "", None, "t" * 300]),  # not a key field: any length
                "user_id": rng.choice(["u1", "u2", "", None, "u" * 256, "u" * 257, "é" * 300]),
                "merchant_id": rng.choice(["m", "", None, "😀" * 256, "😀" * 257]),  # an `*_id`: empty is missing
                "amount": rng.choice([1.5, 0.0, -2.0, math.nan, math.inf, -math.inf, None]),
                "currency": rng.choice(["EUR", "", None]),
                "event_time": rng.choice(
                    [NOW_MS, NOW_MS + MAX_FUTURE_MS, NOW_MS + MAX_FUTURE_MS + 1, -1, 0, None, NOW_MS - 10**9]
                ),
            }
        )
    expected = _decoder_reasons(decoder, records)
    table = pa.Table.from_pylist(records, schema=arrow_schema(SOURCE)).append_column(
        "i", pa.array(range(len(records)), pa.int64())
    )
    valid, rejected = check_events(table, schema, timestamp_field="event_time", now_ms=NOW_MS, key_fields=keys)
    got: list[str | None] = [None] * len(records)
    for i, reason in zip(rejected.column("i").to_pylist(), rejected.column("reason").to_pylist(), strict=True):
        got[i] = reason
    assert got == expected
    assert sorted(valid.column("i").to_pylist()) == [i for i, r in enumerate(expected) if r is None]
    if keys == ("currency",):  # an empty currency is missing now: first of the rules, so the record's reason
        empty = [i for i, r in enumerate(records) if r["currency"] == "" and r["transaction_id"] not in ("", None)]
        assert empty and all(expected[i] == "missing_field" for i in empty)
        return
    assert {r for r in expected if r} == {"missing_field", "bad_key", "non_finite", "future_timestamp", "bad_timestamp"}
    # A bad key's detail names the field and its length, as the decoder's does.
    answers = _decoder_answers(decoder, records)
    details = dict(zip(rejected.column("i").to_pylist(), rejected.column("detail").to_pylist(), strict=True))
    bad_keys = {i: a[1] for i, a in enumerate(answers) if a is not None and a[0] == "bad_key"}
    assert bad_keys == {i: details[i] for i in bad_keys}
    assert {
        "key field 'user_id' is 300 characters (at most 256)",
        "key field 'merchant_id' is 257 characters (at most 256)",
    } <= set(bad_keys.values())
    # Every detail is the decoder's, a row at a time: the table path said 'is not finite' for 'is nan', and left
    # the time out of the timestamps' (audit, 2026-12-07).
    assert details == {i: a[1] for i, a in enumerate(answers) if a is not None}
    assert {
        "field 'amount' is nan",
        "field 'amount' is -inf",
        f"event_time={NOW_MS + MAX_FUTURE_MS + 1} is beyond now + {MAX_FUTURE_MS} ms",
        "event_time=-1 is before 1970",
    } <= set(details.values())


def test_a_string_that_is_not_utf8_is_undecodable_as_the_decoders_read_it(tmp_path: Path) -> None:
    """A Parquet reader does not check UTF-8: a table of events passed a user id or currency of other bytes, and the
    job then stopped with a traceback in ``to_pandas`` (no rejected row), where the decoders dead-letter such a
    record ``undecodable`` before every other rule (audit, 2026-12-07)."""
    bad = pa.array([b"u\xff", b"u1", b"u2", b"\xed\xa0\x80", None], pa.binary()).view(pa.string())
    table = pa.table(
        {
            "transaction_id": ["t0", "t1", "t2", "t3", "t4"],
            "user_id": bad,
            "merchant_id": ["m"] * 5,
            "amount": [1.0, 2.0, float("nan"), 3.0, 4.0],
            "currency": pa.array([b"EUR", b"E\xffR", b"EUR", b"EUR", b"EUR"], pa.binary()).view(pa.string()),
            "event_time": pa.array([NOW_MS - 1000] * 5, pa.int64()),
        }
    )
    events = read_events(_parquet(tmp_path, table), SOURCE, lambda: None, now_ms=NOW_MS)
    rejected = events.rejected.sort_by("transaction_id")
    assert rejected.column("transaction_id").to_pylist() == ["t0", "t1", "t2", "t3", "t4"]
    assert rejected.column("reason").to_pylist() == [
        "undecodable",
        "undecodable",
        "non_finite",
        "undecodable",
        "missing_field",
    ]
    assert rejected.column("detail").to_pylist()[:2] == [
        "field 'user_id' is not UTF-8",
        "field 'currency' is not UTF-8",
    ]
    assert events.valid.num_rows == 0


def test_check_events_holds_key_values_to_256_characters() -> None:
    """256 characters in, 257 out; counted in characters (``é`` is 2 bytes); every field of a composite key;
    an integer key never; empty and null keys as before; without ``key_fields``, no key rule at all."""
    user_ids = ["u" * 256, "u" * 257, "é" * 300, "a", "", None, "u"]
    merchant_ids = ["m", "m", "m", "m" * 257, "m", "m", "m"]
    table = _events(
        len(user_ids),
        user_id=pa.array(user_ids, pa.string()),
        merchant_id=pa.array(merchant_ids),
        amount=pa.array([1.0, math.nan, 1.0, 1.0, 1.0, 1.0, 1.0]),
    )
    schema = load_schema("card_transaction")
    kw: dict[str, Any] = {"timestamp_field": "event_time", "now_ms": NOW_MS}
    valid, rejected = check_events(table, schema, key_fields=("user_id", "merchant_id"), **kw)
    assert valid.column("transaction_id").to_pylist() == ["t0", "t6"]
    assert list(zip(rejected.column("reason").to_pylist(), rejected.column("detail").to_pylist(), strict=True)) == [
        ("bad_key", "key field 'user_id' is 257 characters (at most 256)"),  # before non_finite
        ("bad_key", "key field 'user_id' is 300 characters (at most 256)"),
        ("bad_key", "key field 'merchant_id' is 257 characters (at most 256)"),
        ("missing_field", "required field 'user_id' is missing or empty"),
        ("missing_field", "required field 'user_id' is missing or empty"),
    ]
    _, without = check_events(table, schema, **kw)
    assert without.column("reason").to_pylist() == ["non_finite", "missing_field", "missing_field"]
    with_int = table.set_column(1, "user_id", pa.array([10**18] * len(user_ids), pa.int64()))
    int_schema = {
        **schema,
        "fields": [{**f, "type": "long"} if f["name"] == "user_id" else f for f in schema["fields"]],
    }
    _, rejected = check_events(with_int, int_schema, key_fields=("user_id", "merchant_id"), **kw)
    assert rejected.column("reason").to_pylist() == ["non_finite", "bad_key"]


def test_a_table_is_checked_by_its_source_key_fields(tmp_path: Path) -> None:
    table = _events(3, user_id=pa.array(["u" * 256, "u" * 257, "ü" * 256]))
    events = read_events(_parquet(tmp_path, table), SOURCE, _no_catalog, now_ms=NOW_MS)
    assert events.valid.column("transaction_id").to_pylist() == ["t0", "t2"]
    assert events.reasons() == {"bad_key": 1}
    pair = SOURCE.model_copy(update={"entity_key": ("user_id", "merchant_id")})
    table = _events(2, merchant_id=pa.array(["m", "m" * 257]))
    events = read_events(_parquet(tmp_path, table), pair, _no_catalog, now_ms=NOW_MS)
    assert events.rejected.column("detail").to_pylist() == ["key field 'merchant_id' is 257 characters (at most 256)"]


def test_a_null_in_an_optional_float_field_passes_as_the_decoder_lets_it() -> None:
    """A union with null of a double or float: null is a value, not `non_finite`; NaN and infinities are."""
    schema = load_schema("card_transaction")
    schema = {**schema, "fields": [*schema["fields"], {"name": "score", "type": ["null", "double"], "default": None}]}
    decoder = EventDecoder(lambda _: None, schema, timestamp_field="event_time", clock_ms=lambda: NOW_MS)
    scores = [None, 1.5, math.nan, math.inf, -math.inf, 0.0]
    base = {"transaction_id": "t", "user_id": "u1", "merchant_id": "m", "amount": 1.0, "currency": "EUR"}
    records = [{**base, "transaction_id": f"t{i}", "event_time": NOW_MS, "score": v} for i, v in enumerate(scores)]
    expected = _decoder_reasons(decoder, records)
    assert expected == [None, None, "non_finite", "non_finite", "non_finite", None]
    fields = [*arrow_schema(SOURCE), pa.field("score", pa.float64())]
    table = pa.Table.from_pylist(records, schema=pa.schema(fields))
    valid, rejected = check_events(table, schema, timestamp_field="event_time", now_ms=NOW_MS)
    assert valid.column("transaction_id").to_pylist() == ["t0", "t1", "t5"]
    assert rejected.column("reason").to_pylist() == ["non_finite"] * 3


def test_a_parquet_table_is_cast_sorted_and_split(tmp_path: Path) -> None:
    table = _events(
        5,
        amount=pa.array([3, 1, 2, 4, 5], pa.int32()),  # integers widen to double
        user_id=pa.array(["u1", "u2", "u1", "", "u2"]).dictionary_encode(),
        event_time=pa.array([5000, 1000, 3000, 2000, 4000], pa.int64()),
    ).append_column("extra", pa.array(["ignored"] * 5))
    events = read_events(_parquet(tmp_path, table), SOURCE, _no_catalog, now_ms=NOW_MS)
    assert events.valid.schema == arrow_schema(SOURCE)
    assert events.valid.column("event_time").to_pylist() == [1000, 3000, 4000, 5000]
    assert events.valid.column("amount").to_pylist() == [1.0, 2.0, 5.0, 3.0]
    assert events.rejected.column("reason").to_pylist() == ["missing_field"]
    assert events.reasons() == {"missing_field": 1}


@pytest.mark.parametrize(
    ("unit", "raw", "expected_ms"),
    [("s", 2, 2000), ("ms", 1234, 1234), ("us", 1_234_999, 1234), ("ns", 1_234_999_999, 1234), ("us", -1, -1)],
)
def test_timestamp_columns_are_floored_to_the_millisecond(
    tmp_path: Path, unit: str, raw: int, expected_ms: int
) -> None:
    table = _events(1, event_time=pa.array([raw], pa.timestamp(unit, tz="UTC")))
    events = read_events(_parquet(tmp_path, table), SOURCE, _no_catalog, now_ms=NOW_MS)
    both = pa.concat_tables([events.valid, events.rejected.drop_columns(["reason", "detail"])])
    assert both.column("event_time").to_pylist() == [expected_ms]
    if expected_ms < 0:  # floored, not truncated toward zero: a time before 1970 stays before it
        assert events.reasons() == {"bad_timestamp": 1}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"amount": pa.array(["1.0"] * 2)}, "'amount': a column of string cannot hold double"),
        ({"event_time": pa.array([1.5, 2.5])}, "timestamp field 'event_time' is double"),
        ({"currency": pa.array([1, 2])}, "'currency': a column of int64 cannot hold string"),
    ],
)
def test_a_column_that_cannot_hold_its_field_is_named(
    tmp_path: Path, override: dict[str, pa.Array], message: str
) -> None:
    with pytest.raises(EventsTableError, match=message):
        read_events(_parquet(tmp_path, _events(2, **override)), SOURCE, _no_catalog, now_ms=NOW_MS)


def test_missing_columns_and_locations_are_named(tmp_path: Path) -> None:
    with pytest.raises(EventsTableError, match=r"no column for event field\(s\) currency"):
        read_events(_parquet(tmp_path, _events(2).drop_columns(["currency"])), SOURCE, _no_catalog, now_ms=NOW_MS)
    with pytest.raises(EventsTableError, match="no such file or directory"):
        read_events(str(tmp_path / "nowhere"), SOURCE, _no_catalog, now_ms=NOW_MS)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(EventsTableError, match="not readable as Parquet"):
        read_events(str(tmp_path / "junk.parquet"), SOURCE, _no_catalog, now_ms=NOW_MS)


def test_a_directory_of_parquet_files_is_one_table(tmp_path: Path) -> None:
    folder = tmp_path / "events"
    folder.mkdir()
    _parquet(folder, _events(4).slice(2), "b.parquet")
    _parquet(folder, _events(4).slice(0, 2), "a.parquet")
    events = read_events(str(folder), SOURCE, _no_catalog, now_ms=NOW_MS)
    assert events.valid.column("transaction_id").to_pylist() == ["t0", "t1", "t2", "t3"]


def test_an_iceberg_table_reads_like_its_parquet(tmp_path: Path) -> None:
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=(tmp_path / "wh").as_uri())
    catalog.create_namespace("raw")
    table = _events(6, event_time=pa.array([NOW_MS - i for i in range(6)], pa.timestamp("ms", tz="UTC")))
    iceberg = catalog.create_table("raw.card_transactions", schema=table.schema)
    iceberg.append(table)
    from_iceberg = read_events("iceberg:raw.card_transactions", SOURCE, lambda: catalog, now_ms=NOW_MS)
    from_parquet = read_events(_parquet(tmp_path, table), SOURCE, _no_catalog, now_ms=NOW_MS)
    assert from_iceberg.valid.equals(from_parquet.valid)
    assert from_iceberg.valid.column("event_time").to_pylist() == [NOW_MS - i for i in range(5, -1, -1)]
    with pytest.raises(EventsTableError, match="not in the Iceberg catalog"):
        read_events("iceberg:raw.nothing", SOURCE, lambda: catalog, now_ms=NOW_MS)


def test_a_table_of_events_stands_for_one_source() -> None:
    from jobs.batch_input import one_source
    from registry.core.catalog import load_folder
    from registry.core.errors import FeatureStoreError
    from tests.conftest import REPO

    shipped = list(load_folder(REPO / "registry" / "features"))
    assert one_source(shipped) == shipped[0].source
    other = shipped[0].model_copy(update={"source": shipped[0].source.model_copy(update={"topic": "other"})})
    with pytest.raises(FeatureStoreError, match="these definitions read 2: run one source at a time"):
        one_source([*shipped, other])


def test_a_bad_table_fails_the_job_in_one_line_before_flink_starts(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import time

    from registry.core.catalog import load_folder
    from registry.core.settings import Settings
    from registry.definition_store import DefinitionStore
    from registry.plan import apply
    from tests.conftest import REPO

    settings = Settings.from_env().model_copy(update={"definitions_db": tmp_path / "definitions.db"})
    apply(DefinitionStore(settings.definitions_db), load_folder(REPO / "registry" / "features"))
    started = time.monotonic()
    job = subprocess.run(
        [sys.executable, "-m", "jobs.feature_job", "--events", str(tmp_path / "nowhere")],
        cwd=REPO,
        env={**os.environ, **settings.to_env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert job.returncode == 1
    assert (
        job.stderr.strip().splitlines()[-1]
        == f"error: events table {str(tmp_path / 'nowhere')!r}: no such file or directory"
    )
    assert "Traceback" not in job.stderr
    assert time.monotonic() - started < 60  # no mini-cluster was started


def test_a_time_range_keeps_events_from_since_up_to_but_not_including_until() -> None:
    from jobs.batch_input import LAST_MS, in_range, window_range

    events = _events(5, event_time=pa.array([999, 1000, 1500, 1999, 2000], pa.int64()))
    assert in_range(events, "event_time", (1000, 2000)).column("event_time").to_pylist() == [1000, 1500, 1999]
    assert window_range("2026-11-01T00:00:00Z", "1793491200001") == (1_793_491_200_000, 1_793_491_200_001)
    assert window_range("2026-11-01T01:00:00.001+01:00", None) == (1_793_491_200_001, LAST_MS)
    assert window_range(None, "1000") == (0, 1000)
    assert window_range(None, None) is None
    assert window_range("0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z") == (-62_135_596_800_000, LAST_MS)


def test_a_resend_whose_original_lies_before_since_is_not_counted_in_the_range() -> None:
    """design §5.7: the range writes only whole windows, so no window at an edge is partial. A resend at or after
    ``since`` of an event before it counted there (the whole run ignores it: the first in time order counts)."""
    from jobs.batch_input import first_arrivals, in_range

    events = _events(
        7,
        transaction_id=pa.array(["a1", "a1", "a2", None, None, "a3", "a3"]),
        event_time=pa.array([1000, 1500, 1600, 1700, 1700, 1800, 1800], pa.int64()),
        amount=pa.array([1.0, 100.0, 2.0, 3.0, 4.0, 5.0, 50.0]),
        user_id=pa.array(["u1"] * 7),
    )
    chosen = in_range(events, "event_time", (1500, 2000), "transaction_id", ("user_id",))
    # a1's resend dropped; both events without an id kept; a3 at one time twice: the table's first
    assert chosen.column("amount").to_pylist() == [2.0, 3.0, 4.0, 5.0]
    assert in_range(events, "event_time", (1500, 2000)).num_rows == 6  # no id field: every event in range
    backwards = events.take(pa.array([6, 5, 4, 3, 2, 1, 0]))  # a later original listed first: time order decides
    assert first_arrivals(backwards, "event_time", "transaction_id", ("user_id",)).column("amount").to_pylist() == [
        50.0,
        4.0,
        3.0,
        2.0,
        1.0,
    ]
    assert first_arrivals(events.slice(0, 0), "event_time", "transaction_id", ("user_id",)).num_rows == 0


def test_an_event_id_is_a_resend_only_within_its_entity() -> None:
    """design §5.3: an id counts once per entity. Copies of one id under two entities were deduplicated by the id
    alone: the stream job kept whichever reached it first (a race between subtasks), so one topic replayed gave
    another value; the batch path kept the earlier one. Both now count each entity's copy, whatever the order."""
    from jobs.batch_input import first_arrivals

    events = _events(
        5,
        transaction_id=pa.array(["t", "t", "t", "t", "s"]),
        user_id=pa.array(["u1", "u2", "u1", "u2", "u1"]),
        merchant_id=pa.array(["m1", "m1", "m1", "m2", "m1"]),
        event_time=pa.array([1000, 1100, 1200, 1300, 1400], pa.int64()),
        amount=pa.array([1.0, 2.0, 3.0, 4.0, 5.0]),
    )
    assert first_arrivals(events, "event_time", "transaction_id", ("user_id",)).column("amount").to_pylist() == [
        1.0,
        2.0,
        5.0,
    ]
    composite = first_arrivals(events, "event_time", "transaction_id", ("user_id", "merchant_id"))
    assert composite.column("amount").to_pylist() == [1.0, 2.0, 4.0, 5.0]  # a composite key: every field


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("2026-11-01T00:00:00", None, "needs a time zone"),
        ("yesterday", None, "neither an ISO-8601 time nor epoch milliseconds"),
        ("2000", "2000", "--since must be before --until"),
        (
            "2026-11-01T01:00:00.0009+01:00",
            None,
            "--since '2026-11-01T01:00:00.0009\\+01:00': give a whole millisecond",
        ),
        (None, "1970-01-01T00:00:00.0015Z", "--until .*: give a whole millisecond"),
        # ISO times with an offset reach past the years an Iceberg timestamp holds: the archive's scan failed on them
        (None, "9999-12-31T23:59:59.999-01:00", "--until '9999-12-31T23:59:59.999-01:00' is past the year 9999 in UTC"),
        ("0001-01-01T00:00:00+01:00", None, "--since '0001-01-01T00:00:00\\+01:00' is before the year 1 in UTC"),
    ],
)
def test_a_bad_time_range_is_named(since: str | None, until: str | None, message: str) -> None:
    from jobs.batch_input import window_range
    from registry.core.errors import FeatureStoreError

    with pytest.raises(FeatureStoreError, match=message):
        window_range(since, until)


def test_the_seam_is_the_archive_end_or_what_kafka_holds_and_a_gap_is_named() -> None:
    from sinks.archive import ArchiveError, seam

    kafka = {0: (0, 10), 1: (5, 9), 2: (3, 3)}
    assert seam({0: 7, 1: 9}, kafka, "t") == {0: 7, 1: 9, 2: 3}  # partition 2 never archived: from what Kafka holds
    assert seam({0: 7, 1: 5, 2: 3}, kafka, "t") == {0: 7, 1: 5, 2: 3}  # exactly at Kafka's first offset: no gap
    with pytest.raises(ArchiveError, match=r"'t' partition 1: offsets 4\.\.4 are neither archived nor in Kafka"):
        seam({0: 7, 1: 4}, kafka, "t")


def test_archive_rows_keep_each_record_as_it_came() -> None:
    from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_NOT_AVAILABLE, Message

    from sinks.archive import ARROW_SCHEMA, to_rows

    messages = [
        Message(
            topic="t", partition=2, offset=7, value=b"\x00\xff\xff\xff\xfeabc", timestamp=(TIMESTAMP_CREATE_TIME, 1234)
        ),
        Message(topic="t", partition=0, offset=0, value=b"\x01junk", timestamp=(TIMESTAMP_CREATE_TIME, 5)),
        Message(topic="t", partition=0, offset=1, value=None, timestamp=(TIMESTAMP_NOT_AVAILABLE, -1)),
    ]
    rows = to_rows(messages, archived_at_us=99)
    assert rows.schema == ARROW_SCHEMA
    got = rows.to_pylist()
    assert [(r["partition"], r["offset"], r["schema_id"], r["payload"]) for r in got] == [
        (2, 7, 0xFFFFFFFE, b"\x00\xff\xff\xff\xfeabc"),  # the frame's id, unsigned as the wire format has it
        (0, 0, None, b"\x01junk"),  # not framed: kept, refused with its reason when read
        (0, 1, None, None),
    ]
    assert [int(r["kafka_timestamp"].timestamp() * 1000) for r in got] == [1234, 5, 0]


def _int96_events(tmp_path: Path, day: date) -> Path:
    """A one-event file whose event_time is INT96 (Spark's legacy type) at ``day`` 00:00:00.123456789: written at a
    day Arrow holds in nanoseconds, then its Julian day patched (Arrow cannot write a time outside 1677-2262)."""
    import struct

    written = date(2024, 5, 1)
    ns = (written - date(1970, 1, 1)).days * 86_400 * 10**9 + 123_456_789
    pq.write_table(
        _events(1, event_time=pa.array([ns], pa.timestamp("ns"))),
        tmp_path / "w.parquet",
        use_deprecated_int96_timestamps=True,
        use_dictionary=False,
        compression="NONE",
    )
    raw = bytearray((tmp_path / "w.parquet").read_bytes())
    stored = struct.pack("<q", 123_456_789) + struct.pack("<i", 2_460_432)  # nanoseconds of the day, Julian day
    assert raw.count(stored) >= 1
    patched = bytes(raw).replace(stored, stored[:8] + struct.pack("<i", 2_460_432 + (day - written).days))
    (tmp_path / "e.parquet").write_bytes(patched)
    return tmp_path / "e.parquet"


@pytest.mark.parametrize(
    ("day", "valid_ms", "reason"),
    [
        (date(2024, 5, 1), 1_714_521_600_123, None),  # floored to the millisecond
        (date(2600, 5, 1), None, "future_timestamp"),  # was a valid event at 2015-10-11 (wrapped 584 years)
        (date(1400, 1, 1), None, "bad_timestamp"),  # was a valid event at 1984-07-21
    ],
)
def test_an_int96_event_time_is_read_as_its_own_time(
    tmp_path: Path, day: date, valid_ms: int | None, reason: str | None
) -> None:
    events = read_events(str(_int96_events(tmp_path, day)), SOURCE, _no_catalog, now_ms=NOW_MS)
    assert events.valid.column("event_time").to_pylist() == ([] if valid_ms is None else [valid_ms])
    assert (events.rejected.column("reason").to_pylist() if events.rejected.num_rows else []) == (
        [] if reason is None else [reason]
    )


def test_an_empty_id_in_a_large_string_column_is_missing_as_in_a_string_column() -> None:
    """``check_events`` called with ``large_string`` columns (``read_events`` casts to ``string`` first) let an
    empty ``*_id`` through where the decoders refuse it (the second review)."""
    schema = load_schema("card_transaction")
    rows: dict[str, list[Any]] = {
        "transaction_id": ["t0", "t1"],
        "user_id": ["", "u1"],
        "merchant_id": ["m", "m"],
        "amount": [1.0, 2.0],
        "currency": ["EUR", "EUR"],
        "event_time": [NOW_MS - 1000] * 2,
    }
    for kind in (pa.string(), pa.large_string()):
        table = pa.table({k: pa.array(v, kind) if isinstance(v[0], str) else v for k, v in rows.items()})
        valid, rejected = check_events(table, schema, timestamp_field="event_time", now_ms=NOW_MS)
        assert valid.column("transaction_id").to_pylist() == ["t1"], kind
        assert rejected.column("reason").to_pylist() == ["missing_field"], kind
