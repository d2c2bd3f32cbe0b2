"""README.md "Online serving": a value given twice is a 400 with its parameter's code, never one of its values
picked. Held for every member of a read's JSON body too, not only key and request fields: a batch's or
``/v1/vectors``' top-level member or a ``/v1/vectors`` part's member given twice (JSON parsers keep the last)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from tests.unit.test_request_features import Source, client_for, store_with, vector

_JSON = {"content-type": "application/json"}


class CountingSource(Source):
    def __init__(self, values: Any) -> None:
        super().__init__(values)
        self.reads: list[str] = []

    async def read_many_async(self, entity_type: str, entity_ids: Any) -> list[Any]:
        self.reads += list(entity_ids)
        return await super().read_many_async(entity_type, entity_ids)


@pytest.fixture
def client(tmp_path: Path, shipped_catalog: FeatureCatalog) -> tuple[TestClient, CountingSource]:
    source = CountingSource({"u1": vector(4, 10.0), "u2": vector(7, 1.0), "u:1": vector(9, 3.0)})
    return client_for(store_with(tmp_path / "d.db", shipped_catalog), source), source


_PART = '"entity_type": "user", "entity_id": "u1", "names": ["txn_count_1h"]'


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        (
            "/v1/features/user/batch",
            '{"entity_ids": ["u1"], "entity_ids": ["u2"], "names": ["txn_count_1h"]}',
            "bad_entity_ids",
        ),
        (
            "/v1/features/user/batch",
            '{"entity_ids": ["u1"], "names": ["txn_count_1h"], "names": ["txn_amount_sum_1h"]}',
            "bad_names",
        ),
        (
            "/v1/features/user/batch",
            '{"entity_ids": ["u1"], "entity\\u005fids": ["u2"], "names": ["txn_count_1h"]}',
            "bad_entity_ids",
        ),
        (
            "/v1/features/user/batch",
            '{"entity_ids": ["u:1"], "feature_service": "a", "feature_service": "b"}',
            "bad_request",
        ),
        (
            "/v1/features/user/batch",
            '{"entity_ids": ["u1"], "names": ["amount_vs_mean_1h"], "request_data": {"amount": [1]}, '
            '"request_data": {"amount": [2]}}',
            "bad_request_data",
        ),
        ("/v1/vectors", f'{{"entities": [{{{_PART}}}], "entities": [{{{_PART}}}]}}', "bad_request"),
        ("/v1/vectors", f'{{"entities": [{{{_PART}, "entity_id": "u2"}}]}}', "bad_entity_id"),
        ("/v1/vectors", f'{{"entities": [{{{_PART}, "names": ["txn_amount_sum_1h"]}}]}}', "bad_names"),
        ("/v1/vectors", f'{{"entities": [{{{_PART}, "entity_type": "user"}}]}}', "bad_request"),
        (
            "/v1/vectors",
            f'{{"entities": [{{{_PART}}}, {{"entity_type": "user", "entity_id": "u2", '
            '"names": ["amount_vs_mean_1h"], "request_data": {"amount": 1}, "request_data": {"amount": 2}}]}',
            "bad_request_data",
        ),
    ],
)
def test_a_body_member_given_twice_is_a_400_not_its_last_value(
    client: tuple[TestClient, CountingSource], path: str, body: str, code: str
) -> None:
    http, source = client
    r = http.post(path, content=body.encode(), headers=_JSON)
    assert (r.status_code, r.json()["error"]) == (400, code), r.text
    assert "more than once" in r.json()["message"]
    assert source.reads == []


def test_a_repeat_in_a_later_part_names_its_index(client: tuple[TestClient, CountingSource]) -> None:
    http, _ = client
    body = f'{{"entities": [{{{_PART}}}, {{{_PART}, "entity_id": "u2"}}]}}'
    r = http.post("/v1/vectors", content=body.encode(), headers=_JSON)
    assert r.json()["message"].startswith("entities[1]: "), r.text


@pytest.mark.parametrize("ids", [["u1", "u2"], ["u:1", "u1"]])  # a colon in a value: the slower check, same answer
def test_bodies_without_repeats_are_served_as_before(client: tuple[TestClient, CountingSource], ids: list[str]) -> None:
    http, _ = client
    r = http.post("/v1/features/user/batch", json={"entity_ids": ids, "names": ["txn_count_1h", "txn_count_1h"]})
    assert r.status_code == 200, r.text
    values = {"u1": 4, "u2": 7, "u:1": 9}
    assert [res["values"] for res in r.json()["results"]] == [[values[i]] * 2 for i in ids]
    parts = [{"entity_type": "user", "entity_id": i, "names": ["txn_count_1h"]} for i in ids]
    r = http.post("/v1/vectors", json={"entities": parts})
    assert r.status_code == 200, r.text
    assert [v["features"]["txn_count_1h"]["value"] for v in r.json()["vectors"]] == [values[i] for i in ids]


@pytest.mark.parametrize("depth", [300, 1000])
def test_a_deeply_nested_body_is_a_400_not_a_500(client: tuple[TestClient, CountingSource], depth: int) -> None:
    http, _ = client
    nested = "[" * depth + "]" * depth
    for path, body in [
        ("/v1/features/user/batch", f'{{"entity_ids": ["u1"], "x": {nested}}}'),
        ("/v1/vectors", f'{{"entities": [{{{_PART}, "x": {nested}}}]}}'),
    ]:
        r = http.post(path, content=body.encode(), headers=_JSON)
        assert r.status_code == 400, r.text
