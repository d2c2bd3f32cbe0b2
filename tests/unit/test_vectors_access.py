"""``POST /v1/vectors`` under ``FS_AUTH=on``: one 403 naming every refused feature of every part, each audited."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from registry.access import Access
from registry.access_store import AccessStore
from registry.core.definitions import FeatureDefinition
from registry.definition_store import DefinitionStore
from registry.feature_services import FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from serving.online.app import create_app
from sinks.cassandra.reader import StoredValue
from tests.unit.conftest import definition_dict
from tests.unit.test_app import NOW, MemorySource, T


def _feature(name: str, owner: str, sensitivity: str, function: str) -> FeatureDefinition:
    return FeatureDefinition.model_validate(
        definition_dict(
            name=name,
            owner=owner,
            sensitivity=sensitivity,
            value_type="double",
            aggregation={"function": function, "field": "amount"},
        )
    )


def test_every_part_is_authorized_and_audited(tmp_path: Path) -> None:
    db = tmp_path / "definitions.db"
    definitions = DefinitionStore(db)
    definitions.register(_feature("txn_amount_max_1h", "fraud-team", "restricted", "max"))
    definitions.register(_feature("txn_amount_min_1h", "risk-team", "confidential", "min"))
    tokens = AccessStore(db)
    access = Access(tokens, enabled=True, refresh_s=0)
    source = MemorySource(
        {
            ("user", "alice"): {
                ("txn_amount_max_1h", 1): StoredValue(9.0, T),
                ("txn_amount_min_1h", 1): StoredValue(1.0, T),
            }
        }
    )
    services = LiveFeatureServices(FeatureServiceStore(db))
    app = create_app(
        LiveCatalog(definitions, refresh_s=0), source, clock_us=lambda: NOW * 1000, services=services, access=access
    )
    headers = {"Authorization": "Bearer " + tokens.issue("scorer", "ml-team")}
    parts = [
        {"entity_type": "user", "entity_id": "alice", "names": ["txn_amount_max_1h"]},
        {"entity_type": "user", "entity_id": "alice", "names": ["txn_amount_min_1h", "txn_amount_max_1h"]},
    ]
    answer = TestClient(app).post("/v1/vectors", json={"entities": parts}, headers=headers)
    assert answer.status_code == 403
    assert answer.json()["names"] == ["user/txn_amount_max_1h@1", "user/txn_amount_min_1h@1"]
    assert access.audit is not None
    access.audit.flush()
    for target in ("user/txn_amount_max_1h@1", "user/txn_amount_min_1h@1"):  # once each, although asked twice
        assert [(r["outcome"], r["count"]) for r in tokens.audit(target=target)] == [(403, 1)], target
    tokens.grant("fraud-team", "ml-team")
    tokens.grant("risk-team", "ml-team")
    assert TestClient(app).post("/v1/vectors", json={"entities": parts}, headers=headers).status_code == 200
