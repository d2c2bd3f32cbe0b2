from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from jobs.sql import window_groups
from registry.core.catalog import DEFAULT_FOLDER, FeatureCatalog, parse_file, parse_request_features
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DefinitionError, UnknownFeatureError

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
# The catalog
# ---------------------------------------------------------------------------------------------


def _versions(make_definition: MakeDef, name: str, *versions: int) -> list[FeatureDefinition]:
    return [make_definition(name=name, version=v, description=f"v{v}") for v in versions]


def test_active_is_highest_version_whatever_the_order(make_definition: MakeDef) -> None:
    catalog = FeatureCatalog([*_versions(make_definition, "f", 2, 3, 1), *_versions(make_definition, "g", 1)])
    assert len(catalog) == 4
    assert catalog.get("user", "f").version == 3
    assert catalog.get("user", "f", 2).description == "v2"
    assert catalog.get("user", "g").version == 1
    assert sorted((d.name, d.version) for d in catalog.active()) == [("f", 3), ("g", 1)]
    assert sorted((d.name, d.version) for d in catalog.for_entity("user")) == [("f", 3), ("g", 1)]
    assert catalog.for_entity("merchant") == []


def test_get_unknown_version_names_it(make_definition: MakeDef) -> None:
    catalog = FeatureCatalog(_versions(make_definition, "f", 1))
    with pytest.raises(UnknownFeatureError) as info:
        catalog.get("user", "f", 9)
    assert info.value.names == ["f@v9"]
    assert info.value.entity_type == "user"
    with pytest.raises(UnknownFeatureError) as info:
        catalog.get("merchant", "f")
    assert info.value.names == ["f"]


def test_resolve_keeps_requested_order(make_definition: MakeDef) -> None:
    catalog = FeatureCatalog(
        [
            *_versions(make_definition, "a", 1),
            *_versions(make_definition, "b", 1, 2),
            *_versions(make_definition, "c", 1),
        ]
    )
    resolved = catalog.resolve("user", ["c", "a", "b"])
    assert [(d.name, d.version) for d in resolved] == [("c", 1), ("a", 1), ("b", 2)]


def test_resolve_lists_every_unknown_name(make_definition: MakeDef) -> None:
    catalog = FeatureCatalog([*_versions(make_definition, "a", 1), *_versions(make_definition, "b", 1)])
    with pytest.raises(UnknownFeatureError) as info:
        catalog.resolve("user", ["zz", "a", "yy", "b", "xx"])
    assert info.value.names == ["xx", "yy", "zz"]
    assert info.value.entity_type == "user"
    assert str(info.value) == "unknown feature(s) for entity type 'user': xx, yy, zz"
    assert isinstance(info.value, DefinitionError)


def test_resolve_for_unknown_entity_lists_all_names(make_definition: MakeDef) -> None:
    catalog = FeatureCatalog(_versions(make_definition, "a", 1))
    with pytest.raises(UnknownFeatureError) as info:
        catalog.resolve("merchant", ["a", "b"])
    assert info.value.names == ["a", "b"]
    assert info.value.entity_type == "merchant"


def test_duplicate_key_with_different_content_is_rejected(make_definition: MakeDef) -> None:
    first = make_definition(name="f", version=1)
    second = make_definition(name="f", version=1, window={"kind": "tumbling", "size": "1h"})
    with pytest.raises(DefinitionError, match=r"^user\.f v1 is defined twice, differently$"):
        FeatureCatalog([first, second])


def test_duplicate_key_with_same_content_is_one_definition(make_definition: MakeDef) -> None:
    catalog = FeatureCatalog([make_definition(name="f"), make_definition(name="f")])
    assert len(catalog) == 1


def test_same_name_in_two_entities_is_two_features(make_definition: MakeDef) -> None:
    user = make_definition(name="f")
    merchant = make_definition(name="f", entity="merchant", version=4)
    catalog = FeatureCatalog([user, merchant])
    assert catalog.entity_types() == {"user", "merchant"}
    assert catalog.get("merchant", "f").version == 4
    assert catalog.get("user", "f").version == 1


