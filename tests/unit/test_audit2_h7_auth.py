"""Feature API under ``FS_AUTH=on``: a request carrying more than one ``Authorization`` header is refused (401)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry.access import Access
from registry.access_store import AccessStore
from registry.core.definitions import FeatureDefinition
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from serving.online.app import create_app
from sinks.cassandra.reader import StoredValue
from tests.unit.conftest import definition_dict
from tests.unit.test_app import NOW, MemorySource, T


def _app(tmp_path: Path) -> tuple[TestClient, AccessStore]:
    db = tmp_path / "definitions.db"
    definitions = DefinitionStore(db)
    definitions.register(
        FeatureDefinition.model_validate(
            definition_dict(
                name="txn_amount_max_1h",
                owner="fraud-team",
                sensitivity="restricted",
                value_type="double",
                aggregation={"function": "max", "field": "amount"},
            )
        )
    )
    tokens = AccessStore(db)
    source = MemorySource({("user", "alice"): {("txn_amount_max_1h", 1): StoredValue(9.0, T)}})
    app = create_app(
        LiveCatalog(definitions, refresh_s=0),
        source,
        clock_us=lambda: NOW * 1000,
        access=Access(tokens, enabled=True, refresh_s=0),
    )
    return TestClient(app), tokens


@pytest.mark.parametrize("order", ["owner first", "other first", "same twice"])
def test_two_authorization_headers_are_refused_whatever_they_hold(tmp_path: Path, order: str) -> None:
    client, tokens = _app(tmp_path)
    owner = "Bearer " + tokens.issue("fraud-bot", "fraud-team")
    other = {"other first": "Bearer " + tokens.issue("scorer", "ml-team"), "same twice": owner}.get(order, "Bearer x")
    values = [other, owner] if order == "other first" else [owner, other]
    # A list of pairs: httpx sends each one as its own header line.
    headers = [("Authorization", v) for v in values]
    for path in ("/v1/features/user/alice?names=txn_amount_max_1h", "/health"):
        answer = client.get(path, headers=headers)
        assert answer.status_code == 401, (path, answer.text)
        assert answer.json()["error"] == "unauthenticated"
        assert "2 Authorization headers" in answer.json()["message"]
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert "9.0" not in answer.text
    # one header, as before: the owning team reads its value
    assert (
        client.get("/v1/features/user/alice?names=txn_amount_max_1h", headers={"Authorization": owner}).json()[
            "features"
        ]["txn_amount_max_1h"]["value"]
        == 9.0
    )
