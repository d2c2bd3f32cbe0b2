"""A model's policy in the Python client: refused statuses of required features give the named fallback,
counted per model, feature and status; other features never do; the model's name reaches the serving log."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from registry.live import LiveCatalog
from serving.online.app import create_app
from serving.online.client import FeatureClient
from serving.online.policy import REFUSE_NOT_PRESENT, REFUSE_UNKNOWN, Fallbacks, ModelPolicy, decide, unavailable
from tests.unit.test_app import MIN, NOW, MemorySource, T, _stored, live  # noqa: F401 - live is a fixture
from tests.unit.test_serving_log import ListSink

POLICY = ModelPolicy("fraud", "7", required={"txn_count_1h": REFUSE_NOT_PRESENT}, fallback="rules_v2")


def _client(live: LiveCatalog, sink: ListSink | None = None) -> FeatureClient:  # noqa: F811
    source = MemorySource(
        {
            ("user", "fresh"): _stored((T, 4), (T, 12.5)),
            ("user", "old"): _stored((T - 300 * MIN, 2), (T, 1.0)),  # the count is past its freshness SLO
            ("user", "no_total"): _stored((T, 3)),
        }
    )
    app = create_app(live, source, clock_us=lambda: NOW * 1000, serving_log=sink, serving_log_sample=1.0)
    return FeatureClient(client=TestClient(app), caller="scorer")


def test_a_present_required_feature_scores(live: LiveCatalog) -> None:  # noqa: F811
    client = _client(live)
    decision = client.score_vector(POLICY, "user", "fresh", ["txn_count_1h", "txn_amount_sum_1h"])
    assert decision.fallback is None and decision.reasons == ()
    assert decision.values == {"txn_count_1h": 4, "txn_amount_sum_1h": 12.5}


@pytest.mark.parametrize(("entity", "status"), [("nobody", "missing"), ("old", "expired")])
def test_a_refused_required_feature_gives_the_named_fallback_and_is_counted(
    live: LiveCatalog,  # noqa: F811
    entity: str,
    status: str,
) -> None:
    client = _client(live)
    decision = client.score_vector(POLICY, "user", entity)
    assert decision.statuses["txn_count_1h"] == status
    assert decision.fallback == "rules_v2" and decision.reasons == (f"txn_count_1h: {status}",)
    assert decision.values["txn_count_1h"] is None  # never replaced by a default
    assert client.fallbacks.value(POLICY, "txn_count_1h", status) == 1.0


def test_features_that_are_not_required_never_cause_a_fallback(live: LiveCatalog) -> None:  # noqa: F811
    client = _client(live)
    decision = client.score_vector(POLICY, "user", "no_total", ["txn_count_1h", "txn_amount_sum_1h"])
    assert decision.statuses == {"txn_count_1h": "present", "txn_amount_sum_1h": "missing"}
    assert decision.fallback is None


def test_a_policy_may_tolerate_what_others_refuse(live: LiveCatalog) -> None:  # noqa: F811
    lenient = ModelPolicy("ranker", "1", required={"txn_count_1h": REFUSE_UNKNOWN}, fallback="popular")
    client = _client(live)
    (fresh, gone) = client.score_vectors(lenient, "user", ["fresh", "nobody"])
    assert fresh.fallback is None
    assert gone.fallback == "popular" and gone.reasons == ("txn_count_1h: missing",)
    assert client.fallbacks.value(lenient, "txn_count_1h", "missing") == 1.0


def test_the_model_and_caller_reach_the_serving_log(live: LiveCatalog) -> None:  # noqa: F811
    sink = ListSink()
    _client(live, sink).score_vector(POLICY, "user", "fresh", request_id="req-9")
    ((_, record),) = sink.records
    assert (record["model_name"], record["model_version"], record["caller"], record["request_id"]) == (
        "fraud",
        "7",
        "scorer",
        "req-9",
    )


def test_an_unreadable_entity_falls_back() -> None:
    fallbacks = Fallbacks()
    decision = unavailable(POLICY, "u1", fallbacks, "store_unavailable")
    assert decision.fallback == "rules_v2" and decision.reasons == ("read failed: store_unavailable",)
    assert fallbacks.value(POLICY, "txn_count_1h", "unavailable") == 1.0  # not `missing`: no status was read
    assert fallbacks.value(POLICY, "txn_count_1h", "missing") == 0.0


@pytest.mark.parametrize("status", ["PRESENT?", "Missing", "late"])
def test_a_status_the_api_never_sends_is_refused_whatever_the_policy(status: str) -> None:
    """Only the refused set was looked at: `Missing` (a proxy's, a newer API's) let a null value reach the model."""
    fallbacks = Fallbacks()
    tolerant = ModelPolicy("m", "1", required={"txn_count_1h": frozenset({"error"})}, fallback="rules")
    decision = decide(tolerant, "u1", {"txn_count_1h": {"value": None, "status": status}}, fallbacks)
    assert decision.fallback == "rules" and decision.reasons == (f"txn_count_1h: {status}",)
    assert fallbacks.value(tolerant, "txn_count_1h", "unknown") == 1.0


@pytest.mark.parametrize(
    ("required", "fallback"),
    [({}, "f"), ({"x": frozenset({"present"})}, "f"), ({"x": frozenset({"late"})}, "f"), ({"x": REFUSE_UNKNOWN}, "")],
)
def test_policies_that_cannot_mean_anything_are_refused(required: dict[str, frozenset[str]], fallback: str) -> None:
    with pytest.raises(ValueError, match="policy of m"):
        ModelPolicy("m", "1", required=required, fallback=fallback)
