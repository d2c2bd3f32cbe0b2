"""README.md's model policy (``serving.online.policy``) against the statuses the API serves: a request-time
feature whose function failed is ``status: "error"`` with a null value (README "Online serving", docs/design.md
§9 "Request-time features"), so a required one is refused by ``REFUSE_NOT_PRESENT`` and ``REFUSE_UNKNOWN`` as
a missing one is (it was passed through: the model scored on a null it was promised it never would), and a
policy may name ``error`` itself (it was refused as an unknown status)."""

from __future__ import annotations

from typing import Any

import pytest

from serving.online.policy import REFUSE_NOT_PRESENT, REFUSE_UNKNOWN, Fallbacks, ModelPolicy, decide

_FAILED: dict[str, Any] = {"value": None, "status": "error", "message": "amount_vs_mean_1h failed: ZeroDivisionError"}


@pytest.mark.parametrize("refused", [REFUSE_NOT_PRESENT, REFUSE_UNKNOWN, frozenset({"error"})])
def test_a_required_feature_whose_function_failed_gives_the_fallback(refused: frozenset[str]) -> None:
    policy = ModelPolicy("fraud", "7", required={"amount_vs_mean_1h": refused}, fallback="rules_v2")
    fallbacks = Fallbacks()
    features: dict[str, dict[str, Any]] = {
        "amount_vs_mean_1h": _FAILED,
        "txn_count_1h": {"value": 3, "status": "present"},
    }
    decision = decide(policy, "u1", features, fallbacks)
    assert decision.fallback == "rules_v2" and decision.reasons == ("amount_vs_mean_1h: error",)
    assert decision.values["amount_vs_mean_1h"] is None
    assert fallbacks.value(policy, "amount_vs_mean_1h", "error") == 1.0


def test_a_feature_that_is_not_required_may_still_be_an_error() -> None:
    policy = ModelPolicy("fraud", "7", required={"txn_count_1h": REFUSE_NOT_PRESENT}, fallback="rules_v2")
    features: dict[str, dict[str, Any]] = {
        "amount_vs_mean_1h": _FAILED,
        "txn_count_1h": {"value": 3, "status": "present"},
    }
    decision = decide(policy, "u1", features, Fallbacks())
    assert decision.fallback is None and decision.statuses["amount_vs_mean_1h"] == "error"
