"""A request field named like a key field of its entity type is refused at registration, whichever comes second.

Such a field would mean two things: online, a value the caller sends beside the entity's id or key (a
composite GET even takes it from the key's own query parameter, a batch from ``request_data``); offline, the
label frame's column of that name, which is the key column when the frame names its entity column like the
key field. The store, ``plan`` and ``apply`` refuse it; versions already stored are left as they are.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from registry.core.definitions import FeatureDefinition
from registry.core.request_features import RequestFeature, key_field_clashes
from registry.definition_store import DefinitionConflictError, DefinitionStore
from registry.plan import plan_all

MakeDef = Callable[..., FeatureDefinition]


def request_feature(field: str, *, entity: str = "user", inputs: tuple[str, ...] = ("txn_count_1h@v1",)) -> Any:
    return RequestFeature.model_validate(
        {
            "name": f"with_{field}",
            "entity": entity,
            "version": 1,
            "owner": "risk-team",
            "value_type": "double",
            "function": "udfs.request:amount_vs_mean_1h",
            "inputs": list(inputs),
            "request_fields": [{"name": field, "value_type": "string"}],
        }
    ).with_function_hash()


@pytest.fixture
def store(tmp_path: Path) -> DefinitionStore:
    return DefinitionStore(tmp_path / "definitions.db")


def test_a_request_field_named_like_the_key_field_is_refused_and_nothing_is_stored(
    store: DefinitionStore, make_definition: MakeDef
) -> None:
    count = make_definition()  # user, keyed by user_id
    store.register_all([count])
    with pytest.raises(DefinitionConflictError, match=r"request field\(s\) \['user_id'\] named like a key field"):
        store.register_all([], [request_feature("user_id")])
    assert store.catalog().request_features() == []
    with pytest.raises(DefinitionConflictError, match="user_id"):  # in one registration with the feature too
        DefinitionStore(store.path.with_name("other.db")).register_all([count], [request_feature("user_id")])
    store.register_all([], [request_feature("merchant_id")])  # a field that is no key field: registered
    assert [r.name for r in store.catalog().request_features()] == ["with_merchant_id"]


def test_a_composite_keys_fields_are_key_fields_too(store: DefinitionStore, make_definition: MakeDef) -> None:
    pair = make_definition(entity="pair", **{"source.entity_key": ["user_id", "merchant_id"]})
    store.register_all([pair])
    for field in ("user_id", "merchant_id"):
        with pytest.raises(DefinitionConflictError, match=f"'{field}'"):
            store.register_all([], [request_feature(field, entity="pair")])
    store.register_all([], [request_feature("currency", entity="pair")])


def test_a_new_key_field_named_like_a_request_field_is_refused(
    store: DefinitionStore, make_definition: MakeDef
) -> None:
    """A single-key entity type may read its key from another field on another topic: that field may not be a
    request field's name; a new version keyed as before may be registered beside such a request feature."""
    store.register_all([make_definition()], [request_feature("merchant_id")])
    by_merchant = make_definition(
        name="by_merchant", **{"source.topic": "other_topic", "source.entity_key": "merchant_id"}
    )
    with pytest.raises(DefinitionConflictError, match=r"key field\(s\) \['merchant_id'\] named like a request field"):
        store.register(by_merchant)
    with pytest.raises(DefinitionConflictError, match="merchant_id"):
        store.register_all([by_merchant])
    assert [d.name for d in store.catalog()] == ["txn_count_1h"]
    store.register(make_definition(name="txn_count_1h_b"))  # keyed by user_id, as the entity type already was
    assert sorted(d.name for d in store.catalog()) == ["txn_count_1h", "txn_count_1h_b"]


def test_plan_names_the_clash_before_apply(store: DefinitionStore, make_definition: MakeDef) -> None:
    store.register_all([make_definition()])
    with pytest.raises(DefinitionConflictError, match=r"\['user_id'\] named like a key field"):
        plan_all(store, [], [request_feature("user_id")])
    with pytest.raises(DefinitionConflictError, match=r"key field\(s\) \['amount'\] named like a request field"):
        plan_all(
            store,
            [make_definition(name="by_amount", **{"source.topic": "t2", "source.entity_key": "amount"})],
            [request_feature("amount")],
        )


def test_a_version_already_stored_with_such_a_field_is_left_as_it_is(
    store: DefinitionStore, make_definition: MakeDef
) -> None:
    """A store written before the rule (the request feature inserted as an older version would have been)
    still loads, serves and takes other registrations; applying the same version again is no new version."""
    store.register_all([make_definition()])
    old = request_feature("user_id")
    store.register_all([], [request_feature("merchant_id")])
    with sqlite3.connect(store.path) as conn:
        spec = conn.execute("SELECT spec FROM request_feature_versions").fetchone()[0]
        raw = json.loads(spec)
        raw.update(name=old.name, request_fields=[{"name": "user_id", "value_type": "string"}])
        raw["function_hash"] = old.function_hash
        columns = [c[1] for c in conn.execute("PRAGMA table_info(request_feature_versions)")]
        row = dict(zip(columns, conn.execute("SELECT * FROM request_feature_versions").fetchone(), strict=True))
        row.update(name=old.name, spec=json.dumps(raw))
        conn.execute(
            f"INSERT INTO request_feature_versions ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [row[c] for c in columns],
        )
    held = store.catalog().request_feature("user", old.name, 1)
    assert held is not None and [f.name for f in held.request_fields] == ["user_id"]
    store.register_all([], [held])  # the same version again: nothing new, no refusal
    store.register(make_definition(name="txn_count_1h_b"))
    assert key_field_clashes(store.catalog(), store.catalog().request_features()) == []


def test_the_http_registration_answers_409_naming_the_key_field(
    store: DefinitionStore, make_definition: MakeDef
) -> None:
    from fastapi.testclient import TestClient

    from registry.live import LiveCatalog
    from serving.online.app import create_app
    from tests.unit.conftest import NoValues, definition_dict

    store.register_all([make_definition()], [request_feature("merchant_id")])
    client = TestClient(create_app(LiveCatalog(store, refresh_s=0.0), NoValues()))
    body = definition_dict(name="by_merchant", **{"source.topic": "other_topic", "source.entity_key": "merchant_id"})
    answer = client.post("/v1/feature-definitions", json=body)
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"] == "version_conflict" and "['merchant_id']" in answer.json()["message"]
    assert [d.name for d in store.catalog()] == ["txn_count_1h"]
