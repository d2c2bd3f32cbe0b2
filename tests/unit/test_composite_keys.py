"""Composite entity keys: the encoding rule, the definition model, the catalog and the store's checks,
the job's SQL, the point-in-time join's label columns and the online API's key forms (#17 item 3)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from jobs.sql import aggregate_sql, window_groups
from registry.core import entity_keys
from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition, check_entity_keys
from registry.core.errors import DefinitionError
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from serving.online.app import create_app
from sinks.cassandra.reader import StoredValue

T = 1_700_000_100_000  # a 5-minute window end
NOW = T + 90_000
PAIR = ["user_id", "merchant_id"]
DAY = {"kind": "tumbling", "size": "1d"}  # another window: another stream, so only the key can conflict


def pair_definition(make: Callable[..., FeatureDefinition], **overrides: Any) -> FeatureDefinition:
    fields: dict[str, Any] = {
        "name": "pair_txn_count_1h",
        "entity": "user_merchant",
        "source.entity_key": PAIR,
        **overrides,
    }
    return make(**fields)


# --- the encoding ------------------------------------------------------------------------------------


def test_single_key_is_itself() -> None:
    assert entity_keys.encode(["u|1"]) == "u|1"
    assert entity_keys.decode("u|1", 1) == ("u|1",)


def test_composite_key_escapes_so_no_two_keys_share_an_id() -> None:
    assert entity_keys.encode(["u1", "m7"]) == "u1|m7"
    assert entity_keys.encode(["a|b", "c"]) == "a\\|b|c"
    assert entity_keys.encode(["a", "b|c"]) == "a|b\\|c"
    assert entity_keys.encode(["a\\", "b"]) == "a\\\\|b"
    assert entity_keys.encode(["a", "\\|b"]) == "a|\\\\\\|b"
    assert entity_keys.encode(["", ""]) == "|"


@settings(deadline=None)  # the first example pays Arrow's compute import; a loaded machine is slow
@given(st.lists(st.text(alphabet="ab|\\", max_size=6), min_size=2, max_size=4))
def test_decode_inverts_encode(values: list[str]) -> None:
    assert entity_keys.decode(entity_keys.encode(values), len(values)) == tuple(values)


@settings(deadline=None)  # the first example pays Arrow's compute import; a loaded machine is slow
@given(
    st.lists(st.text(alphabet="ab|\\", max_size=4), min_size=2, max_size=2),
    st.lists(st.text(alphabet="ab|\\", max_size=4), min_size=2, max_size=2),
)
def test_encoding_is_one_to_one(a: list[str], b: list[str]) -> None:
    assert (entity_keys.encode(a) == entity_keys.encode(b)) == (a == b)


def test_decode_refuses_what_encode_cannot_give() -> None:
    with pytest.raises(ValueError, match="lone"):
        entity_keys.decode("a\\b|c", 2)
    with pytest.raises(ValueError, match="encodes 3"):
        entity_keys.decode("a|b|c", 2)


@settings(deadline=None)  # the first example pays Arrow's compute import; a loaded machine is slow
@given(
    st.lists(
        st.tuples(st.none() | st.text(alphabet="x|\\é", max_size=4), st.none() | st.integers(-(2**63), 2**63 - 1)),
        max_size=8,
    )
)
def test_arrow_encoding_equals_the_python_one(rows: list[tuple[str | None, int | None]]) -> None:
    users = pa.array([r[0] for r in rows], pa.string())
    merchants = pa.array([r[1] for r in rows], pa.int64())
    got = entity_keys.encode_arrays([users, pa.chunked_array([merchants], pa.int64())]).to_pylist()
    want = [None if u is None or m is None else entity_keys.encode([u, str(m)]) for u, m in rows]
    assert got == want


@settings(deadline=None)
@given(st.lists(st.none() | st.lists(st.text(alphabet="ab|\\", max_size=4), min_size=3, max_size=3), max_size=8))
def test_arrow_decoding_equals_the_python_one(keys: list[list[str] | None]) -> None:
    ids = pa.array([None if k is None else entity_keys.encode(k) for k in keys], pa.string())
    columns = [c.to_pylist() for c in entity_keys.decode_arrays(ids, 3)]
    assert [None if k is None else list(v) for k, v in zip(keys, zip(*columns, strict=True), strict=True)] == [
        None if k is None else k for k in keys
    ]
    for column, i in zip(columns, range(3), strict=True):
        assert [c is None for c in column] == [k is None for k in keys], i


def test_arrow_decoding_refuses_ids_of_another_arity() -> None:
    with pytest.raises(ValueError, match="do not encode 2"):
        entity_keys.decode_arrays(pa.array(["a|b|c", "a|b"]), 2)


def test_sql_expression_escapes_then_joins() -> None:
    sql = entity_keys.encode_sql(PAIR, lambda f: f"`{f}`")
    assert sql == (
        "REPLACE(REPLACE(CAST(`user_id` AS STRING), '\\', '\\\\'), '|', '\\|') || '|' || "
        "REPLACE(REPLACE(CAST(`merchant_id` AS STRING), '\\', '\\\\'), '|', '\\|')"
    )
    assert entity_keys.encode_sql(["user_id"], lambda f: f"`{f}`") == "CAST(`user_id` AS STRING)"


# --- the definition model and the catalog --------------------------------------------------------------


def test_a_composite_key_lists_two_to_eight_distinct_fields(make_definition: Callable[..., FeatureDefinition]) -> None:
    d = pair_definition(make_definition)
    assert d.source.key_fields == ("user_id", "merchant_id")
    assert make_definition().source.key_fields == ("user_id",)
    for bad, why in (
        (["user_id"], "2-8 fields"),
        (["user_id", "user_id"], "twice"),
        ([f"k{i}" for i in range(9)], "2-8"),
        (["names", "merchant_id"], "must not be named 'names'"),  # was taken as the key, every feature served
        (["user_id", "feature_service"], "must not be named 'feature_service'"),
        (["user_id", "entity_ids"], "must not be named 'entity_ids'"),
    ):
        with pytest.raises(ValidationError, match=why):
            pair_definition(make_definition, **{"source.entity_key": bad})
    with pytest.raises(ValidationError, match="not an event field name"):
        pair_definition(make_definition, **{"source.entity_key": ["user_id", "bad field"]})


def test_a_single_key_keeps_its_transform_hash(make_definition: Callable[..., FeatureDefinition]) -> None:
    """Composite keys came later: a single key is still spelled as a string, so no existing hash changes."""
    d = make_definition()
    assert d.transform_spec()["source"]["entity_key"] == "user_id"  # type: ignore[index]
    pair = pair_definition(make_definition)
    assert pair.transform_spec()["source"]["entity_key"] == PAIR  # type: ignore[index]
    assert FeatureDefinition.model_validate_json(pair.model_dump_json()) == pair


def test_one_entity_type_has_one_composite_key(make_definition: Callable[..., FeatureDefinition]) -> None:
    pair = pair_definition(make_definition)
    reordered = pair_definition(make_definition, name="other", **{"source.entity_key": ["merchant_id", "user_id"]})
    single = pair_definition(make_definition, name="single", **{"source.entity_key": "user_id"})
    assert check_entity_keys([pair, make_definition()]) == {"user_merchant": ("user_id", "merchant_id")}
    for other in (reordered, single):
        with pytest.raises(DefinitionError, match="one composite key"):
            check_entity_keys([pair, other])
    # single keys read from differently named fields per topic stay allowed
    renamed = make_definition(name="by_card", **{"source.entity_key": "card_holder", "source.topic": "cards"})
    assert check_entity_keys([make_definition(), renamed]) == {}
    catalog = FeatureCatalog([pair, make_definition()])
    assert catalog.composite_key("user_merchant") == ("user_id", "merchant_id")
    assert catalog.composite_key("user") == ()
    with pytest.raises(DefinitionError):
        FeatureCatalog([pair, reordered])


def test_the_store_refuses_a_second_key_for_an_entity_type(
    tmp_path: Path, make_definition: Callable[..., FeatureDefinition]
) -> None:
    store = DefinitionStore(tmp_path / "definitions.db")
    store.register(pair_definition(make_definition))
    store.register(
        pair_definition(
            make_definition,
            name="pair_amount_sum_1h",
            value_type="double",
            aggregation={"function": "sum", "field": "amount"},
        )
    )
    for key in (["merchant_id", "user_id"], "user_id"):
        with pytest.raises(DefinitionError, match="one composite key"):
            store.register(pair_definition(make_definition, name="other", window=DAY, **{"source.entity_key": key}))
    with pytest.raises(DefinitionError, match="one composite key"):  # nor a new version with another key
        store.register(
            pair_definition(make_definition, version=2, window=DAY, **{"source.entity_key": ["user_id", "currency"]})
        )
    assert {d.name for d in store.catalog()} == {"pair_txn_count_1h", "pair_amount_sum_1h"}


# --- the job's SQL -------------------------------------------------------------------------------------


def test_the_window_query_groups_by_every_key_field(make_definition: Callable[..., FeatureDefinition]) -> None:
    (group,) = window_groups([pair_definition(make_definition)])
    sql = aggregate_sql(group, "events")
    assert sql.startswith("SELECT REPLACE(REPLACE(CAST(`user_id` AS STRING)")
    assert "GROUP BY `user_id`, `merchant_id`, HOP(" in sql
    assert "WHERE `user_id` IS NOT NULL AND `merchant_id` IS NOT NULL\n" in sql  # no key, no entity
    single = aggregate_sql(window_groups([make_definition()])[0], "events")
    assert "CAST(`user_id` AS STRING) AS entity_id" in single and "WHERE" not in single


# --- the online API ------------------------------------------------------------------------------------


class PairSource:
    def __init__(self, values: dict[tuple[str, str], dict[tuple[str, int], StoredValue]]) -> None:
        self.values = values
        self.reads: list[tuple[str, str]] = []

    def read(self, entity_type: str, entity_id: str) -> dict[tuple[str, int], StoredValue]:
        self.reads.append((entity_type, entity_id))
        return dict(self.values.get((entity_type, entity_id), {}))

    def progress(self) -> dict[str, int]:
        return {"card_transactions/user/sliding(1h/5m)": T, "card_transactions/user_merchant/sliding(1h/5m)": T}


@pytest.fixture
def pair_client(tmp_path: Path, make_definition: Callable[..., FeatureDefinition]) -> tuple[TestClient, PairSource]:
    store = DefinitionStore(tmp_path / "definitions.db")
    store.register(make_definition())
    store.register(pair_definition(make_definition))
    source = PairSource(
        {
            ("user", "u1"): {("txn_count_1h", 1): StoredValue(9, T)},
            ("user_merchant", "u1|m7"): {("pair_txn_count_1h", 1): StoredValue(3, T)},
        }
    )
    app = create_app(LiveCatalog(store), source, clock_us=lambda: NOW * 1000)
    return TestClient(app, raise_server_exceptions=False), source


def test_get_a_pair_by_a_query_parameter_per_key_field(pair_client: tuple[TestClient, PairSource]) -> None:
    client, source = pair_client
    r = client.get("/v1/features/user_merchant", params={"merchant_id": "m7", "user_id": "u1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["entity_id"] == "u1|m7"
    assert body["entity_key"] == {"user_id": "u1", "merchant_id": "m7"}
    assert body["features"]["pair_txn_count_1h"]["value"] == 3
    assert body["features"]["pair_txn_count_1h"]["status"] == "present"
    r = client.get(
        "/v1/features/user_merchant", params={"user_id": "u2", "merchant_id": "m7", "names": "pair_txn_count_1h"}
    )
    assert r.json()["features"]["pair_txn_count_1h"]["status"] == "missing"
    assert source.reads == [("user_merchant", "u1|m7"), ("user_merchant", "u2|m7")]


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        ("/v1/features/user_merchant", {"user_id": "u1"}, "bad_entity_key"),  # a key field missing
        ("/v1/features/user_merchant", {"user_id": "u1", "merchant_id": "m|7"}, "bad_entity_key"),  # bad chars
        ("/v1/features/user_merchant", {"user_id": "u1", "merchant_id": ""}, "bad_entity_key"),  # empty
        ("/v1/features/user_merchant/u1", {}, "bad_entity_key"),  # the single-key route for a pair
        ("/v1/features/user", {"user_id": "u1"}, "bad_entity_key"),  # the key route for a single key
        ("/v1/features/nobody", {"user_id": "u1"}, "unknown_entity_type"),
    ],
)
def test_wrong_key_forms_are_clear_400s(
    pair_client: tuple[TestClient, PairSource], path: str, params: dict[str, str], code: str
) -> None:
    client, source = pair_client
    r = client.get(path, params=params)
    assert r.json()["error"] == code
    assert r.status_code == (404 if code == "unknown_entity_type" else 400)
    assert source.reads == []


def test_a_key_field_given_twice_is_a_400(pair_client: tuple[TestClient, PairSource]) -> None:
    client, _ = pair_client
    r = client.get("/v1/features/user_merchant?user_id=u1&user_id=u2&merchant_id=m7")
    assert (r.status_code, r.json()["error"]) == (400, "bad_entity_key")
    assert "more than once" in r.json()["message"]


def test_batch_of_pairs_takes_entity_keys(pair_client: tuple[TestClient, PairSource]) -> None:
    client, _ = pair_client
    keys = [{"user_id": "u1", "merchant_id": "m7"}, {"merchant_id": "m8", "user_id": "u1"}]
    r = client.post("/v1/features/user_merchant/batch", json={"entity_keys": keys})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["entity_id"] for x in results] == ["u1|m7", "u1|m8"]
    assert [x["entity_key"] for x in results] == [
        {"user_id": "u1", "merchant_id": "m7"},
        {"user_id": "u1", "merchant_id": "m8"},
    ]
    assert [x["values"] for x in results] == [[3], [None]]
    for body, code in (
        ({"entity_ids": ["u1|m7"]}, "bad_entity_key"),
        ({"entity_keys": [{"user_id": "u1"}]}, "bad_entity_key"),
        ({"entity_keys": [{"user_id": "u1", "merchant_id": "m7", "x": "1"}]}, "bad_entity_key"),
        ({"entity_keys": [{"user_id": "u1", "merchant_id": 7}]}, "bad_entity_key"),
        ({"entity_keys": []}, "bad_entity_ids"),
    ):
        r = client.post("/v1/features/user_merchant/batch", json=body)
        assert (r.status_code, r.json()["error"]) == (400, code), body
    r = client.post("/v1/features/user/batch", json={"entity_keys": [{"user_id": "u1"}]})
    assert (r.status_code, r.json()["error"]) == (400, "bad_entity_key")


def test_one_request_assembles_a_vector_from_several_entities(pair_client: tuple[TestClient, PairSource]) -> None:
    client, _ = pair_client
    r = client.post(
        "/v1/vectors",
        json={
            "entities": [
                {"entity_type": "user", "entity_id": "u1", "names": ["txn_count_1h"]},
                {
                    "entity_type": "user_merchant",
                    "entity_key": {"user_id": "u1", "merchant_id": "m7"},
                    "names": ["pair_txn_count_1h"],
                },
            ]
        },
    )
    assert r.status_code == 200, r.text
    user, pair = r.json()["vectors"]
    assert (user["entity_id"], user["features"]["txn_count_1h"]["value"]) == ("u1", 9)
    assert "entity_key" not in user
    assert pair["entity_key"] == {"user_id": "u1", "merchant_id": "m7"}
    assert pair["features"]["pair_txn_count_1h"]["value"] == 3
    # each part is exactly what GET answers for its entity
    alone = client.get("/v1/features/user/u1", params={"names": "txn_count_1h"}).json()
    assert alone == user


@pytest.mark.parametrize(
    ("part", "status", "code"),
    [
        ({"entity_type": "user_merchant", "entity_id": "u1|m7", "names": ["pair_txn_count_1h"]}, 400, "bad_entity_key"),
        # the wrong form of key is bad_entity_key, as `entity_keys` for a single-key type in a batch (README, §5.8)
        ({"entity_type": "user", "entity_key": {"user_id": "u1"}, "names": ["txn_count_1h"]}, 400, "bad_entity_key"),
        ({"entity_type": "user", "names": ["txn_count_1h"]}, 400, "bad_entity_id"),  # no id at all
        ({"entity_type": "user", "entity_id": "u1"}, 400, "bad_names"),
        ({"entity_type": "user", "entity_id": "u1", "names": ["nope"]}, 404, "unknown_feature"),
        ({"entity_type": "nobody", "entity_id": "u1", "names": ["x"]}, 404, "unknown_entity_type"),
        ({"entity_type": "user", "entity_id": "u1", "names": ["txn_count_1h"], "extra": 1}, 400, "bad_request"),
    ],
)
def test_vectors_refuse_a_bad_part_by_name(
    pair_client: tuple[TestClient, PairSource], part: dict[str, Any], status: int, code: str
) -> None:
    client, source = pair_client
    r = client.post("/v1/vectors", json={"entities": [part]})
    assert (r.status_code, r.json()["error"]) == (status, code), r.text
    assert source.reads == []
    assert client.post("/v1/vectors", json={"entities": []}).status_code == 400
    assert client.post("/v1/vectors", json=[]).status_code == 400


_GOOD_PART = {"entity_type": "user", "entity_id": "u1", "names": ["txn_count_1h"]}


@pytest.mark.parametrize(
    ("part", "code"),
    [
        ({"entity_type": "user", "entity_id": "u 1", "names": ["txn_count_1h"]}, "bad_entity_id"),
        ({"entity_type": "user", "entity_id": 5, "names": ["txn_count_1h"]}, "bad_entity_id"),
        ({"entity_type": "user", "entity_key": {"user_id": "u1"}, "names": ["txn_count_1h"]}, "bad_entity_key"),
        ({"entity_type": "user", "entity_id": "u1", "entity_key": {"user_id": "u1"}, "names": ["x"]}, "bad_entity_key"),
        ({"entity_type": "user", "names": ["txn_count_1h"]}, "bad_entity_id"),
        ({"entity_type": "user", "entity_id": "u1", "names": "x"}, "bad_names"),
        ({"entity_type": "user", "entity_id": "u1", "names": []}, "bad_names"),
        ({"entity_type": "user", "entity_id": "u1", "names": [""]}, "bad_names"),
        ({"entity_type": "user", "entity_id": "u1"}, "bad_names"),
        ({"entity_type": "user", "entity_id": "u1", "feature_service": 3}, "bad_request"),
        ({"entity_type": "user", "entity_id": "u1", "feature_service": "fraud@0"}, "bad_request"),
        ({"entity_type": "user", "entity_id": "u1", "names": ["txn_count_1h"], "feature_service": "f"}, "bad_request"),
        ({**_GOOD_PART, "extra": 1}, "bad_request"),
        ({**_GOOD_PART, "request_data": [1]}, "bad_request_data"),
        ({**_GOOD_PART, "request_data": {"amount": 1}}, "bad_request_data"),
        (
            {
                "entity_type": "user_merchant",
                "entity_key": {"user_id": "u1", "merchant_id": "m|7"},
                "names": ["pair_txn_count_1h"],
            },
            "bad_entity_key",
        ),
        (
            {"entity_type": "user_merchant", "entity_key": {"user_id": "u1"}, "names": ["pair_txn_count_1h"]},
            "bad_entity_key",
        ),
        ({"entity_type": "user_merchant", "entity_id": "u1|m7", "names": ["pair_txn_count_1h"]}, "bad_entity_key"),
    ],
)
def test_vectors_name_the_malformed_part(
    pair_client: tuple[TestClient, PairSource], part: dict[str, Any], code: str
) -> None:
    """Every 400 about one part names its index, whichever check refused it; the code is that check's."""
    client, source = pair_client
    r = client.post("/v1/vectors", json={"entities": [_GOOD_PART, part]})
    assert (r.status_code, r.json()["error"]) == (400, code), r.text
    assert r.json()["message"].startswith("entities[1]: "), r.text
    assert "entities[0]" not in r.json()["message"]
    assert source.reads == []


