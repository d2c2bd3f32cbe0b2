"""Access control, second pass (docs/design.md "Governance"): a 403 names every refused version of a quality read;
a 401 never echoes a token's secret; a feature service's cross-check refusals come after the ownership check and
are audited; every ``serving.offline.training`` subcommand needs a known token when auth is on."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry.access import Access
from registry.access_store import AccessStore
from registry.core.definitions import FeatureDefinition
from registry.core.errors import UnauthenticatedError
from registry.definition_store import DefinitionStore
from registry.feature_services import FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from registry.quality import QualityStore
from serving.online.app import create_app
from tests.unit.conftest import build_definition, definition_dict
from tests.unit.test_app import NOW, MemorySource


def _definition(sensitivity: str, function: str, version: int, name: str = "sec") -> FeatureDefinition:
    return FeatureDefinition.model_validate(
        definition_dict(
            name=name,
            owner="fraud-team",
            sensitivity=sensitivity,
            value_type="double",
            aggregation={"function": function, "field": "amount"},
            version=version,
        )
    )


def test_a_quality_read_without_version_names_and_audits_every_refused_version(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    defs = DefinitionStore(db)
    defs.register(_definition("restricted", "max", 1))
    defs.register(_definition("confidential", "sum", 2))  # v1 stays active
    quality = QualityStore(db)
    hour = datetime.fromtimestamp(NOW / 1000, UTC).replace(minute=0, second=0, microsecond=0).isoformat()
    rows = [{"entity_type": "user", "feature": "sec", "version": v, "hour": hour, "count": 1} for v in (1, 2)]
    quality.put_hourly("offline", rows, computed_at=datetime.now(UTC))
    tokens = AccessStore(db)
    access = Access(tokens, enabled=True, refresh_s=0)
    app = create_app(
        LiveCatalog(defs, refresh_s=0), MemorySource({}), clock_us=lambda: NOW * 1000, access=access, quality=quality
    )
    client = TestClient(app)
    ml = {"Authorization": "Bearer " + tokens.issue("scorer", "ml-team")}
    fraud = {"Authorization": "Bearer " + tokens.issue("bot", "fraud-team")}
    assert {r["version"] for r in client.get("/v1/quality/user/sec", headers=fraud).json()["hourly"]} == {1, 2}
    refused = client.get("/v1/quality/user/sec", headers=ml)
    assert refused.status_code == 403 and refused.json()["names"] == ["user/sec@1", "user/sec@2"]
    assert access.audit is not None
    access.audit.flush()
    audited = sorted((x["target"], x["outcome"]) for x in tokens.audit(principal="scorer"))
    assert audited == [("user/sec@1", 403), ("user/sec@2", 403)]


def test_a_401_never_echoes_a_tokens_secret(tmp_path: Path) -> None:
    store = AccessStore(tmp_path / "d.db")
    access = Access(store, enabled=True, refresh_s=0)
    token = store.issue("p", "t")
    secret = token.split("_", 2)[2]
    for value in (token, "Bearer\t" + token, "Token:" + token):
        with pytest.raises(UnauthenticatedError) as caught:
            access.authenticate_header(value)
        assert secret not in str(caught.value), value
    with pytest.raises(UnauthenticatedError, match="no API token"):
        access.authenticate_header("")


def test_a_feature_service_refused_by_the_catalog_is_audited_after_the_ownership_check(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    defs = DefinitionStore(db)
    defs.register(_definition("internal", "max", 1, name="f"))
    tokens = AccessStore(db)
    access = Access(tokens, enabled=True, refresh_s=0)
    app = create_app(
        LiveCatalog(defs, refresh_s=0),
        MemorySource({}),
        clock_us=lambda: NOW * 1000,
        services=LiveFeatureServices(FeatureServiceStore(db)),
        access=access,
    )
    client = TestClient(app)
    ml = {"Authorization": "Bearer " + tokens.issue("scorer", "ml-team")}
    fraud = {"Authorization": "Bearer " + tokens.issue("bot", "fraud-team")}
    good = {"name": "s", "features": [{"entity": "user", "name": "f", "version": 1}]}
    bad = {"name": "s", "version": 2, "features": [{"entity": "user", "name": "zzz", "version": 1}]}
    assert client.post("/v1/feature-services", json=good, headers=ml).status_code == 201
    assert client.post("/v1/feature-services", json=bad, headers=ml).status_code == 404  # the owner: unknown pin
    assert client.post("/v1/feature-services", json=bad, headers=fraud).status_code == 403  # not the owner
    assert access.audit is not None
    access.audit.flush()
    rows = [(x["principal"], x["target"], x["outcome"], x["detail"]) for x in tokens.audit() if x["outcome"] != 201]
    assert ("scorer", "feature_service:s", 404, "unknown_feature") in rows
    assert ("bot", "feature_service:s", 403, "") in rows


def test_every_training_subcommand_needs_a_known_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from registry.training_sets import Manifest, TrainingSetStore
    from serving.offline import training

    db = tmp_path / "d.db"
    DefinitionStore(db).register(build_definition())
    manifest = Manifest.create(
        entity_type="user",
        entity_column="user_id",
        timestamp_column="ts",
        features=(),
        offline_table="x.y",
        snapshot_id=None,
        as_of=None,
        ingested_until=None,
        labels_sha256="0",
        labels_rows=0,
        row_count=0,
        content_sha256="0",
    )
    TrainingSetStore(db).record(manifest)
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    monkeypatch.setenv("FS_AUTH", "on")
    monkeypatch.delenv("FS_TOKEN", raising=False)
    code = training.main(["link-model", "--model", "m", "--model-version", "1", "--id", manifest.id])
    assert code != 0 and not TrainingSetStore(db).training_sets_for("m")
