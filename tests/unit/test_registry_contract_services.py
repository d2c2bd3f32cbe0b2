"""Feature services (registry/feature_services.py) held to README.md and docs/design.md §9."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.definition_store import DefinitionConflictError
from registry.feature_services import FeatureService, FeatureServiceStore


def _service(**update: object) -> FeatureService:
    spec = {"name": "fraud", "version": 1, "features": [{"entity": "user", "name": "txn_count_1h", "version": 1}]}
    return FeatureService.model_validate({**spec, **update})


def test_a_version_registered_again_with_another_description_says_so(tmp_path: Path) -> None:
    """A description-only change under a registered version was refused as "registered with other features"."""
    store = FeatureServiceStore(tmp_path / "d.db")
    store.register(_service())
    with pytest.raises(DefinitionConflictError) as conflict:
        store.register(_service(description="new words"))
    assert str(conflict.value) == (
        "feature service fraud@1 is registered with another description; versions are immutable: "
        "register the change as fraud@2"
    )
    other = [{"entity": "user", "name": "txn_count_1h", "version": 2}]
    with pytest.raises(DefinitionConflictError, match="fraud@1 is registered with other features; versions"):
        store.register(_service(features=other))
