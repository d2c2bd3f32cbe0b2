"""Oracle checks of training-set manifests (design §9): the id is the content (sha256, 16 hex, of the
manifest without ``id``, ``created_at`` and ``code_version``), every pinned part changes it, a manifest
reads back equal, and what is not a manifest is one line naming why."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.core.errors import DatasetError
from registry.training_sets import Manifest, TrainingSetStore

HEX = st.text("0123456789abcdef", min_size=16, max_size=16)
FEATURE = st.fixed_dictionaries(
    {
        "entity": st.just("user"),
        "name": st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
        "version": st.integers(1, 2**31 - 1),
        "value_type": st.sampled_from(["long", "double", "string", "boolean"]),
        "transform_hash": HEX,
        "identity_hash": HEX,
    }
)
FIELDS = st.fixed_dictionaries(
    {
        "entity_type": st.just("user"),
        "entity_column": st.sampled_from(["user_id", "who", "user_id,merchant_id"]),
        "timestamp_column": st.just("ts"),
        "features": st.lists(FEATURE, min_size=1, max_size=3),
        "offline_table": st.just("feature_store.offline_feature_values"),
        "snapshot_id": st.none() | st.integers(0, 2**63 - 1),
        "as_of": st.none() | st.just("2024-05-01T00:00:00+00:00"),
        "ingested_until": st.none() | st.just("2024-05-01T00:00:00.000000+00:00"),
        "labels_sha256": HEX,
        "labels_rows": st.integers(0, 10**9),
        "row_count": st.integers(0, 10**9),
        "content_sha256": HEX,
        "code_version": st.dictionaries(st.sampled_from(["featurestore", "pyarrow"]), st.text(max_size=5)),
    }
)
PINNED = (
    "entity_column",
    "features",
    "snapshot_id",
    "ingested_until",
    "labels_sha256",
    "labels_rows",
    "row_count",
    "content_sha256",
)


def _brute_id(manifest: dict[str, Any]) -> str:
    core = {k: v for k, v in manifest.items() if k not in ("id", "created_at", "code_version")}
    return hashlib.sha256(json.dumps(core, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def _changed(name: str, value: Any) -> Any:
    if name == "features":
        return [{**value[0], "identity_hash": "f" * 16 if value[0]["identity_hash"] != "f" * 16 else "0" * 16}]
    if name == "snapshot_id":
        return 1 if value is None else None
    if name == "ingested_until":
        return "2025-01-01T00:00:00.000000+00:00" if value is None else None
    if isinstance(value, int):
        return value + 1
    return value + "x"


@settings(max_examples=60, deadline=None)
@given(FIELDS, st.sampled_from(PINNED))
def test_the_id_is_the_content_and_every_pinned_part_changes_it(fields: dict[str, Any], pinned: str) -> None:
    m = Manifest.create(**fields)
    dumped = json.loads(m.to_json())
    assert m.id == dumped["id"] == _brute_id(dumped) and len(m.id) == 16
    assert Manifest.from_json(m.to_json()) == m
    # When it was made, and with which build, are not what it is.
    later = Manifest.create(**{**fields, "code_version": {"featurestore": "other"}, "created_at": "2030-01-01"})
    assert later.id == m.id
    assert Manifest.create(**{**fields, pinned: _changed(pinned, fields[pinned])}).id != m.id


@pytest.mark.parametrize(
    "text",
    ["", "[]", '{"id": 1}', "not json", '{"format": 1, "id": "x", "features": [{"entity": "User"}]}'],
)
def test_what_is_not_a_manifest_is_one_line(text: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as raised:
        Manifest.from_json(text)
    message = str(raised.value)
    assert message.startswith("not a training-set manifest: ") and "\n" not in message
    assert "errors.pydantic.dev" not in message


def test_a_stored_manifest_that_no_longer_reads_is_one_line(tmp_path: Path) -> None:
    import sqlite3

    store = TrainingSetStore(tmp_path / "d.db")
    with sqlite3.connect(tmp_path / "d.db") as conn:
        conn.execute("INSERT INTO training_sets VALUES ('abc', '{\"format\": 1}', NULL, NULL, '2026-01-01')")
    with pytest.raises(DatasetError) as raised:
        store.get("abc")
    assert "\n" not in str(raised.value) and "entity_type: Field required" in str(raised.value)
