"""Audit of the Python client (serving/online/client.py's docstrings; README "Online serving"; docs/design.md §3.3
and §6): every failure is one of the project's named errors (one root, ``FeatureStoreError``), the documented one
per status, and what the client sends is what it was given.

Found and fixed here:
- the entity type went into the path unencoded: ``us#er`` asked for entity type ``us`` (the rest became a URL
  fragment), ``us?er`` for ``us`` with a query, ``.`` was dropped as a dot segment; it is now encoded as the id is.
- a non-ASCII ``caller`` or model name raised a bare ``UnicodeEncodeError`` on every call (httpx encodes str
  headers as ASCII), although the serving log reads header text as UTF-8; it is now sent UTF-8.
- a ``caller`` or token holding a line break was reported as ``StoreUnavailableError: feature API unreachable``
  (h11 refuses the header): a scorer would take its fallback for good on its own typo. Now a ``ValueError`` naming
  the argument, before anything is sent, as a malformed ``request_id`` is.
- an answer httpx cannot decode (a ``Content-Encoding`` its body does not have) escaped as ``httpx.DecodingError``,
  outside the project's exception tree; it is now ``StoreUnavailableError``.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from registry.core.errors import (
    FeatureStoreError,
    ForbiddenError,
    OverloadedError,
    RequestError,
    StoreUnavailableError,
    UnauthenticatedError,
    UnknownFeatureError,
    UnknownFeatureServiceError,
)
from registry.definition_store import DefinitionConflictError
from registry.live import LiveCatalog
from serving.online.app import create_app
from serving.online.client import FeatureClient
from tests.unit.test_request_features import NOW, Source, store_with, vector


def _recording(caller: str = "scorer") -> tuple[FeatureClient, list[httpx.Request]]:
    """A client whose transport records each request and answers an empty vector (per id, for a batch)."""
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.method == "POST":
            ids = json.loads(request.content).get("entity_ids", [])
            empty: dict[str, list[Any]] = {"values": [], "feature_timestamps": [], "age_seconds": [], "statuses": []}
            results = [{"entity_id": i, **empty} for i in ids]
            return httpx.Response(200, json={"names": [], "versions": [], "results": results})
        return httpx.Response(200, json={"entity_type": "x", "entity_id": "y", "features": {}})

    client = httpx.Client(transport=httpx.MockTransport(answer), base_url="http://api")
    return FeatureClient(client=client, caller=caller, token="fs_t_s"), sent


@pytest.fixture
def api(tmp_path: Path, shipped_catalog: FeatureCatalog) -> FeatureClient:
    store = store_with(tmp_path / "d.db", shipped_catalog)
    app = create_app(LiveCatalog(store), Source({"u1": vector(4, 10.0)}), clock_us=lambda: NOW * 1000)
    return FeatureClient(client=TestClient(app, raise_server_exceptions=False, follow_redirects=False))


# --- what is sent ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entity_type", "segment"), [("us#er", "us%23er"), ("us?er", "us%3Fer"), ("us er", "us%20er"), (".", "%2E")]
)
def test_the_entity_type_is_sent_as_one_path_segment(entity_type: str, segment: str) -> None:
    fs, sent = _recording()
    fs.get_features(entity_type, "u1", ["a"])
    fs.get_features(entity_type, {"k": "v"}, ["a"])
    fs.get_features_batch(entity_type, ["u1"], ["a"])
    assert [r.url.raw_path.split(b"?")[0].decode() for r in sent] == [
        f"/v1/features/{segment}/u1",
        f"/v1/features/{segment}",
        f"/v1/features/{segment}/batch",
    ]


@pytest.mark.parametrize("entity_type", ["us#er", "us?er", "."])
def test_an_unknown_entity_type_is_named_as_given(api: FeatureClient, entity_type: str) -> None:
    with pytest.raises(RequestError) as refused:
        api.get_features(entity_type, "u1", ["txn_count_1h"])
    assert refused.value.code == "unknown_entity_type"
    assert repr(entity_type) in str(refused.value)


@pytest.mark.parametrize(
    ("entity_id", "segment"), [("a/b", "a%2Fb"), ("a%b", "a%25b"), ("a b", "a%20b"), ("ü", "%C3%BC")]
)
def test_an_entity_id_is_percent_encoded(entity_id: str, segment: str) -> None:
    fs, sent = _recording()
    fs.get_features("user", entity_id, ["a"])
    assert sent[0].url.raw_path.split(b"?")[0].decode() == f"/v1/features/user/{segment}"


def test_non_ascii_caller_and_model_travel_as_utf8() -> None:
    fs, sent = _recording("日本-équipe")
    fs.get_features("user", "u1", ["a"], model=("modèle", "v1"))
    headers = dict(sent[0].headers.raw)
    assert headers[b"x-caller"] == "日本-équipe".encode()
    assert headers[b"x-model-name"] == "modèle".encode()
    assert headers[b"authorization"] == b"Bearer fs_t_s"


@pytest.mark.parametrize(
    "kwargs", [{"caller": "a\nb"}, {"caller": " a"}, {"caller": "a\x00"}, {"token": "t\r\nx-evil: 1"}]
)
def test_a_header_http_cannot_carry_is_a_value_error_at_construction(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        FeatureClient("http://127.0.0.1:1", **kwargs)


@pytest.mark.parametrize("model", [("m\n", "1"), ("m", "1\r"), ("m", "1 ")])
def test_a_model_header_http_cannot_carry_is_a_value_error_before_sending(model: tuple[str, str]) -> None:
    fs, sent = _recording()
    with pytest.raises(ValueError, match="model"):
        fs.get_features("user", "u1", ["a"], model=model)
    assert sent == []


# --- what is raised ----------------------------------------------------------------------------------


def _answering(status: int, body: Any = None, **kwargs: Any) -> FeatureClient:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, **kwargs) if body is not None else httpx.Response(status, **kwargs)

    return FeatureClient(client=httpx.Client(transport=httpx.MockTransport(answer), base_url="http://api"))


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (400, {"error": "bad_names", "message": "m"}, RequestError, "bad_names"),
        (401, {"error": "unauthenticated", "message": "m"}, UnauthenticatedError, None),
        (403, {"error": "forbidden", "message": "m", "names": ["a"]}, ForbiddenError, None),
        (
            404,
            {"error": "unknown_feature", "message": "m", "entity_type": "user", "names": ["b", "a"]},
            UnknownFeatureError,
            None,
        ),
        (
            404,
            {"error": "unknown_feature_service", "message": "m", "feature_service": "s@1"},
            UnknownFeatureServiceError,
            None,
        ),
        (404, {"error": "unknown_entity_type", "message": "m"}, RequestError, "unknown_entity_type"),
        (409, {"error": "version_conflict", "message": "m"}, DefinitionConflictError, None),
        (413, {"error": "body_too_large", "message": "m"}, RequestError, "body_too_large"),
        (500, {"error": "internal_error", "message": "m", "request_id": "r"}, RequestError, "internal_error"),
        (503, {"error": "store_unavailable", "message": "m"}, StoreUnavailableError, None),
        (503, {"error": "overloaded", "message": "m"}, OverloadedError, None),
        # a gateway in front of the API that cannot reach it: the API is unavailable, as for a 503 (was http_502)
        (502, "<html>bad gateway</html>", StoreUnavailableError, None),
        (504, "<html>gateway timeout</html>", StoreUnavailableError, None),
        (504, {"message": "upstream timed out"}, StoreUnavailableError, None),
    ],
)
def test_each_status_raises_its_documented_error(
    status: int, body: Any, error: type[Exception], code: str | None
) -> None:
    fs = _answering(status, body) if isinstance(body, dict) else _answering(status, content=body.encode())
    with pytest.raises(error) as raised:
        fs.get_features("user", "u1", ["a"])
    assert isinstance(raised.value, FeatureStoreError)
    if code is not None:
        assert getattr(raised.value, "code") == code  # noqa: B009 - not every error has it
    if isinstance(raised.value, UnknownFeatureError):
        assert (raised.value.entity_type, raised.value.names) == ("user", ["a", "b"])
    if isinstance(raised.value, ForbiddenError):
        assert raised.value.names == ["a"]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("1", 1),
        (" 30 ", 30),
        ("0", 0),
        (None, None),
        ("soon", None),
        ("-1", None),
        ("12345678901", 12_345_678_901),
        ("9" * 5000, Decimal("9" * 5000)),  # an exact int, compared with an exact Decimal
    ],
)
def test_a_shed_request_is_overloaded_with_its_retry_after(header: str | None, seconds: int | Decimal | None) -> None:
    headers = {"retry-after": header} if header is not None else {}
    fs = _answering(503, {"error": "overloaded", "message": "m"}, headers=headers)
    with pytest.raises(OverloadedError) as raised:
        fs.get_features("user", "u1", ["a"])
    assert isinstance(raised.value, StoreUnavailableError)  # code catching the outage still catches it
    assert raised.value.retry_after_s == seconds


def test_an_outage_is_not_overloaded() -> None:
    for body in ({"error": "store_unavailable", "message": "m"}, {"error": "overloaded", "message": "m"}):
        status = 503 if body["error"] == "store_unavailable" else 500  # overloaded only with its own status
        with pytest.raises(FeatureStoreError) as raised:
            _answering(status, body, headers={"retry-after": "1"}).get_features("user", "u1", ["a"])
        assert not isinstance(raised.value, OverloadedError)


def test_an_answer_that_cannot_be_decoded_is_store_unavailable() -> None:
    fs = _answering(200, content=b"not gzip", headers={"content-encoding": "gzip", "content-type": "application/json"})
    with pytest.raises(StoreUnavailableError, match="DecodingError"):
        fs.get_features("user", "u1", ["a"])


def test_a_stopped_api_fails_at_once_and_a_hung_one_at_the_timeout(closed_port: int, silent_port: int) -> None:
    with pytest.raises(StoreUnavailableError), FeatureClient(f"http://127.0.0.1:{closed_port}", timeout_s=5) as fs:
        started = time.monotonic()  # the call alone, not the client's making (its SSL context)
        fs.get_features("user", "u1")
    assert time.monotonic() - started < 2.5  # at once: not the 5 s timeout (slack for a loaded machine)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError), FeatureClient(f"http://127.0.0.1:{silent_port}", timeout_s=0.3) as fs:
        fs.get_features_batch("user", ["u1"])
    assert 0.25 < time.monotonic() - started < 1.5


def test_the_statuses_and_the_batch_shape_come_back_as_served(api: FeatureClient) -> None:
    one = api.get_features("user", "u1", ["txn_count_1h", "txn_amount_sum_1h"])
    assert set(one) >= {"entity_type", "entity_id", "served_at", "features"}
    assert set(one["features"]["txn_count_1h"]) == {"value", "feature_timestamp", "age_seconds", "version", "status"}
    batch = api.get_features_batch("user", ["u1", "u2"], ["txn_count_1h"])
    assert [r["entity_id"] for r in batch] == ["u1", "u2"]
    assert batch[0]["features"]["txn_count_1h"] == one["features"]["txn_count_1h"]
    assert batch[1]["features"]["txn_count_1h"]["status"] == "missing"


def test_an_unreachable_api_is_named_by_its_address() -> None:
    """A refused connection names where the client looked (its base URL), not only the socket's error."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on once this closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = FeatureClient(base_url=f"http://127.0.0.1:{port}")
    with client, pytest.raises(StoreUnavailableError) as raised:
        client.get_features("user", "u1", ["txn_count_1h"])
    assert str(raised.value).startswith("feature API unreachable: ConnectError: ")
    assert str(raised.value).endswith(f"(at http://127.0.0.1:{port})")