# ---------------------------------------------------------------------------------------------
# TOML files
# ---------------------------------------------------------------------------------------------

_DEFAULTS = """
[defaults]
entity = "user"
owner = "risk-team"
value_type = "long"
freshness_slo = "10m"
ttl = "2h"

[defaults.source]
topic = "card_transactions"
event_schema = "card_transaction"
subject = "card_transactions-value"
entity_key = "user_id"
timestamp_field = "event_time"

[defaults.window]
kind = "sliding"
size = "1h"
slide = "5m"
"""


def _write(tmp_path: Path, text: str, name: str = "features.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_merge_into_nested_tables(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _DEFAULTS
        + """
[[feature]]
name = "txn_count_2h"
version = 1
window = { size = "2h" }
aggregation = { function = "count" }
""",
    )
    (d,) = parse_file(path)
    assert d.window.kind == "sliding"
    assert d.window.size == timedelta(hours=2)
    assert d.window.slide == timedelta(minutes=5)
    assert d.source.topic == "card_transactions"


def test_parse_file_error_names_file_and_feature(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _DEFAULTS
        + """
[[feature]]
name = "good_one"
version = 1
aggregation = { function = "count" }

[[feature]]
name = "bad_one"
version = 1
window = { slide = "7m" }
aggregation = { function = "count" }
""",
    )
    with pytest.raises(DefinitionError) as info:
        parse_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: feature bad_one: ")
    assert "whole multiple" in message


def test_parse_file_error_numbers_an_unnamed_feature(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _DEFAULTS
        + """
[[feature]]
name = "good_one"
version = 1
aggregation = { function = "count" }

[[feature]]
version = 1
aggregation = { function = "count" }
""",
    )
    with pytest.raises(DefinitionError) as info:
        parse_file(path)
    assert str(info.value) == f"{path}: feature #2: name: Field required"  # one line: the CLIs print it as one


def test_parse_file_rejects_invalid_toml(tmp_path: Path) -> None:
    path = _write(tmp_path, "[[feature]\nname = ")
    with pytest.raises(DefinitionError) as info:
        parse_file(path)
    assert str(info.value).startswith(f"{path}: cannot read definitions: ")


def test_parse_file_rejects_unknown_top_level_key(tmp_path: Path) -> None:
    path = _write(tmp_path, _DEFAULTS + '\n[features]\nname = "x"\n')
    with pytest.raises(DefinitionError) as info:
        parse_file(path)
    assert str(info.value) == (
        f"{path}: unknown top-level key(s) ['features']; expected [defaults], [[feature]] and [[request_feature]]"
    )


def test_from_folder_reads_every_file_and_detects_conflicts(tmp_path: Path) -> None:
    feature = '\n[[feature]]\nname = "f"\nversion = {v}\naggregation = {{ function = "count" }}\n'
    _write(tmp_path, _DEFAULTS + feature.format(v=1), "a.toml")
    _write(tmp_path, _DEFAULTS + feature.format(v=2), "b.toml")
    _write(tmp_path, "not toml, and not read", "notes.txt")
    catalog = FeatureCatalog.from_folder(tmp_path)
    assert sorted(d.version for d in catalog) == [1, 2]
    assert catalog.get("user", "f").version == 2

    _write(tmp_path, _DEFAULTS + feature.format(v=2) + 'description = "changed"\n', "c.toml")
    with pytest.raises(DefinitionError, match=r"user\.f v2 is defined twice, differently"):
        FeatureCatalog.from_folder(tmp_path)


def test_from_folder_without_files(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match=r"no \*\.toml feature definitions in"):
        FeatureCatalog.from_folder(tmp_path)


def test_default_folder_is_the_shipped_one() -> None:
    assert Path(__file__).resolve().parents[2] / "registry" / "features" == DEFAULT_FOLDER


def test_single_feature_table_is_a_definition_error(tmp_path: Path) -> None:
    path = _write(tmp_path, _DEFAULTS + '\n[feature]\nname = "f"\nversion = 1\naggregation = { function = "count" }\n')
    with pytest.raises(DefinitionError, match=str(path)):
        parse_file(path)


