"""The deployment gate refuses models whose pinned features are missing, changed or deprecated."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from registry import cli
from registry.core.catalog import FeatureCatalog, load_folder
from registry.definition_store import DefinitionStore
from registry.gate import ModelManifest, PinnedFeature, check_model, load_model
from registry.plan import apply

TODAY = date(2026, 11, 21)


@pytest.fixture
def store(tmp_path: Path) -> DefinitionStore:
    store = DefinitionStore(tmp_path / "d.db")
    apply(store, load_folder())
    return store


def _model(*pins: PinnedFeature) -> ModelManifest:
    return ModelManifest(model="fraud", features=pins)


def _problems(catalog: FeatureCatalog, *pins: PinnedFeature) -> list[str]:
    return check_model(_model(*pins), catalog, None, today=TODAY)


def test_a_model_pinned_to_what_serves_passes(store: DefinitionStore) -> None:
    count = store.catalog().get("user", "txn_count_1h")
    pin = PinnedFeature(
        entity="user", name="txn_count_1h", version=1, value_type="long", identity_hash=count.identity_hash
    )
    assert _problems(store.catalog(), pin) == []


def test_missing_feature_or_version_is_refused(store: DefinitionStore) -> None:
    problems = _problems(
        store.catalog(),
        PinnedFeature(entity="user", name="txn_count_7d", version=1),
        PinnedFeature(entity="user", name="txn_count_1h", version=3),
    )
    assert problems == ["user.txn_count_7d@v1: not registered", "user.txn_count_1h@v3: not registered"]


def test_changed_type_transform_or_serving_version_is_refused(store: DefinitionStore) -> None:
    count = store.catalog().get("user", "txn_count_1h")
    assert _problems(
        store.catalog(), PinnedFeature(entity="user", name="txn_count_1h", version=1, value_type="double")
    ) == ["user.txn_count_1h@v1: trained on double, registered as long"]
    stale_hash = PinnedFeature(entity="user", name="txn_count_1h", version=1, identity_hash="0000000000000000")
    assert "transform/TTL changed since training" in _problems(store.catalog(), stale_hash)[0]
    store.register(count.model_copy(update={"version": 2, "ttl": timedelta(hours=6)}), activate=True)
    assert _problems(store.catalog(), PinnedFeature(entity="user", name="txn_count_1h", version=1)) == [
        "user.txn_count_1h@v1: v2 serves now, with a different transform; retrain on v2 or activate v1"
    ]


def test_deprecated_past_its_date_is_refused(store: DefinitionStore) -> None:
    count = store.catalog().get("user", "txn_count_1h")
    pin = PinnedFeature(entity="user", name="txn_count_1h", version=1)
    store.register(count.model_copy(update={"status": "deprecated", "deprecated_after": TODAY + timedelta(days=30)}))
    assert _problems(store.catalog(), pin) == []  # deprecated, but still within its date
    store.register(count.model_copy(update={"status": "deprecated", "deprecated_after": TODAY - timedelta(days=1)}))
    assert _problems(store.catalog(), pin) == ["user.txn_count_1h@v1: deprecated since 2026-11-20"]


def test_cli_gate_exit_codes(store: DefinitionStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "d.db")
    good = tmp_path / "good.toml"
    good.write_text('model = "fraud"\n[[features]]\nentity = "user"\nname = "txn_count_1h"\nversion = 1\n')
    assert cli.main(["--db", db, "gate", str(good), "--no-schema-check"]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'model = "fraud"\n[[features]]\nentity = "user"\nname = "txn_count_1h"\nversion = 1\nvalue_type = "double"\n'
    )
    assert cli.main(["--db", db, "gate", str(bad), "--no-schema-check"]) == 1
    assert "REFUSED: user.txn_count_1h@v1: trained on double" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text('model = "fraud"\nfeatures = []\ncolour = 1\n')
    assert cli.main(["--db", db, "gate", str(broken), "--no-schema-check"]) == 1
    assert "not a valid model file" in capsys.readouterr().err
    assert load_model(good).features[0].name == "txn_count_1h"
