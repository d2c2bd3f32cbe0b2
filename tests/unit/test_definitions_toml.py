"""Feature definitions read from TOML files: defaults, errors naming the file and feature, folders, bounds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from registry.core.catalog import DEFAULT_FOLDER, FeatureCatalog, parse_file, parse_request_features
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DefinitionError

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


def test_a_default_window_without_a_kind_merges_with_the_kind_a_feature_names(tmp_path: Path) -> None:
    """Design §4: a feature's tables merge key by key over `[defaults]`, except a window of *another* kind. A default
    that names no kind was taken as another kind than any the feature named: its size and slide were dropped, and
    the feature refused (`a sliding window takes size`)."""
    path = _write(
        tmp_path,
        _DEFAULTS.replace('kind = "sliding"\n', "")
        + '\n[[feature]]\nname = "f"\nversion = 1\nwindow = { kind = "sliding" }\naggregation = { function = "count" }\n',
    )
    (f,) = parse_file(path)
    assert f.window.model_dump(mode="json", exclude_none=True, exclude={"allowed_lateness"}) == {
        "kind": "sliding",
        "size": "1h",
        "slide": "5m",
    }


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


@pytest.mark.parametrize("version", ["true", '"7"', "7.0"])
def test_a_toml_version_that_is_not_an_integer_is_a_definition_error(tmp_path: Path, version: str) -> None:
    path = _write(
        tmp_path,
        _DEFAULTS + f'\n[[feature]]\nname = "f"\nversion = {version}\naggregation = {{ function = "count" }}\n',
    )
    with pytest.raises(DefinitionError) as info:
        parse_file(path)
    assert str(info.value) == f"{path}: feature f: version: Input should be a valid integer"