def test_out_of_range_duration_is_a_definition_error(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _DEFAULTS
        + '\n[[feature]]\nname = "f"\nversion = 1\nttl = "99999999999999d"\naggregation = { function = "count" }\n',
    )
    with pytest.raises(DefinitionError, match=f"{path}: feature f: "):
        parse_file(path)


@pytest.mark.parametrize(
    ("ttl", "ok"), [("7300d", True), ("630720000s", True), ("7301d", False), ("630720001s", False)]
)
def test_a_ttl_is_at_most_cassandras_longest(tmp_path: Path, ttl: str, ok: bool) -> None:
    path = _write(
        tmp_path,
        _DEFAULTS + f'\n[[feature]]\nname = "f"\nversion = 1\nttl = "{ttl}"\naggregation = {{ function = "count" }}\n',
    )
    if ok:
        assert parse_file(path)[0].ttl.total_seconds() == 630_720_000
    else:
        with pytest.raises(DefinitionError, match="`ttl` is at most 7300d"):
            parse_file(path)


@pytest.mark.parametrize(("idle", "ok"), [("1ms", True), ("0s", False), ("0ms", False)])
def test_an_idle_timeout_is_positive(tmp_path: Path, idle: str, ok: bool) -> None:
    path = _write(
        tmp_path,
        _DEFAULTS.replace('timestamp_field = "event_time"', f'timestamp_field = "event_time"\nidle_timeout = "{idle}"')
        + '\n[[feature]]\nname = "f"\nversion = 1\naggregation = { function = "count" }\n',
    )
    if ok:
        assert parse_file(path)[0].source.idle_timeout.total_seconds() == 0.001
    else:
        with pytest.raises(DefinitionError, match="`idle_timeout` must be positive"):
            parse_file(path)


