"""A new version of a feature service reads only the versions it is compared with (the latest, and the one its number
names), not every version before it: each registration parsed all of them inside the store's write lock, so the
200th version of a 1,000-pin service took 1.5 s, every other registry writer waiting. What a registration answers
is unchanged: identical content is ``unchanged``, other content under a taken number a conflict naming what
differs, a number below the latest refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from registry.definition_store import DefinitionConflictError
from registry.feature_services import FeatureService, FeatureServiceStore


def _service(version: int, pinned: int, *, description: str = "") -> FeatureService:
    return FeatureService.model_validate(
        {
            "name": "fraud_v",
            "version": version,
            "description": description,
            "features": [{"entity": "user", "name": f"f{i}", "version": pinned if i == 0 else 1} for i in range(50)],
        }
    )


def test_a_new_version_parses_only_what_it_is_compared_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FeatureServiceStore(tmp_path / "d.db")
    for v in range(1, 41):
        assert store.register(_service(v, pinned=v)).action == ("created" if v == 1 else "new_version")
    parsed: list[str] = []
    real = FeatureService.model_validate_json

    def counted(data: Any, **kwargs: Any) -> FeatureService:
        parsed.append(str(data)[:20])
        return real(data, **kwargs)

    monkeypatch.setattr(FeatureService, "model_validate_json", counted)
    registered = store.register(_service(1, pinned=41), version_given=False)
    assert (registered.action, registered.service.version) == ("new_version", 41)
    assert len(parsed) <= 2, len(parsed)  # the latest (and the number it takes, none yet): not 40


def test_what_a_registration_answers_is_unchanged(tmp_path: Path) -> None:
    store = FeatureServiceStore(tmp_path / "d.db")
    store.register(_service(1, pinned=1))
    store.register(_service(2, pinned=2))
    assert store.register(_service(1, pinned=2), version_given=False).action == "unchanged"
    assert store.register(_service(1, pinned=2), version_given=False).service.version == 2
    assert store.register(_service(1, pinned=1)).action == "unchanged"
    with pytest.raises(DefinitionConflictError, match=r"fraud_v@1 is registered with other features.*fraud_v@3"):
        store.register(_service(1, pinned=5))
    with pytest.raises(DefinitionConflictError, match="fraud_v@2 is registered with another description"):
        store.register(_service(2, pinned=2, description="other"))
    store.register(_service(4, pinned=4))
    with pytest.raises(DefinitionConflictError, match="is at version 4; a new version must be numbered above it"):
        store.register(_service(3, pinned=3))
