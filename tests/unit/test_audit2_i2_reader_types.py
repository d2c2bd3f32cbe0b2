"""Audit I2 (proposed with the patch to registry/core/definitions.py): registration refuses a reader schema the
stream job cannot read (a field of a type outside the job's row types stops the whole job at start:
``error: event field 'blob': Avro type 'bytes' is not supported yet``), and an event time that is not a long."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import schemas
from registry.core.definitions import FeatureDefinition, event_schema_problems
from tests.unit.conftest import definition_dict


def _problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], **source: Any) -> list[str]:
    fields = [{"name": "user_id", "type": "string"}, {"name": "event_time", "type": "long"}, extra]
    (tmp_path / "i2_types.avsc").write_text(json.dumps({"type": "record", "name": "R", "fields": fields}))
    monkeypatch.setattr(schemas, "SCHEMA_DIR", tmp_path)
    raw = definition_dict(**{"source.event_schema": "i2_types", **{f"source.{k}": v for k, v in source.items()}})
    return event_schema_problems(FeatureDefinition.model_validate(raw))


@pytest.mark.parametrize(
    "avro_type",
    [
        "bytes",
        ["null", "bytes"],
        {"type": "array", "items": "long"},
        {"type": "map", "values": "long"},
        {"type": "enum", "name": "E", "symbols": ["A"]},
        {"type": "fixed", "name": "F", "size": 2},
    ],
)
def test_a_field_the_job_cannot_read_is_refused_even_unused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, avro_type: Any
) -> None:
    problems = _problems(tmp_path, monkeypatch, {"name": "blob", "type": avro_type})
    assert len(problems) == 1 and problems[0].startswith("source.event_schema: field 'blob' is "), problems


@pytest.mark.parametrize("avro_type", ["int", "long", "float", "double", "string", "boolean", ["null", "double"]])
def test_the_jobs_row_types_are_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, avro_type: Any) -> None:
    assert _problems(tmp_path, monkeypatch, {"name": "x", "type": avro_type}) == []


def test_an_int_event_time_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """§4: `timestamp_field` (a long)."""
    problems = _problems(tmp_path, monkeypatch, {"name": "ts", "type": "int"}, timestamp_field="ts")
    assert problems == ["source.timestamp_field: 'ts' is int, not epoch milliseconds (long)"]


@pytest.mark.parametrize("avro_type", ["float", "double", "boolean", ["null", "double"]])
def test_a_key_field_that_is_not_a_string_or_an_integer_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, avro_type: Any
) -> None:
    """Flink spells a double key 7.0 "7.0" and a boolean "TRUE"; a label column of 7.0 is "7", of true "true": the
    training join matched none of such a feature's rows, and the API answered only the job's spelling."""
    problems = _problems(tmp_path, monkeypatch, {"name": "k", "type": avro_type}, entity_key="k")
    assert len(problems) == 1 and problems[0].startswith("source.entity_key: field 'k' is "), problems
    assert problems[0].endswith("; a key field is a string, int or long")


@pytest.mark.parametrize("avro_type", ["int", "long", "string", ["null", "long"]])
def test_string_and_integer_key_fields_are_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, avro_type: Any
) -> None:
    assert _problems(tmp_path, monkeypatch, {"name": "k", "type": avro_type}, entity_key="k") == []
