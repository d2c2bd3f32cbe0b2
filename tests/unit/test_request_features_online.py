"""Request-time features in the online API: computed values, statuses, request data, failing functions."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from registry.core.catalog import FeatureCatalog
from registry.definition_store import DefinitionStore
from sinks.cassandra.reader import StoredValue
from tests.unit.test_request_features import (
    MIN,
    Source,
    T,
    client_for,
    iso,
    request_feature,
    shipped_store,
    store_with,
    vector,
)

__all__ = ["shipped_store"]  # the fixture, used by name


# --- online -------------------------------------------------------------------------------------------


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
