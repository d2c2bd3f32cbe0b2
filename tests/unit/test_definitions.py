"""Feature definitions: the shipped ones, valid and invalid shapes, transform_hash, names, text and version."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition

MakeDef = Callable[..., FeatureDefinition]
REPO = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------------------------------
# The shipped definitions
# ---------------------------------------------------------------------------------------------


def test_shipped_folder_loads(shipped_catalog: FeatureCatalog) -> None:
    assert len(shipped_catalog) == 2
    assert shipped_catalog.entity_types() == {"user"}
    count = shipped_catalog.get("user", "txn_count_1h")
    total = shipped_catalog.get("user", "txn_amount_sum_1h")

    assert count.key == ("user", "txn_count_1h", 1)
    assert count.owner == "risk-team"
    assert count.tags == ("risk", "payments")
    assert count.value_type == "long"
    assert count.window.kind == "sliding"
    assert count.window.size == timedelta(hours=1)
    assert count.window.slide == timedelta(minutes=5)
    assert count.window.gap is None
    assert count.aggregation.function == "count"
    assert count.aggregation.field is None
    assert count.freshness_slo == timedelta(minutes=10)
    assert count.ttl == timedelta(hours=2)
    assert count.offline_retention == timedelta(days=1095)
    assert count.sensitivity == "internal"
    assert count.status == "active"
    assert count.source.topic == "card_transactions"
    assert count.source.subject == "card_transactions-value"
    assert count.source.entity_key == "user_id"
    assert count.source.timestamp_field == "event_time"
    assert count.source.event_id_field == "transaction_id"
    assert count.source.max_out_of_orderness == timedelta(seconds=5)
    assert count.source.idle_timeout == timedelta(seconds=30)

    assert total.key == ("user", "txn_amount_sum_1h", 1)
    assert total.value_type == "double"
    assert total.aggregation.function == "sum"
    assert total.aggregation.field == "amount"
    assert total.window == count.window
    assert total.source == count.source


def test_shipped_transform_refs(shipped_catalog: FeatureCatalog) -> None:
    count = shipped_catalog.get("user", "txn_count_1h")
    total = shipped_catalog.get("user", "txn_amount_sum_1h")
    # Golden values: a change here changes the lineage identity of every stored value of these features.
    assert count.transform_hash == "a4951a12826161c3"
    assert total.transform_hash == "c713d836e42f4f9f"
    assert count.transform_ref == "card_transactions:sliding(1h/5m):count(*)@a4951a12826161c3"
    assert total.transform_ref == "card_transactions:sliding(1h/5m):sum(amount)@c713d836e42f4f9f"


def test_definition_round_trips_through_json(shipped_catalog: FeatureCatalog) -> None:
    for d in shipped_catalog:
        dumped = d.model_dump(mode="json")
        assert dumped["window"] == {
            "kind": "sliding",
            "size": "1h",
            "slide": "5m",
            "gap": None,
            "allowed_lateness": "0ms",
        }
        assert dumped["ttl"] == "2h"
        assert FeatureDefinition.model_validate(dumped) == d


def test_definitions_are_frozen(make_definition: MakeDef) -> None:
    d = make_definition()
    with pytest.raises(ValidationError, match="frozen"):
        d.ttl = timedelta(hours=3)  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Valid and invalid shapes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"window": {"kind": "tumbling", "size": "10m"}},
        {"window": {"kind": "session", "gap": "30m"}},
        {"window": {"kind": "sliding", "size": "1h", "slide": "1h"}},
        {"window": {"kind": "sliding", "size": "9m", "slide": "90s", "allowed_lateness": "1m"}},
        {"aggregation": {"function": "sum", "field": "amount"}, "value_type": "double"},
        {"aggregation": {"function": "sum", "field": "amount"}, "value_type": "long"},
        {"aggregation": {"function": "mean", "field": "amount"}, "value_type": "double"},
        {"aggregation": {"function": "min", "field": "merchant_id"}, "value_type": "string"},
        {"aggregation": {"function": "last", "field": "flag"}, "value_type": "boolean"},
        {"aggregation": {"function": "count_distinct", "field": "merchant_id"}, "value_type": "long"},
        {"status": "deprecated", "deprecated_after": "2025-01-31"},
        {"name": "a" + "b" * 62},
        {"name": "x9_"},
    ],
)
def test_valid_shapes(overrides: dict[str, Any], make_definition: MakeDef) -> None:
    d = make_definition(**overrides)
    for key, value in overrides.items():
        assert key in d.model_fields_set
        if key == "deprecated_after":
            assert d.deprecated_after == date(2025, 1, 31)
        elif key in ("name", "value_type", "status"):
            assert getattr(d, key) == value


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"window": {"kind": "sliding", "size": "1h"}}, "a sliding window takes `size` and a positive `slide`"),
        ({"window": {"kind": "sliding", "slide": "5m"}}, "a sliding window takes `size` (and no `gap`)"),
        (
            {"window": {"kind": "sliding", "size": "1h", "slide": "0ms"}},
            "a sliding window takes `size` and a positive `slide`",
        ),
        (
            {"window": {"kind": "sliding", "size": "1h", "slide": "7m"}},
            "`size` must be a whole multiple of its `slide`",
        ),
        (
            {"window": {"kind": "sliding", "size": "5m", "slide": "10m"}},
            "`size` must be a whole multiple of its `slide`",
        ),
        ({"window": {"kind": "sliding", "size": "0ms", "slide": "5m"}}, "window `size` must be positive"),
        ({"window": {"kind": "session", "gap": "30m", "size": "1h"}}, "a session window takes `gap` only"),
        ({"window": {"kind": "session", "gap": "30m", "slide": "1m"}}, "a session window takes `gap` only"),
        ({"window": {"kind": "session"}}, "a session window takes `gap` only"),
        ({"window": {"kind": "session", "gap": "0s"}}, "window `gap` must be positive"),
        (
            {"window": {"kind": "session", "gap": "30m", "allowed_lateness": "1m"}},
            "a session window takes no `allowed_lateness`",
        ),
        ({"window": {"kind": "tumbling", "size": "10m", "slide": "5m"}}, "a tumbling window takes no `slide`"),
        ({"window": {"kind": "tumbling", "size": "10m", "gap": "5m"}}, "a tumbling window takes `size` (and no `gap`)"),
        ({"window": {"kind": "tumbling"}}, "a tumbling window takes `size` (and no `gap`)"),
        ({"window": {"kind": "tumbling", "size": "0m"}}, "window `size` must be positive"),
        ({"window": {"kind": "hopping", "size": "1h"}}, "Input should be 'tumbling', 'sliding' or 'session'"),
        ({"aggregation": {"function": "count", "field": "amount"}}, "`count` counts events and takes no `field`"),
        ({"aggregation": {"function": "sum"}, "value_type": "double"}, "`sum` needs the event `field` it aggregates"),
        ({"aggregation": {"function": "max", "field": ""}}, "`max` needs the event `field` it aggregates"),
        ({"aggregation": {"function": "median", "field": "amount"}}, "Input should be 'count', 'sum'"),
        ({"value_type": "double"}, "Value error, `count` yields long, not double"),
        ({"aggregation": {"function": "mean", "field": "amount"}}, "`mean` yields double, not long"),
        (
            {"aggregation": {"function": "sum", "field": "amount"}, "value_type": "string"},
            "`sum` yields double or long, not string",
        ),
        (
            {"aggregation": {"function": "min", "field": "flag"}, "value_type": "boolean"},
            "`min` yields double or long or string, not boolean",
        ),
        (
            {"aggregation": {"function": "count_distinct", "field": "m"}, "value_type": "double"},
            "`count_distinct` yields long, not double",
        ),
        ({"value_type": "int"}, "Input should be 'long', 'double', 'string' or 'boolean'"),
        ({"colour": "red"}, "colour\n  Extra inputs are not permitted"),
        (
            {"window": {"kind": "tumbling", "size": "10m", "offset": "1m"}},
            "window.offset\n  Extra inputs are not permitted",
        ),
        ({"aggregation": {"function": "count", "filter": "x"}}, "aggregation.filter\n  Extra inputs are not permitted"),
        ({"name": "TxnCount"}, "name\n  String should match pattern"),
        ({"name": "1txn"}, "name\n  String should match pattern"),
        ({"name": "txn-count"}, "name\n  String should match pattern"),
        ({"name": "a" * 64}, "name\n  String should match pattern"),
        ({"entity": "User"}, "entity\n  String should match pattern"),
        ({"status": "deprecated"}, "Value error, a deprecated feature needs `deprecated_after`"),
        # pydantic took a number as epoch seconds (0: 1970-01-01) and a date-time as its own day, whatever its offset
        (
            {"status": "deprecated", "deprecated_after": 0},
            "deprecated_after\n  Value error, must be a date, YYYY-MM-DD",
        ),
        (
            {"status": "deprecated", "deprecated_after": "2026-01-01T00:00:00+05:00"},
            "deprecated_after\n  Value error, must be a date, YYYY-MM-DD, not '2026-01-01T00:00:00+05:00'",
        ),
        (
            {"status": "deprecated", "deprecated_after": datetime(2026, 1, 1, tzinfo=UTC)},
            "deprecated_after\n  Value error, must be a date, YYYY-MM-DD",
        ),
        ({"status": "deprecated", "deprecated_after": "20260101"}, "deprecated_after\n  Value error, must be a date"),
        ({"status": "deprecated", "deprecated_after": "2026-02-30"}, "deprecated_after\n  Value error, must be a date"),
        ({"ttl": "0s"}, "`ttl` and `freshness_slo` must be positive"),
        ({"freshness_slo": "0ms"}, "`ttl` and `freshness_slo` must be positive"),
        ({"offline_retention": "0s"}, "`offline_retention` must be positive"),
        ({"ttl": "2 hours"}, "duration '2 hours' is not a whole number followed by ms, s, m, h or d"),
        ({"version": 0}, "version\n  Input should be greater than or equal to 1"),
        ({"owner": ""}, "owner\n  String should have at least 1 character"),
        ({"owner": None}, "owner\n  Field required"),
    ],
)
def test_invalid_shapes_rejected(
    overrides: dict[str, Any], message: str, make_definition_dict: Callable[..., dict[str, Any]]
) -> None:
    with pytest.raises(ValidationError) as info:
        FeatureDefinition.model_validate(make_definition_dict(**overrides))
    assert message in str(info.value)


# ---------------------------------------------------------------------------------------------
# transform_hash
# ---------------------------------------------------------------------------------------------


def test_transform_hash_is_stable(make_definition: MakeDef) -> None:
    a, b = make_definition(), make_definition()
    assert a is not b
    assert a.transform_hash == b.transform_hash
    assert len(a.transform_hash) == 16
    int(a.transform_hash, 16)  # hex
    # The same in another interpreter with another hash seed (no dependence on set or dict order).
    code = (
        "from registry.core.definitions import FeatureDefinition; import json, sys; "
        "print(FeatureDefinition.model_validate(json.loads(sys.argv[1])).transform_hash)"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code, a.model_dump_json()],
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
        assert out == a.transform_hash


def test_unused_optional_source_field_keeps_the_hash(make_definition: MakeDef) -> None:
    # A definition that does not set `source.event_id_field` (added after v1 definitions were registered)
    # computes exactly what it did before the field existed; its hash then was 93a70ea1da13b52f.
    # A changed hash means `apply` of an unchanged definition conflicts with its registered identity.
    d = make_definition()
    assert d.source.event_id_field is None
    assert d.transform_hash == "93a70ea1da13b52f"


@pytest.mark.parametrize(
    "overrides",
    [
        {"window": {"kind": "sliding", "size": "2h", "slide": "5m"}},
        {"window": {"kind": "sliding", "size": "1h", "slide": "10m"}},
        {"window": {"kind": "tumbling", "size": "1h"}},
        {"window": {"kind": "sliding", "size": "1h", "slide": "5m", "allowed_lateness": "1m"}},
        {"aggregation": {"function": "count_distinct", "field": "merchant_id"}},
        {"aggregation": {"function": "sum", "field": "amount"}},
        {"aggregation": {"function": "sum", "field": "amount"}, "value_type": "double"},
        {"source.topic": "card_transactions_v2"},
        {"source.entity_key": "merchant_id"},
        {"source.event_id_field": "transaction_id"},
    ],
)
def test_transform_hash_changes_with_the_computation(overrides: dict[str, Any], make_definition: MakeDef) -> None:
    base = make_definition()
    changed = make_definition(**overrides)
    assert changed.transform_hash != base.transform_hash
    assert changed.transform_ref != base.transform_ref


def test_sum_and_sum_double_hash_differently(make_definition: MakeDef) -> None:
    as_long = make_definition(aggregation={"function": "sum", "field": "amount"}, value_type="long")
    as_double = make_definition(aggregation={"function": "sum", "field": "amount"}, value_type="double")
    assert as_long.transform_hash != as_double.transform_hash


@pytest.mark.parametrize(
    "overrides",
    [
        {"description": "something else entirely"},
        {"owner": "another-team"},
        {"tags": ["other"]},
        {"ttl": "3h"},
        {"freshness_slo": "1m"},
        {"sensitivity": "restricted"},
        {"status": "deprecated", "deprecated_after": "2030-01-01"},
        {"version": 7},
        {"name": "renamed_feature"},
        {"offline_retention": "30d"},
    ],
)
def test_transform_hash_ignores_metadata(overrides: dict[str, Any], make_definition: MakeDef) -> None:
    base = make_definition()
    changed = make_definition(**overrides)
    assert changed != base
    assert changed.transform_hash == base.transform_hash
    assert changed.transform_ref == base.transform_ref


# ---------------------------------------------------------------------------------------------
# Boundaries of the name grammars, the text fields and the version
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"source.topic": "tnl\n"}, "topic 'tnl\\n' is not a Kafka topic name"),
        ({"source.topic": "t" * 249 + "\n"}, "is not a Kafka topic name"),
        # Kafka takes 249, but the job's dead-letter topic <topic>.dlq would not be one: the job could never start
        ({"source.topic": "t" * 246}, "is longer than 245 characters: its dead-letter topic <topic>.dlq"),
        ({"source.subject": "s\n"}, "subject 's\\n' must be"),
        ({"source.entity_key": "user_id\n"}, "'user_id\\n' is not an event field name"),
        ({"source.entity_key": ["user_id", "merchant_id\n"]}, "'merchant_id\\n' is not an event field name"),
        ({"source.timestamp_field": "event_time\n"}, "'event_time\\n' is not an event field name"),
        ({"source.event_id_field": "event_id\n"}, "'event_id\\n' is not an event field name"),
        (
            {"aggregation": {"function": "sum", "field": "amount\n"}, "value_type": "double"},
            "`field` 'amount\\n' is not an event field name",
        ),
        ({"aliases": ["old_name\n"]}, "alias 'old_name\\n' must be a valid name"),
    ],
)
def test_names_with_a_trailing_newline_are_refused(
    overrides: dict[str, Any], message: str, make_definition_dict: Callable[..., dict[str, Any]]
) -> None:
    with pytest.raises(ValidationError) as info:
        FeatureDefinition.model_validate(make_definition_dict(**overrides))
    assert message in str(info.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {"owner": "risk\x85team"},  # NEL
        {"owner": "risk\x80"},
        {"owner": "\x9fteam"},
        {"tags": ["ok", "b\x9bad"]},  # CSI
        {"description": "line 1\x85line 2"},
        {"description": "a\x9fb"},
    ],
)
def test_c1_control_characters_are_refused(
    overrides: dict[str, Any], make_definition_dict: Callable[..., dict[str, Any]]
) -> None:
    with pytest.raises(ValidationError, match="must not contain control characters"):
        FeatureDefinition.model_validate(make_definition_dict(**overrides))


def test_descriptions_keep_newlines_and_tabs_only(make_definition: MakeDef) -> None:
    assert make_definition(description="line 1\n\tline 2 \u00a0\u00e9\u2028").description.startswith("line 1\n\t")
    for control in ("\r", "\x0b", "\x7f", "\x85", "\x9f"):
        with pytest.raises(ValidationError, match="must not contain control characters other than"):
            make_definition(description=f"a{control}b")


@pytest.mark.parametrize("version", [True, "7", "1", 7.0, 1.0])
def test_version_is_a_strict_integer(version: object, make_definition_dict: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(ValidationError, match="version\n  Input should be a valid integer"):
        FeatureDefinition.model_validate(make_definition_dict(version=version))


def test_a_source_topic_of_245_characters_is_taken(make_definition_dict: Callable[..., dict[str, Any]]) -> None:
    assert (
        FeatureDefinition.model_validate(make_definition_dict(**{"source.topic": "t" * 245})).source.topic == "t" * 245
    )


def test_a_stored_version_with_a_longer_topic_still_loads(make_definition_dict: Callable[..., dict[str, Any]]) -> None:
    """The 245-character bound came after versions were registered: a stored one of 249 must not make the whole
    catalog unreadable (every command loads it), as other bounds added later do not."""
    import json

    from registry.definition_store import stored_definition

    spec = json.dumps(make_definition_dict(**{"source.topic": "t" * 249}), default=str)
    assert stored_definition(spec).source.topic == "t" * 249
