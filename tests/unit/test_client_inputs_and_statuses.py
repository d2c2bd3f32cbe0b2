"""The Python client against README "Online serving": ``StoreUnavailableError`` for any 502, 503 or 504 whatever the
body's code (a gateway may pass another server's error body on), a request httpx cannot build as a URL is a named
``RequestError`` (it raised ``httpx.InvalidURL``, not an ``HTTPError``), and arguments of the wrong type are a
``TypeError`` before anything is sent (an id of ``123`` raised ``AttributeError``; a bare string of names or ids was
sent as its characters; a name holding ``,`` was read by the API as two names)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from registry.core.errors import (
    OverloadedError,
    RequestError,
    StoreUnavailableError,
    UnknownFeatureError,
)
from serving.online.client import MAX_URL_CHARS, FeatureClient


@contextmanager
def _client(answer: Callable[[httpx.Request], httpx.Response]) -> Iterator[tuple[FeatureClient, list[httpx.Request]]]:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answer(request)

    http = httpx.Client(base_url="http://api", transport=httpx.MockTransport(handler))
    with FeatureClient(client=http) as fs:
        yield fs, sent


_VECTOR = {"entity_type": "user", "entity_id": "u1", "served_at": "x", "features": {}}
_CODES = ["unknown_feature", "unknown_feature_service", "unauthenticated", "forbidden", "version_conflict", "bad_names"]


@pytest.mark.parametrize("status", [502, 503, 504])
@pytest.mark.parametrize("code", _CODES)
def test_a_502_503_or_504_is_store_unavailable_whatever_code_its_body_holds(status: int, code: str) -> None:
    body = {"error": code, "message": "passed on", "names": ["f"], "entity_type": "user"}
    with (
        _client(lambda _: httpx.Response(status, json=body)) as (fs, _),
        pytest.raises(StoreUnavailableError) as caught,
    ):
        fs.get_features("user", "u1", ["f"])
    assert type(caught.value) is StoreUnavailableError


def test_only_a_503_overloaded_is_overloaded() -> None:
    overloaded = {"error": "overloaded", "message": "shed"}
    with (
        _client(lambda _: httpx.Response(503, json=overloaded, headers={"retry-after": "2"})) as (fs, _),
        pytest.raises(OverloadedError) as caught,
    ):
        fs.get_features("user", "u1", ["f"])
    assert caught.value.retry_after_s == 2
    with (
        _client(lambda _: httpx.Response(502, json=overloaded)) as (fs, _),
        pytest.raises(StoreUnavailableError) as unavailable,
    ):
        fs.get_features("user", "u1", ["f"])
    assert type(unavailable.value) is StoreUnavailableError


def test_a_404_still_names_the_unknown_features() -> None:
    body = {"error": "unknown_feature", "message": "no", "names": ["f"], "entity_type": "user"}
    with _client(lambda _: httpx.Response(404, json=body)) as (fs, _), pytest.raises(UnknownFeatureError) as caught:
        fs.get_features("user", "u1", ["f"])
    assert caught.value.names == ["f"]


@pytest.mark.parametrize(
    "read",
    [
        lambda fs: fs.get_features("user", "u1", [f"f{i:03d}_" + "x" * 58 for i in range(1_000)]),  # 64 KB of names
        lambda fs: fs.get_features("user", "u" * 70_000, ["f"]),
        lambda fs: fs.get_features("user", "u1", feature_service="s" * 70_000),
    ],
)
def test_a_url_httpx_will_not_build_is_a_request_error_and_nothing_is_sent(read: Callable[[Any], Any]) -> None:
    with (
        _client(lambda _: httpx.Response(200, json=_VECTOR)) as (fs, sent),
        pytest.raises(RequestError, match="get_features_batch or get_vectors") as caught,
    ):
        read(fs)
    assert caught.value.code == "bad_request"
    assert sent == []


def test_the_same_long_names_are_read_in_a_batch_body() -> None:
    names = [f"f{i:03d}_" + "x" * 58 for i in range(1_000)]
    answer: dict[str, Any] = {
        "names": [],
        "versions": [],
        "results": [{"entity_id": "u1", **{key: [] for key in _COLUMNS}}],
    }
    with _client(lambda _: httpx.Response(200, json=answer)) as (fs, sent):
        assert fs.get_features_batch("user", ["u1"], names) == [{"entity_id": "u1", "features": {}}]
    assert len(sent) == 1


_COLUMNS = ("values", "feature_timestamps", "age_seconds", "statuses")


@pytest.mark.parametrize("extra", [0, 1, 43])
def test_a_url_past_65536_characters_is_refused_unsent_and_one_at_the_limit_is_sent(extra: int) -> None:
    """README: a URL past its 65,536 characters is ``bad_request`` with nothing sent. httpx bounds the query alone,
    so URLs of 65,537 to 65,579 characters here (base, path and query) were sent."""
    url_chars = MAX_URL_CHARS + extra
    with _client(lambda _: httpx.Response(200, json=_VECTOR)) as (fs, sent):
        prefix = len("http://api/v1/features/user/u1?names=")
        if extra == 0:
            fs.get_features("user", "u1", ["n" * (url_chars - prefix)])
            assert len(str(sent[0].url)) == MAX_URL_CHARS
        else:
            with pytest.raises(RequestError, match="the request cannot be sent") as caught:
                fs.get_features("user", "u1", ["n" * (url_chars - prefix)])
            assert caught.value.code == "bad_request"
            assert sent == []


@pytest.mark.parametrize(
    "base_url",
    [
        "http://[::1",
        "",
        "127.0.0.1:8000",
        "http//x",
        "not a url",
        "http://a b",
        " http://h",
        "ftp://h",
        "http://",
        "http://h:99999",
        "http://h:0",
        "http://h/?q=1",
        "http://h/#top",
        "http://127.0.0.1:8000?",  # a bare `?` was taken, and every request then went to `/`, the path lost
        "http://h/base#",
        "http://h:",
        "http://h:+80",
        "http://h:\u0663\u0664\u0662\u0660\u0667",  # Arabic-Indic digits
    ],
)
def test_a_base_url_that_is_not_a_url_is_a_value_error(base_url: str) -> None:
    """README: a ``base_url`` that is not a URL is a ``ValueError``, before anything is sent; all but the first were
    taken, and every call then failed as if the API were unreachable."""
    with pytest.raises(ValueError, match="base_url must be a URL"):
        FeatureClient(base_url)


@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1:8000", "https://features.example/api", "HTTP://H", "http://[::1]:8000"],
)
def test_http_and_https_urls_with_a_host_are_base_urls(base_url: str) -> None:
    with FeatureClient(base_url) as fs:
        assert str(fs._http.base_url).rstrip("/").lower() == base_url.rstrip("/").lower()


def test_a_name_holding_a_comma_is_unknown_without_asking() -> None:
    """A GET sends names comma-separated: ``a,b`` was read as the two features ``a`` and ``b`` and served."""
    with (
        _client(lambda _: httpx.Response(200, json=_VECTOR)) as (fs, sent),
        pytest.raises(UnknownFeatureError) as caught,
    ):
        fs.get_features("user", "u1", ["txn_count_1h,txn_amount_sum_1h", "f"])
    assert caught.value.names == ["txn_count_1h,txn_amount_sum_1h"]
    assert sent == []


@pytest.mark.parametrize(
    "read",
    [
        lambda fs: fs.get_features("user", "u1", "txn_count_1h"),
        lambda fs: fs.get_features("user", "u1", [None]),
        lambda fs: fs.get_features("user", 123, ["f"]),
        lambda fs: fs.get_features("user", 0, ["f"]),
        lambda fs: fs.get_features(7, "u1", ["f"]),
        lambda fs: fs.get_features("user", {"user_id": 5.5}, ["f"]),
        lambda fs: fs.get_features("user", "u1", ["f"], request_id=5),
        lambda fs: fs.get_features("user", "u1", ["f"], model=("m", 1)),
        lambda fs: fs.get_features("user", "u1", ["f"], model="fraud"),  # was sent as model f, version r
        lambda fs: fs.get_features("user", "u1", ["f"], model=("m", "1", "x")),  # the third was dropped
        lambda fs: fs.get_features_batch("user", ["u1"], ["f"], model="fraud"),
        lambda fs: fs.get_features_batch("user", "abc", ["f"]),
        lambda fs: fs.get_features_batch("user", ["u1"], "f"),
    ],
)
def test_an_argument_of_the_wrong_type_is_a_type_error_before_sending(read: Callable[[Any], Any]) -> None:
    with (
        _client(lambda _: httpx.Response(200, json=_VECTOR)) as (fs, sent),
        pytest.raises(TypeError, match=r"must be|not one string"),
    ):
        read(fs)
    assert sent == []


def test_a_caller_that_is_not_a_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="caller"):
        FeatureClient("http://api", caller=5)  # type: ignore[arg-type]


def test_ids_given_as_a_generator_are_sent_once_each() -> None:
    answer: dict[str, Any] = {
        "names": [],
        "versions": [],
        "results": [{"entity_id": i, **{key: [] for key in _COLUMNS}} for i in ("u1", "u2")],
    }
    with _client(lambda _: httpx.Response(200, json=answer)) as (fs, sent):
        rows = fs.get_features_batch("user", (i for i in ("u1", "u2")), ["f"])  # type: ignore[arg-type]
    assert [r["entity_id"] for r in rows] == ["u1", "u2"]
    assert b'"entity_ids":["u1","u2"]' in sent[0].content.replace(b" ", b"")


def test_an_integer_key_field_is_sent_in_decimal() -> None:
    with _client(lambda _: httpx.Response(200, json=_VECTOR)) as (fs, sent):
        fs.get_features("user_merchant", {"user_id": "u1", "merchant_id": 7}, ["f"])
    assert sent[0].url.params["merchant_id"] == "7"


def test_a_key_member_named_like_a_parameter_is_sent_beside_it_not_over_it() -> None:
    """README: a query parameter given more than once is a 400, never one of its values picked. A composite key's
    mapping holding `names` replaced the names asked for, and the API served the other feature with a 200; sent
    beside them, the API sees `names` twice and refuses."""
    with _client(lambda _: httpx.Response(200, json=_VECTOR)) as (fs, sent):
        fs.get_features("user_merchant", {"user_id": "u1", "merchant_id": "m7", "names": "pair_sum"}, ["pair_cnt"])
    assert sorted(sent[0].url.params.multi_items()) == [
        ("merchant_id", "m7"),
        ("names", "pair_cnt"),
        ("names", "pair_sum"),
        ("user_id", "u1"),
    ]
