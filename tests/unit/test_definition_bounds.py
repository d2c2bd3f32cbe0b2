"""Bounds on a definition's durations, sliding windows and tags (docs/design.md §4), including what a store holds.

A duration is whole milliseconds and never negative however it is given (text or a Python ``timedelta``); a sliding
window puts each event in at most 1,440 windows; a definition has at most 64 tags. A version already in a
definition store stays readable when a bound is added after it was registered.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from registry.core.catalog import validation_text
from registry.core.definitions import MAX_WINDOWS_PER_EVENT, STORED, FeatureDefinition, Window
from registry.core.durations import parse_duration
from registry.definition_store import DefinitionStore
from tests.unit.conftest import definition_dict


def _refusal(**overrides: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        FeatureDefinition.model_validate(definition_dict(**overrides))
    return validation_text(caught.value)


# --- durations -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (timedelta(-1), "duration -1d is negative"),
        (timedelta(milliseconds=-5), "duration -5ms is negative"),
        (timedelta(microseconds=-1), "duration -0.001ms is negative"),
        (timedelta(microseconds=500), "duration 0.500ms has a fraction of a millisecond"),
        (timedelta(minutes=3, microseconds=7), "duration 180000.007ms has a fraction of a millisecond"),
    ],
)
def test_a_timedelta_that_is_not_whole_non_negative_milliseconds_is_refused(value: timedelta, words: str) -> None:
    """A timedelta was passed through as is: a negative one, or 500 µs (written back as "0ms"), was a duration."""
    with pytest.raises(ValueError, match=words):
        parse_duration(value)


@pytest.mark.parametrize("value", [timedelta(0), timedelta(milliseconds=1), timedelta(days=999, milliseconds=7)])
def test_a_timedelta_of_whole_milliseconds_passes_through(value: timedelta) -> None:
    assert parse_duration(value) is value


# Every Duration field of a definition, with the overrides that give it a value (a session window for `gap`).
_FIELDS: list[tuple[str, dict[str, Any]]] = [
    ("ttl", {}),
    ("freshness_slo", {}),
    ("offline_retention", {}),
    ("source.max_out_of_orderness", {}),
    ("source.idle_timeout", {}),
    ("window.size", {}),
    ("window.slide", {}),
    ("window.allowed_lateness", {}),
    ("window.gap", {"window": {"kind": "session", "gap": "30m"}}),
]


@pytest.mark.parametrize(("field", "base"), _FIELDS)
@pytest.mark.parametrize(
    ("value", "words"),
    [
        (timedelta(-1), "is negative"),
        (timedelta(milliseconds=-5), "is negative"),
        (timedelta(microseconds=500), "fraction"),
    ],
)
def test_every_duration_field_refuses_a_negative_or_fractional_timedelta(
    field: str, base: dict[str, Any], value: timedelta, words: str
) -> None:
    text = _refusal(**base, **{field: value})
    assert text.startswith(f"{field}: ") and words in text and "; " not in text, text


@pytest.mark.parametrize("zero", [timedelta(0), "0ms", "0s"])
def test_zero_stays_valid_where_it_was(zero: object) -> None:
    d = FeatureDefinition.model_validate(
        definition_dict(**{"window.allowed_lateness": zero, "source.max_out_of_orderness": zero})
    )
    assert d.window.allowed_lateness == d.source.max_out_of_orderness == timedelta(0)
    session = FeatureDefinition.model_validate(
        definition_dict(window={"kind": "session", "gap": "30m", "allowed_lateness": zero})
    )
    assert session.window.allowed_lateness == timedelta(0)


def test_durations_given_as_whole_millisecond_timedeltas_are_accepted() -> None:
    d = FeatureDefinition.model_validate(
        definition_dict(
            ttl=timedelta(hours=2),
            window={"kind": "sliding", "size": timedelta(hours=1), "slide": timedelta(minutes=5)},
        )
    )
    assert d.model_dump(mode="json")["window"] == {
        "kind": "sliding",
        "size": "1h",
        "slide": "5m",
        "gap": None,
        "allowed_lateness": "0ms",
    }


# --- sliding windows per event -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "slide"), [("1d", "1m"), ("1440m", "1m"), ("24h", "60000ms"), ("1440ms", "1ms"), ("999d", "999d")]
)
def test_a_sliding_window_of_up_to_1440_windows_per_event_is_accepted(size: str, slide: str) -> None:
    assert MAX_WINDOWS_PER_EVENT == 1440
    Window.model_validate({"kind": "sliding", "size": size, "slide": slide})
    FeatureDefinition.model_validate(definition_dict(window={"kind": "sliding", "size": size, "slide": slide}))


@pytest.mark.parametrize(
    ("size", "slide", "count"),
    [("1441m", "1m", 1441), ("1441ms", "1ms", 1441), ("999d", "1ms", 86_313_600_000), ("2d", "1m", 2880)],
)
def test_a_sliding_window_of_more_windows_per_event_is_refused(size: str, slide: str, count: int) -> None:
    """Flink's HOP puts an event in size/slide windows: 999d sliding by 1ms was ~86 billion windows per event."""
    text = _refusal(window={"kind": "sliding", "size": size, "slide": slide})
    assert text.startswith("window: ") and "; " not in text, text
    assert text.endswith(
        f"a sliding window puts each event in size/slide windows: at most 1440, not {count} ({size} / {slide})"
    ), text


