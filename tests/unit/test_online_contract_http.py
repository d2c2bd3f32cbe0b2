"""README.md "Online serving" and docs/design.md §3.3, checked from the outside: a path segment holding an
escaped ``/`` (``%2F``, any case, in any segment) matches no route: 404 ``not_found``, never a read of another
entity or a redirect to another route."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from tests.unit.test_request_features import Source, client_for, store_with, vector


@pytest.fixture
def client(tmp_path: Path, shipped_catalog: FeatureCatalog) -> TestClient:
    return client_for(store_with(tmp_path / "d.db", shipped_catalog), Source({"u1": vector(4, 10.0)}))


@pytest.mark.parametrize(
    "path",
    [
        "/v1/features/user%2Fu1?names=txn_count_1h",  # would read user/u1
        "/v1/features/user%2fu1?names=txn_count_1h",
        "/v1/features/user%2Fbatch?names=txn_count_1h",  # would read user/batch, a GET of the id "batch"
        "/v1/features/a%2Fb/u1?names=txn_count_1h",
        "/v1/features/user/u%2F1?names=txn_count_1h",
        "/v1/features/user%2F?names=txn_count_1h",  # was a redirect to /v1/features/user
        "/v1/feature-definitions/user%2Ftxn_count_1h",
    ],
)
def test_an_escaped_slash_in_any_segment_matches_no_route(client: TestClient, path: str) -> None:
    r = client.get(path, follow_redirects=False)
    assert (r.status_code, r.json()["error"]) == (404, "not_found"), r.text


def test_an_escaped_slash_in_a_batch_path_matches_no_route(client: TestClient) -> None:
    r = client.post("/v1/features/user%2Fx/batch", json={"entity_ids": ["u1"], "names": ["txn_count_1h"]})
    assert (r.status_code, r.json()["error"]) == (404, "not_found"), r.text


def test_a_percent_that_is_not_a_slash_still_routes(client: TestClient) -> None:
    r = client.get("/v1/features/user/u%3A1?names=txn_count_1h")  # "u:1", a well-formed id
    assert r.status_code == 200, r.text
    assert r.json()["entity_id"] == "u:1"


def test_an_escaped_slash_in_the_query_is_no_path(client: TestClient) -> None:
    r = client.get("/v1/features/user/u1?names=a%2Fb")
    assert (r.status_code, r.json()["error"], r.json()["names"]) == (404, "unknown_feature", ["a/b"]), r.text


def test_an_escaped_slash_refusal_is_counted_as_not_found(client: TestClient) -> None:
    from tests.unit.test_api_contract_gaps import _errors

    before = _errors(client.get("/metrics").text).get("not_found", 0.0)
    client.get("/v1/features/user%2Fu1?names=txn_count_1h")
    assert _errors(client.get("/metrics").text)["not_found"] == before + 1
