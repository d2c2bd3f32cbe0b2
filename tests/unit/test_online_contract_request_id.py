"""README.md "Online serving": ``x-request-id`` is logged with a sampled vector. It is taken when it is 1-128
visible ASCII characters (``!`` to ``~``) given once; anything else (empty, longer, a space, a control or
non-ASCII byte, two of them) is not logged: a fresh id is, and the read is served as ever (the serving log never
fails a read)."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from registry.live import LiveCatalog
from serving.online.client import FeatureClient
from serving.online.serving_log import request_context
from tests.unit.test_app import live  # noqa: F401 - a fixture
from tests.unit.test_serving_log import ListSink, _client

_UUID_LEN = 36


@pytest.mark.parametrize("given", ["r", "r-1", "A" * 128, "!~{}[]:;@/=", "0f8fad5b-d9cb-469f-a165-70867728950e"])
def test_a_well_formed_request_id_is_logged_as_given(given: str) -> None:
    assert request_context([(b"x-request-id", given.encode())], None)["request_id"] == given


@pytest.mark.parametrize(
    "given",
    [b"", b"A" * 129, b"A" * 10_000, b"a b", b"a\tb", b"a\x7fb", b"caf\xc3\xa9", b"\xff", b"a\x01b"],
)
def test_a_malformed_request_id_is_replaced_by_a_fresh_one(given: bytes) -> None:
    request_id = request_context([(b"x-request-id", given)], None)["request_id"]
    assert request_id != given.decode("latin-1") and len(request_id) == _UUID_LEN


def test_a_request_id_given_twice_is_replaced_not_one_picked() -> None:
    context = request_context([(b"x-request-id", b"first"), (b"x-request-id", b"second")], None)
    assert context["request_id"] not in ("first", "second") and len(context["request_id"]) == _UUID_LEN


def test_a_read_with_a_malformed_request_id_is_served_and_logged_with_a_fresh_id(live: LiveCatalog) -> None:  # noqa: F811
    sink = ListSink()
    client: TestClient = _client(live, sink, 1.0)
    r = client.get("/v1/features/user/u1?names=txn_count_1h", headers={"x-request-id": "x" * 5000})
    assert r.status_code == 200, r.text
    ((_, record),) = sink.records
    assert len(record["request_id"]) == _UUID_LEN


@pytest.mark.parametrize("given", ["", "A" * 129, "a b", "caf\u00e9", "a\nb"])
def test_the_client_refuses_a_request_id_the_log_would_replace_before_sending(given: str) -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"entity_id": "u1", "features": {}})

    fs = FeatureClient(client=httpx.Client(transport=httpx.MockTransport(answer), base_url="http://api"))
    with pytest.raises(ValueError, match="request_id must be 1-128 visible ASCII characters"):
        fs.get_features("user", "u1", ["txn_count_1h"], request_id=given)
    assert sent == []
    fs.get_features("user", "u1", ["txn_count_1h"], request_id="r-" + "A" * 126)
    assert sent[0].headers["x-request-id"] == "r-" + "A" * 126


@pytest.mark.parametrize(
    ("raw", "logged"),
    [
        ("caf\u00e9 \u00fcber".encode(), "caf\u00e9 \u00fcber"),  # UTF-8, as clients send it: not "cafÃ©"
        (b"caf\xe9", "caf\u00e9"),  # not UTF-8: read as Latin-1, byte for byte
        ("\u00e9".encode() * 300, "\u00e9" * 256),  # cut to 256 characters, not bytes
    ],
)
def test_the_other_logged_headers_keep_their_text(raw: bytes, logged: str) -> None:
    context = request_context([(b"x-caller", raw), (b"x-model-name", raw)], None)
    assert context["caller"] == context["model_name"] == logged
