"""The feature API's HTTP contract checked from the docs (docs/design.md §3.3, §5.2; README "Online serving").

§5.2, rule 3: a window that closed without events is served as 0 for count, count_distinct and sum, and
null otherwise; the value keeps its feature's type (a ``long`` count is the integer 0, a ``double`` sum the
float 0.0), whatever the order the features are asked in and through every read route.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from registry.core.errors import StoreUnavailableError
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from serving.online.app import create_app
from serving.online.plans import Plan
from sinks.cassandra.reader import StoredValue

W = 1_700_000_100_000  # a 5-minute window end (ms)
STREAM = "card_transactions/user/sliding(1h/5m)"
PROGRESS = W + 10 * 60_000  # two later windows closed with no row for the entity: empty windows
NOW_US = (W + 11 * 60_000) * 1000
COUNT, SUM = "txn_count_1h", "txn_amount_sum_1h"  # long count, double sum: one window group


class _Source:
    def __init__(self) -> None:
        self.values = {"u1": {(COUNT, 1): StoredValue(4, W), (SUM, 1): StoredValue(10.0, W)}}

    async def read_many_async(self, entity_type: str, entity_ids: Sequence[str]) -> list[Any]:
        return [dict(self.values.get(e, {})) for e in entity_ids]

    async def progress_async(self) -> dict[str, int]:
        return {STREAM: PROGRESS}


@pytest.fixture
def client(tmp_path: Path, shipped_catalog: FeatureCatalog) -> TestClient:
    store = DefinitionStore(tmp_path / "d.db")
    store.register_all(list(shipped_catalog), [])
    return TestClient(create_app(LiveCatalog(store), _Source(), clock_us=lambda: NOW_US), raise_server_exceptions=False)


def _typed(values: dict[str, Any]) -> dict[str, tuple[type, Any]]:
    return {name: (type(value), value) for name, value in values.items()}


EXPECTED = {COUNT: (int, 0), SUM: (float, 0.0)}


@pytest.mark.parametrize("names", [[COUNT, SUM], [SUM, COUNT]])
def test_an_empty_window_keeps_each_features_type_on_get(client: TestClient, names: list[str]) -> None:
    r = client.get("/v1/features/user/u1", params={"names": ",".join(names)})
    assert r.status_code == 200, r.text
    features = r.json()["features"]
    assert {n: features[n]["feature_timestamp"] for n in names} == dict.fromkeys(names, "2023-11-14T22:25:00.000Z")
    assert _typed({n: features[n]["value"] for n in names}) == EXPECTED


@pytest.mark.parametrize("names", [[COUNT, SUM], [SUM, COUNT]])
def test_an_empty_window_keeps_each_features_type_in_a_batch(client: TestClient, names: list[str]) -> None:
    r = client.post("/v1/features/user/batch", json={"entity_ids": ["u1"], "names": names})
    assert r.status_code == 200, r.text
    (result,) = r.json()["results"]
    assert _typed(dict(zip(names, result["values"], strict=True))) == EXPECTED


@pytest.mark.parametrize("names", [[COUNT, SUM], [SUM, COUNT]])
def test_an_empty_window_keeps_each_features_type_in_a_vector(client: TestClient, names: list[str]) -> None:
    part = {"entity_type": "user", "entity_id": "u1", "names": names}
    r = client.post("/v1/vectors", json={"entities": [part]})
    assert r.status_code == 200, r.text
    features = r.json()["vectors"][0]["features"]
    assert _typed({n: features[n]["value"] for n in names}) == EXPECTED


def test_an_empty_window_keeps_each_features_type_when_every_feature_is_read(client: TestClient) -> None:
    r = client.get("/v1/features/user/u1")  # no names: every active stored feature, in the catalog's order
    assert r.status_code == 200, r.text
    features = r.json()["features"]
    assert _typed({n: features[n]["value"] for n in (COUNT, SUM)}) == EXPECTED


def test_a_plan_gives_a_long_and_a_double_feature_their_own_empty_value(shipped_catalog: FeatureCatalog) -> None:
    definitions = [shipped_catalog.get("user", SUM, 1), shipped_catalog.get("user", COUNT, 1)]
    plan = Plan.of("user", [SUM, COUNT], definitions)
    cuts = plan.cuts({STREAM: PROGRESS}, NOW_US)
    empties = [cuts[group].empty for group in plan.rule_of]
    assert [(type(e), e) for e in empties] == [(float, 0.0), (int, 0)]


# §7: fs_values_served_total counts the values served. A /v1/vectors request whose part fails is a 503 and
# serves no value (never a partial vector, §6), so it counts none, not the parts read before the failure.


class _FailingFor(_Source):
    def __init__(self, failing: str) -> None:
        super().__init__()
        self.failing = failing

    async def read_many_async(self, entity_type: str, entity_ids: Sequence[str]) -> list[Any]:
        if self.failing in entity_ids:
            raise StoreUnavailableError(f"{self.failing}: the store did not answer")
        return await super().read_many_async(entity_type, entity_ids)


def _served(client: TestClient) -> dict[tuple[str, str], float]:
    out = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("fs_values_served_total{"):
            labels, value = line[len("fs_values_served_total{") :].split("} ")
            pairs = dict(item.split("=", 1) for item in labels.split(","))
            if float(value):  # a series at 0 (present = served less the other statuses) is no value served
                out[(pairs["feature"].strip('"'), pairs["status"].strip('"'))] = float(value)
    return out


@pytest.fixture
def failing_client(tmp_path: Path, shipped_catalog: FeatureCatalog) -> TestClient:
    store = DefinitionStore(tmp_path / "d.db")
    store.register_all(list(shipped_catalog), [])
    app = create_app(LiveCatalog(store), _FailingFor("down1"), clock_us=lambda: NOW_US)
    return TestClient(app, raise_server_exceptions=False)


def test_a_vector_refused_for_a_failed_part_counts_no_served_value(failing_client: TestClient) -> None:
    parts = [
        {"entity_type": "user", "entity_id": "u1", "names": [COUNT]},
        {"entity_type": "user", "entity_id": "down1", "names": [COUNT, SUM]},
    ]
    r = failing_client.post("/v1/vectors", json={"entities": parts})
    assert (r.status_code, r.json()["error"]) == (503, "store_unavailable"), r.text
    assert _served(failing_client) == {}


def test_a_served_vector_counts_each_parts_values_by_status(failing_client: TestClient) -> None:
    parts = [
        {"entity_type": "user", "entity_id": "u1", "names": [COUNT]},
        {"entity_type": "user", "entity_id": "u9", "names": [COUNT, SUM]},  # no row: missing
    ]
    r = failing_client.post("/v1/vectors", json={"entities": parts})
    assert r.status_code == 200, r.text
    assert _served(failing_client) == {(COUNT, "present"): 1.0, (COUNT, "missing"): 1.0, (SUM, "missing"): 1.0}


# README "Online serving": a GET or a /v1/vectors part answers each distinct name once, at its first place; a
# batch one column per name given. What is answered once is counted once in fs_values_served_total (§7).


def test_a_get_counts_a_name_given_twice_once(client: TestClient) -> None:
    r = client.get("/v1/features/user/u9", params={"names": f"{COUNT},{SUM},{COUNT}"})
    assert r.status_code == 200, r.text
    assert list(r.json()["features"]) == [COUNT, SUM]
    assert _served(client) == {(COUNT, "missing"): 1.0, (SUM, "missing"): 1.0}


def test_a_vector_part_counts_a_name_given_twice_once(client: TestClient) -> None:
    part = {"entity_type": "user", "entity_id": "u9", "names": [SUM, COUNT, SUM]}
    r = client.post("/v1/vectors", json={"entities": [part]})
    assert r.status_code == 200, r.text
    assert list(r.json()["vectors"][0]["features"]) == [SUM, COUNT]
    assert _served(client) == {(COUNT, "missing"): 1.0, (SUM, "missing"): 1.0}


@pytest.mark.parametrize("batch_first", [True, False])
def test_a_batch_keeps_a_column_per_name_given_beside_parts_of_the_same_names(
    client: TestClient, batch_first: bool
) -> None:
    names = [COUNT, COUNT]

    def batch() -> None:
        r = client.post("/v1/features/user/batch", json={"entity_ids": ["u1"], "names": names})
        assert r.status_code == 200, r.text
        assert (r.json()["names"], r.json()["results"][0]["values"]) == (names, [0, 0])

    def part() -> None:
        r = client.post("/v1/vectors", json={"entities": [{"entity_type": "user", "entity_id": "u1", "names": names}]})
        assert r.status_code == 200, r.text
        assert list(r.json()["vectors"][0]["features"]) == [COUNT]

    for call in (batch, part) if batch_first else (part, batch):
        call()
    assert _served(client) == {(COUNT, "present"): 3.0}


def test_an_unknown_name_given_twice_is_named_once(client: TestClient) -> None:
    r = client.get("/v1/features/user/u1", params={"names": f"nope,{COUNT},nope"})
    assert (r.status_code, r.json()["error"], r.json()["names"]) == (404, "unknown_feature", ["nope"]), r.text


# §3.3 / README "Online serving": a failed /v1/vectors part makes the request a 503 naming the first failed part in
# request order; a batch is a 503 only when none of its entities could be read, the cache's included.


def test_a_vector_refused_for_failed_parts_names_the_first_failed_one(
    tmp_path: Path, shipped_catalog: FeatureCatalog
) -> None:
    store = DefinitionStore(tmp_path / "d.db")
    store.register_all(list(shipped_catalog), [])
    app = create_app(LiveCatalog(store), _FailingFor("down1"), clock_us=lambda: NOW_US)
    client = TestClient(app, raise_server_exceptions=False)
    parts = [
        {"entity_type": "user", "entity_id": "u1", "names": [COUNT]},
        {"entity_type": "user", "entity_id": "down1", "names": [COUNT]},
        {"entity_type": "user", "entity_id": "down1", "names": [SUM]},
    ]
    r = client.post("/v1/vectors", json={"entities": parts})
    assert (r.status_code, r.json()["error"]) == (503, "store_unavailable"), r.text
    assert r.json()["message"] == "entities[1]: down1: the store did not answer"


class _Down(_Source):
    """A store that answers until ``down`` is set, then fails every read as a whole (no session, progress)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def read_many_async(self, entity_type: str, entity_ids: Sequence[str]) -> list[Any]:
        if self.down:
            raise StoreUnavailableError("online store (Cassandra) read failed: no session")
        return await super().read_many_async(entity_type, entity_ids)

    async def progress_async(self) -> dict[str, int]:
        if self.down:
            raise StoreUnavailableError("online store (Cassandra) progress read failed: no session")
        return await super().progress_async()


def test_a_batch_serves_its_cached_entities_when_the_store_fails_the_rest(
    tmp_path: Path, shipped_catalog: FeatureCatalog
) -> None:
    store = DefinitionStore(tmp_path / "d.db")
    store.register_all(list(shipped_catalog), [])
    source = _Down()
    app = create_app(LiveCatalog(store), source, clock_us=lambda: NOW_US, cache_ttl_ms=1000)
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get(f"/v1/features/user/u1?names={COUNT}").status_code == 200  # u1 is cached now
    source.down = True
    r = client.post("/v1/features/user/batch", json={"entity_ids": ["u1", "u2"], "names": [COUNT]})
    assert r.status_code == 200, r.text
    results = {e["entity_id"]: e for e in r.json()["results"]}
    assert (results["u1"]["values"], results["u1"]["statuses"]) == ([0], ["present"])  # from the cache
    assert results["u2"]["error"] == "store_unavailable", results["u2"]
    r = client.post("/v1/features/user/batch", json={"entity_ids": ["u2", "u3"], "names": [COUNT]})
    assert (r.status_code, r.json()["error"]) == (503, "store_unavailable"), r.text  # none could be read
