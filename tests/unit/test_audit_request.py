"""Audit of request-time features against docs/design.md §9 "Request-time features" and §5.5: a module that
fails to import is one error line, the request data rules at their bounds (GET and batch alike), the status
and timestamp rule against the inputs as served, and online == offline for request fields of every type."""

from __future__ import annotations

import ast
import random
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from registry import cli
from registry.core.catalog import FeatureCatalog
from registry.core.errors import RequestFeatureError
from registry.core.request_features import load_function
from registry.definition_store import DefinitionStore
from serving.offline.historical import get_historical_features
from sinks.cassandra.reader import StoredValue
from tests.unit.test_request_features import (
    MIN,
    NOW,
    Source,
    T,
    client_for,
    formula,
    request_feature,
    store_with,
    vector,
)
from tests.unit.test_training_sets import iceberg_table

HERE = "tests.unit.test_audit_request"
FIELDS = [
    {"name": "n", "value_type": "long"},
    {"name": "flag", "value_type": "boolean"},
    {"name": "text", "value_type": "string"},
    {"name": "x", "value_type": "double"},
]


def echo_all(columns: Mapping[str, pa.Array]) -> list[str]:
    """Each row's columns as the function saw them, as text: what both callers handed it."""
    names = sorted(columns)
    rows = zip(*(columns[n].to_pylist() for n in names), strict=True)
    return [repr(dict(zip(names, r, strict=True))) for r in rows]


# --- "A module that cannot be imported ... is `cannot import <ref>: ...`: one error line" ----------------


