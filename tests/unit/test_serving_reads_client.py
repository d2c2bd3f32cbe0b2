"""The Python FeatureClient against the online app, and an API it cannot reach."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from registry.core.errors import RequestError, StoreUnavailableError, UnknownFeatureError, UnknownFeatureServiceError
from registry.definition_store import DefinitionConflictError
from registry.feature_services import LiveFeatureServices
from registry.live import LiveCatalog
from serving.online.client import FeatureClient
from tests.unit.test_serving_reads import Source, T, app_for, db, iso, live, rows, services

__all__ = ["db", "live", "services"]  # the fixtures, used by name


# --- the Python client -----------------------------------------------------------------------------


def test_client_against_the_app(
    live: LiveCatalog, services: LiveFeatureServices, make_definition_dict: Callable[..., dict[str, Any]]
) -> None:
    source = Source({"u1": rows(count_v2=(T, 7), total=(T, 2.5))})
    fs = FeatureClient(client=app_for(live, source, services=services))
    vector = fs.get_features("user", "u1", ["txn_count_1h"])
    assert vector["features"]["txn_count_1h"]["value"] == 7
    batch = fs.get_features_batch("user", ["u1", "u2"], ["txn_amount_sum_1h", "txn_count_1h"])
    assert batch[0] == {
        "entity_id": "u1",
        "features": {
            "txn_amount_sum_1h": {
                "value": 2.5,
                "feature_timestamp": iso(T),
                "age_seconds": 90.0,
                "version": 1,
                "status": "present",
            },
            "txn_count_1h": {
                "value": 7,
                "feature_timestamp": iso(T),
                "age_seconds": 90.0,
                "version": 2,
                "status": "present",
            },
        },
    }
    assert batch[1]["features"]["txn_count_1h"]["status"] == "missing"
    assert {d["name"] for d in fs.list_definitions(entity="user")} == {"txn_count_1h", "txn_amount_sum_1h"}
    created = fs.register_definition(
        make_definition_dict(name="txn_count_10m", window={"kind": "tumbling", "size": "10m"})
    )
    assert created["result"] == "created"
    with pytest.raises(UnknownFeatureError) as unknown:
        fs.get_features("user", "u1", ["nope"])
    assert unknown.value.names == ["nope"]
    with pytest.raises(UnknownFeatureServiceError):
        fs.get_features("user", "u1", feature_service="nope")
    with pytest.raises(RequestError) as bad:
        fs.get_features("user", "a b")
    assert bad.value.code == "bad_entity_id"
    with pytest.raises(DefinitionConflictError):
        fs.register_definition(
            make_definition_dict(name="txn_count_10m", window={"kind": "tumbling", "size": "20m"}, version=1)
        )
    source.fail = StoreUnavailableError("down")
    with pytest.raises(StoreUnavailableError):
        fs.get_features_batch("user", ["u9"])


def test_client_reports_an_unreachable_api_as_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    fs = FeatureClient(client=httpx.Client(transport=httpx.MockTransport(refuse), base_url="http://api"))
    with pytest.raises(StoreUnavailableError, match="unreachable"):
        fs.get_features("user", "u1")
