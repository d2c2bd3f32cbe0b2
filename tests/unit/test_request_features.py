"""Request-time features: the definition, its registration (source hash), the online API and the join.

Online values are checked by hand and against the same formula in plain Python; offline values against
the brute-force join reference of test_training_sets with the formula applied to its values. The two
paths agreeing on the same inputs is checked here on an in-memory vector and on a real Iceberg table,
and on the real stack in tests/integration/test_end_to_end.py.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from registry.core.catalog import FeatureCatalog, load_request_folder
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DatasetError, DefinitionError, RequestFeatureError, UnknownFeatureError
from registry.core.request_features import RequestFeature, Transform, source_hash
from registry.definition_store import DefinitionConflictError, DefinitionStore
from registry.live import LiveCatalog
from registry.plan import apply, plan_all, plan_requests
from serving.offline.historical import get_historical_features
from serving.offline.training import build_training_set, rebuild
from serving.online.app import create_app
from sinks.cassandra.reader import StoredValue
from tests.unit.test_training_sets import (
    FEATURES,
    Row,
    iceberg_table,
    labels_table,
    reference,
    scenario,
    stored_definitions,
    write,
)

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


# --- online -------------------------------------------------------------------------------------------


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


def test_get_computes_the_feature_from_the_request_and_the_served_inputs(shipped_store: DefinitionStore) -> None:
    client = client_for(shipped_store, Source({"u1": vector(4, 10.0)}))
    response = client.get("/v1/features/user/u1?names=txn_count_1h,amount_vs_mean_1h&amount=5")
    assert response.status_code == 200, response.text
    features = response.json()["features"]
    assert list(features) == ["txn_count_1h", "amount_vs_mean_1h"]  # request order
    assert features["amount_vs_mean_1h"] == {
        "value": 2.0,  # 5 / (10 / 4)
        "feature_timestamp": iso(T),
        "age_seconds": 90.0,
        "version": 1,
        "status": "present",
    }
    other = client.get("/v1/features/user/u1?names=txn_count_1h,amount_vs_mean_1h&amount=7.5").json()
    assert other["features"]["amount_vs_mean_1h"]["value"] == 3.0  # the plan is cached, the request data is not
    default = client.get("/v1/features/user/u1").json()["features"]
    assert "amount_vs_mean_1h" not in default  # read by name only: it needs request data


@pytest.mark.parametrize(
    ("stored", "status"),
    [
        (vector(0, 0.0), "present"),  # no transactions: no mean, null
        (vector(4, None), "missing"),  # an input with no row: null input, the least fresh status
        (vector(4, 10.0, at=T - 3 * 60 * MIN), "expired"),  # past the 2h TTL
        ({}, "missing"),
    ],
)
def test_statuses_follow_the_least_fresh_input(
    shipped_store: DefinitionStore, stored: dict[tuple[str, int], StoredValue], status: str
) -> None:
    body = client_for(shipped_store, Source({"u1": stored})).get(
        "/v1/features/user/u1", params={"names": "amount_vs_mean_1h", "amount": "5"}
    )
    got = body.json()["features"]["amount_vs_mean_1h"]
    assert got["status"] == status
    assert got["value"] is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("names=amount_vs_mean_1h", "need query parameter(s) ['amount']"),
        ("names=amount_vs_mean_1h&amount=abc", "`amount` must be a finite number"),
        ("names=amount_vs_mean_1h&amount=nan", "`amount` must be a finite number"),
        ("names=amount_vs_mean_1h&amount=inf", "`amount` must be a finite number"),
        # read with U+FFFD in place of the bytes before (a string field's function got "\ufffd")
        ("names=amount_vs_mean_1h&amount=%FF", "the query string is not UTF-8"),
        ("names=amount_vs_mean_1h&amount=1&note=%ED%A0%80", "the query string is not UTF-8"),
    ],
)
def test_bad_request_data_is_a_400_naming_the_field(shipped_store: DefinitionStore, query: str, message: str) -> None:
    response = client_for(shipped_store, Source({})).get(f"/v1/features/user/u1?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request_data"
    assert message in response.json()["message"]


def test_batch_takes_one_request_value_per_entity(shipped_store: DefinitionStore) -> None:
    source = Source({"a": vector(2, 8.0), "b": vector(0, 0.0), "c": vector(5, 5.0)})
    response = client_for(shipped_store, source).post(
        "/v1/features/user/batch",
        json={
            "entity_ids": ["a", "b", "c", "nobody"],
            "names": ["amount_vs_mean_1h", "txn_count_1h"],
            "request_data": {"amount": [8, 1.5, None, 2.0]},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["names"] == ["amount_vs_mean_1h", "txn_count_1h"]
    assert body["versions"] == [1, 1]
    a, b, c, nobody = body["results"]
    assert a == {
        "entity_id": "a",
        "values": [2.0, 2],
        "feature_timestamps": [iso(T), iso(T)],
        "age_seconds": [90.0, 90.0],
        "statuses": ["present", "present"],
    }
    assert b["values"] == [None, 0] and c["values"] == [None, 5]  # no mean; no amount
    assert nobody["values"] == [None, None] and nobody["statuses"] == ["missing", "missing"]


@pytest.mark.parametrize("request_data", [None, [1.0], {}])
def test_missing_request_data_lists_the_missing_fields(shipped_store: DefinitionStore, request_data: Any) -> None:
    """`fields` lists the missing request fields whether `request_data` is absent, not an object, or short."""
    client = client_for(shipped_store, Source({}))
    body: dict[str, Any] = {"entity_ids": ["a"], "names": ["txn_count_1h", "amount_vs_mean_1h"]}
    part: dict[str, Any] = {"entity_type": "user", "entity_id": "a", "names": ["amount_vs_mean_1h"]}
    if request_data is not None:
        body["request_data"] = request_data
        part["request_data"] = request_data if request_data != [1.0] else 1.0
    batch = client.post("/v1/features/user/batch", json=body)
    assert (batch.status_code, batch.json()["error"]) == (400, "bad_request_data"), batch.text
    assert batch.json()["fields"] == ["amount"]
    good = {"entity_type": "user", "entity_id": "a", "names": ["txn_count_1h"]}
    vectors = client.post("/v1/vectors", json={"entities": [good, part]})
    assert (vectors.status_code, vectors.json()["error"]) == (400, "bad_request_data"), vectors.text
    assert vectors.json()["fields"] == ["amount"]
    assert vectors.json()["message"].startswith("entities[1]: ")


@pytest.mark.parametrize(
    ("request_data", "message"),
    [
        (None, "`request_data` must be an object"),
        ({}, "missing ['amount']"),
        ({"amount": [1.0], "extra": [1]}, "not taken ['extra']"),
        ({"amount": [1.0, 2.0]}, "must list 1 values"),
        ({"amount": [True]}, "`amount` values must be double or null"),
        ({"amount": ["1.0"]}, "`amount` values must be double or null"),
    ],
)
def test_batch_request_data_is_checked(shipped_store: DefinitionStore, request_data: Any, message: str) -> None:
    body: dict[str, Any] = {"entity_ids": ["a"], "names": ["amount_vs_mean_1h"]}
    if request_data is not None:
        body["request_data"] = request_data
    response = client_for(shipped_store, Source({})).post("/v1/features/user/batch", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request_data"
    assert message in response.json()["message"]


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("tests.request_fns:fails", "raised ZeroDivisionError: boom"),
        ("tests.request_fns:wrong_type", "returned values that are not double"),
        ("tests.request_fns:wrong_length", "returned 1 values for 2 rows"),
    ],
)
def test_a_failing_function_is_that_features_error_not_a_500(
    tmp_path: Path, shipped_catalog: FeatureCatalog, function: str, message: str
) -> None:
    broken = request_feature(name="broken", function=function)
    client = client_for(store_with(tmp_path / "d.db", shipped_catalog, broken), Source({"a": vector(2, 8.0)}))
    batch = client.post(
        "/v1/features/user/batch",
        json={"entity_ids": ["a", "b"], "names": ["txn_count_1h", "broken"], "request_data": {"amount": [1.0, 2.0]}},
    )
    assert batch.status_code == 200, batch.text
    first = batch.json()["results"][0]
    assert first["values"] == [2, None]
    assert first["statuses"] == ["present", "error"]
    assert message in first["errors"]["broken"]
    if function.endswith("wrong_length"):
        return  # one entity: one value is the right length
    single = client.get("/v1/features/user/a?names=broken,txn_count_1h&amount=1").json()["features"]
    assert single["broken"]["status"] == "error" and single["broken"]["value"] is None
    assert message in single["broken"]["message"]
    assert single["txn_count_1h"]["value"] == 2
    metrics = client.get("/metrics").text
    assert 'feature="broken"' in metrics and 'status="error"' in metrics


def test_values_json_cannot_carry_are_null(tmp_path: Path, shipped_catalog: FeatureCatalog) -> None:
    infinite = request_feature(name="infinite", function="tests.request_fns:not_finite")
    client = client_for(store_with(tmp_path / "d.db", shipped_catalog, infinite), Source({"a": vector(2, 8.0)}))
    got = client.get("/v1/features/user/a?names=infinite&amount=1").json()["features"]["infinite"]
    assert got["value"] is None and got["status"] == "present"


def test_a_function_changed_since_registration_answers_error(tmp_path: Path, shipped_catalog: FeatureCatalog) -> None:
    store = store_with(tmp_path / "d.db", shipped_catalog)
    with sqlite3.connect(tmp_path / "d.db") as conn:  # the registered hash of another source text
        (spec,) = conn.execute("SELECT spec FROM request_feature_versions").fetchone()
        conn.execute(
            "UPDATE request_feature_versions SET spec = ?",
            (json.dumps({**json.loads(spec), "function_hash": "0" * 16}),),
        )
    got = client_for(store, Source({"a": vector(2, 8.0)})).get("/v1/features/user/a?names=amount_vs_mean_1h&amount=1")
    assert got.status_code == 200
    feature = got.json()["features"]["amount_vs_mean_1h"]
    assert feature["status"] == "error" and "has changed since v1 was registered" in feature["message"]


# --- offline ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def offline_catalog(make_definition: Callable[..., FeatureDefinition]) -> FeatureCatalog:
    stored = stored_definitions(make_definition)
    requests = [
        RequestFeature.model_validate(
            {
                "name": "count_plus_amount",
                "entity": "user",
                "version": 1,
                "owner": "risk-team",
                "value_type": "double",
                "function": "tests.request_fns:count_plus_amount",
                "inputs": ["count_5m@v1"],
                "request_fields": [{"name": "amount", "value_type": "double"}],
            }
        ).with_function_hash(),
        RequestFeature.model_validate(
            {
                "name": "label_of",
                "entity": "user",
                "version": 1,
                "owner": "risk-team",
                "value_type": "string",
                "function": "tests.request_fns:label_of",
                "inputs": ["last_merchant@v1"],
                "request_fields": [{"name": "channel", "value_type": "string"}],
            }
        ).with_function_hash(),
        RequestFeature.model_validate(
            {
                "name": "broken",
                "entity": "user",
                "version": 1,
                "owner": "risk-team",
                "value_type": "double",
                "function": "tests.request_fns:fails",
                "inputs": ["count_5m@v1"],
            }
        ).with_function_hash(),
    ]
    return FeatureCatalog(stored, request_features=requests)


def with_request_columns(labels: pa.Table, seed: int) -> pa.Table:
    rng = random.Random(seed)
    n = labels.num_rows
    amounts = [rng.choice([None, 0.5, 2.0, -1.25]) for _ in range(n)]
    channels = [rng.choice(["web", "app", None]) for _ in range(n)]
    return labels.append_column("amount", pa.array(amounts, pa.float64())).append_column(
        "channel", pa.array(channels, pa.string())
    )


@pytest.mark.parametrize("seed", range(4))
def test_the_join_computes_request_features_from_the_reference_values(
    seed: int, tmp_path: Path, offline_catalog: FeatureCatalog
) -> None:
    batches, labels = scenario(seed, offline_catalog)
    table = iceberg_table(tmp_path)
    write(table, [[Row(r.d, r.entity_id, r.value, r.end_ms, r.ingested_ms, 0, r.revision) for r in b] for b in batches])
    rows = [r for b in batches for r in b]
    given = with_request_columns(labels_table(labels), seed)
    asked = ["count_plus_amount", "sum_10m", "label_of@v1"]
    result = get_historical_features(table, offline_catalog, given, asked, entity_type="user", entity_column="who")
    assert result.column_names == [*given.column_names, "count_plus_amount", "sum_10m", "label_of"]
    expected = reference(rows, offline_catalog, FEATURES, labels)
    amounts = given.column("amount").to_pylist()
    channels = given.column("channel").to_pylist()
    assert result.column("sum_10m").to_pylist() == expected["sum_10m"]
    assert result.column("count_plus_amount").to_pylist() == [
        None if c is None or a is None else c + a for c, a in zip(expected["count_5m"], amounts, strict=True)
    ]
    assert result.column("label_of").to_pylist() == [
        None if m is None else f"{m}|{ch}" for m, ch in zip(expected["last_merchant"], channels, strict=True)
    ]
    for chunk_rows in (1, 3):
        assert get_historical_features(
            table, offline_catalog, given, asked, entity_type="user", entity_column="who", chunk_rows=chunk_rows
        ).equals(result)


def test_the_join_refuses_what_it_cannot_compute(tmp_path: Path, offline_catalog: FeatureCatalog) -> None:
    table = iceberg_table(tmp_path)
    labels = labels_table([("e0", 1_700_000_000_000)])
    join = lambda labels, features: get_historical_features(  # noqa: E731
        table, offline_catalog, labels, features, entity_type="user", entity_column="who"
    )
    with pytest.raises(DefinitionError, match="count_plus_amount needs label column 'amount'"):
        join(labels, ["count_plus_amount"])
    wrong = labels.append_column("amount", pa.array(["x"]))
    with pytest.raises(DefinitionError, match="label column 'amount' is string, not double"):
        join(wrong, ["count_plus_amount"])
    single = labels.append_column("amount", pa.array([0.1], pa.float32()))
    with pytest.raises(DefinitionError, match="label column 'amount' is float, not double"):
        join(single, ["count_plus_amount"])
    twice = labels.append_column("amount", pa.array([0.1])).append_column("amount", pa.array([0.2]))
    with pytest.raises(DefinitionError, match="label frame has 2 columns named 'amount': which one is meant"):
        join(twice, ["count_plus_amount"])  # a bare KeyError ("does not exist in schema") before
    for bad in (float("nan"), float("inf")):
        with pytest.raises(DefinitionError, match="label column 'amount' holds NaN or infinite values"):
            join(labels.append_column("amount", pa.array([bad])), ["count_plus_amount"])
    long_text = labels.append_column("channel", pa.array(["x" * 4097]))
    with pytest.raises(DefinitionError, match="label column 'channel' holds strings over 4096 characters"):
        join(long_text, ["label_of"])
    assert join(labels.append_column("channel", pa.array(["x" * 4096])), ["label_of"]).num_rows == 1
    assert join(labels.append_column("amount", pa.array([2**64 - 1], pa.uint64())), ["count_plus_amount"]).num_rows == 1
    with pytest.raises(UnknownFeatureError, match="count_plus_amount@v2"):
        join(labels.append_column("amount", pa.array([1.0])), ["count_plus_amount@v2"])
    with pytest.raises(RequestFeatureError, match="raised ZeroDivisionError: boom"):
        join(labels, ["broken"])


def test_training_sets_pin_request_features_and_rebuild(tmp_path: Path, offline_catalog: FeatureCatalog) -> None:
    batches, labels = scenario(1, offline_catalog)
    table = iceberg_table(tmp_path)
    write(table, [[Row(r.d, r.entity_id, r.value, r.end_ms, r.ingested_ms, 0, r.revision) for r in b] for b in batches])
    given = with_request_columns(labels_table(labels), 1)
    built = build_training_set(
        table, offline_catalog, given, ["count_5m", "count_plus_amount"], entity_type="user", entity_column="who"
    )
    pinned = built.manifest.features[1]
    held = offline_catalog.request_feature("user", "count_plus_amount")
    assert held is not None
    assert (pinned.name, pinned.identity_hash, pinned.transform_hash) == (
        "count_plus_amount",
        held.identity_hash,
        held.function_hash,
    )
    assert rebuild(table, offline_catalog, built.manifest, given).table.equals(built.table)
    changed = FeatureCatalog(
        list(offline_catalog),
        request_features=[
            r
            if r.name != "count_plus_amount"
            else r.model_copy(update={"function": "tests.request_fns:sum_times_amount"})
            for r in offline_catalog.request_features()
        ],
    )
    with pytest.raises(DatasetError, match="count_plus_amount@v1 changed since training set"):
        rebuild(table, changed, built.manifest, given)


def test_online_and_offline_agree_on_the_same_inputs(
    tmp_path: Path, shipped_store: DefinitionStore, shipped_catalog: FeatureCatalog
) -> None:
    """The same stored values served online at NOW and joined offline at NOW give the same request values."""
    count = shipped_catalog.get("user", "txn_count_1h", 1)
    total = shipped_catalog.get("user", "txn_amount_sum_1h", 1)
    cases = {"a": (3, 12.0, 2.0), "b": (0, 0.0, 1.0), "c": (7, 3.5, -4.0), "d": (1, 0.25, 0.1)}
    table = iceberg_table(tmp_path)
    rows = [Row(d, e, v, T, T + 1000) for e, (c, s, _) in cases.items() for d, v in ((count, c), (total, s))]
    write(table, [rows])
    online = client_for(shipped_store, Source({e: vector(c, s) for e, (c, s, _) in cases.items()})).post(
        "/v1/features/user/batch",
        json={
            "entity_ids": list(cases),
            "names": ["amount_vs_mean_1h"],
            "request_data": {"amount": [a for _, _, a in cases.values()]},
        },
    )
    labels = pa.table(
        {
            "user_id": list(cases),
            "event_timestamp": pa.array([NOW] * len(cases), pa.timestamp("ms", tz="UTC")),
            "amount": [a for _, _, a in cases.values()],
        }
    )
    offline = get_historical_features(
        table, shipped_store.catalog(), labels, ["amount_vs_mean_1h"], entity_type="user", entity_column="user_id"
    )
    online_values = [r["values"][0] for r in online.json()["results"]]
    assert online_values == offline.column("amount_vs_mean_1h").to_pylist()
    assert online_values == [formula(c, s, a) for c, s, a in cases.values()]


# --- feature services and the deployment gate ----------------------------------------------------------


def test_a_feature_service_pins_a_request_feature(tmp_path: Path, shipped_catalog: FeatureCatalog) -> None:
    from registry.feature_services import FeatureServiceStore, LiveFeatureServices

    store = store_with(tmp_path / "d.db", shipped_catalog)
    services = LiveFeatureServices(FeatureServiceStore(tmp_path / "d.db"))
    app = create_app(
        LiveCatalog(store), Source({"u1": vector(4, 10.0)}), clock_us=lambda: NOW * 1000, services=services
    )
    client = TestClient(app, raise_server_exceptions=False)
    held = store.catalog().request_feature("user", "amount_vs_mean_1h")
    assert held is not None
    pin: dict[str, Any] = {"entity": "user", "name": "amount_vs_mean_1h", "version": 1}
    service = {
        "name": "fraud-model",
        "features": [
            {**pin, "identity_hash": held.identity_hash},
            {"entity": "user", "name": "txn_count_1h", "version": 1},
        ],
    }
    created = client.post("/v1/feature-services", json=service)
    assert created.status_code == 201, created.text
    got = client.get("/v1/features/user/u1?feature_service=fraud-model@1&amount=5").json()["features"]
    assert list(got) == ["amount_vs_mean_1h", "txn_count_1h"]
    assert got["amount_vs_mean_1h"]["value"] == 2.0
    missing = client.get("/v1/features/user/u1?feature_service=fraud-model@1")
    assert missing.status_code == 400 and missing.json()["error"] == "bad_request_data"
    batch = client.post(
        "/v1/features/user/batch",
        json={"entity_ids": ["u1"], "feature_service": "fraud-model", "request_data": {"amount": [10.0]}},
    ).json()
    assert batch["names"] == ["amount_vs_mean_1h", "txn_count_1h"] and batch["results"][0]["values"] == [4.0, 4]
    wrong = {"name": "other", "features": [{**pin, "identity_hash": "0" * 16}]}
    refused = client.post("/v1/feature-services", json=wrong)
    assert refused.status_code == 422 and "pinned identity 0000000000000000" in refused.text


def test_the_gate_checks_a_pinned_request_feature(tmp_path: Path, shipped_catalog: FeatureCatalog) -> None:
    from registry.gate import ModelManifest, PinnedFeature, check_model

    store = store_with(tmp_path / "d.db", shipped_catalog)
    held = store.catalog().request_feature("user", "amount_vs_mean_1h")
    assert held is not None
    pin = PinnedFeature(entity="user", name="amount_vs_mean_1h", version=1, identity_hash=held.identity_hash)
    model = ModelManifest(model="fraud", features=(pin,))
    assert check_model(model, store.catalog(), None) == []
    changed = FeatureCatalog(
        list(store.catalog()), request_features=[held.model_copy(update={"function_hash": "0" * 16})]
    )
    problems = check_model(model, changed, None)
    assert any("changed since training" in p for p in problems) and any("has changed since v1" in p for p in problems)
    unknown = ModelManifest(model="fraud", features=(pin.model_copy(update={"version": 3}),))
    assert check_model(unknown, store.catalog(), None) == ["user.amount_vs_mean_1h@v3: not registered"]


def test_parse_text_boundaries() -> None:
    from registry.core.request_features import RequestField, parse_text

    double = RequestField(name="a", value_type="double")
    long = RequestField(name="a", value_type="long")
    text = RequestField(name="a", value_type="string")
    flag = RequestField(name="a", value_type="boolean")
    assert [parse_text(double, t) for t in ("1", "-1.5", ".5", "1e3", "+2.")] == [1.0, -1.5, 0.5, 1000.0, 2.0]
    for bad in ("1_000", " 5", "\u0661\u0662", "1e400", "inf", "nan", "", "0x10"):
        with pytest.raises(ValueError, match="must be a finite number"):
            parse_text(double, bad)
    assert parse_text(long, str(2**63 - 1)) == 2**63 - 1 and parse_text(long, str(-(2**63))) == -(2**63)
    assert parse_text(long, "0" * 30 + "5") == 5
    for bad in (str(2**63), "1.0", "+1", " 1", ""):
        with pytest.raises(ValueError, match="must be a 64-bit integer"):
            parse_text(long, bad)
    assert parse_text(text, "x" * 4096) == "x" * 4096
    with pytest.raises(ValueError, match="longer than 4096"):
        parse_text(text, "x" * 4097)
    assert (parse_text(flag, "true"), parse_text(flag, "false")) == (True, False)
    with pytest.raises(ValueError, match="true or false"):
        parse_text(flag, "True")


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


def test_request_fields_of_two_types_are_refused_together(tmp_path: Path, shipped_catalog: FeatureCatalog) -> None:
    from registry.feature_services import FeatureServiceStore, LiveFeatureServices

    as_long = request_feature(
        name="amount_long",
        value_type="long",
        function="tests.request_fns:amount_as_long",
        request_fields=[{"name": "amount", "value_type": "long"}],
    )
    too_big = request_feature(name="too_big", value_type="long", function="tests.request_fns:too_big")
    store = store_with(tmp_path / "d.db", shipped_catalog, as_long, too_big)
    services = LiveFeatureServices(FeatureServiceStore(tmp_path / "d.db"))
    app = create_app(
        LiveCatalog(store), Source({"u1": vector(4, 10.0)}), clock_us=lambda: NOW * 1000, services=services
    )
    client = TestClient(app, raise_server_exceptions=False)
    both = client.get("/v1/features/user/u1?names=amount_vs_mean_1h,amount_long&amount=5")
    assert both.status_code == 400 and both.json()["error"] == "bad_request_data"
    assert "request field `amount` is long here and double elsewhere" in both.json()["message"]
    assert client.get("/v1/features/user/u1?names=amount_long&amount=5").json()["features"]["amount_long"]["value"] == 5
    overflow = client.get("/v1/features/user/u1?names=too_big&amount=5").json()["features"]["too_big"]
    assert overflow["status"] == "error" and "returned values that are not long" in overflow["message"]
    pins = [{"entity": "user", "name": n, "version": 1} for n in ("amount_vs_mean_1h", "amount_long")]
    refused = client.post("/v1/feature-services", json={"name": "mixed", "features": pins})
    assert refused.status_code == 422 and "is long here and double elsewhere" in refused.text
    only = client.post("/v1/feature-services", json={"name": "only-request", "features": pins[:1]})
    assert only.status_code == 201, only.text
    got = client.get("/v1/features/user/u1?feature_service=only-request&amount=5")
    assert got.status_code == 200 and got.json()["features"]["amount_vs_mean_1h"]["value"] == 2.0


def test_the_gate_refuses_inputs_the_live_job_no_longer_computes(
    tmp_path: Path, shipped_catalog: FeatureCatalog, make_definition: Callable[..., FeatureDefinition]
) -> None:
    from registry.gate import ModelManifest, PinnedFeature, check_model

    store = store_with(tmp_path / "d.db", shipped_catalog)
    pin = PinnedFeature(entity="user", name="amount_vs_mean_1h", version=1)
    model = ModelManifest(model="fraud", features=(pin,))
    assert check_model(model, store.catalog(), None) == []
    shipped = shipped_catalog.get("user", "txn_count_1h", 1)
    store.register(make_definition(version=2, ttl="3h", source=shipped.source.model_dump(mode="json")), activate=True)
    (problem,) = check_model(model, store.catalog(), None)
    assert "input txn_count_1h@v1 is not computed by the live job (v2 is active)" in problem


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


def test_an_integer_label_column_for_a_double_field_is_rounded_as_online(offline_catalog: FeatureCatalog) -> None:
    """Request data is held to one rule on both sides: online, a JSON integer for a double field is the nearest
    double (Python's ``float``), past 2^53 included; offline an integer column's values are rounded the same way."""
    from types import SimpleNamespace

    from serving.offline.request_columns import RequestColumn

    feature = offline_catalog.request_feature("user", "count_plus_amount")
    assert feature is not None
    seen = cast(Any, SimpleNamespace(run=lambda columns, n: columns["amount"]))  # the function's input, as given
    column = RequestColumn(feature, seen, ())
    for values, kind in (
        ([2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63), 3], pa.int64()),
        ([2**64 - 1, 2**53 + 1], pa.uint64()),
        ([2**31 - 1], pa.int32()),
    ):
        got = column.compute({}, pa.table({"amount": pa.array(values, kind)}))
        assert got.type == pa.float64() and got.to_pylist() == [float(v) for v in values]