@pytest.fixture
def import_error_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module whose import fails with a message of several lines (as a broken C extension's does)."""
    (tmp_path / "audit_multiline_import.py").write_text('raise ImportError("first line\\n\\nsecond line")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "audit_multiline_import", raising=False)
    return "audit_multiline_import:f"


def test_an_import_error_of_several_lines_is_one_error_line(
    import_error_module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(RequestFeatureError) as info:
        load_function(import_error_module, "r")
    assert info.value.detail == f"cannot import {import_error_module}: first line second line"
    folder = tmp_path / "features"
    folder.mkdir()
    shipped = (Path(cli.__file__).parent / "features" / "user_transactions.toml").read_text()
    (folder / "f.toml").write_text(shipped.replace("udfs.request:amount_vs_mean_1h", import_error_module))
    db = tmp_path / "d.db"
    DefinitionStore(db)
    for command in ("plan", "apply"):
        capsys.readouterr()
        assert cli.main(["--db", str(db), command, str(folder)]) == 1
        assert capsys.readouterr().err.splitlines() == [
            f"error: request feature 'amount_vs_mean_1h': cannot import {import_error_module}: first line second line"
        ]


# --- request data at its bounds -------------------------------------------------------------------------


@pytest.fixture
def echo_client(tmp_path: Path, shipped_catalog: FeatureCatalog) -> Any:
    echo = request_feature(
        name="echo", value_type="string", function=f"{HERE}:echo_all", inputs=[], request_fields=FIELDS
    )
    return client_for(store_with(tmp_path / "d.db", shipped_catalog, echo), Source({"a": vector(2, 8.0)}))


@pytest.mark.parametrize(
    ("query", "seen"),
    [
        ("n=-0&flag=false&text=&x=-0", {"flag": False, "n": 0, "text": "", "x": -0.0}),  # an empty string is a string
        (f"n={2**63 - 1}&flag=true&text={'y' * 4096}&x=1e308", {"n": 2**63 - 1, "text": "y" * 4096, "x": 1e308}),
        (f"n={-(2**63)}&flag=true&text=%C3%A9%7C&x=%2B.5", {"n": -(2**63), "text": "é|", "x": 0.5}),
    ],
)
def test_get_takes_request_values_up_to_their_bounds(echo_client: Any, query: str, seen: dict[str, Any]) -> None:
    got = echo_client.get(f"/v1/features/user/a?names=echo&{query}")
    assert got.status_code == 200, got.text
    feature = got.json()["features"]["echo"]
    assert feature["status"] == "present" and feature["feature_timestamp"] is None  # no stored inputs
    value = ast.literal_eval(feature["value"])  # the repr of what the function saw
    assert {k: value[k] for k in seen} == seen


@pytest.mark.parametrize(
    "query",
    [
        f"n={2**63}&flag=true&text=t&x=1",
        f"n={-(2**63) - 1}&flag=true&text=t&x=1",
        "n=1&flag=True&text=t&x=1",
        f"n=1&flag=true&text={'y' * 4097}&x=1",
        "n=1&flag=true&text=t&x=1e309",
        "n=1&flag=true&text=t&x=nan",
        "n=1&flag=true&text=t",
        "n=1&n=1&flag=true&text=t&x=1",
    ],
)
def test_get_refuses_request_values_past_their_bounds(echo_client: Any, query: str) -> None:
    got = echo_client.get(f"/v1/features/user/a?names=echo&{query}")
    assert (got.status_code, got.json()["error"]) == (400, "bad_request_data"), got.text


def _batch(**values: Any) -> dict[str, Any]:
    data: dict[str, list[Any]] = {"n": [1], "flag": [True], "text": ["t"], "x": [1.0]}
    data.update({k: [v] for k, v in values.items()})
    return {"entity_ids": ["a"], "names": ["echo"], "request_data": data}


@pytest.mark.parametrize(
    ("values", "ok"),
    [
        ({"n": None, "flag": None, "text": None, "x": None}, True),  # one value or null per entity
        ({"n": -(2**63), "x": 2}, True),  # an integer is a double
        ({"text": "z" * 4096}, True),
        ({"n": 2**63}, False),
        ({"n": 1.0}, False),
        ({"flag": 1}, False),
        ({"x": True}, False),
        ({"x": "1"}, False),
        ({"text": "z" * 4097}, False),
        ({"text": 5}, False),
    ],
)
def test_batch_request_values_follow_the_same_rules(echo_client: Any, values: dict[str, Any], ok: bool) -> None:
    got = echo_client.post("/v1/features/user/batch", json=_batch(**values))
    if ok:
        assert got.status_code == 200, got.text
        assert got.json()["results"][0]["statuses"] == ["present"]
    else:
        assert (got.status_code, got.json()["error"]) == (400, "bad_request_data"), got.text


# --- status and timestamp: the least fresh input, the latest window end -------------------------------


def test_status_timestamp_and_value_follow_the_inputs_as_served(
    tmp_path: Path, shipped_catalog: FeatureCatalog
) -> None:
    """Over random stored inputs (absent, fresh, stale, expired, past the store's hour): the request feature's
    status is the least fresh of its inputs' served statuses, its timestamp the latest of theirs, and its value
    the function of their served values (null when missing or expired)."""
    store = store_with(tmp_path / "d.db", shipped_catalog)
    rng = random.Random(1)
    stored: dict[str, dict[tuple[str, int], StoredValue]] = {}
    for i in range(150):
        row: dict[tuple[str, int], StoredValue] = {}
        if rng.random() < 0.85:
            row[("txn_count_1h", 1)] = StoredValue(rng.randint(0, 5), T - rng.choice([0, 5, 15, 115, 125, 185]) * MIN)
        if rng.random() < 0.85:
            row[("txn_amount_sum_1h", 1)] = StoredValue(
                rng.choice([0.0, 2.5, -1.0]), T - rng.choice([0, 15, 125]) * MIN
            )
        stored[f"e{i}"] = row
    rank = {"present": 0, "stale": 1, "expired": 2, "missing": 3}
    seen: set[str] = set()
    for progress in (T, T - 20 * MIN):
        client = client_for(store, Source(stored, progress=progress))
        for e in stored:
            amount = rng.choice([1.0, -2.0, 0.0])
            names = "txn_count_1h,txn_amount_sum_1h,amount_vs_mean_1h"
            f = client.get(f"/v1/features/user/{e}?names={names}&amount={amount}").json()["features"]
            c, s, r = f["txn_count_1h"], f["txn_amount_sum_1h"], f["amount_vs_mean_1h"]
            times = [x["feature_timestamp"] for x in (c, s) if x["feature_timestamp"] is not None]
            want = (
                formula(c["value"], s["value"], amount),
                max(times) if times else None,
                max((c["status"], s["status"]), key=rank.__getitem__),
            )
            assert (r["value"], r["feature_timestamp"], r["status"]) == want, (e, progress, c, s, r)
            seen.add(r["status"])
    assert seen == set(rank)  # every status was exercised


# --- §5.5: the same request values online and offline ---------------------------------------------------


def test_online_and_offline_hand_the_function_the_same_values_of_every_type(
    tmp_path: Path, shipped_catalog: FeatureCatalog
) -> None:
    echo = request_feature(
        name="echo", value_type="string", function=f"{HERE}:echo_all", inputs=[], request_fields=FIELDS
    )
    store = store_with(tmp_path / "d.db", shipped_catalog, echo)
    ids = ["a", "b", "c", "d"]
    data: dict[str, list[Any]] = {
        "n": [1, None, -(2**63), 2**63 - 1],
        "flag": [True, None, False, True],
        "text": ["é|\\", None, "", "x" * 4096],
        "x": [2, None, -0.0, 1e308],
    }
    online = client_for(store, Source({})).post(
        "/v1/features/user/batch", json={"entity_ids": ids, "names": ["echo"], "request_data": data}
    )
    assert online.status_code == 200, online.text
    labels = pa.table(
        {
            "user_id": ids,
            "event_timestamp": pa.array([NOW] * 4, pa.timestamp("ms", tz="UTC")),
            "n": pa.array(data["n"], pa.int64()),
            "flag": data["flag"],
            "text": pa.array(data["text"]).dictionary_encode(),  # a dictionary column of strings is strings
            "x": pa.array([2.0, None, -0.0, 1e308]),
        }
    )
    offline = get_historical_features(
        iceberg_table(tmp_path / "t"), store.catalog(), labels, ["echo"], entity_type="user", entity_column="user_id"
    )
    assert [r["values"][0] for r in online.json()["results"]] == offline.column("echo").to_pylist()
    integers = labels.set_column(5, "x", pa.array([2, None, 0, 7], pa.int32()))  # an integer column for a double
    again = get_historical_features(
        iceberg_table(tmp_path / "t2"), store.catalog(), integers, ["echo"], entity_type="user", entity_column="user_id"
    )
    assert [ast.literal_eval(v)["x"] for v in again.column("echo").to_pylist()] == [2.0, None, 0.0, 7.0]
