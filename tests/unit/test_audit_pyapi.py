"""Audit of the public Python API against its docstrings and README ("Online serving", "Training sets, batch
scoring, promotion"): ``FeatureClient``, ``DefinitionStore``, ``FeatureServiceStore`` / ``FeatureService`` and
``get_historical_features``, at their boundaries.

Found here (fixed by the patches in the report):
- a feature service at version 2^31-1 given again without a version and with other content was stored as
  version 2^31, past the bound every read holds it to: from then on every read of the services (the API's
  ``/v1/feature-services`` routes, ``?feature_service=`` reads, further registrations) was a 500, for good.
  It is now a ``DefinitionConflictError`` (409 ``version_conflict``) and nothing is written;
  ``DefinitionStore.register(..., version_given=False)`` likewise (it raised pydantic's ``ValidationError``).
- ``FeatureClient.list_definitions``, ``register_definition``, ``register_feature_service`` and ``get_vectors``
  took a 2xx answer of another shape as theirs (a JSON object's keys as the list of definitions, a string's
  characters as the vectors) or raised ``TypeError``/``ValueError``; README: every failure is a
  ``FeatureStoreError``, ``bad_answer`` for a 2xx answer that is not of the API's shape.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import MAX_VERSION, FeatureDefinition
from registry.core.errors import DatasetError, RequestError, UnknownFeatureError
from registry.definition_store import DefinitionConflictError, DefinitionStore
from registry.feature_services import FeatureService, FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from serving.offline.historical import get_historical_features
from serving.online.app import create_app
from serving.online.client import FeatureClient
from tests.unit.test_request_features import NOW, Source, store_with, vector
from tests.unit.test_training_sets import INGEST0, MIN, T0, Row, append, iceberg_table, stored_definitions

PIN = {"entity": "user", "name": "txn_count_1h", "version": 1}


# --- versions picked by the store, at the highest one ----------------------------------------------------


def test_a_service_at_the_highest_version_refuses_a_next_one_and_stays_readable(tmp_path: Path) -> None:
    store = FeatureServiceStore(tmp_path / "d.db")
    top = FeatureService.model_validate({"name": "fraud", "version": MAX_VERSION, "features": [PIN]})
    assert store.register(top).action == "created"
    changed = FeatureService.model_validate({"name": "fraud", "version": 1, "description": "x", "features": [PIN]})
    with pytest.raises(DefinitionConflictError, match=str(MAX_VERSION)):
        store.register(changed, version_given=False)
    assert [s.ref for s in store.all()] == [f"fraud@{MAX_VERSION}"]  # nothing written past the bound
    same = FeatureService.model_validate({"name": "fraud", "version": 1, "features": [PIN]})
    assert store.register(same, version_given=False).action == "unchanged"  # the same content is still its version


def test_the_api_answers_409_past_the_highest_service_version_and_keeps_serving(
    tmp_path: Path, shipped_catalog: FeatureCatalog
) -> None:
    definitions = store_with(tmp_path / "d.db", shipped_catalog)
    services = LiveFeatureServices(FeatureServiceStore(tmp_path / "d.db"), refresh_s=0.0)
    app = create_app(
        LiveCatalog(definitions), Source({"u1": vector(4)}), clock_us=lambda: NOW * 1000, services=services
    )
    api = TestClient(app, raise_server_exceptions=False)
    assert (
        api.post("/v1/feature-services", json={"name": "fraud", "version": MAX_VERSION, "features": [PIN]}).status_code
        == 201
    )
    refused = api.post("/v1/feature-services", json={"name": "fraud", "description": "x", "features": [PIN]})
    assert (refused.status_code, refused.json()["error"]) == (409, "version_conflict")
    assert api.get("/v1/feature-services/fraud").json()["version"] == MAX_VERSION
    read = api.get("/v1/features/user/u1", params={"feature_service": "fraud"})
    assert read.status_code == 200
    assert read.json()["features"]["txn_count_1h"]["value"] == 4


def test_a_definition_at_the_highest_version_refuses_a_next_one(
    tmp_path: Path, make_definition: Callable[..., FeatureDefinition]
) -> None:
    store = DefinitionStore(tmp_path / "d.db")
    store.register(make_definition(version=MAX_VERSION))
    with pytest.raises(DefinitionConflictError, match=str(MAX_VERSION)):
        store.register(make_definition(ttl="5h"), version_given=False)
    assert [d.version for d in store.catalog()] == [MAX_VERSION]
    assert store.register(make_definition(owner="other"), version_given=False).action == "metadata_updated"


@pytest.mark.parametrize("version", [True, 1.0, "1"])
def test_activate_takes_a_version_number_only(
    tmp_path: Path, make_definition: Callable[..., FeatureDefinition], version: Any
) -> None:
    """A version is a whole number (the model refuses ``True``, ``1.0`` and ``"1"``): activate likewise."""
    store = DefinitionStore(tmp_path / "d.db")
    first = make_definition(version=1)
    store.register(first)
    store.register(make_definition(version=2, ttl="5h"))
    with pytest.raises(UnknownFeatureError):
        store.activate(first.entity, first.name, version)
    assert store.catalog().get(first.entity, first.name).version == 1


# --- the client: a 2xx answer of another shape is bad_answer ------------------------------------------------


def _answering(body: Any) -> FeatureClient:
    client = httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(200, json=body)), base_url="http://x")
    return FeatureClient(client=client)


@pytest.mark.parametrize("body", [{"a": 1}, "abc", 5])
def test_a_definition_list_of_another_shape_is_bad_answer(body: Any) -> None:
    with pytest.raises(RequestError) as refused:
        _answering(body).list_definitions()
    assert refused.value.code == "bad_answer"


@pytest.mark.parametrize("body", [[1, 2], "ab", 5, {"definition": {}}])
@pytest.mark.parametrize("call", ["register_definition", "register_feature_service"])
def test_a_registration_answer_of_another_shape_is_bad_answer(body: Any, call: str) -> None:
    with pytest.raises(RequestError) as refused:
        getattr(_answering(body), call)({})
    assert refused.value.code == "bad_answer"


@pytest.mark.parametrize("vectors", [{"a": 1}, "abc"])
def test_vectors_of_another_shape_are_bad_answer(vectors: Any) -> None:
    with pytest.raises(RequestError) as refused:
        _answering({"vectors": vectors}).get_vectors([{"entity_type": "user", "entity_id": "u1"}])
    assert refused.value.code == "bad_answer"


def test_the_registry_calls_return_the_api_answers_as_documented(
    tmp_path: Path, shipped_catalog: FeatureCatalog
) -> None:
    definitions = store_with(tmp_path / "d.db", shipped_catalog)
    services = LiveFeatureServices(FeatureServiceStore(tmp_path / "d.db"), refresh_s=0.0)
    app = create_app(LiveCatalog(definitions), Source({}), clock_us=lambda: NOW * 1000, services=services)
    fs = FeatureClient(client=TestClient(app, raise_server_exceptions=False))
    listed = fs.list_definitions(entity="user")
    assert listed and all(isinstance(d, dict) for d in listed)
    assert fs.register_feature_service({"name": "fraud", "features": [PIN]})["result"] == "created"
    assert fs.register_definition(shipped_catalog.get("user", "txn_count_1h"))["result"] == "unchanged"


# --- the join: time zones (held) -------------------------------------------------------------------------


@pytest.fixture
def joined(tmp_path: Path, make_definition: Callable[..., FeatureDefinition]) -> Callable[..., list[Any]]:
    catalog = FeatureCatalog(stored_definitions(make_definition))
    table = iceberg_table(tmp_path)
    end = T0 + 5 * MIN
    append(table, [Row(catalog.get("user", "count_5m"), "e0", 1, end, INGEST0)])

    def join(tz: str | None, **kwargs: Any) -> list[Any]:
        labels = pa.table({"who": ["e0", "e0"], "event_timestamp": pa.array([end, end - 1], pa.timestamp("ms", tz=tz))})
        out = get_historical_features(
            table, catalog, labels, ["count_5m"], entity_type="user", entity_column="who", **kwargs
        )
        return list(out.column("count_5m").to_pylist())

    return join


def test_label_times_naive_or_in_any_zone_are_the_same_instants(joined: Callable[..., list[Any]]) -> None:
    assert joined("UTC") == joined(None) == joined("Asia/Kolkata") == [1, None]


def test_a_naive_as_of_is_a_dataset_error_and_an_aware_one_in_any_zone_reads(joined: Callable[..., list[Any]]) -> None:
    with pytest.raises(DatasetError, match="timezone-aware"):
        joined("UTC", as_of=datetime(2100, 1, 1))
    assert joined("UTC", as_of=datetime.now(UTC).astimezone()) == [1, None]
