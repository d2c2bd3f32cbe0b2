"""Ownership under concurrent writers (docs/design.md §9 "Ownership and writes"): a feature or a feature service
belongs to the team that first registered it, checked inside the write. Both routes read the owner, then wrote in
another step: a team that read "no owner" while another team registered the name went on writing, a new version of
the other team's service, or its own metadata over the other team's feature (moving it to itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry.access import Access
from registry.access_store import AccessStore
from registry.core.definitions import FeatureDefinition
from registry.core.errors import ForbiddenError
from registry.definition_store import DefinitionStore
from registry.feature_services import FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from serving.online.app import create_app
from tests.unit.conftest import definition_dict
from tests.unit.test_app import NOW, MemorySource


def _app(tmp_path: Path) -> tuple[Any, DefinitionStore, AccessStore, Access]:
    db = tmp_path / "definitions.db"
    definitions = DefinitionStore(db)
    tokens = AccessStore(db)
    access = Access(tokens, enabled=True, refresh_s=0)
    services = LiveFeatureServices(FeatureServiceStore(db))
    app = create_app(
        LiveCatalog(definitions, refresh_s=0),
        MemorySource({}),
        clock_us=lambda: NOW * 1000,
        services=services,
        access=access,
    )
    return app, definitions, tokens, access


def test_the_store_refuses_a_write_over_a_feature_another_team_registered_meanwhile(tmp_path: Path) -> None:
    store = DefinitionStore(tmp_path / "d.db")
    theirs = store.register(FeatureDefinition.model_validate(definition_dict(owner="team-b"))).definition
    ours = theirs.model_copy(update={"owner": "team-a"})  # the same version, our metadata: it would move the feature
    before = store.change_seq()
    with pytest.raises(ForbiddenError, match="it is owned by team team-b"):
        store.register(ours, owned_by="team-a")
    assert store.change_seq() == before and store.catalog().get(theirs.entity, theirs.name).owner == "team-b"
    assert store.register(ours.model_copy(update={"owner": "team-b"}), owned_by="team-b").action == "unchanged"


def test_a_definition_registered_by_another_team_after_the_owner_check_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.online import definitions_api

    app, definitions, tokens, _ = _app(tmp_path)
    body = definition_dict(owner="team-a")
    other = dict(body, owner="team-b")

    def owners_then_the_other_team_writes(*args: Any, **kwargs: Any) -> list[str | None]:
        definitions.register(FeatureDefinition.model_validate(other))  # lands between the check and the write
        return [None]

    monkeypatch.setattr(definitions_api, "_owners", owners_then_the_other_team_writes)
    headers = {"Authorization": "Bearer " + tokens.issue("ann", "team-a")}
    answer = TestClient(app).post("/v1/feature-definitions", json=body, headers=headers)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"] == "forbidden"
    assert definitions.catalog().get(body["entity"], body["name"]).owner == "team-b"


def test_a_feature_service_claimed_by_another_team_after_the_owner_check_is_refused(tmp_path: Path) -> None:
    app, definitions, tokens, access = _app(tmp_path)
    feature = definitions.register(FeatureDefinition.model_validate(definition_dict(owner="team-a"))).definition
    assert access.store is not None
    store = access.store
    read_owner = store.owner

    def stale_owner(kind: Any, name: str) -> str | None:
        seen = read_owner(kind, name)
        store.claim("feature_service", name, "team-b")  # team B registers the new service right after the read
        return seen

    store.owner = stale_owner  # type: ignore[method-assign]
    body = {"name": "svc", "features": [{"entity": feature.entity, "name": feature.name, "version": 1}]}
    headers = {"Authorization": "Bearer " + tokens.issue("ann", "team-a")}
    answer = TestClient(app).post("/v1/feature-services", json=body, headers=headers)
    assert answer.status_code == 403, answer.text
    assert FeatureServiceStore(tmp_path / "definitions.db").all() == []  # nothing written
    assert read_owner("feature_service", "svc") == "team-b"


def test_a_feature_service_registration_that_fails_gives_its_claim_back(tmp_path: Path) -> None:
    app, _, tokens, access = _app(tmp_path)
    headers = {"Authorization": "Bearer " + tokens.issue("ann", "team-a")}
    body = {"name": "svc", "features": [{"entity": "user", "name": "nothing_registered", "version": 1}]}
    assert TestClient(app).post("/v1/feature-services", json=body, headers=headers).status_code == 404
    assert access.store is not None and access.store.owner("feature_service", "svc") is None


def test_a_failed_registration_keeps_the_claim_when_its_team_registered_a_version_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deploys of team A register a new service at once: the first claims it, the second (seeing A own it)
    commits version 1, and the first's 409 gave the claim back, leaving version 1 without an owner, for team B
    to take. The claim now goes only while nothing holds a version under the name."""
    app, definitions, tokens, access = _app(tmp_path)
    feature = definitions.register(FeatureDefinition.model_validate(definition_dict(owner="team-a"))).definition
    pin = {"entity": feature.entity, "name": feature.name, "version": 1}
    other = FeatureServiceStore(tmp_path / "definitions.db")
    real = FeatureServiceStore.register

    def the_other_deploy_commits_first(self: Any, service: Any, **kwargs: Any) -> Any:
        if not other.has_versions(service.name):
            real(other, service.model_copy(update={"description": "the other deploy"}))
        return real(self, service, **kwargs)  # 409: version 1 is there with another description

    monkeypatch.setattr(FeatureServiceStore, "register", the_other_deploy_commits_first)
    a = {"Authorization": "Bearer " + tokens.issue("ann", "team-a")}
    service = {"name": "svc", "version": 1, "features": [pin]}
    answer = TestClient(app).post("/v1/feature-services", json=service, headers=a)
    assert answer.status_code == 409, answer.text
    assert access.store is not None and access.store.owner("feature_service", "svc") == "team-a"
    monkeypatch.setattr(FeatureServiceStore, "register", real)
    b = {"Authorization": "Bearer " + tokens.issue("bob", "team-b")}
    taken = TestClient(app).post("/v1/feature-services", json={"name": "svc", "features": [pin]}, headers=b)
    assert taken.status_code == 403, taken.text


