"""Audit I2: optional (union with null) event fields, schema evolution and composite keys, as design §4, §5.3
and §5.8 state them. A reader schema of the test's own, in a temporary schema folder (``schemas.SCHEMA_DIR``
patched), so nothing is written to the repository's ``schemas/``. The same cases ran through the real job
(``--bounded``, three interleaved writer versions): see the audit report."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

import schemas
from jobs.sql import aggregate_sql, dedup_sql, window_groups
from registry.core.definitions import FeatureDefinition, event_schema_problems
from registry.core.errors import DecodeError
from tests.unit.conftest import definition_dict
from udfs.decode import EventDecoder

READER: dict[str, Any] = {
    "type": "record",
    "name": "I2Event",
    "namespace": "audit.i2",
    "fields": [
        {"name": "txn_id", "type": ["null", "string"], "default": None},
        {"name": "user_id", "type": "string"},
        {"name": "merchant_id", "type": ["null", "string"], "default": None},
        {"name": "amount", "type": ["null", "double"], "default": None},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "event_time", "type": ["null", "long"], "default": None},
    ],
}
# An older writer: no merchant_id, no note (the reader's defaults fill them in).
WRITER_V1: dict[str, Any] = {
    **READER,
    "fields": [f for f in READER["fields"] if f["name"] not in ("merchant_id", "note")],
}


@pytest.fixture
def schema_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "i2_event.avsc").write_text(json.dumps(READER))
    monkeypatch.setattr(schemas, "SCHEMA_DIR", tmp_path)
    return tmp_path


def _definition(**overrides: Any) -> FeatureDefinition:
    raw = definition_dict(
        **{
            "source.event_schema": "i2_event",
            "source.entity_key": "user_id",
            "source.timestamp_field": "event_time",
            "source.event_id_field": "txn_id",
        }
    )
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        target = raw
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return FeatureDefinition.model_validate(raw)


def _frame(schema_id: int, writer: dict[str, Any], record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(writer), record)
    return b"\x00" + schema_id.to_bytes(4, "big") + out.getvalue()


def _decoder() -> EventDecoder:
    texts = {1: json.dumps(WRITER_V1), 2: json.dumps(READER)}
    return EventDecoder(
        texts.get, READER, timestamp_field="event_time", key_fields=("user_id", "merchant_id"), clock_ms=lambda: 10**13
    )


def test_an_optional_numeric_field_may_be_aggregated_and_a_string_one_not(schema_dir: Path) -> None:
    """§4: `sum` and `mean` take a numeric or boolean field (optional or not); a string one is refused, named."""
    assert (
        event_schema_problems(_definition(value_type="double", aggregation={"function": "sum", "field": "amount"}))
        == []
    )
    assert (
        event_schema_problems(_definition(value_type="double", aggregation={"function": "mean", "field": "amount"}))
        == []
    )
    problems = event_schema_problems(_definition(value_type="double", aggregation={"function": "sum", "field": "note"}))
    assert problems == ["aggregation: `sum` of 'note' (string) cannot give a double value"]


def test_an_older_writer_without_optional_fields_decodes_to_nulls() -> None:
    """Schema evolution: fields the writer lacks take the reader's default (null); nothing is dead-lettered."""
    event = _decoder().decode(_frame(1, WRITER_V1, {"txn_id": None, "user_id": "u1", "amount": None, "event_time": 5}))
    assert event == {
        "txn_id": None,
        "user_id": "u1",
        "merchant_id": None,
        "amount": None,
        "note": None,
        "event_time": 5,
    }


def test_a_null_event_time_is_missing_field_even_when_the_reader_makes_it_optional() -> None:
    """§5.3: the event time is always required: a null there is `missing_field`."""
    record = {"txn_id": "t", "user_id": "u1", "merchant_id": "m", "amount": 1.0, "note": None, "event_time": None}
    with pytest.raises(DecodeError) as caught:
        _decoder().decode(_frame(2, READER, record))
    assert caught.value.reason == "missing_field"


def test_null_and_empty_optional_key_fields_are_not_bad_key() -> None:
    """§5.3: null or empty optional keys are never `bad_key`; 257 characters in any key field is."""
    base = {"txn_id": "t", "user_id": "u1", "amount": 1.0, "note": None, "event_time": 5}
    for merchant in (None, "", "y" * 256):
        assert _decoder().decode(_frame(2, READER, {**base, "merchant_id": merchant}))["merchant_id"] == merchant
    with pytest.raises(DecodeError) as caught:
        _decoder().decode(_frame(2, READER, {**base, "merchant_id": "x" * 257}))
    assert caught.value.reason == "bad_key"


def test_events_with_a_null_key_field_are_left_out_of_the_windows(schema_dir: Path) -> None:
    """§5.8: an event with any key field null (composite), or its single optional key null, is in no window;
    a required single key needs no such filter."""
    pair = _definition(entity="pair", **{"source.entity_key": ["user_id", "merchant_id"]})
    (group,) = window_groups([pair])
    assert "WHERE `user_id` IS NOT NULL AND `merchant_id` IS NOT NULL" in aggregate_sql(group, "events")
    (single_optional,) = window_groups([_definition(entity="merchant", **{"source.entity_key": "merchant_id"})])
    assert "WHERE `merchant_id` IS NOT NULL" in aggregate_sql(single_optional, "events")
    (required,) = window_groups([_definition()])
    assert "WHERE" not in aggregate_sql(required, "events")


def test_events_without_their_optional_id_are_each_counted(schema_dir: Path) -> None:
    """§5.3: the first arrival of each id counts; an event whose optional id is null is no resend of another."""
    sql = dedup_sql("events", _definition().source, ["txn_id", "user_id"])
    assert "WHERE `txn_id` IS NOT NULL) WHERE __rn = 1" in sql
    assert sql.endswith("UNION ALL SELECT `txn_id`, `user_id`, rowtime FROM `events` WHERE `txn_id` IS NULL")
