"""The definition contract as docs/design.md §4 and §5.3 state it, checked from the outside.

A refused definition is one clear line naming the field and the problem (no pydantic internals); an accepted set
of definitions is one the stream job can start: the job refuses features of one source that disagree on
``allowed_lateness`` (``jobs.sql.source_lateness``), so registration refuses them first.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from jobs.sql import source_lateness
from registry import cli
from registry.core.catalog import parse_file, parse_request_features, validation_text
from registry.core.definitions import FeatureDefinition, check_event_schema, check_lateness
from registry.core.durations import parse_duration
from registry.core.errors import DefinitionError, UnknownFeatureError
from registry.definition_store import DefinitionStore

MakeDict = Callable[..., dict[str, Any]]

_HEADER = """[defaults]
entity = "user"
owner = "risk"
value_type = "long"
freshness_slo = "10m"
ttl = "2h"
[defaults.source]
topic = "card_transactions"
event_schema = "card_transaction"
subject = "card_transactions-value"
entity_key = "user_id"
timestamp_field = "event_time"
"""


def _feature(name: str, window: str, version: int = 1) -> str:
    return f'\n[[feature]]\nname = "{name}"\nversion = {version}\nwindow = {window}\naggregation = {{ function = "count" }}\n'


def _refusal(make_definition_dict: MakeDict, **overrides: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        FeatureDefinition.model_validate(make_definition_dict(**overrides))
    return validation_text(caught.value)


# --- one clear line per refusal -------------------------------------------------------------------------


def test_a_duration_of_thousands_of_digits_is_out_of_range_not_a_python_limit() -> None:
    """Python refuses int() of more than 4,300 digits with advice about sys.set_int_max_str_digits; a duration
    that long is simply out of range, like one of 20 digits."""
    for text in ("9" * 5000 + "s", "1" + "0" * 20 + "ms"):
        with pytest.raises(ValueError, match="out of range") as caught:
            parse_duration(text)
        assert "set_int_max_str_digits" not in str(caught.value) and len(str(caught.value)) < 100
    assert parse_duration("0" * 5000 + "5m") == parse_duration("5m")  # leading zeros are allowed ("0005m")


@pytest.mark.parametrize(
    ("entity_key", "expected"),
    [
        (5, "a list of 2-8 of them, not 5"),
        ({"a": 1}, "a list of 2-8 of them, not {'a': 1}"),
        ("", "`entity_key` '' is not an event field name"),
        ("a" * 256, "`entity_key` 'aaaa"),
        (["user_id", "a b"], "`entity_key` field 'a b' is not an event field name"),
        (["user_id", 5], "lists event field names, not 5"),
    ],
)
def test_a_bad_entity_key_is_one_problem_named_by_its_field(
    make_definition_dict: MakeDict, entity_key: object, expected: str
) -> None:
    """`entity_key` is a field name or a list of them: a bad one is one problem at `source.entity_key`, not one per
    branch of the model's union with pydantic's internal names for them (`function-after[_field_name(), str]`)."""
    text = _refusal(make_definition_dict, **{"source.entity_key": entity_key})
    assert text.startswith("source.entity_key: ") and expected in text, text
    assert "function-after" not in text and "tuple[" not in text and "; " not in text, text


@pytest.mark.parametrize(("tag", "word"), [("a" * 65, "1-64 characters, not 65"), ("", "1-64 characters, not 0")])
def test_a_tag_of_the_wrong_length_is_counted_in_characters(
    make_definition_dict: MakeDict, tag: str, word: str
) -> None:
    text = _refusal(make_definition_dict, tags=[tag])
    assert text.startswith("tags.0: ") and word in text and "items" not in text, text


def test_tag_and_key_bounds_are_inclusive(make_definition_dict: MakeDict) -> None:
    d = FeatureDefinition.model_validate(
        make_definition_dict(tags=["a" * 64] * 64, **{"source.entity_key": ["a" * 255, "b"]})
    )
    assert len(d.tags) == 64 and d.source.key_fields == ("a" * 255, "b")
    single = FeatureDefinition.model_validate(make_definition_dict(**{"source.entity_key": "k" * 255}))
    assert single.source.entity_key == "k" * 255  # a single key stays a string (transform hashes unchanged)


# --- what is accepted, the job can start ---------------------------------------------------------------


def _folder(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "defs"
    folder.mkdir(exist_ok=True)
    (folder / "a.toml").write_text(_HEADER + body)
    return folder


_LATE = '{ kind = "sliding", size = "1h", slide = "5m", allowed_lateness = "1m" }'
_ON_TIME = '{ kind = "tumbling", size = "10m" }'
_SESSION = '{ kind = "session", gap = "30m" }'


@pytest.mark.parametrize("other", [_ON_TIME, _SESSION])
def test_apply_refuses_features_of_one_source_that_disagree_on_lateness(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], other: str
) -> None:
    """design §5.3: lateness is decided once per event, so the features of one source share `allowed_lateness` (a
    session feature's is 0) and the job refuses otherwise. The folder was applied, and the job then refused to start."""
    folder = _folder(tmp_path, _feature("late_1h", _LATE) + _feature("other", other))
    db = tmp_path / "definitions.db"
    DefinitionStore(db)  # an empty store: `plan` reads one
    for command in ("plan", "apply"):
        assert cli.main(["--db", str(db), command, str(folder)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and "allowed_lateness" in err, err
        assert "late_1h" in err and "other" in err, err
    assert list(DefinitionStore(db).catalog()) == []  # nothing written


def _parsed(tmp_path: Path, body: str) -> FeatureDefinition:
    path = tmp_path / "one.toml"
    path.write_text(_HEADER + body)
    (definition,) = parse_file(path)
    return definition


def test_registering_or_activating_a_disagreeing_lateness_is_refused(tmp_path: Path) -> None:
    """The HTTP registration and `activate` write the same store: neither may leave active features the job refuses."""
    db = tmp_path / "definitions.db"
    folder = _folder(tmp_path, _feature("on_time", _ON_TIME) + _feature("on_time_too", _ON_TIME))
    assert cli.main(["--db", str(db), "apply", str(folder)]) == 0
    store = DefinitionStore(db)
    late = _parsed(tmp_path, _feature("late_1h", _LATE))  # a new feature: active at once
    with pytest.raises(DefinitionError, match="allowed_lateness"):
        store.register(late)
    assert sorted(d.name for d in store.catalog()) == ["on_time", "on_time_too"]
    # A second version of one on-time feature, with lateness, registers (inactive) but cannot be activated.
    v2 = _parsed(tmp_path, _feature("on_time", _LATE, version=2))
    assert store.register(v2).active_version == 1
    with pytest.raises(DefinitionError, match="allowed_lateness"):
        store.activate("user", "on_time", 2)
    assert store.catalog().get("user", "on_time").version == 1
    source_lateness(store.catalog().active())  # what is active, the job accepts


def test_features_of_one_source_agreeing_on_lateness_apply(tmp_path: Path) -> None:
    same = _LATE.replace('size = "1h"', 'size = "2h"')
    folder = _folder(tmp_path, _feature("late_1h", _LATE) + _feature("late_2h", same))
    db = tmp_path / "definitions.db"
    assert cli.main(["--db", str(db), "apply", str(folder)]) == 0
    assert len(source_lateness(DefinitionStore(db).catalog().active())) == 1


# --- durations the job writes as Flink SQL intervals -----------------------------------------------------

_LONGEST = "86399999999ms"  # 999 days 23:59:59.999


@pytest.mark.parametrize(
    "overrides",
    [
        {"window": {"kind": "tumbling", "size": "1000d"}},
        {"window": {"kind": "sliding", "size": "2000d", "slide": "1000d"}},
        {"window": {"kind": "session", "gap": "24000h"}},
        {"window": {"kind": "sliding", "size": "1h", "slide": "5m", "allowed_lateness": "86400000000ms"}},
        {"source.max_out_of_orderness": "1440000m"},
    ],
)
def test_a_duration_past_what_the_jobs_sql_holds_is_refused(make_definition_dict: MakeDict, overrides: Any) -> None:
    """Flink's planner takes a day-time interval's leading field to 3 digits: a 1000d window, lateness or
    out-of-orderness was accepted and then failed the job at its start (`DAY_INTERVAL_TYPES precision is not
    supported: 4`, or `jobs.sql.interval` refusing it). Refused when defined, naming the field."""
    text = _refusal(make_definition_dict, **overrides)
    assert "must be below 1000d" in text and "; " not in text, text


def test_the_longest_sql_durations_are_accepted_and_written_by_the_jobs_sql_builder(
    make_definition_dict: MakeDict,
) -> None:
    """Just below the limit is in, and the job's own SQL builder writes each of those intervals (planned by Flink
    when this was written: `DAY(3) TO SECOND(3)`; not run here, a JVM per test is too heavy for a unit test)."""
    from jobs.sql import aggregate_sql, interval, source_ddl, source_select, window_groups

    for window in (
        {"kind": "tumbling", "size": _LONGEST},
        {"kind": "sliding", "size": "999d", "slide": "999d", "allowed_lateness": _LONGEST},
        {"kind": "session", "gap": "23999h"},
    ):
        d = FeatureDefinition.model_validate(
            make_definition_dict(window=window, **{"source.max_out_of_orderness": _LONGEST})
        )
        (group,) = window_groups([d])
        assert "INTERVAL" in aggregate_sql(group, "v")
        lateness = source_lateness([d])[d.source]
        assert "INTERVAL" in source_ddl("t", d.source, lateness, bootstrap="b:1", group_id="g", bounded=True)
        assert "INTERVAL" in source_select("t", lateness)
        assert interval(d.source.max_out_of_orderness)


# --- what is registered, the job can compute over its reader schema ----------------------------------------


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('aggregation = { function = "max", field = "amout" }', "aggregation.field: 'card_transaction' has no field"),
        ('source = { entity_key = "customer_id" }', "source.entity_key: 'card_transaction' has no field"),
        ('source = { event_schema = "card_transactions" }', "no reader schema 'card_transactions'"),
        ('source = { timestamp_field = "currency" }', "source.timestamp_field: 'currency' is string"),
        ('aggregation = { function = "sum", field = "currency" }', "`sum` of 'currency' (string) cannot give a long"),
        ('aggregation = { function = "min", field = "currency" }', "`min` of 'currency' (string) cannot give a long"),
        ('aggregation = { function = "last", field = "amount" }', "`last` of 'amount' (double) cannot give a long"),
    ],
)
def test_apply_refuses_a_definition_the_job_cannot_compute_over_its_event_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, problem: str
) -> None:
    """A field the reader schema lacks failed the job at its start (`Column 'amout' not found in any table`), a
    missing schema file too; a string summed or a string's min cast to a long failed it on its first event (Flink's
    CAST), and `last` of a double as a long failed the writer (int('12.5')). Refused at plan and apply instead."""
    body = '\n[[feature]]\nname = "f"\nversion = 1\naggregation = { function = "count" }\n'
    if line.startswith("aggregation"):
        body = body.replace('aggregation = { function = "count" }\n', line + "\n")
    else:  # a source table of the feature merges over the defaults' key by key
        body += line + "\n"
    folder = _folder(
        tmp_path, body.replace("version = 1\n", 'version = 1\nwindow = { kind = "tumbling", size = "1h" }\n')
    )
    db = tmp_path / "definitions.db"
    DefinitionStore(db)
    for command in ("plan", "apply"):
        assert cli.main(["--db", str(db), command, str(folder)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: user.f v1: ") and problem in err, err
    assert list(DefinitionStore(db).catalog()) == []


def test_a_registration_or_activation_the_job_cannot_compute_is_refused(tmp_path: Path) -> None:
    """The HTTP registration writes through the store: a version that would become active is held to the same rule
    every new version is held to the same rule, active or not (an inactive one is what a backfill computes and what an
    activation points at later)."""
    store = DefinitionStore(tmp_path / "definitions.db")
    window = '{ kind = "tumbling", size = "1h" }'
    bad = _parsed(
        tmp_path, _feature("f", window).replace('{ function = "count" }', '{ function = "max", field = "x" }')
    )
    with pytest.raises(DefinitionError, match="'card_transaction' has no field 'x'"):
        store.register(bad)
    assert list(store.catalog()) == []
    store.register(_parsed(tmp_path, _feature("f", window)))
    with pytest.raises(DefinitionError, match="has no field 'x'"):
        store.register(bad.model_copy(update={"version": 2}))
    with pytest.raises(DefinitionError, match="has no field 'x'"):
        store.register(bad.model_copy(update={"version": 2}), activate=True)
    with pytest.raises(UnknownFeatureError):
        store.activate("user", "f", 2)
    assert store.catalog().get("user", "f").version == 1


@pytest.mark.parametrize(
    ("function", "field", "value_type"),
    [
        ("count_distinct", "currency", "long"),
        ("sum", "amount", "long"),
        ("mean", "amount", "double"),
        ("min", "amount", "long"),
        ("max", "currency", "string"),
        ("last", "currency", "string"),
        ("last", "amount", "string"),
        ("last", "event_time", "double"),
    ],
)
def test_aggregations_that_fit_their_field_apply(tmp_path: Path, function: str, field: str, value_type: str) -> None:
    agg = f'{{ function = "{function}", field = "{field}" }}\nvalue_type = "{value_type}"'
    body = _feature("f", '{ kind = "tumbling", size = "1h" }').replace('{ function = "count" }', agg)
    assert cli.main(["--db", str(tmp_path / "d.db"), "apply", str(_folder(tmp_path, body))]) == 0


# --- a fuzzer over definition files ---------------------------------------------------------------------

_DURATION = st.one_of(
    st.from_regex(r"[1-9][0-9]{0,2}(ms|s|m|h)", fullmatch=True),
    st.from_regex(r"[0-9]{1,13}(ms|s|m|h|d)", fullmatch=True),
    st.sampled_from(["0s", "999d", "1000d", "7300d", "7301d", "5M", "1.5h", " 5m", "9" * 4400 + "s"]),
)
_KEY = st.sampled_from(
    ["user_id", "merchant_id", "", "a b", "k" * 256, 5, ["user_id"], ["user_id", 5], ["user_id", "user_id"]]
)
_WINDOW = st.one_of(
    st.fixed_dictionaries({"kind": st.just("tumbling"), "size": _DURATION}, optional={"allowed_lateness": _DURATION}),
    st.fixed_dictionaries(
        {"kind": st.just("sliding"), "size": _DURATION, "slide": _DURATION}, optional={"allowed_lateness": _DURATION}
    ),
    st.fixed_dictionaries({"kind": st.just("session"), "gap": _DURATION}, optional={"allowed_lateness": _DURATION}),
)
_FEATURE = st.fixed_dictionaries(
    {
        "window": _WINDOW,
        "aggregation": st.fixed_dictionaries(
            {"function": st.sampled_from(["count", "sum", "mean", "min", "max", "last", "count_distinct"])},
            optional={"field": st.sampled_from(["amount", "currency", "event_time", "nope"])},
        ),
        "value_type": st.sampled_from(["long", "double", "string", "boolean"]),
    },
    optional={
        "ttl": _DURATION,
        "tags": st.lists(st.text(max_size=66), max_size=2),
        "source": st.fixed_dictionaries({}, optional={"entity_key": _KEY, "max_out_of_orderness": _DURATION}),
    },
)


def _toml(value: object) -> str:
    return (
        json.dumps(value)
        if not isinstance(value, dict)
        else "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    )


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(features=st.lists(_FEATURE, min_size=1, max_size=2))
def test_fuzzed_files_are_refused_in_one_clear_line_or_run_by_the_job(features: list[dict[str, Any]]) -> None:
    """Every refusal is one line naming the field, without pydantic's internals; every definition accepted is one
    the job's own SQL builder writes (one source's lateness agreeing, every interval within what Flink holds)."""
    from jobs.sql import aggregate_sql, source_ddl, source_select, window_groups

    body = "".join(
        f'\n[[feature]]\nname = "f{i}"\nversion = 1\n' + "".join(f"{k} = {_toml(v)}\n" for k, v in f.items())
        for i, f in enumerate(features)
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "a.toml"
        path.write_text(_HEADER + body)
        try:
            definitions = parse_file(path)
            for d in definitions:
                check_event_schema(d)
            check_lateness(definitions)
        except DefinitionError as exc:
            text = str(exc)
            assert "\n" not in text and not any(
                leak in text for leak in ("function-after", "tuple[", "items", "validation error", "set_int_max")
            ), text
            return
    for group in window_groups(definitions):
        assert aggregate_sql(group, "v")
        lateness = source_lateness(definitions)[group.source]
        assert source_ddl("t", group.source, lateness, bootstrap="b:1", group_id="g", bounded=True)
        assert source_select("t", lateness)


@pytest.mark.parametrize(("tag", "word"), [("a" * 65, "1-64 characters, not 65"), ("", "1-64 characters, not 0")])
def test_a_request_features_tag_is_counted_in_characters_too(tmp_path: Path, tag: str, word: str) -> None:
    path = tmp_path / "r.toml"
    path.write_text(
        '[[request_feature]]\nname = "r"\nentity = "user"\nversion = 1\nowner = "risk"\nvalue_type = "double"\n'
        f'function = "udfs.request:amount_vs_mean_1h"\ntags = ["{tag}"]\n'
        'request_fields = [{ name = "amount", value_type = "double" }]\n'
    )
    with pytest.raises(DefinitionError) as caught:
        parse_request_features(path)
    text = str(caught.value)
    assert "tags.0: " in text and word in text and "items" not in text, text
