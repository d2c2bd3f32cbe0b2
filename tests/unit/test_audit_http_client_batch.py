"""README "Online serving", the Python client: "arguments of the wrong type (an id or name that is not a string, a
composite key's value that is neither a string nor an integer, ...) are a ``TypeError`` ... before anything is sent".
``get_features`` held to it, ``get_features_batch`` (and so ``score_vectors``) did not: an id of ``123`` or ``None``
and a key value of ``7.5`` were sent as JSON and came back as the API's 400 (``RequestError``), and a key value of
``7``, which ``get_features`` sends as ``"7"`` and the API serves, was sent as the JSON integer ``7``, which the
API refuses (``bad_entity_key``): the same key read one way and refused the other."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import pytest

from registry.core.errors import RequestError
from serving.online.client import FeatureClient
from tests.unit.test_composite_keys import pair_client  # noqa: F401  (a fixture)


@contextmanager
def _client(answer: Callable[[httpx.Request], httpx.Response]) -> Iterator[tuple[FeatureClient, list[httpx.Request]]]:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answer(request)

    with FeatureClient(client=httpx.Client(base_url="http://api", transport=httpx.MockTransport(handler))) as fs:
        yield fs, sent


_EMPTY = {"entity_type": "user", "served_at": "x", "names": [], "versions": [], "results": []}


@pytest.mark.parametrize(
    "ids",
    [
        ["u1", 123],
        [None],
        [["u1"]],
        ["u1", {"user_id": "u1", "merchant_id": "m7"}],  # a key among ids
        [{"user_id": "u1", "merchant_id": "m7"}, "u1"],  # an id among keys
        [{"user_id": "u1", "merchant_id": 7.5}],
        [{"user_id": "u1", "merchant_id": None}],
        [{"user_id": "u1", "merchant_id": True}],
        [{"user_id": "u1", 7: "m7"}],
    ],
)
def test_a_batch_id_or_key_value_of_the_wrong_type_is_a_type_error_before_sending(ids: list[Any]) -> None:
    with _client(lambda _: httpx.Response(200, json=_EMPTY)) as (fs, sent), pytest.raises(TypeError, match="must be"):
        fs.get_features_batch("user", ids, ["f"])
    assert sent == []


def test_an_integer_key_value_is_sent_in_decimal_as_a_get_sends_it() -> None:
    with (
        _client(lambda _: httpx.Response(200, json=_EMPTY)) as (fs, sent),
        pytest.raises(RequestError, match="0 results"),
    ):
        key: dict[str, str | int] = {"user_id": "u1", "merchant_id": 7}
        fs.get_features_batch("user_merchant", [key], ["f"])  # 0 results for 1 id: bad_answer
    assert orjson.loads(sent[0].content)["entity_keys"] == [{"user_id": "u1", "merchant_id": "7"}]


def test_the_same_composite_key_is_served_by_a_get_and_by_a_batch(
    pair_client: tuple[Any, Any],  # noqa: F811
) -> None:
    api, _ = pair_client
    fs = FeatureClient(client=api)
    key: dict[str, str | int] = {"user_id": "u1", "merchant_id": 7}
    one = fs.get_features("user_merchant", key, ["pair_txn_count_1h"])
    (batch,) = fs.get_features_batch("user_merchant", [key], ["pair_txn_count_1h"])
    assert one["entity_key"] == batch["entity_key"] == {"user_id": "u1", "merchant_id": "7"}
    assert batch["features"]["pair_txn_count_1h"]["status"] == one["features"]["pair_txn_count_1h"]["status"]


# --- get_vectors: its parts held to the same rule ---------------------------------------------------------------

_PART: dict[str, Any] = {"entity_type": "user", "entity_id": "u1", "names": ["f"]}


@pytest.mark.parametrize(
    "entities",
    [
        "abc",  # one string: was sent as the parts "a", "b", "c" (a ValueError from dict())
        ["u1"],
        [{**_PART, "entity_id": 123}],
        [{**_PART, "entity_id": None}],
        [{**_PART, "names": "f"}],  # names as one string
        [{**_PART, "names": ["f", 5]}],
        [{"entity_type": "user_merchant", "entity_key": {"user_id": "u1", "merchant_id": 7.5}, "names": ["f"]}],
        [{"entity_type": "user_merchant", "entity_key": ["u1", "m7"], "names": ["f"]}],
    ],
)
def test_a_vector_part_of_the_wrong_type_is_a_type_error_before_sending(entities: Any) -> None:
    with _client(lambda _: httpx.Response(200, json={"vectors": []})) as (fs, sent), pytest.raises(TypeError):
        fs.get_vectors(entities)
    assert sent == []


def test_a_part_keeps_what_it_gives_and_an_integer_key_value_is_sent_in_decimal(
    pair_client: tuple[Any, Any],  # noqa: F811
) -> None:
    api, _ = pair_client
    fs = FeatureClient(client=api)
    key: dict[str, str | int] = {"user_id": "u1", "merchant_id": 7}
    one = fs.get_features("user_merchant", key, ["pair_txn_count_1h"])
    (part,) = fs.get_vectors([{"entity_type": "user_merchant", "entity_key": key, "names": ["pair_txn_count_1h"]}])
    assert part["entity_key"] == one["entity_key"] == {"user_id": "u1", "merchant_id": "7"}
    assert part["features"] == one["features"]