def test_the_example_message_is_word_for_word() -> None:
    with pytest.raises(ValidationError) as caught:
        Window.model_validate({"kind": "sliding", "size": "999d", "slide": "1ms"})
    assert "a sliding window puts each event in size/slide windows: at most 1440, not 86313600000 (999d / 1ms)" in str(
        caught.value
    )


def test_a_stored_sliding_window_past_the_bound_is_read_as_registered() -> None:
    """The bound came after versions were registered: the store's context skips it, and only it."""
    w = Window.model_validate({"kind": "sliding", "size": "999d", "slide": "1ms"}, context=STORED)
    assert w.size == timedelta(days=999) and w.slide == timedelta(milliseconds=1)
    raw = definition_dict(window={"kind": "sliding", "size": "2d", "slide": "1m"})
    assert FeatureDefinition.model_validate(raw, context=STORED).window.size == timedelta(days=2)
    with pytest.raises(ValidationError, match="whole multiple"):  # every other check still holds
        Window.model_validate({"kind": "sliding", "size": "2d", "slide": "7m"}, context=STORED)
    with pytest.raises(ValidationError, match="below 1000d"):
        Window.model_validate({"kind": "sliding", "size": "1000d", "slide": "1ms"}, context=STORED)
    with pytest.raises(ValidationError, match="is negative"):
        FeatureDefinition.model_validate(definition_dict(ttl=timedelta(-1)), context=STORED)


def _insert(path: Path, d: FeatureDefinition) -> None:
    """Write ``d`` as ``DefinitionStore`` does (its spec JSON, an active pointer and a change), bypassing validation."""
    spec = json.dumps(d.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO feature_versions VALUES (?, ?, ?, ?, ?, ?)",
            (d.entity, d.name, d.version, spec, d.identity_hash, "2026-01-01T00:00:00+00:00"),
        )
        conn.execute(
            "INSERT INTO active_versions VALUES (?, ?, ?, ?)",
            (d.entity, d.name, d.version, "2026-01-01T00:00:00+00:00"),
        )
        conn.execute(
            "INSERT INTO changes (at, entity, name, version, action) VALUES (?, ?, ?, ?, 'created')",
            ("2026-01-01T00:00:00+00:00", d.entity, d.name, d.version),
        )
    conn.close()