def test_a_window_of_another_kind_replaces_the_default_window_and_one_of_the_same_kind_merges(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _DEFAULTS + '\n[[feature]]\nname = "s"\nversion = 1\nwindow = { kind = "session", gap = "5m" }\n'
        'aggregation = { function = "count" }\n'
        '\n[[feature]]\nname = "t"\nversion = 1\nwindow = { kind = "tumbling", size = "1h" }\n'
        'aggregation = { function = "count" }\n'
        '\n[[feature]]\nname = "w"\nversion = 1\nwindow = { size = "2h" }\naggregation = { function = "count" }\n',
    )
    s, t, w = parse_file(path)

    def shown(d: FeatureDefinition) -> dict[str, object]:
        window = d.window.model_dump(mode="json", exclude_none=True)
        assert window.pop("allowed_lateness") == "0ms"
        return window

    assert shown(s) == {"kind": "session", "gap": "5m"}
    assert shown(t) == {"kind": "tumbling", "size": "1h"}
    assert shown(w) == {"kind": "sliding", "size": "2h", "slide": "5m"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("defaults = 5\n", "`defaults` must be a table ([defaults]), not 5"),
        ("feature = 5\n", "`feature` must be an array of tables ([[feature]]), not 5"),
        ("request_feature = 5\n", "`request_feature` must be an array of tables ([[request_feature]]), not 5"),
    ],
)
def test_a_file_of_the_wrong_shape_names_the_key_at_fault(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    for parse in (parse_file, parse_request_features):
        if ("request_feature" in text and parse is parse_file) or (
            text.startswith("feature") and parse is not parse_file
        ):
            continue
        with pytest.raises(DefinitionError) as caught:
            parse(path)
        assert str(caught.value) == f"{path}: {message}"


# ---------------------------------------------------------------------------------------------
# Pinned active versions and aliases (renames)
# ---------------------------------------------------------------------------------------------


def test_explicit_active_version_overrides_highest(make_definition: MakeDef) -> None:
    catalog = FeatureCatalog(_versions(make_definition, "f", 1, 2, 3), active={("user", "f"): 2})
    assert catalog.get("user", "f").version == 2
    assert [d.version for d in catalog.resolve("user", ["f"])] == [2]
    assert [d.version for d in catalog.active()] == [2]
    assert catalog.get("user", "f", 3).description == "v3"


def test_active_version_must_be_defined(make_definition: MakeDef) -> None:
    with pytest.raises(DefinitionError, match=r"^active version user\.f v9 is not defined$"):
        FeatureCatalog(_versions(make_definition, "f", 1), active={("user", "f"): 9})


def test_alias_resolves_to_the_renamed_feature(make_definition: MakeDef) -> None:
    renamed = make_definition(name="card_txn_count_1h", aliases=["txn_count_1h"])
    other = make_definition(name="other")
    catalog = FeatureCatalog([renamed, other])
    assert catalog.resolve("user", ["other", "txn_count_1h"]) == [other, renamed]
    assert catalog.get("user", "txn_count_1h") is renamed
    assert catalog.get("user", "txn_count_1h", 1) is renamed
    assert renamed.transform_hash == make_definition(name="card_txn_count_1h").transform_hash


@pytest.mark.parametrize(
    "aliases",
    [["b"], ["c"]],
)
def test_alias_colliding_with_a_feature_or_alias_is_rejected(make_definition: MakeDef, aliases: list[str]) -> None:
    with pytest.raises(DefinitionError, match=r"collides with another feature or alias"):
        FeatureCatalog([make_definition(name="b", aliases=["c"]), make_definition(name="a", aliases=aliases)])


@pytest.mark.parametrize("alias", ["Bad", "txn_count_1h"])
def test_alias_must_be_a_valid_other_name(make_definition_dict: Callable[..., dict[str, Any]], alias: str) -> None:
    with pytest.raises(ValidationError, match=f"alias '{alias}' must be a valid name other than the feature's own"):
        FeatureDefinition.model_validate(make_definition_dict(aliases=[alias]))


def test_one_stream_key_never_stands_for_two_sources(make_definition: Callable[..., FeatureDefinition]) -> None:
    a = make_definition(name="a")
    b = make_definition(name="b", **{"source.timestamp_field": "other_ts"})
    assert a.stream == b.stream and a.source != b.source
    with pytest.raises(DefinitionError, match="one stream must have one source"):
        FeatureCatalog([a, b])
    with pytest.raises(DefinitionError, match="one stream must have one source"):
        window_groups([a, b])
    # Another window is another stream: both readings of the topic may run, under distinct SQL names.
    c = make_definition(name="c", window={"kind": "tumbling", "size": "2h"}, **{"source.timestamp_field": "other_ts"})
    assert len(FeatureCatalog([a, c])) == 2
    assert a.source.slug != c.source.slug
    assert {g.source for g in window_groups([a, c])} == {a.source, c.source}


def test_source_slugs_are_sql_safe_and_distinct(make_definition: Callable[..., FeatureDefinition]) -> None:
    dotted = make_definition(**{"source.topic": "a.b"}).source
    underscored = make_definition(**{"source.topic": "a_b"}).source
    assert dotted.slug != underscored.slug
    for slug in (dotted.slug, underscored.slug):
        assert re.fullmatch(r"[A-Za-z0-9_]+", slug)


# ---------------------------------------------------------------------------------------------
# Boundaries of the name grammars, the text fields and the version
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"source.topic": "tnl\n"}, "topic 'tnl\\n' is not a Kafka topic name"),
        ({"source.topic": "t" * 249 + "\n"}, "is not a Kafka topic name"),
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


@pytest.mark.parametrize("version", ["true", '"7"', "7.0"])
def test_a_toml_version_that_is_not_an_integer_is_a_definition_error(tmp_path: Path, version: str) -> None:
    path = _write(
        tmp_path,
        _DEFAULTS + f'\n[[feature]]\nname = "f"\nversion = {version}\naggregation = {{ function = "count" }}\n',
    )
    with pytest.raises(DefinitionError) as info:
        parse_file(path)
    assert str(info.value) == f"{path}: feature f: version: Input should be a valid integer"
