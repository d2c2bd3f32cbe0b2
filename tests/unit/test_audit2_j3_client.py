"""Second-pass audit of the Python client (serving/online/client.py; README "Online serving": every failure is a
``FeatureStoreError``, never a bare httpx/json exception).

- An answer holding JSON nested deeper than Python's parser goes (``[[[...]]]``) raised a bare ``RecursionError``
  from ``response.json()``, whatever its status; it is now read as an answer that is not JSON: a 2xx is a
  ``RequestError`` naming its status, a 503 ``StoreUnavailableError``.
- A 403 ``forbidden`` or 404 ``unknown_feature`` whose ``names`` is not a list (``5``) raised a bare ``TypeError``
  (and a string was split into its characters); such a ``names`` now names none.
- ``timeout_s`` of NaN, infinity, None, 0 or below: NaN and infinity failed every call with a bare error, None
  waited for ever; refused with ``ValueError`` when the client is made.
- ``score_vector`` on a vector whose feature is not ``{value, status, ...}`` raised a bare ``TypeError``/
  ``KeyError``; it is ``bad_answer``."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import httpx
import numpy as np
import pytest

from registry.core.errors import (
    FeatureStoreError,
    ForbiddenError,
    RequestError,
    StoreUnavailableError,
    UnknownFeatureError,
)
from serving.online.client import FeatureClient
from serving.online.policy import REFUSE_NOT_PRESENT, ModelPolicy

DEEP = "[" * 100_000 + "]" * 100_000


def _answering(status: int, body: str) -> FeatureClient:
    answer = httpx.MockTransport(lambda _: httpx.Response(status, text=body))
    return FeatureClient(client=httpx.Client(transport=answer, base_url="http://api"))


CALLS: dict[str, Any] = {
    "get": lambda fs: fs.get_features("user", "u1", ["a"]),
    "batch": lambda fs: fs.get_features_batch("user", ["u1"], ["a"]),
    "vectors": lambda fs: fs.get_vectors([{"entity_type": "user", "entity_id": "u1"}]),
    "list": lambda fs: fs.list_definitions(),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_a_success_answer_nested_past_the_parser_is_a_named_refusal(call: str) -> None:
    with pytest.raises(RequestError) as refused:
        CALLS[call](_answering(200, DEEP))
    assert refused.value.code == "http_200"


@pytest.mark.parametrize(("status", "error"), [(503, StoreUnavailableError), (400, RequestError)])
def test_an_error_answer_nested_past_the_parser_keeps_its_status_class(
    status: int, error: type[FeatureStoreError]
) -> None:
    with pytest.raises(error):
        _answering(status, '{"error": ' + DEEP + ', "message": "m"}').get_features("user", "u1", ["a"])


@pytest.mark.parametrize("names", ["5", '"abc"', "null", '{"a": 1}'])
def test_a_forbidden_answer_whose_names_is_not_a_list_names_none(names: str) -> None:
    body = '{"error": "forbidden", "message": "m", "names": ' + names + "}"
    with pytest.raises(ForbiddenError) as refused:
        _answering(403, body).get_features("user", "u1", ["a"])
    assert refused.value.names == []


@pytest.mark.parametrize("names", ["5", '"abc"'])
def test_an_unknown_feature_answer_whose_names_is_not_a_list_names_none(names: str) -> None:
    body = '{"error": "unknown_feature", "message": "m", "entity_type": "user", "names": ' + names + "}"
    with pytest.raises(UnknownFeatureError) as refused:
        _answering(404, body).get_features("user", "u1", ["a"])
    assert refused.value.names == []


def test_a_well_formed_names_list_is_still_read() -> None:
    body = '{"error": "forbidden", "message": "m", "names": ["a", "b"]}'
    with pytest.raises(ForbiddenError) as refused:
        _answering(403, body).get_features("user", "u1", ["a", "b"])
    assert refused.value.names == ["a", "b"]


# --- timeout_s: the whole answer's bound (README: "its timeout (`timeout_s`, 1 s by default, for the whole answer")


@pytest.mark.parametrize(
    "timeout_s",
    [
        0,
        -1.0,
        float("nan"),
        float("inf"),
        None,
        True,
        "1",
        10**20,
        10**400,  # past a float: OverflowError before
        -(10**400),
        Fraction(10**400, 1),
        Decimal("sNaN"),  # Python's own conversion message before
        Decimal("1e400"),
    ],
)
def test_a_timeout_that_bounds_nothing_is_refused_before_any_call(timeout_s: Any) -> None:
    # NaN failed every call with a bare ValueError, infinity with a bare OverflowError, None waited for ever
    with pytest.raises(ValueError, match="timeout_s"):
        FeatureClient("http://127.0.0.1:9", timeout_s=timeout_s)


@pytest.mark.parametrize("timeout_s", [1e-9, 0.5, 1, 3600])
def test_a_positive_timeout_is_taken(timeout_s: float) -> None:
    with FeatureClient("http://127.0.0.1:9", timeout_s=timeout_s) as fs:
        assert fs._timeout_s == timeout_s


# --- shapes the model's decision rests on (a 2xx answer not of the API's shape is ``bad_answer``) ---------------


def _json_answering(body: Any) -> FeatureClient:
    answer = httpx.MockTransport(lambda _: httpx.Response(200, json=body))
    return FeatureClient(client=httpx.Client(transport=answer, base_url="http://api"))


POLICY = ModelPolicy("fraud", "7", required={"a": REFUSE_NOT_PRESENT}, fallback="rules")


@pytest.mark.parametrize("feature", [5, None, "present", {"value": 1}, {"status": "present"}, [1, "present"]])
def test_a_vector_whose_feature_is_not_of_the_api_shape_is_bad_answer_when_scored(feature: Any) -> None:
    # was a bare TypeError or KeyError from the policy's decision
    fs = _json_answering({"entity_type": "user", "entity_id": "u1", "features": {"a": feature}})
    with pytest.raises(RequestError) as refused:
        fs.score_vector(POLICY, "user", "u1")
    assert refused.value.code == "bad_answer"


def test_a_well_formed_vector_is_still_scored() -> None:
    feature = {"value": 3, "feature_timestamp": None, "age_seconds": 1.0, "version": 1, "status": "present"}
    decision = _json_answering({"features": {"a": feature}}).score_vector(POLICY, "user", "u1")
    assert decision.fallback is None and decision.values == {"a": 3}


# --- an answer with another number of results than was asked for --------------------------------------------------


def _batch_answer(ids: list[str]) -> dict[str, Any]:
    result = {"values": [1], "feature_timestamps": [None], "age_seconds": [1.0], "statuses": ["present"]}
    return {"names": ["a"], "versions": [1], "results": [{"entity_id": i, **result} for i in ids]}


@pytest.mark.parametrize("answered", [[], ["u1"], ["u1", "u2", "u3"]])
def test_a_batch_answer_of_another_length_than_the_request_is_bad_answer(answered: list[str]) -> None:
    # was returned as it came: score_vectors then gave fewer (or more) decisions than entities, none named missing
    fs = _json_answering(_batch_answer(answered))
    with pytest.raises(RequestError) as refused:
        fs.get_features_batch("user", ["u1", "u2"], ["a"])
    assert refused.value.code == "bad_answer" and f"{len(answered)} results for 2 entities" in str(refused.value)
    with pytest.raises(RequestError):
        fs.score_vectors(POLICY, "user", ["u1", "u2"])


def test_a_batch_answer_of_the_requests_length_is_read() -> None:
    rows = _json_answering(_batch_answer(["u1", "u2"])).get_features_batch("user", ["u1", "u2"], ["a"])
    assert [r["entity_id"] for r in rows] == ["u1", "u2"] and rows[0]["features"]["a"]["value"] == 1


@pytest.mark.parametrize("vectors", [[], [{"features": {}}, {"features": {}}]])
def test_a_vectors_answer_of_another_length_than_the_request_is_bad_answer(vectors: list[Any]) -> None:
    with pytest.raises(RequestError) as refused:
        _json_answering({"vectors": vectors}).get_vectors([{"entity_type": "user", "entity_id": "u1"}])
    assert refused.value.code == "bad_answer"


@pytest.mark.parametrize("timeout_s", [np.int64(2), np.float32(0.5), Fraction(1, 2), Decimal("1.5"), 3])
def test_a_timeout_of_any_real_number_type_is_taken(timeout_s: Any) -> None:
    # numpy's integers were refused as "not a number of seconds"
    with FeatureClient("http://127.0.0.1:9", timeout_s=timeout_s) as fs:
        assert fs._timeout_s == float(timeout_s) and type(fs._timeout_s) is float


@pytest.mark.parametrize("timeout_s", [np.int64(0), np.float64("nan"), Decimal("NaN"), True, np.bool_(True), "1", 1j])
def test_a_timeout_that_is_no_positive_real_number_is_refused(timeout_s: Any) -> None:
    with pytest.raises(ValueError, match="timeout_s must be a number of seconds"):
        FeatureClient("http://127.0.0.1:9", timeout_s=timeout_s)
