"""``gate --guardrails`` judges a feature pinned by a former name (an alias, which resolves to the feature) on the
feature's own serving log and drift scores (docs/design.md §9, "Freshness and drift guardrails"): the log and the
stored scores name features by their own name. Before, such a pin was never judged: the gate looked its health up
under the alias, found nothing, and passed a feature served stale, mismatched and drifted."""

from __future__ import annotations

import pytest

from registry.core.catalog import FeatureCatalog
from registry.gate import Guardrails, ModelManifest, ServedHealth, check_model
from tests.unit.conftest import build_definition

_BAD = Guardrails(
    health={("user", "f", 1): ServedHealth(served=100, stale=50, mismatch_ratio=0.5, missing_ratio=0.0)},
    drift={("user", "f", 1): (0.9, "ts1", "offline")},
)


@pytest.mark.parametrize("pinned_as", ["f", "old_f"], ids=["own name", "former name"])
def test_a_pin_by_either_name_is_judged_on_the_features_own_log_and_scores(pinned_as: str) -> None:
    catalog = FeatureCatalog([build_definition(name="f", aliases=["old_f"])], {("user", "f"): 1})
    model = ModelManifest.model_validate(
        {"model": "m", "features": [{"entity": "user", "name": pinned_as, "version": 1}]}
    )
    problems = check_model(model, catalog, None, guardrails=_BAD)
    assert [p.split(": ", 1)[0] for p in problems] == [f"user.{pinned_as}@v1"] * 3
    assert "served stale in 50 of 100" in problems[0]
    assert "mismatched offline" in problems[1]
    assert "drifted from training set ts1" in problems[2]


@pytest.mark.parametrize(
    ("pins", "refused"),
    [
        (
            [("f", 1), ("old_f", 1)],
            ["user.old_f@v1: user.f pinned 2 times (also as user.f@v1); a model reads one version"],
        ),
        (
            [("old_f", 2), ("f", 1)],
            ["user.f@v1: user.f pinned 2 times (also as user.old_f@v2); a model reads one version"],
        ),
        (
            [("old_f", 1), ("older_f", 2)],
            ["user.older_f@v2: user.f pinned 2 times (also as user.old_f@v1); a model reads one version"],
        ),
        (  # the third pin was "pinned 2 times (also as user.f@v1)"
            [("f", 1), ("old_f", 1), ("older_f", 2)],
            [
                "user.old_f@v1: user.f pinned 2 times (also as user.f@v1); a model reads one version",
                "user.older_f@v2: user.f pinned 3 times (also as user.f@v1, user.old_f@v1); a model reads one version",
            ],
        ),
    ],
    ids=["name and former name", "former name first, two versions", "two former names", "three names"],
)
def test_a_feature_pinned_by_two_of_its_names_is_refused(pins: list[tuple[str, int]], refused: list[str]) -> None:
    """Design §9: a feature pinned twice, at one version or two, is refused. The file check compares the names as
    written, so a model pinning a feature by its name and a former name passed, reading two versions of it."""
    catalog = FeatureCatalog(
        [
            build_definition(name="f", version=1, aliases=["old_f"]),
            build_definition(name="f", version=2, aliases=["older_f"]),
        ],
        {("user", "f"): 1},
    )
    model = ModelManifest.model_validate(
        {"model": "m", "features": [{"entity": "user", "name": n, "version": v} for n, v in pins]}
    )
    problems = check_model(model, catalog, None)
    assert [p for p in problems if " times (also as " in p] == refused