def test_a_claim_given_back_before_a_write_begins_is_taken_anew(tmp_path: Path) -> None:
    app, definitions, tokens, access = _app(tmp_path)
    feature = definitions.register(FeatureDefinition.model_validate(definition_dict(owner="team-a"))).definition
    assert access.store is not None
    store = access.store
    store.claim("feature_service", "svc", "team-a")  # the other request's claim, given back after this one looked
    read_owner = store.owner

    def released_after_the_read(kind: Any, name: str) -> str | None:
        seen = read_owner(kind, name)
        store.release(kind, name, "team-a", unused=lambda: True)
        return seen

    store.owner = released_after_the_read  # type: ignore[method-assign]
    body = {"name": "svc", "features": [{"entity": feature.entity, "name": feature.name, "version": 1}]}
    headers = {"Authorization": "Bearer " + tokens.issue("ann", "team-a")}
    assert TestClient(app).post("/v1/feature-services", json=body, headers=headers).status_code == 201
    assert read_owner("feature_service", "svc") == "team-a"


def test_a_request_that_claimed_and_failed_keeps_the_claim_while_its_teams_other_write_is_under_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Team A's first request claims a new service and fails (a pin of a version not registered: 404) while its
    second, let in because A owned the name, is still writing. The first gave the claim back, team B claimed the
    name, and A's version landed in B's service (both answered 201). The claim now stays while a write is under
    way: B is refused, A owns its version."""
    app, definitions, tokens, access = _app(tmp_path)
    feature = definitions.register(FeatureDefinition.model_validate(definition_dict(owner="team-a"))).definition
    assert access.store is not None
    store = access.store
    _, claimed, first = store.begin_write("feature_service", "svc", "team-a")
    assert claimed
    pin = {"entity": feature.entity, "name": feature.name, "version": 1}
    b = {"Authorization": "Bearer " + tokens.issue("bob", "team-b")}
    real = FeatureServiceStore.register
    other_team: list[int] = []

    def the_first_fails_and_the_other_team_posts(self: Any, service: Any, **kwargs: Any) -> Any:
        store.end_write(first, "feature_service", "svc", wrote=False, unused=lambda: True)
        monkeypatch.setattr(FeatureServiceStore, "register", real)
        answer = TestClient(app).post("/v1/feature-services", json={"name": "svc", "features": [pin]}, headers=b)
        other_team.append(answer.status_code)
        return real(self, service, **kwargs)

    monkeypatch.setattr(FeatureServiceStore, "register", the_first_fails_and_the_other_team_posts)
    a = {"Authorization": "Bearer " + tokens.issue("ann", "team-a")}
    answer = TestClient(app).post("/v1/feature-services", json={"name": "svc", "features": [pin]}, headers=a)
    assert answer.status_code == 201, answer.text
    assert other_team == [403]
    assert store.owner("feature_service", "svc") == "team-a"
    assert [s.version for s in FeatureServiceStore(tmp_path / "definitions.db").all()] == [1]


def test_an_activation_after_an_admin_moved_the_feature_is_refused_inside_the_write(tmp_path: Path) -> None:
    store = DefinitionStore(tmp_path / "d.db")
    v1 = store.register(FeatureDefinition.model_validate(definition_dict(owner="team-a"))).definition
    v2 = store.register(v1.model_copy(update={"version": 2, "ttl": v1.ttl * 2})).definition
    store.activate(v1.entity, v1.name, 2, owned_by="team-a")
    store.register(v2.model_copy(update={"owner": "team-b"}))  # the admin's metadata update: the latest is B's
    before = store.change_seq()
    with pytest.raises(ForbiddenError, match=r"team team-a may not activate .*owned by team team-b"):
        store.activate(v1.entity, v1.name, 1, owned_by="team-a")
    assert store.change_seq() == before and store.catalog().get(v1.entity, v1.name).version == 2
    with pytest.raises(ForbiddenError, match="owned by team team-a"):  # v1 is still A's: B may not move to it
        store.activate(v1.entity, v1.name, 1, owned_by="team-b")
    store.activate(v1.entity, v1.name, 1)  # an admin may


def test_an_activation_whose_owner_check_went_stale_is_refused_through_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.online import definitions_api

    app, definitions, tokens, _ = _app(tmp_path)
    v1 = definitions.register(FeatureDefinition.model_validate(definition_dict(owner="team-a"))).definition
    definitions.register(v1.model_copy(update={"version": 2, "ttl": v1.ttl * 2}))
    read_owners = definitions_api._owners

    def owners_then_an_admin_moves_it(*args: Any, **kwargs: Any) -> list[str | None]:
        seen = read_owners(*args, **kwargs)
        latest = definitions.catalog().get(v1.entity, v1.name, 2)
        definitions.register(latest.model_copy(update={"owner": "team-b"}))
        return seen

    monkeypatch.setattr(definitions_api, "_owners", owners_then_an_admin_moves_it)
    headers = {"Authorization": "Bearer " + tokens.issue("ann", "team-a")}
    answer = TestClient(app).post(f"/v1/feature-definitions/{v1.entity}/{v1.name}/activate?version=2", headers=headers)
    assert answer.status_code == 403, answer.text
    assert definitions.catalog().get(v1.entity, v1.name).version == 1


def test_the_owner_of_the_latest_version_may_not_rewrite_an_older_version_of_another_team(tmp_path: Path) -> None:
    """Design §9: a metadata update of a registered version needs that version's owner too. An admin moved the
    feature on to team-b at v2; team-b then re-posted v1's body with its own owner and `public`, got 200
    `metadata_updated`, and so took v1 (restricted, team-a's) and made its values readable to every team."""
    app, definitions, tokens, _ = _app(tmp_path)
    v1 = definition_dict(owner="team-a", sensitivity="restricted")
    definitions.register(FeatureDefinition.model_validate(v1))
    definitions.register(FeatureDefinition.model_validate(dict(v1, version=2, owner="team-b", ttl="2h")))
    taken = dict(v1, owner="team-b", sensitivity="public")
    headers = {"Authorization": "Bearer " + tokens.issue("bob", "team-b")}

    answer = TestClient(app).post("/v1/feature-definitions", json=taken, headers=headers)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"] == "forbidden" and "owned by team team-a" in answer.json()["message"]
    with pytest.raises(ForbiddenError, match=r"may not write user/.*@1: it is owned by team team-a$"):
        definitions.register(FeatureDefinition.model_validate(taken), owned_by="team-b")
    held = definitions.catalog().get(v1["entity"], v1["name"], 1)
    assert (held.owner, held.sensitivity) == ("team-a", "restricted")
    # its own version's metadata, and a version number left to the store, stay team-b's to write
    mine = dict(v1, version=2, owner="team-b", ttl="2h", description="b's")
    assert TestClient(app).post("/v1/feature-definitions", json=mine, headers=headers).json()["result"] == (
        "metadata_updated"
    )
    unnumbered = {k: v for k, v in mine.items() if k != "version"} | {"description": "b's again"}
    assert TestClient(app).post("/v1/feature-definitions", json=unnumbered, headers=headers).status_code == 200


def test_a_feature_service_registered_with_auth_off_is_an_admins_to_write(tmp_path: Path) -> None:
    """Design §9: a service holding versions but no owner (registered while auth was off) is written by an admin
    token only. The first team to post a version claimed it, as it did a schema subject registered so."""
    from registry.feature_services import FeatureService

    app, definitions, tokens, access = _app(tmp_path)
    feature = definitions.register(FeatureDefinition.model_validate(definition_dict(owner="team-a"))).definition
    pin = {"entity": feature.entity, "name": feature.name, "version": 1}
    FeatureServiceStore(tmp_path / "definitions.db").register(
        FeatureService.model_validate({"name": "svc", "version": 1, "features": [pin]})
    )
    body = {"name": "svc", "description": "v2", "features": [pin]}
    team = {"Authorization": "Bearer " + tokens.issue("ann", "team-a")}
    refused = TestClient(app).post("/v1/feature-services", json=body, headers=team)
    assert refused.status_code == 403, refused.text
    assert (
        refused.json()["error"] == "forbidden" and "no team owns it: needs an admin token" in refused.json()["message"]
    )
    assert access.store is not None and access.store.owner("feature_service", "svc") is None
    admin = {"Authorization": "Bearer " + tokens.issue("root", "platform", admin=True)}
    assert TestClient(app).post("/v1/feature-services", json=body, headers=admin).status_code == 201
    fresh = TestClient(app).post("/v1/feature-services", json={"name": "new_svc", "features": [pin]}, headers=team)
    assert fresh.status_code == 201 and access.store.owner("feature_service", "new_svc") == "team-a"
