"""Definition fields cannot change the job's SQL: refused at registration, and quoted when SQL is built.

Every definition field that reaches the job's generated Flink SQL is tried with injection payloads:
the topic (a connector option value), the entity key, timestamp, event-id and aggregated fields
(identifiers), and the names derived from them. Registration must refuse each, naming the field
(model validation and the HTTP route alike); and the SQL builder, given a definition that bypassed
validation, must still produce a statement of the same shape, with the payload inside one quoted
token, so that no option, column or clause can be added.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from jobs.sql import aggregate_sql, dedup_sql, source_ddl, window_groups
from registry.core.definitions import Aggregation, FeatureDefinition

PAYLOADS = [
    "x', 'properties.bootstrap.servers' = 'evil.example:9092",
    "x` , (SELECT 1) AS `y",
    "x`) WITH ('connector' = 'filesystem",
    "x'; DROP TABLE t; --",
    "user id",
    "x\ny",
    "x\x00y",
    'x"y',
    "",
]
FIELDS = [
    "source.topic",
    "source.subject",
    "source.entity_key",
    "source.timestamp_field",
    "source.event_id_field",
    "aggregation.field",
]


def _overrides(field: str, payload: str) -> dict[str, Any]:
    if field == "aggregation.field":
        return {"aggregation": {"function": "max", "field": payload}, "value_type": "double"}
    return {field: payload}


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("payload", PAYLOADS)
def test_registration_refuses_an_injection_through_every_field(
    make_definition_dict: Callable[..., dict[str, Any]], field: str, payload: str
) -> None:
    with pytest.raises(ValidationError) as info:
        FeatureDefinition.model_validate(make_definition_dict(**_overrides(field, payload)))
    assert field.split(".")[0] in str(info.value)


@pytest.mark.parametrize("field", FIELDS)
def test_the_http_route_answers_422_naming_the_field(
    tmp_path: Path, make_definition_dict: Callable[..., dict[str, Any]], field: str
) -> None:
    from registry.definition_store import DefinitionStore
    from registry.live import LiveCatalog
    from serving.online.app import create_app

    class NoValues:
        def read(self, entity_type: str, entity_id: str) -> dict[Any, Any]:
            return {}

        def progress(self) -> dict[str, int]:
            return {}

    store = DefinitionStore(tmp_path / "definitions.db")
    client = TestClient(create_app(LiveCatalog(store), NoValues()), raise_server_exceptions=False)
    response = client.post("/v1/feature-definitions", json=make_definition_dict(**_overrides(field, PAYLOADS[0])))
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_definition"
    assert field.split(".")[-1] in response.text
    assert len(store.catalog()) == 0


def test_valid_names_still_register(make_definition_dict: Callable[..., dict[str, Any]]) -> None:
    d = FeatureDefinition.model_validate(
        make_definition_dict(
            **{
                "source.topic": "Payments.card-events_v2",
                "source.subject": "payments.card-events_v2-value",
                "source.entity_key": "_user_Id9",
                "source.event_id_field": "txn_id",
            }
        )
    )
    assert d.source.topic == "Payments.card-events_v2"
    for topic in (".", "..", "a" * 250, "a/b"):
        with pytest.raises(ValidationError, match="topic"):
            FeatureDefinition.model_validate(make_definition_dict(**{"source.topic": topic}))


# --- the SQL builder, given definitions that bypassed validation -----------------------------------

_TOKEN = re.compile(r"'(?:[^']|'')*'|`(?:[^`]|``)*`|\s+|[^'`\s]+", re.DOTALL)


def _shape(sql: str) -> list[str]:
    """The statement's tokens with every quoted token's content blanked: its shape."""
    tokens = _TOKEN.findall(sql)
    assert "".join(tokens) == sql, "unbalanced quoting"
    return ["'?'" if t.startswith("'") else "`?`" if t.startswith("`") else t for t in tokens if not t.isspace()]


def _quoted(sql: str) -> list[str]:
    """The contents of the quoted tokens, unescaped."""
    return [
        t[1:-1].replace("''", "'") if t.startswith("'") else t[1:-1].replace("``", "`")
        for t in _TOKEN.findall(sql)
        if t[:1] in "'`"
    ]


def _options(ddl: str) -> dict[str, str]:
    """The connector options of a CREATE TABLE: the string literals after the bare WITH, in pairs."""
    tokens = [t for t in _TOKEN.findall(ddl) if not t.isspace()]
    literals = [t[1:-1].replace("''", "'") for t in tokens[tokens.index("WITH") :] if t.startswith("'")]
    return dict(zip(literals[::2], literals[1::2], strict=True))


def _bypassing(d: FeatureDefinition, **source_fields: str) -> FeatureDefinition:
    return d.model_copy(update={"source": d.source.model_copy(update=source_fields)})  # model_copy: no validation


@pytest.mark.parametrize("payload", PAYLOADS[:5])
def test_source_ddl_keeps_its_shape_whatever_the_topic(
    make_definition: Callable[..., FeatureDefinition], payload: str
) -> None:
    benign = make_definition()
    hostile = _bypassing(benign, topic=payload)
    kwargs: dict[str, Any] = {"bootstrap": "127.0.0.1:9092", "group_id": "g", "bounded": True}
    safe = source_ddl("raw_t", benign.source, timedelta(0), **kwargs)
    attacked = source_ddl("raw_t", hostile.source, timedelta(0), **kwargs)
    assert _shape(attacked) == _shape(safe)
    assert payload in _quoted(attacked)
    options = _options(attacked)
    assert set(options) == set(_options(safe))
    assert options["properties.bootstrap.servers"] == "127.0.0.1:9092"
    assert options["topic"] == payload


@pytest.mark.parametrize("payload", PAYLOADS[:5])
@pytest.mark.parametrize("field", ["entity_key", "timestamp_field", "event_id_field", "aggregation"])
def test_window_and_dedup_sql_keep_their_shape_whatever_the_field(
    make_definition: Callable[..., FeatureDefinition], payload: str, field: str
) -> None:
    last = make_definition(
        name="last_m",
        value_type="string",
        aggregation={"function": "last", "field": "merchant_id"},
        **{"source.event_id_field": "transaction_id"},
    )
    if field == "aggregation":
        hostile = last.model_copy(update={"aggregation": Aggregation.model_construct(function="last", field=payload)})
    else:
        hostile = _bypassing(last, **{field: payload})
    (safe_group,) = window_groups([last])
    (hostile_group,) = window_groups([hostile])
    assert _shape(aggregate_sql(hostile_group, "events")) == _shape(aggregate_sql(safe_group, "events"))
    assert _shape(dedup_sql("events_all", hostile.source, ["a", "b"])) == _shape(
        dedup_sql("events_all", last.source, ["a", "b"])
    )
    sql = aggregate_sql(hostile_group, "events") + dedup_sql("events_all", hostile.source, ["a", "b"])
    assert payload in _quoted(sql)  # the whole payload is one quoted token
