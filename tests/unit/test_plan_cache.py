"""The feature API's plan cache is bounded by what its plans hold, not only by their number: distinct
requests of 1,000 names each (repeats of two features) held ~290 KB a plan, 4,096 of them over a gigabyte in one
process, and GETs with 64 KB of extra query ~64 KB a key. Plans, their features and their keys' characters each
have a bound; the served-vectors tally of the metrics folds by its plans' features too."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from registry.core.catalog import FeatureCatalog
from registry.live import LiveCatalog
from serving.online import plans as plans_module
from serving.online.metrics import Metrics
from serving.online.plans import MAX_PLAN_FEATURES, MAX_PLAN_KEY_CHARS, Plans
from tests.unit.test_request_features import store_with


@pytest.fixture
def plans(tmp_path: Path, shipped_catalog: FeatureCatalog) -> Plans:
    return Plans(LiveCatalog(store_with(tmp_path / "d.db", shipped_catalog), refresh_s=3600.0))


def _names(rng: random.Random) -> list[str]:
    return [rng.choice(["txn_count_1h", "txn_amount_sum_1h"]) for _ in range(1_000)]


def test_plans_of_many_features_are_bounded_by_their_features(plans: Plans) -> None:
    rng = random.Random(5)
    for _ in range(300):  # 300 distinct lists of 1,000 names: 600,000 features, were all kept
        names = _names(rng)
        plan = plans.for_names(("batch", "user", tuple(names), None), "user", names)
        assert plan.keys == tuple(names)
        assert plans._features <= MAX_PLAN_FEATURES
    assert 0 < len(plans._plans) <= MAX_PLAN_FEATURES // 1_000
    names = _names(rng)
    key = ("batch", "user", tuple(names), None)
    assert plans.cached(key) is None
    kept = plans.for_names(key, "user", names)  # a new list: computed, and kept
    assert plans.cached(key) is kept


def test_keys_are_bounded_by_their_characters(plans: Plans, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plans.for_names(("get", "user", "names=txn_count_1h"), "user", ["txn_count_1h"])
    junk = "j=" + "x" * 64_000
    for i in range(200):  # 12.8 M characters of distinct queries that resolve to one plan
        plans.alias(("get", "user", f"names=txn_count_1h&{i}{junk}"), plan)
        assert plans._key_chars <= MAX_PLAN_KEY_CHARS
    assert len(plans._plans) <= MAX_PLAN_KEY_CHARS // 64_000 + 1
    monkeypatch.setattr(plans_module, "MAX_PLAN_KEY_CHARS", 10)  # a key past the bound alone is not kept at all
    plans.alias(("get", "user", junk), plan)
    assert plans.cached(("get", "user", junk)) is None


def test_the_metrics_tally_folds_plans_by_their_features(plans: Plans) -> None:
    metrics = Metrics(CollectorRegistry())
    rng = random.Random(6)
    for _ in range(250):
        names = _names(rng)
        metrics.vectors(plans.for_names(("batch", "user", tuple(names), None), "user", names), 2)
        assert sum(len(p.labels) for p in metrics._vectors_by_plan) <= 100_000
    served = metrics.served_values()
    assert sum(n for (_, status), n in served.items() if status == "present") == 250 * 2 * 1_000
