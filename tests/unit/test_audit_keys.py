"""Audit of composite entity keys against docs/design.md §5.8: one pair is one entity through the GET, a batch's
`entity_keys`, a `/v1/vectors` part and the offline join's label columns; the key bounds exactly at the limit
and one past, in every online form; keys only the escapes tell apart stay apart offline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from registry.core import entity_keys
from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from serving.offline.historical import get_historical_features
from serving.online.app import create_app
from sinks.cassandra.reader import StoredValue
from tests.unit.test_composite_keys import NOW, PairSource, T, pair_definition
from tests.unit.test_training_sets import Row, iceberg_table, write

PAIR = "user_merchant"
NAME = "pair_txn_count_1h"
LONGEST = ("u" * 256, "m" * 256)


@pytest.fixture
def pair(tmp_path: Path, make_definition: Callable[..., FeatureDefinition]) -> tuple[TestClient, PairSource]:
    store = DefinitionStore(tmp_path / "definitions.db")
    store.register(make_definition())
    store.register(pair_definition(make_definition))
    source = PairSource(
        {
            (PAIR, "u1|m7"): {(NAME, 1): StoredValue(3, T)},
            (PAIR, "m7|u1"): {(NAME, 1): StoredValue(99, T)},  # the fields the other way round: another pair
            (PAIR, entity_keys.encode(LONGEST)): {(NAME, 1): StoredValue(5, T)},
        }
    )
    app = create_app(LiveCatalog(store), source, clock_us=lambda: NOW * 1000)
    return TestClient(app, raise_server_exceptions=False), source


def _every_form(client: TestClient, user: Any, merchant: Any) -> list[Any]:
    """The pair asked for by the GET, a batch and a vectors part (values as given, in the other field order)."""
    key = {"merchant_id": merchant, "user_id": user}
    return [
        client.get(f"/v1/features/{PAIR}", params={"merchant_id": merchant, "user_id": user, "names": NAME}),
        client.post(f"/v1/features/{PAIR}/batch", json={"entity_keys": [key], "names": [NAME]}),
        client.post("/v1/vectors", json={"entities": [{"entity_type": PAIR, "entity_key": key, "names": [NAME]}]}),
    ]


@pytest.mark.parametrize(("user", "merchant", "value"), [("u1", "m7", 3), ("m7", "u1", 99), (*LONGEST, 5)])
def test_every_online_form_reads_the_same_entity(
    pair: tuple[TestClient, PairSource], user: str, merchant: str, value: int
) -> None:
    client, source = pair
    get, batch, vectors = _every_form(client, user, merchant)
    encoded = entity_keys.encode([user, merchant])
    for r in (get, batch, vectors):
        assert r.status_code == 200, r.text
    (result,) = batch.json()["results"]
    (part,) = vectors.json()["vectors"]
    assert get.json() == part
    for body in (get.json(), result):
        assert body["entity_id"] == encoded
        assert list(body["entity_key"].items()) == [("user_id", user), ("merchant_id", merchant)]  # key order
    assert get.json()["features"][NAME]["value"] == result["values"][0] == value
    assert source.reads == [(PAIR, encoded)] * 3


@pytest.mark.parametrize(
    ("user", "merchant"),
    [
        ("u" * 257, "m"),
        ("u", "m" * 257),
        ("", "m"),
        ("u", "m|7"),
        ("u\\1", "m"),
        ("é", "m"),
        ("u 1", "m"),
        ("u1\n", "m"),
    ],
)
def test_every_online_form_refuses_a_bad_key_value(
    pair: tuple[TestClient, PairSource], user: str, merchant: str
) -> None:
    client, source = pair
    for r in _every_form(client, user, merchant):
        assert (r.status_code, r.json()["error"]) == (400, "bad_entity_key"), r.text
    assert source.reads == []


@pytest.mark.parametrize("value", [None, 7, ["u1"], {"v": "u1"}])
def test_a_key_value_that_is_not_a_string_is_refused_in_bodies(pair: tuple[TestClient, PairSource], value: Any) -> None:
    client, source = pair
    key = {"user_id": value, "merchant_id": "m7"}
    for r in (
        client.post(f"/v1/features/{PAIR}/batch", json={"entity_keys": [key], "names": [NAME]}),
        client.post("/v1/vectors", json={"entities": [{"entity_type": PAIR, "entity_key": key, "names": [NAME]}]}),
    ):
        assert (r.status_code, r.json()["error"]) == (400, "bad_entity_key"), r.text
    assert source.reads == []


def test_entity_keys_take_1000_keys_and_refuse_1001(pair: tuple[TestClient, PairSource]) -> None:
    client, _ = pair
    keys = [{"user_id": f"u{i}", "merchant_id": "m7"} for i in range(1001)]
    r = client.post(f"/v1/features/{PAIR}/batch", json={"entity_keys": keys[:1000], "names": [NAME]})
    assert r.status_code == 200 and len(r.json()["results"]) == 1000
    r = client.post(f"/v1/features/{PAIR}/batch", json={"entity_keys": keys, "names": [NAME]})
    assert (r.status_code, r.json()["error"]) == (400, "bad_entity_ids")


def test_an_unknown_entity_type_is_404_before_the_body(pair: tuple[TestClient, PairSource]) -> None:
    client, source = pair
    for raw in (b"not json", b'{"entity_keys": 5, "x": 1}', b"[]"):
        r = client.post("/v1/features/nobody/batch", content=raw)
        assert (r.status_code, r.json()["error"]) == (404, "unknown_entity_type"), raw
    r = client.post(
        "/v1/vectors",
        json={
            "entities": [
                {"entity_type": "nobody", "entity_id": "x", "names": ["x"]},
                {"entity_type": PAIR, "entity_key": {"user_id": "u1"}, "names": [NAME]},
            ]
        },
    )
    assert (r.status_code, r.json()["error"]) == (404, "unknown_entity_type")  # the first bad part's, as the GET's
    assert not r.json()["message"].startswith("entities[")
    assert source.reads == []


def test_the_offline_join_reads_the_entity_the_api_serves(
    tmp_path: Path, make_definition: Callable[..., FeatureDefinition]
) -> None:
    """Label columns are encoded as the API and the job encode: keys only the escapes tell apart stay apart,
    integer columns give their text, a null in either column matches nothing, the label columns stay as given."""
    d = pair_definition(make_definition)
    table = iceberg_table(tmp_path)
    pairs = [("u1", "7"), ("a|b", "c"), ("a", "b|c"), ("a\\", "|"), ("é", "ü"), ("u1", "m7"), ("m7", "u1")]
    write(table, [[Row(d, entity_keys.encode(p), i + 1, T, T + 1) for i, p in enumerate(pairs)]])
    users = [u for u, _ in pairs] + [None, "u1"]
    merchants = [m for _, m in pairs] + ["m7", None]
    labels = pa.table(
        {
            "user_id": pa.array(users, pa.large_string()),
            "merchant_id": pa.array(merchants),
            "event_timestamp": pa.array([NOW] * len(users), pa.timestamp("ms", tz="UTC")),
        }
    )
    join = lambda labels: get_historical_features(  # noqa: E731
        table, FeatureCatalog([d]), labels, [NAME], entity_type=PAIR, entity_column="user_id,merchant_id"
    )
    got = join(labels)
    assert got.column(NAME).to_pylist() == [1, 2, 3, 4, 5, 6, 7, None, None]
    assert got.select(["user_id", "merchant_id", "event_timestamp"]).equals(labels)
    integers = pa.table(
        {
            "user_id": ["u1"],
            "merchant_id": pa.array([7], pa.int16()),
            "event_timestamp": pa.array([NOW], pa.timestamp("ms", tz="UTC")),
        }
    )
    assert join(integers).column(NAME).to_pylist() == [1]
    assert join(integers).schema.field("merchant_id").type == pa.int16()
