"""A number past the doubles' range in a read's JSON body (``1e400``, an integer of 400 digits) is JSON all the
same: it is refused by the check of the member holding it, with that member's code, as the same value in a query
string is (docs/design.md §9 "Request-time features": NaN and infinities are 400 ``bad_request_data``; §3.3:
a request field "not its type" is ``bad_request_data``). orjson stops at such a number, and every one was 400
``bad_json`` ("request body is not JSON"), while ``GET ...&amount=1e400`` was ``bad_request_data``."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from tests.unit.test_request_features import Source, client_for, store_with, vector

JSON = {"content-type": "application/json"}
BIG = "1" + "0" * 400
READ = '"entity_ids": ["u1"], "names": ["amount_vs_mean_1h"]'


@pytest.fixture
def client(tmp_path: Path, shipped_catalog: FeatureCatalog) -> TestClient:
    return client_for(store_with(tmp_path / "d.db", shipped_catalog), Source({"u1": vector(4, 10.0)}))


def _answer(client: TestClient, path: str, body: str) -> tuple[int, str, str]:
    r = client.post(path, content=body.encode(), headers=JSON)
    return r.status_code, r.json().get("error", ""), r.json().get("message", "")


def test_the_get_refusal_is_the_reference(client: TestClient) -> None:
    r = client.get("/v1/features/user/u1?names=amount_vs_mean_1h&amount=1e400")
    assert (r.status_code, r.json()["error"]) == (400, "bad_request_data")


@pytest.mark.parametrize("number", ["1e400", "-1e400", BIG, "-" + BIG], ids=["1e400", "-1e400", "big", "-big"])
def test_a_request_value_past_the_doubles_is_bad_request_data_in_a_batch(client: TestClient, number: str) -> None:
    status, code, message = _answer(
        client, "/v1/features/user/batch", f'{{{READ}, "request_data": {{"amount": [{number}]}}}}'
    )
    assert (status, code) == (400, "bad_request_data"), message
    assert "`amount` values must be double or null" in message


def test_a_request_value_past_the_doubles_is_bad_request_data_in_a_vectors_part(client: TestClient) -> None:
    part = (
        '{"entity_type": "user", "entity_id": "u1", "names": ["amount_vs_mean_1h"], "request_data": {"amount": 1e400}}'
    )
    status, code, message = _answer(client, "/v1/vectors", f'{{"entities": [{part}]}}')
    assert (status, code) == (400, "bad_request_data") and message.startswith("entities[0]: "), message


def test_an_id_past_the_doubles_is_the_ids_refusal(client: TestClient) -> None:
    status, code, _ = _answer(
        client, "/v1/features/user/batch", f'{{"entity_ids": [{BIG}], "names": ["txn_count_1h"]}}'
    )
    assert (status, code) == (400, "bad_entity_id")


@pytest.mark.parametrize(
    "extra",
    [
        '"x": NaN',  # not JSON, after the big number
        '"x": Infinity',
        '"x": "\\ud800"',  # a lone surrogate: not UTF-8
        '"\\udc00": 1',
        '"x": [1,]',
    ],
    ids=["nan", "infinity", "surrogate", "surrogate-name", "syntax"],
)
def test_what_is_not_json_stays_bad_json_beside_a_big_number(client: TestClient, extra: str) -> None:
    body = f'{{{READ}, "request_data": {{"amount": [1e400]}}, {extra}}}'
    status, code, message = _answer(client, "/v1/features/user/batch", body)
    assert (status, code) == (400, "bad_json"), message
    assert message.startswith("request body is not JSON: ")


def test_a_batch_names_an_unknown_feature_given_twice_once(client: TestClient) -> None:
    """README: a GET or a ``/v1/vectors`` part names an unknown feature once in the 404; a batch (whose columns keep
    a name given twice) names it once too, as the GET does."""
    batch = client.post("/v1/features/user/batch", json={"entity_ids": ["u1"], "names": ["zz", "zz"]})
    single = client.get("/v1/features/user/u1?names=zz,zz")
    assert batch.status_code == single.status_code == 404
    assert batch.json()["names"] == single.json()["names"] == ["zz"]
    assert batch.json()["message"].endswith(": zz")