def test_the_catalog_shows_and_guards_the_key(
    pair_client: tuple[TestClient, PairSource], make_definition_dict: Callable[..., dict[str, Any]]
) -> None:
    client, _ = pair_client
    shown = client.get("/v1/feature-definitions/user_merchant/pair_txn_count_1h").json()
    assert shown["source"]["entity_key"] == PAIR
    assert shown["key_fields"] == PAIR
    assert client.get("/v1/feature-definitions/user/txn_count_1h").json()["key_fields"] == ["user_id"]
    other = make_definition_dict(
        name="pair_other", entity="user_merchant", window=DAY, **{"source.entity_key": ["merchant_id", "user_id"]}
    )
    r = client.post("/v1/feature-definitions", json=other)
    assert (r.status_code, r.json()["error"]) == (422, "invalid_definition"), r.text
    assert "one composite key" in r.json()["message"]
    one = make_definition_dict(name="pair_other", entity="user_merchant", **{"source.entity_key": ["user_id"]})
    r = client.post("/v1/feature-definitions", json=one)
    assert (r.status_code, r.json()["error"]) == (422, "invalid_definition"), r.text


def test_the_documented_bounds(
    pair_client: tuple[TestClient, PairSource], make_definition: Callable[..., FeatureDefinition]
) -> None:
    """8 key fields in, 9 out; 16 vector parts in, 17 out; a 256-character key value in, 257 out."""
    assert (
        len(pair_definition(make_definition, **{"source.entity_key": [f"k{i}" for i in range(8)]}).source.key_fields)
        == 8
    )
    client, _ = pair_client
    part = {"entity_type": "user", "entity_id": "u1", "names": ["txn_count_1h"]}
    assert client.post("/v1/vectors", json={"entities": [part] * 16}).status_code == 200
    r = client.post("/v1/vectors", json={"entities": [part] * 17})
    assert (r.status_code, r.json()["error"]) == (400, "bad_request")
    for length, status in ((256, 200), (257, 400)):
        r = client.get("/v1/features/user_merchant", params={"user_id": "u" * length, "merchant_id": "m"})
        assert r.status_code == status, length


