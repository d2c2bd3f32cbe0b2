"""Request-time features offline: the join against the reference, training sets, and agreement with the online API."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DatasetError, DefinitionError, RequestFeatureError, UnknownFeatureError
from registry.core.request_features import RequestFeature
from registry.definition_store import DefinitionStore
from serving.offline.historical import get_historical_features
from serving.offline.training import build_training_set, rebuild
from tests.unit.test_request_features import NOW, Source, T, client_for, formula, shipped_store, vector
from tests.unit.test_training_sets import (
    FEATURES,
    Row,
    iceberg_table,
    labels_table,
    reference,
    scenario,
    stored_definitions,
    write,
)

__all__ = ["shipped_store"]  # the fixture, used by name


# --- offline ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def offline_catalog(make_definition: Callable[..., FeatureDefinition]) -> FeatureCatalog:
    stored = stored_definitions(make_definition)
    requests = [
        RequestFeature.model_validate(
            {
                "name": "count_plus_amount",
                "entity": "user",
                "version": 1,
                "owner": "risk-team",
                "value_type": "double",
                "function": "tests.request_fns:count_plus_amount",
                "inputs": ["count_5m@v1"],
                "request_fields": [{"name": "amount", "value_type": "double"}],
            }
        ).with_function_hash(),
        RequestFeature.model_validate(
            {
                "name": "label_of",
                "entity": "user",
                "version": 1,
                "owner": "risk-team",
                "value_type": "string",
                "function": "tests.request_fns:label_of",
                "inputs": ["last_merchant@v1"],
                "request_fields": [{"name": "channel", "value_type": "string"}],
            }
        ).with_function_hash(),
        RequestFeature.model_validate(
            {
                "name": "broken",
                "entity": "user",
                "version": 1,
                "owner": "risk-team",
                "value_type": "double",
                "function": "tests.request_fns:fails",
                "inputs": ["count_5m@v1"],
            }
        ).with_function_hash(),
    ]
    return FeatureCatalog(stored, request_features=requests)


def with_request_columns(labels: pa.Table, seed: int) -> pa.Table:
    rng = random.Random(seed)
    n = labels.num_rows
    amounts = [rng.choice([None, 0.5, 2.0, -1.25]) for _ in range(n)]
    channels = [rng.choice(["web", "app", None]) for _ in range(n)]
    return labels.append_column("amount", pa.array(amounts, pa.float64())).append_column(
        "channel", pa.array(channels, pa.string())
    )


@pytest.mark.parametrize("seed", range(4))
def test_the_join_computes_request_features_from_the_reference_values(
    seed: int, tmp_path: Path, offline_catalog: FeatureCatalog
) -> None:
    batches, labels = scenario(seed, offline_catalog)
    table = iceberg_table(tmp_path)
    write(table, [[Row(r.d, r.entity_id, r.value, r.end_ms, r.ingested_ms, 0, r.revision) for r in b] for b in batches])
    rows = [r for b in batches for r in b]
    given = with_request_columns(labels_table(labels), seed)
    asked = ["count_plus_amount", "sum_10m", "label_of@v1"]
    result = get_historical_features(table, offline_catalog, given, asked, entity_type="user", entity_column="who")
    assert result.column_names == [*given.column_names, "count_plus_amount", "sum_10m", "label_of"]
    expected = reference(rows, offline_catalog, FEATURES, labels)
    amounts = given.column("amount").to_pylist()
    channels = given.column("channel").to_pylist()
    assert result.column("sum_10m").to_pylist() == expected["sum_10m"]
    assert result.column("count_plus_amount").to_pylist() == [
        None if c is None or a is None else c + a for c, a in zip(expected["count_5m"], amounts, strict=True)
    ]
    assert result.column("label_of").to_pylist() == [
        None if m is None else f"{m}|{ch}" for m, ch in zip(expected["last_merchant"], channels, strict=True)
    ]
    for chunk_rows in (1, 3):
        assert get_historical_features(
            table, offline_catalog, given, asked, entity_type="user", entity_column="who", chunk_rows=chunk_rows
        ).equals(result)


@pytest.mark.parametrize("seed", [0, 1, 3, 5])  # seeds whose labels meet v1 values with an amount
def test_a_request_feature_joins_its_input_version_beside_another_version_of_it(
    seed: int, tmp_path: Path, make_definition: Callable[..., FeatureDefinition]
) -> None:
    """Design §9, request-time features: offline, an input is the value the join gives at the label time. A request
    feature on ``amount_max@v1`` joined beside ``amount_max@v2`` (a feature service pinning both) was null for every
    row: the read matched each name to one version."""
    stored = stored_definitions(make_definition)
    request = RequestFeature.model_validate(
        {
            "name": "max_v1_plus_amount",
            "entity": "user",
            "version": 1,
            "owner": "risk-team",
            "value_type": "double",
            "function": "tests.request_fns:max_plus_amount",
            "inputs": ["amount_max@v1"],
            "request_fields": [{"name": "amount", "value_type": "double"}],
        }
    ).with_function_hash()
    catalog = FeatureCatalog(stored, request_features=[request])
    batches, labels = scenario(seed, catalog)
    table = iceberg_table(tmp_path)
    write(table, batches)
    rows = [r for b in batches for r in b]
    given = with_request_columns(labels_table(labels), seed)
    result = get_historical_features(
        table, catalog, given, ["max_v1_plus_amount", "amount_max@v2"], entity_type="user", entity_column="who"
    )
    version_of = {v: FeatureCatalog([d for d in stored if d.key != ("user", "amount_max", 3 - v)]) for v in (1, 2)}
    v1, v2 = (reference(rows, version_of[v], ["amount_max"], labels)["amount_max"] for v in (1, 2))
    assert result.column("amount_max").to_pylist() == v2
    amounts = given.column("amount").to_pylist()
    expected = [None if m is None or a is None else m + a for m, a in zip(v1, amounts, strict=True)]
    assert result.column("max_v1_plus_amount").to_pylist() == expected
    assert any(v is not None for v in expected), "the scenario must give v1 values"


def test_the_join_refuses_what_it_cannot_compute(tmp_path: Path, offline_catalog: FeatureCatalog) -> None:
    table = iceberg_table(tmp_path)
    labels = labels_table([("e0", 1_700_000_000_000)])
    join = lambda labels, features: get_historical_features(  # noqa: E731
        table, offline_catalog, labels, features, entity_type="user", entity_column="who"
    )
    with pytest.raises(DefinitionError, match="count_plus_amount needs label column 'amount'"):
        join(labels, ["count_plus_amount"])
    wrong = labels.append_column("amount", pa.array(["x"]))
    with pytest.raises(DefinitionError, match="label column 'amount' is string, not double"):
        join(wrong, ["count_plus_amount"])
    single = labels.append_column("amount", pa.array([0.1], pa.float32()))
    with pytest.raises(DefinitionError, match="label column 'amount' is float, not double"):
        join(single, ["count_plus_amount"])
    twice = labels.append_column("amount", pa.array([0.1])).append_column("amount", pa.array([0.2]))
    with pytest.raises(DefinitionError, match="label frame has 2 columns named 'amount': which one is meant"):
        join(twice, ["count_plus_amount"])  # a bare KeyError ("does not exist in schema") before
    for bad in (float("nan"), float("inf")):
        with pytest.raises(DefinitionError, match="label column 'amount' holds NaN or infinite values"):
            join(labels.append_column("amount", pa.array([bad])), ["count_plus_amount"])
    long_text = labels.append_column("channel", pa.array(["x" * 4097]))
    with pytest.raises(DefinitionError, match="label column 'channel' holds strings over 4096 characters"):
        join(long_text, ["label_of"])
    assert join(labels.append_column("channel", pa.array(["x" * 4096])), ["label_of"]).num_rows == 1
    assert join(labels.append_column("amount", pa.array([2**64 - 1], pa.uint64())), ["count_plus_amount"]).num_rows == 1
    with pytest.raises(UnknownFeatureError, match="count_plus_amount@v2"):
        join(labels.append_column("amount", pa.array([1.0])), ["count_plus_amount@v2"])
    with pytest.raises(RequestFeatureError, match="raised ZeroDivisionError: boom"):
        join(labels, ["broken"])


def test_training_sets_pin_request_features_and_rebuild(tmp_path: Path, offline_catalog: FeatureCatalog) -> None:
    batches, labels = scenario(1, offline_catalog)
    table = iceberg_table(tmp_path)
    write(table, [[Row(r.d, r.entity_id, r.value, r.end_ms, r.ingested_ms, 0, r.revision) for r in b] for b in batches])
    given = with_request_columns(labels_table(labels), 1)
    built = build_training_set(
        table, offline_catalog, given, ["count_5m", "count_plus_amount"], entity_type="user", entity_column="who"
    )
    pinned = built.manifest.features[1]
    held = offline_catalog.request_feature("user", "count_plus_amount")
    assert held is not None
    assert (pinned.name, pinned.identity_hash, pinned.transform_hash) == (
        "count_plus_amount",
        held.identity_hash,
        held.function_hash,
    )
    assert rebuild(table, offline_catalog, built.manifest, given).table.equals(built.table)
    changed = FeatureCatalog(
        list(offline_catalog),
        request_features=[
            r
            if r.name != "count_plus_amount"
            else r.model_copy(update={"function": "tests.request_fns:sum_times_amount"})
            for r in offline_catalog.request_features()
        ],
    )
    with pytest.raises(DatasetError, match="count_plus_amount@v1 changed since training set"):
        rebuild(table, changed, built.manifest, given)


def test_online_and_offline_agree_on_the_same_inputs(
    tmp_path: Path, shipped_store: DefinitionStore, shipped_catalog: FeatureCatalog
) -> None:
    """The same stored values served online at NOW and joined offline at NOW give the same request values."""
    count = shipped_catalog.get("user", "txn_count_1h", 1)
    total = shipped_catalog.get("user", "txn_amount_sum_1h", 1)
    cases = {"a": (3, 12.0, 2.0), "b": (0, 0.0, 1.0), "c": (7, 3.5, -4.0), "d": (1, 0.25, 0.1)}
    table = iceberg_table(tmp_path)
    rows = [Row(d, e, v, T, T + 1000) for e, (c, s, _) in cases.items() for d, v in ((count, c), (total, s))]
    write(table, [rows])
    online = client_for(shipped_store, Source({e: vector(c, s) for e, (c, s, _) in cases.items()})).post(
        "/v1/features/user/batch",
        json={
            "entity_ids": list(cases),
            "names": ["amount_vs_mean_1h"],
            "request_data": {"amount": [a for _, _, a in cases.values()]},
        },
    )
    labels = pa.table(
        {
            "user_id": list(cases),
            "event_timestamp": pa.array([NOW] * len(cases), pa.timestamp("ms", tz="UTC")),
            "amount": [a for _, _, a in cases.values()],
        }
    )
    offline = get_historical_features(
        table, shipped_store.catalog(), labels, ["amount_vs_mean_1h"], entity_type="user", entity_column="user_id"
    )
    online_values = [r["values"][0] for r in online.json()["results"]]
    assert online_values == offline.column("amount_vs_mean_1h").to_pylist()
    assert online_values == [formula(c, s, a) for c, s, a in cases.values()]


def test_an_integer_label_column_for_a_double_field_is_rounded_as_online(offline_catalog: FeatureCatalog) -> None:
    """Request data is held to one rule on both sides: online, a JSON integer for a double field is the nearest
    double (Python's ``float``), past 2^53 included; offline an integer column's values are rounded the same way."""
    from types import SimpleNamespace

    from serving.offline.request_columns import RequestColumn

    feature = offline_catalog.request_feature("user", "count_plus_amount")
    assert feature is not None
    seen = cast(Any, SimpleNamespace(run=lambda columns, n: columns["amount"]))  # the function's input, as given
    column = RequestColumn(feature, seen, ())
    for values, kind in (
        ([2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63), 3], pa.int64()),
        ([2**64 - 1, 2**53 + 1], pa.uint64()),
        ([2**31 - 1], pa.int32()),
    ):
        got = column.compute({}, pa.table({"amount": pa.array(values, kind)}))
        assert got.type == pa.float64() and got.to_pylist() == [float(v) for v in values]
