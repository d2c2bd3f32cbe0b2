"""Audit: the definition lifecycle while the feature API serves (docs/design.md §3.3 "Following the registry",
§9 feature services): how soon a change another process made is served, and every request answered from one
catalog snapshot."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from registry.definition_store import DefinitionStore
from registry.feature_services import FeatureService, FeatureServiceStore, LiveFeatureServices
from registry.live import Following, LiveCatalog
from serving.online.app import create_app
from tests.unit.conftest import NoValues, build_definition


class _Counter:
    """A store whose change sequence the test moves."""

    def __init__(self) -> None:
        self.seq = 0

    def change_seq(self) -> int:
        return self.seq


def test_a_change_is_served_refresh_s_after_it_even_when_the_load_is_slow() -> None:
    now = [0.0]
    store = _Counter()

    def slow_load() -> int:
        now[0] += 0.5  # rebuilding the snapshot takes half a second
        return store.seq

    following = Following(store, slow_load, refresh_s=1.0, clock=lambda: now[0])
    store.seq = 1  # committed at t=0, right after the first read of the change sequence
    now[0] = 0.999
    assert following.current() == 0  # within the second
    now[0] = 1.0  # exactly 1 s after the change: served (it was 1.5 s, the bound plus the load)
    assert following.current() == 1
    store.seq = 2  # committed at t=1.0, while the reload of 1 ran (it ended at 1.5)
    now[0] = 1.999
    assert following.current() == 1
    now[0] = 2.0
    assert following.current() == 2


def _two_versions(db: Path) -> DefinitionStore:
    """A store holding user.txn_count_1h v1 (active) and v2 (registered, not active)."""
    store = DefinitionStore(db)
    store.register(build_definition())
    store.register(build_definition(version=2, ttl="3h"))
    return store


def test_a_vectors_request_answers_every_part_from_one_catalog(tmp_path: Path) -> None:
    store = _two_versions(tmp_path / "registry.db")
    now = [0.0]

    def clock() -> float:  # every look at the catalog takes 0.3 s: a reload falls due inside one request
        now[0] += 0.3
        return now[0]

    client = TestClient(create_app(LiveCatalog(store, refresh_s=1.0, clock=clock), NoValues()))
    part = {"entity_type": "user", "names": ["txn_count_1h"]}
    body = {"entities": [dict(part, entity_id=f"u{i}") for i in range(4)]}
    first = client.post("/v1/vectors", json=body)
    assert [v["features"]["txn_count_1h"]["version"] for v in first.json()["vectors"]] == [1, 1, 1, 1]
    served = set()
    for round in range(12):  # another process moves the pointer between each request; the reload falls due
        store.activate("user", "txn_count_1h", 1 + (round + 1) % 2)  # at a different place in each request
        answer = client.post("/v1/vectors", json=body)
        assert answer.status_code == 200
        seen = [v["features"]["txn_count_1h"]["version"] for v in answer.json()["vectors"]]
        assert len(set(seen)) == 1, f"round {round}: one request answered its parts at versions {seen}"
        served |= set(seen)
    assert served == {1, 2}


def _service(version: int, pinned: int) -> FeatureService:
    return FeatureService.model_validate(
        {
            "name": "fraud",
            "version": version,
            "features": [{"entity": "user", "name": "txn_count_1h", "version": pinned}],
        }
    )


def test_a_service_another_process_registered_serves_its_new_pins_once_the_services_are_reloaded(
    tmp_path: Path,
) -> None:
    db = tmp_path / "registry.db"
    store = DefinitionStore(db)
    store.register(build_definition())
    services_store = FeatureServiceStore(db)
    catalog_at, services_at = [0.0], [0.0]  # each follower checks the store at its own times
    live = LiveCatalog(store, refresh_s=1.0, clock=lambda: catalog_at[0])
    services = LiveFeatureServices(services_store, refresh_s=1.0, clock=lambda: services_at[0])
    client = TestClient(create_app(live, NoValues(), services=services))
    assert client.get("/v1/features/user/u1?names=txn_count_1h").status_code == 200
    # another process: v2, then a service pinning it (its pins are checked against the store)
    store.register(build_definition(version=2, ttl="3h"))
    services_store.register(_service(1, 2))
    services_at[0] = 1.0  # the services' check falls due before the catalog's
    answer = client.get("/v1/features/user/u1?feature_service=fraud@1")
    assert answer.status_code == 200, answer.text
    assert answer.json()["features"]["txn_count_1h"]["version"] == 2


def test_a_service_pinning_a_version_another_process_just_registered_is_registered(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    store = DefinitionStore(db)
    store.register(build_definition())
    live = LiveCatalog(store, refresh_s=1.0, clock=lambda: 0.0)  # the catalog's check never falls due by itself
    services = LiveFeatureServices(FeatureServiceStore(db), refresh_s=1.0, clock=lambda: 0.0)
    client = TestClient(create_app(live, NoValues(), services=services))
    store.register(build_definition(version=2, ttl="3h"))  # `registry.cli apply` in another process
    answer = client.post("/v1/feature-services", json=_service(1, 2).model_dump(mode="json"))
    assert answer.status_code == 201, answer.text  # was 404 unknown_feature naming txn_count_1h@v2
    assert client.get("/v1/features/user/u1?feature_service=fraud@1").json()["features"]["txn_count_1h"]["version"] == 2