def test_floating_point_and_decimal_label_columns_give_the_integers_they_hold() -> None:
    """The job spells a long key 12345678901 as Flink's CAST gives it; Arrow's cast of the same id in a float64
    column (pandas' integer column with a missing value) gave ``1.2345678901e+10``, -0.0 gave ``-0`` and a decimal
    7.00 ``7.00``: the join matched none of their rows and said nothing."""
    from decimal import Decimal

    floats = pa.array([12345678901.0, -0.0, 7.5, None, float("nan"), float("inf"), 3.0])
    assert entity_keys.encode_arrays([floats]).to_pylist() == ["12345678901", "0", "7.5", None, None, None, "3"]
    decimals = pa.array([Decimal("7.00"), Decimal("7.50"), Decimal("-3.00"), None], pa.decimal128(5, 2))
    assert entity_keys.encode_arrays([decimals]).to_pylist() == ["7", "7.50", "-3", None]
    huge = pa.array([Decimal(2**63), Decimal(2**63 - 1)], pa.decimal128(38, 0))
    assert entity_keys.encode_arrays([huge]).to_pylist() == [str(2**63), str(2**63 - 1)]
    pair = [pa.chunked_array([[12345678901.0], [123.0]]), pa.array([7.0, 7.0], pa.float32())]
    assert entity_keys.encode_arrays(pair).to_pylist() == ["12345678901|7", "123|7"]
    assert entity_keys.encode_arrays([pa.array([12345678901, 123])]).to_pylist() == ["12345678901", "123"]
    # types Arrow cannot floor, and int64's own ends
    halves = pa.array(np.array([7.0, 7.5], np.float16))
    assert entity_keys.encode_arrays([halves]).to_pylist() == ["7", "7.5"]
    assert entity_keys.encode_arrays([pa.array([Decimal("7E+2")], pa.decimal128(5, -2))]).to_pylist() == ["700"]
    ends = pa.array([-(2.0**63), 2.0**63])
    assert entity_keys.encode_arrays([ends]).to_pylist() == [str(-(2**63)), "9.223372036854776e+18"]
