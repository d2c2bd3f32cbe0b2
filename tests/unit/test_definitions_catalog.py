"""The feature catalog: active versions, resolution, duplicates, pinned active versions, aliases, stream sources."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from jobs.sql import window_groups
from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DefinitionError, UnknownFeatureError
from tests.unit.test_definitions import MakeDef

# ---------------------------------------------------------------------------------------------
# The catalog
# ---------------------------------------------------------------------------------------------


def _versions(make_definition: MakeDef, name: str, *versions: int) -> list[FeatureDefinition]:
    return [make_definition(name=name, version=v, description=f"v{v}") for v in versions]


def test_active_is_highest_version_whatever_the_order(make_definition: MakeDef) -> None:
    catalog = FeatureCatalog([*_versions(make_definition, "f", 2, 3, 1), *_versions(make_definition, "g", 1)])
    assert len(catalog) == 4
    assert catalog.get("user", "f").version == 3
    assert catalog.get("user", "f", 2).description == "v2"
    assert catalog.get("user", "g").version == 1
    assert sorted((d.name, d.version) for d in catalog.active()) == [("f", 3), ("g", 1)]
    assert sorted((d.name, d.version) for d in catalog.for_entity("user")) == [("f", 3), ("g", 1)]
    assert catalog.for_entity("merchant") == []


def test_get_unknown_version_names_it(make_definition: MakeDef) -> None:
    catalog = FeatureCatalog(_versions(make_definition, "f", 1))
    with pytest.raises(UnknownFeatureError) as info:
        catalog.get("user", "f", 9)
    assert info.value.names == ["f@v9"]
    assert info.value.entity_type == "user"
    with pytest.raises(UnknownFeatureError) as info:
        catalog.get("merchant", "f")
    assert info.value.names == ["f"]


def test_resolve_keeps_requested_order(make_definition: MakeDef) -> None:
    catalog = FeatureCatalog(
        [
            *_versions(make_definition, "a", 1),
            *_versions(make_definition, "b", 1, 2),
            *_versions(make_definition, "c", 1),
        ]
    )
    resolved = catalog.resolve("user", ["c", "a", "b"])
    assert [(d.name, d.version) for d in resolved] == [("c", 1), ("a", 1), ("b", 2)]


def test_resolve_lists_every_unknown_name(make_definition: MakeDef) -> None:
    catalog = FeatureCatalog([*_versions(make_definition, "a", 1), *_versions(make_definition, "b", 1)])
    with pytest.raises(UnknownFeatureError) as info:
        catalog.resolve("user", ["zz", "a", "yy", "b", "xx"])
    assert info.value.names == ["xx", "yy", "zz"]
    assert info.value.entity_type == "user"
    assert str(info.value) == "unknown feature(s) for entity type 'user': xx, yy, zz"
    assert isinstance(info.value, DefinitionError)


def test_resolve_for_unknown_entity_lists_all_names(make_definition: MakeDef) -> None:
    catalog = FeatureCatalog(_versions(make_definition, "a", 1))
    with pytest.raises(UnknownFeatureError) as info:
        catalog.resolve("merchant", ["a", "b"])
    assert info.value.names == ["a", "b"]
    assert info.value.entity_type == "merchant"


def test_duplicate_key_with_different_content_is_rejected(make_definition: MakeDef) -> None:
    first = make_definition(name="f", version=1)
    second = make_definition(name="f", version=1, window={"kind": "tumbling", "size": "1h"})
    with pytest.raises(DefinitionError, match=r"^user\.f v1 is defined twice, differently$"):
        FeatureCatalog([first, second])


def test_duplicate_key_with_same_content_is_one_definition(make_definition: MakeDef) -> None:
    catalog = FeatureCatalog([make_definition(name="f"), make_definition(name="f")])
    assert len(catalog) == 1


def test_same_name_in_two_entities_is_two_features(make_definition: MakeDef) -> None:
    user = make_definition(name="f")
    merchant = make_definition(name="f", entity="merchant", version=4)
    catalog = FeatureCatalog([user, merchant])
    assert catalog.entity_types() == {"user", "merchant"}
    assert catalog.get("merchant", "f").version == 4
    assert catalog.get("user", "f").version == 1


# ---------------------------------------------------------------------------------------------
# Pinned active versions and aliases (renames)
# ---------------------------------------------------------------------------------------------


def test_explicit_active_version_overrides_highest(make_definition: MakeDef) -> None:
    catalog = FeatureCatalog(_versions(make_definition, "f", 1, 2, 3), active={("user", "f"): 2})
    assert catalog.get("user", "f").version == 2
    assert [d.version for d in catalog.resolve("user", ["f"])] == [2]
    assert [d.version for d in catalog.active()] == [2]
    assert catalog.get("user", "f", 3).description == "v3"


def test_active_version_must_be_defined(make_definition: MakeDef) -> None:
    with pytest.raises(DefinitionError, match=r"^active version user\.f v9 is not defined$"):
        FeatureCatalog(_versions(make_definition, "f", 1), active={("user", "f"): 9})


def test_alias_resolves_to_the_renamed_feature(make_definition: MakeDef) -> None:
    renamed = make_definition(name="card_txn_count_1h", aliases=["txn_count_1h"])
    other = make_definition(name="other")
    catalog = FeatureCatalog([renamed, other])
    assert catalog.resolve("user", ["other", "txn_count_1h"]) == [other, renamed]
    assert catalog.get("user", "txn_count_1h") is renamed
    assert catalog.get("user", "txn_count_1h", 1) is renamed
    assert renamed.transform_hash == make_definition(name="card_txn_count_1h").transform_hash


@pytest.mark.parametrize("active", [1, 2])
def test_a_former_name_of_any_version_resolves_whichever_version_is_active(
    make_definition: MakeDef, active: int
) -> None:
    """Registration reserves a version's aliases whether it is active or not (design §4); the name resolved only
    while the version declaring it was active: `bb` (declared by v2) was unknown while v1 served, and `aa`
    after v2 was activated, though no other feature could take either name."""
    v1 = make_definition(name="cnt", version=1, aliases=["aa"], description="v1")
    v2 = make_definition(name="cnt", version=2, aliases=["bb"], description="v2")
    catalog = FeatureCatalog([v1, v2], active={("user", "cnt"): active})
    for former in ("aa", "bb"):
        assert catalog.get("user", former).version == active
        assert [d.version for d in catalog.resolve("user", [former])] == [active]
        assert catalog.get("user", former, 1) is v1 and catalog.get("user", former, 2) is v2


def test_an_inactive_alias_a_store_shares_between_features_stays_unresolved(make_definition: MakeDef) -> None:
    """A store written before registration checked every version may hold one former name in two features'
    inactive versions: it still loads, and the name resolves to neither."""
    a1, a2 = make_definition(name="a", version=1, aliases=["old"]), make_definition(name="a", version=2)
    b1, b2 = make_definition(name="b", version=1, aliases=["old"]), make_definition(name="b", version=2)
    catalog = FeatureCatalog([a1, a2, b1, b2])
    with pytest.raises(UnknownFeatureError):
        catalog.get("user", "old")


@pytest.mark.parametrize(
    "aliases",
    [["b"], ["c"]],
)
def test_alias_colliding_with_a_feature_or_alias_is_rejected(make_definition: MakeDef, aliases: list[str]) -> None:
    with pytest.raises(DefinitionError, match=r"collides with another feature or alias"):
        FeatureCatalog([make_definition(name="b", aliases=["c"]), make_definition(name="a", aliases=aliases)])


@pytest.mark.parametrize("alias", ["Bad", "txn_count_1h"])
def test_alias_must_be_a_valid_other_name(make_definition_dict: Callable[..., dict[str, Any]], alias: str) -> None:
    with pytest.raises(ValidationError, match=f"alias '{alias}' must be a valid name other than the feature's own"):
        FeatureDefinition.model_validate(make_definition_dict(aliases=[alias]))


def test_one_stream_key_never_stands_for_two_sources(make_definition: Callable[..., FeatureDefinition]) -> None:
    a = make_definition(name="a")
    b = make_definition(name="b", **{"source.timestamp_field": "other_ts"})
    assert a.stream == b.stream and a.source != b.source
    with pytest.raises(DefinitionError, match="one stream must have one source"):
        FeatureCatalog([a, b])
    with pytest.raises(DefinitionError, match="one stream must have one source"):
        window_groups([a, b])
    # Another window is another stream: both readings of the topic may run, under distinct SQL names.
    c = make_definition(name="c", window={"kind": "tumbling", "size": "2h"}, **{"source.timestamp_field": "other_ts"})
    assert len(FeatureCatalog([a, c])) == 2
    assert a.source.slug != c.source.slug
    assert {g.source for g in window_groups([a, c])} == {a.source, c.source}


def test_source_slugs_are_sql_safe_and_distinct(make_definition: Callable[..., FeatureDefinition]) -> None:
    dotted = make_definition(**{"source.topic": "a.b"}).source
    underscored = make_definition(**{"source.topic": "a_b"}).source
    assert dotted.slug != underscored.slug
    for slug in (dotted.slug, underscored.slug):
        assert re.fullmatch(r"[A-Za-z0-9_]+", slug)
