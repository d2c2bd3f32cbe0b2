"""A request field given twice in a JSON body (README "Online serving", docs/design.md §3.3: a value given more
than once is a 400 with its check's code, never one of its values picked; a key field repeated inside a key object
is refused so). A request field repeated inside a batch's ``request_data`` or a ``/v1/vectors`` part's was served
with the last value; it is 400 ``bad_request_data``, as the same field repeated as a GET query parameter is."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from tests.unit.test_request_features import Source, client_for, store_with, vector

JSON = {"content-type": "application/json"}


@pytest.fixture
def client(tmp_path: Path, shipped_catalog: FeatureCatalog) -> TestClient:
    return client_for(store_with(tmp_path / "d.db", shipped_catalog), Source({"u1": vector(4, 10.0)}))


def _refused(response: httpx.Response) -> str:
    assert (response.status_code, response.json()["error"]) == (400, "bad_request_data"), response.text
    return str(response.json()["message"])


def test_the_get_query_parameter_twice_is_the_reference(client: TestClient) -> None:
    message = _refused(client.get("/v1/features/user/u1?names=amount_vs_mean_1h&amount=25&amount=50"))
    assert "amount" in message


@pytest.mark.parametrize(
    "request_data",
    [b'{"amount": [25.0], "amount": [50.0]}', b'{"amount": [25.0], "\\u0061mount": [50.0]}'],
    ids=["plain", "escaped"],
)
def test_a_batch_request_field_twice_is_refused(client: TestClient, request_data: bytes) -> None:
    body = b'{"entity_ids": ["u1"], "names": ["amount_vs_mean_1h"], "request_data": ' + request_data + b"}"
    message = _refused(client.post("/v1/features/user/batch", content=body, headers=JSON))
    assert "['amount'] given more than once in `request_data`" in message


def test_a_vectors_part_request_field_twice_is_refused_with_its_index(client: TestClient) -> None:
    part = b'{"entity_type": "user", "entity_id": "u1", "names": ["amount_vs_mean_1h"], "request_data": '
    good = part + b'{"amount": 25.0}}'
    twice = part + b'{"amount": 25.0, "amount": 50.0}}'
    message = _refused(
        client.post("/v1/vectors", content=b'{"entities": [' + good + b", " + twice + b"]}", headers=JSON)
    )
    assert message.startswith("entities[1]: ") and "['amount'] given more than once" in message


def test_a_field_given_once_is_served_whatever_else_spells_its_name(client: TestClient) -> None:
    """The name elsewhere in the body (an entity id, an escaped spelling of another member) is no repeat."""
    body = (
        b'{"entity_ids": ["u1", "amount"], "names": ["amount_vs_mean_1h"], '
        b'"request_data": {"\\u0061mount": [40.0, 1.0]}}'
    )
    served = client.post("/v1/features/user/batch", content=body, headers=JSON)
    assert served.status_code == 200, served.text
    assert served.json()["results"][0]["values"] == [16.0]  # 40 over a mean of 10 / 4
    part = {"entity_type": "user", "entity_id": "u1", "names": ["amount_vs_mean_1h"], "request_data": {"amount": 40.0}}
    vectors = client.post("/v1/vectors", json={"entities": [part]})
    assert vectors.status_code == 200, vectors.text
    assert vectors.json()["vectors"][0]["features"]["amount_vs_mean_1h"]["value"] == 16.0