def test_a_version_in_the_store_past_the_bound_stays_readable(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    store = DefinitionStore(path)
    wide = {"kind": "sliding", "size": "2d", "slide": "1m"}  # 2880 windows per event: registered before the bound
    held = FeatureDefinition.model_validate(definition_dict(name="txn_count_2d", window=wide), context=STORED)
    _insert(path, held)

    catalog = store.catalog()
    assert catalog.get("user", "txn_count_2d", 1) == held
    # a registration reading the held version back (the same topic's active features, the whole catalog) works
    registered = store.register(FeatureDefinition.model_validate(definition_dict()))
    assert registered.action == "created"
    store.activate("user", "txn_count_2d", 1)
    assert {d.name for d in store.catalog().active()} == {"txn_count_1h", "txn_count_2d"}
    # a new definition with that window is refused
    assert "at most 1440, not 2880 (2d / 1m)" in _refusal(name="txn_count_2d", version=2, window=wide)


# --- tags ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [65, 100, 10_000])
def test_more_than_64_tags_are_counted_in_tags(count: int) -> None:
    text = _refusal(tags=[f"t{i}" for i in range(count)])
    assert text.startswith("tags: ") and text.endswith(f"at most 64 tags, not {count}") and "items" not in text, text


def test_64_tags_are_accepted_and_a_bad_tag_is_still_named_by_its_index() -> None:
    assert len(FeatureDefinition.model_validate(definition_dict(tags=["t"] * 64)).tags) == 64
    text = _refusal(tags=["ok", "b\x1bad"])
    assert text.startswith("tags.1: ") and "control characters" in text, text
    assert _refusal(tags="risk").startswith("tags: ")  # not a list: pydantic's own refusal, as before
    assert FeatureDefinition.model_json_schema()["properties"]["tags"]["maxItems"] == 64


def test_tags_given_by_an_iterator_are_counted_or_said_to_be_more() -> None:
    """pydantic stops reading an iterator at the first entry past the bound and knows no length: the message must
    not say `not None`."""
    from pydantic import TypeAdapter, ValidationError

    from registry.core.definitions import Tags

    for given, says in (
        ((f"t{i}" for i in range(100)), "at most 64 tags, given more"),
        ({f"t{i}": 1 for i in range(70)}.keys(), "at most 64 tags, not 70"),
    ):
        with pytest.raises(ValidationError) as refused:
            TypeAdapter(Tags).validate_python(given)
        assert says in str(refused.value) and "None" not in str(refused.value), refused.value


# --- a version registered before a bound, still in its folder or sent again --------------------------------------

_WIDE = """
[[feature]]
name = "txn_count_2d"
version = {version}
description = "{description}"
aggregation = {{ function = "count" }}
window = {{ kind = "sliding", size = "2d", slide = "1m" }}
"""


def _folder(tmp_path: Path, *wide: str) -> Path:
    from registry.core.catalog import DEFAULT_FOLDER

    folder = tmp_path / "features"
    folder.mkdir(exist_ok=True)
    shipped = (DEFAULT_FOLDER / "user_transactions.toml").read_text()
    (folder / "user_transactions.toml").write_text(shipped + "".join(wide))
    return folder


def test_plan_and_apply_keep_a_version_registered_before_the_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: the folder that registered ``txn_count_2d`` (2,880 windows per event) could no longer be planned or
    applied at all once the bound existed, not even for an unrelated change."""
    from registry import cli
    from registry.core.catalog import parse_file_at

    db = tmp_path / "registry.db"
    assert cli.main(["--db", str(db), "apply", str(_folder(tmp_path))]) == 0  # the shipped features alone
    folder = _folder(tmp_path, _WIDE.format(version=1, description="two days"))
    (held,) = [d for d, _ in parse_file_at(folder / "user_transactions.toml", lambda d: True) if d.name.endswith("2d")]
    _insert(db, held)  # registered before the bound
    capsys.readouterr()

    assert cli.main(["--db", str(db), "plan", str(folder)]) == 0
    assert cli.main(["--db", str(db), "apply", str(folder)]) == 0
    # its metadata may change
    _folder(tmp_path, _WIDE.format(version=1, description="two days, by the minute"))
    assert cli.main(["--db", str(db), "apply", str(folder)]) == 0
    assert DefinitionStore(db).catalog().get("user", "txn_count_2d", 1).description == "two days, by the minute"
    capsys.readouterr()
    # a new version with that window is refused as any new definition is
    _folder(tmp_path, _WIDE.format(version=1, description="x"), _WIDE.format(version=2, description="x"))
    for command in ("plan", "apply"):
        assert cli.main(["--db", str(db), command, str(folder)]) == 1
        assert "at most 1440, not 2880 (2d / 1m)" in capsys.readouterr().err
    assert [d.version for d in DefinitionStore(db).catalog().versions("user", "txn_count_2d")] == [1]


def test_the_http_registration_keeps_a_version_registered_before_the_bound(tmp_path: Path) -> None:
    from registry.live import LiveCatalog
    from tests.unit.test_serving_reads import Source, app_for

    db = tmp_path / "registry.db"
    store = DefinitionStore(db)
    wide = {"kind": "sliding", "size": "2d", "slide": "1m"}
    held = FeatureDefinition.model_validate(definition_dict(name="txn_count_2d", window=wide), context=STORED)
    _insert(db, held)
    client = app_for(LiveCatalog(store), Source())
    body = definition_dict(name="txn_count_2d", window=wide, description="updated")
    answer = client.post("/v1/feature-definitions", json=body)
    assert (answer.status_code, answer.json()["result"]) == (200, "metadata_updated"), answer.text
    for refused in ({**body, "version": 2}, {k: v for k, v in body.items() if k != "version"}):
        answer = client.post("/v1/feature-definitions", json=refused)
        assert answer.status_code == 422 and "at most 1440, not 2880" in answer.json()["message"], answer.text
