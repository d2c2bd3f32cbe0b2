"""Registering the features of one entity type that read many topics checks its streams once per entity type.

The check ran one query per (entity type, topic) moved, each reading every active feature of the entity type:
4,000 features over 4,000 topics took 26 s in ``registry.cli apply`` (10,000: 209 s), holding the store's write
lock throughout. The check still refuses a stream read two ways, whichever of the topics it is."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import registry.definition_store as definition_store
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DefinitionError
from registry.definition_store import DefinitionStore
from tests.unit.conftest import build_definition


def _reading(topics: int) -> list[FeatureDefinition]:
    base = build_definition()
    return [
        base.model_copy(update={"name": f"f{i}", "source": base.source.model_copy(update={"topic": f"t{i}"})})
        for i in range(topics)
    ]


def test_many_topics_of_one_entity_type_are_checked_in_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[int] = []
    real = definition_store.check_streams

    def counted(definitions: Any) -> Any:
        listed = list(definitions)
        checked.append(len(listed))
        return real(listed)

    monkeypatch.setattr(definition_store, "check_streams", counted)
    store = DefinitionStore(tmp_path / "definitions.db")
    store.register_all(_reading(300))
    assert checked == [300]  # one pass over the entity type's 300 active features, not 300 passes
    assert len(store.catalog().active()) == 300


def test_a_stream_read_two_ways_is_refused_among_many_topics(tmp_path: Path) -> None:
    store = DefinitionStore(tmp_path / "definitions.db")
    features = _reading(50)
    store.register_all(features)
    twin = features[37]
    other = twin.source.model_copy(update={"max_out_of_orderness": timedelta(seconds=7)})
    newcomers = [f.model_copy(update={"name": f"{f.name}_b"}) for f in features[:5]]
    newcomers.append(twin.model_copy(update={"name": "f37_b", "source": other}))
    before = store.change_seq()
    with pytest.raises(DefinitionError, match=r"one stream \(t37/user/.*\) but read its topic differently"):
        store.register_all(newcomers)
    assert store.change_seq() == before
