"""Request-time features: the definition, its registration (source hash, catalog, store, plan), and shared helpers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from registry.core.catalog import FeatureCatalog, load_request_folder
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DefinitionError, RequestFeatureError
from registry.core.request_features import RequestFeature, Transform, source_hash
from registry.definition_store import DefinitionConflictError, DefinitionStore
from registry.live import LiveCatalog
from registry.plan import apply, plan_all, plan_requests
from serving.online.app import create_app
from sinks.cassandra.reader import StoredValue

MIN = 60_000
T = 1_700_000_100_000  # a 5-minute window end
NOW = T + 90_000
STREAM = "card_transactions/user/sliding(1h/5m)"


def request_feature(**overrides: Any) -> RequestFeature:
    raw: dict[str, Any] = {
        "name": "amount_vs_mean_1h",
        "entity": "user",
        "version": 1,
        "owner": "risk-team",
        "value_type": "double",
        "function": "udfs.request:amount_vs_mean_1h",
        "inputs": ["txn_count_1h@v1", "txn_amount_sum_1h@v1"],
        "request_fields": [{"name": "amount", "value_type": "double"}],
    }
    raw.update(overrides)
    return RequestFeature.model_validate(raw)


class Source:
    def __init__(self, values: dict[str, dict[tuple[str, int], StoredValue]], progress: int = T) -> None:
        self.values = values
        self.progress_ms = {STREAM: progress}

    async def read_many_async(self, entity_type: str, entity_ids: Any) -> list[Any]:
        return [dict(self.values.get(e, {})) for e in entity_ids]

    async def progress_async(self) -> dict[str, int]:
        return self.progress_ms


def vector(count: int | None = None, total: float | None = None, at: int = T) -> dict[tuple[str, int], StoredValue]:
    out = {}
    if count is not None:
        out[("txn_count_1h", 1)] = StoredValue(count, at)
    if total is not None:
        out[("txn_amount_sum_1h", 1)] = StoredValue(total, at)
    return out


def store_with(db: Path, shipped: FeatureCatalog, *extra: RequestFeature) -> DefinitionStore:
    store = DefinitionStore(db)
    store.register_all(list(shipped), [request_feature(), *extra])
    return store


def client_for(store: DefinitionStore, source: Source) -> TestClient:
    app = create_app(LiveCatalog(store), source, clock_us=lambda: NOW * 1000)
    return TestClient(app, raise_server_exceptions=False)


def iso(ms: int) -> str:
    from serving.online.vectors import format_ms

    return format_ms(ms)


def formula(count: int | None, total: float | None, amount: float | None) -> float | None:
    """``udfs.request.amount_vs_mean_1h`` in plain Python."""
    if count is None or total is None or amount is None or count <= 0 or total / count == 0:
        return None
    return amount / (total / count)


@pytest.fixture
def shipped_store(tmp_path: Path, shipped_catalog: FeatureCatalog) -> DefinitionStore:
    return store_with(tmp_path / "d.db", shipped_catalog)


# --- the definition -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"inputs": ["txn_count_1h"]}, "inputs must pin a version"),
        ({"inputs": ["txn_count_1h@v1\n"]}, "inputs must pin a version"),  # the grammar matches the whole value
        ({"inputs": [" txn_count_1h@v1"]}, "inputs must pin a version"),
        ({"inputs": ["txn_count_1h@1 "]}, "inputs must pin a version"),
        ({"request_fields": [{"name": "names", "value_type": "long"}]}, "taken by the read routes"),
        ({"request_fields": [{"name": "txn_count_1h", "value_type": "long"}]}, "must be distinct"),
        ({"function": "udfs.request.amount_vs_mean_1h"}, "must be `package.module:function`"),
        ({"function": "os:system; rm"}, "must be `package.module:function`"),
        ({"function": "udfs.request:amount_vs_mean_1h\n"}, "must be `package.module:function`"),
        ({"version": True}, "version\n  Input should be a valid integer"),
        ({"inputs": [], "request_fields": []}, "at least one input or request field"),
        ({"value_type": "decimal"}, "value_type"),
        ({"function_hash": "xyz"}, "function_hash"),
    ],
)
def test_invalid_definitions_are_refused_naming_the_problem(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        request_feature(**overrides)
    assert message in str(info.value)


def test_registration_records_the_functions_source_hash() -> None:
    hashed = request_feature().with_function_hash()
    from udfs import request

    assert hashed.function_hash == source_hash(request.amount_vs_mean_1h)
    assert hashed.identity_hash != request_feature().identity_hash
    with pytest.raises(RequestFeatureError, match="not the 0000000000000000 this version names"):
        request_feature(function_hash="0" * 16).with_function_hash()
    with pytest.raises(RequestFeatureError, match=r"cannot import udfs\.request:nope"):
        request_feature(function="udfs.request:nope").with_function_hash()
    with pytest.raises(RequestFeatureError, match="is not a function"):
        request_feature(function="tests.request_fns:NOT_A_FUNCTION").with_function_hash()


def test_a_changed_function_refuses_to_run_under_the_old_version() -> None:
    registered = request_feature().with_function_hash().model_copy(update={"function_hash": "0123456789abcdef"})
    with pytest.raises(RequestFeatureError) as info:
        Transform.of(registered)
    assert "has changed since v1 was registered" in str(info.value)
    assert "register the change as a new version" in str(info.value)


def test_the_shipped_folder_holds_a_request_feature(shipped_catalog: FeatureCatalog) -> None:
    (found,) = load_request_folder()
    assert found.name == "amount_vs_mean_1h" and found.function_hash is None  # filled at registration
    served = shipped_catalog.request_feature("user", "amount_vs_mean_1h")
    assert served is not None and served.function_hash is not None
    assert [d.key for d in shipped_catalog.inputs_of(served)] == [
        ("user", "txn_count_1h", 1),
        ("user", "txn_amount_sum_1h", 1),
    ]
    assert all(d.name != "amount_vs_mean_1h" for d in shipped_catalog)  # not a stored feature: no job, no sink


def test_the_catalog_refuses_unregistered_inputs_and_taken_names(shipped_catalog: FeatureCatalog) -> None:
    stored = list(shipped_catalog)
    with pytest.raises(DefinitionError, match=r"reads unregistered feature version\(s\): \['txn_count_1h@v9'\]"):
        FeatureCatalog(stored, request_features=[request_feature(inputs=["txn_count_1h@v9"])])
    with pytest.raises(DefinitionError, match="has the name of a stored feature"):
        FeatureCatalog(stored, request_features=[request_feature(name="txn_count_1h")])


def test_the_store_keeps_versions_immutable(tmp_path: Path, shipped_catalog: FeatureCatalog) -> None:
    store = DefinitionStore(tmp_path / "d.db")
    store.register_all(list(shipped_catalog), [request_feature()])
    store.register_all([], [request_feature(description="metadata may change")])  # same version, new metadata
    catalog = store.catalog()
    held = catalog.request_feature("user", "amount_vs_mean_1h")
    assert held is not None and held.description == "metadata may change" and held.function_hash is not None
    changed = request_feature(function="tests.request_fns:sum_times_amount")
    with pytest.raises(DefinitionConflictError, match="register the change as v2"):
        store.register_all([], [changed])
    with pytest.raises(DefinitionConflictError, match="differ from the registered version"):
        plan_requests(store, [changed])
    assert str(plan_requests(store, [changed.model_copy(update={"version": 2})])[0]).startswith(
        "+ request feature user.amount_vs_mean_1h v2: tests.request_fns:sum_times_amount @"
    )
    with pytest.raises(DefinitionError, match="unregistered"):  # rolled back whole
        store.register_all([], [request_feature(name="other", inputs=["txn_count_1h@v7"])])
    assert store.catalog().request_feature("user", "other") is None


def test_the_hash_covers_the_whole_module() -> None:
    from tests import request_fns
    from udfs import request

    assert source_hash(request_fns.fails) == source_hash(request_fns.count_plus_amount)  # one module, one hash
    assert source_hash(request_fns.fails) != source_hash(request.amount_vs_mean_1h)


def test_a_stored_feature_may_not_take_a_request_features_name(
    shipped_store: DefinitionStore, make_definition: Callable[..., FeatureDefinition]
) -> None:
    shipped = shipped_store.catalog().get("user", "txn_count_1h")
    source = shipped.source.model_dump(mode="json")
    with pytest.raises(DefinitionConflictError, match="is the name of a request-time feature"):
        shipped_store.register(make_definition(name="amount_vs_mean_1h", source=source))
    with pytest.raises(DefinitionConflictError, match="is the name of a request-time feature"):
        shipped_store.register(make_definition(name="renamed", aliases=["amount_vs_mean_1h"], source=source))
    assert shipped_store.catalog().request_feature("user", "amount_vs_mean_1h") is not None  # still loads


def test_a_plan_names_the_conflicts_of_stored_and_request_features_together(
    tmp_path: Path, shipped_catalog: FeatureCatalog
) -> None:
    """Both kinds in one error (the request features' conflicts were named only once the stored ones were fixed),
    and nothing of the folder is written."""
    store = DefinitionStore(tmp_path / "d.db")
    store.register_all(list(shipped_catalog), [request_feature()])
    stored = next(d for d in shipped_catalog if d.name == "txn_count_1h")
    changed_stored = stored.model_copy(update={"ttl": stored.ttl * 2})
    changed_request = request_feature(function="tests.request_fns:sum_times_amount")
    for attempt in (plan_all, apply):
        with pytest.raises(DefinitionConflictError) as conflict:
            attempt(store, [changed_stored], [changed_request])
        assert "user.txn_count_1h v1: transform or TTL differs" in str(conflict.value)
        assert "request feature user.amount_vs_mean_1h v1: function" in str(conflict.value)
    assert store.catalog().get("user", "txn_count_1h", 1).ttl == stored.ttl
