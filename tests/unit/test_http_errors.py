"""One HTTP error style: every refusal of the feature API carries a code of the shared table, with that
code's status, and the client turns the same codes back into the project's exceptions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import load_folder
from registry.core.errors import RequestError, StoreUnavailableError, UnknownFeatureError
from registry.definition_store import DefinitionConflictError, DefinitionStore
from registry.live import LiveCatalog
from registry.plan import apply
from serving.online.app import create_app
from serving.online.client import FeatureClient
from serving.online.http_errors import ErrorCode, code_of


class _Down:
    """A vector source whose store is down."""

    def read(self, entity_type: str, entity_id: str) -> Any:
        raise StoreUnavailableError("online store read failed: down for the test")

    def progress(self) -> dict[str, int]:
        raise StoreUnavailableError("online store read failed: down for the test")


@pytest.fixture
def api(tmp_path: Path) -> TestClient:
    store = DefinitionStore(tmp_path / "d.db")
    apply(store, load_folder())
    return TestClient(create_app(LiveCatalog(store), _Down()), raise_server_exceptions=False)  # type: ignore[arg-type]


REFUSALS: list[tuple[str, str, dict[str, Any], ErrorCode]] = [
    ("GET", "/v1/features/user/u1?names=", {}, ErrorCode.BAD_NAMES),
    ("GET", "/v1/features/user/" + "x" * 300, {}, ErrorCode.BAD_ENTITY_ID),
    ("GET", "/v1/features/nobody/u1", {}, ErrorCode.UNKNOWN_ENTITY_TYPE),
    ("GET", "/v1/features/user/u1?names=nope", {}, ErrorCode.UNKNOWN_FEATURE),
    ("GET", "/v1/features/user/u1?feature_service=nope", {}, ErrorCode.UNKNOWN_FEATURE_SERVICE),
    ("GET", "/v1/features/user/u1?names=txn_count_1h&feature_service=x", {}, ErrorCode.BAD_REQUEST),
    ("GET", "/v1/features/user/u1", {}, ErrorCode.STORE_UNAVAILABLE),
    ("POST", "/v1/features/user/batch", {"content": b"{"}, ErrorCode.BAD_JSON),
    ("POST", "/v1/features/user/batch", {"json": {"entity_ids": []}}, ErrorCode.BAD_ENTITY_IDS),
    ("POST", "/v1/features/user/batch", {"content": b" " * (2 << 20)}, ErrorCode.BODY_TOO_LARGE),
    ("GET", "/no/such/route", {}, ErrorCode.NOT_FOUND),
    ("DELETE", "/v1/feature-definitions", {}, ErrorCode.METHOD_NOT_ALLOWED),
    ("GET", "/v1/feature-definitions/user/txn_count_1h?version=x", {}, ErrorCode.BAD_REQUEST),
    ("POST", "/v1/feature-definitions", {"content": b"[]"}, ErrorCode.INVALID_DEFINITION),
    ("POST", "/v1/feature-definitions", {"json": {"name": "x"}}, ErrorCode.INVALID_DEFINITION),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "code"), REFUSALS, ids=[r[3].value + ":" + r[1][:40] for r in REFUSALS]
)
def test_each_refusal_has_a_code_of_the_table_and_its_status(
    api: TestClient, method: str, path: str, kwargs: dict[str, Any], code: ErrorCode
) -> None:
    response = api.request(method, path, **kwargs)
    body = response.json()
    assert body["error"] == code.value, body
    assert response.status_code == code.status
    assert body["message"]
    assert code_of(body, response.status_code) == (code, body["message"])


def test_every_code_has_a_status_and_codes_are_distinct() -> None:
    assert len({c.value for c in ErrorCode}) == len(ErrorCode)
    for code in ErrorCode:
        assert 400 <= code.status <= 599


def test_the_client_reads_the_codes_back(api: TestClient, tmp_path: Path) -> None:
    client = FeatureClient(client=api)
    with pytest.raises(UnknownFeatureError) as unknown:
        client.get_features("user", "u1", ["nope"])
    assert unknown.value.names == ["nope"]
    with pytest.raises(StoreUnavailableError):
        client.get_features("user", "u1")
    with pytest.raises(RequestError) as refused:
        client.get_features("user", "x" * 300)
    assert refused.value.code is ErrorCode.BAD_ENTITY_ID
    definition = client.list_definitions()[0]
    changed = {**definition, "description": "changed", "window": {**definition["window"]}}
    changed["aggregation"] = (
        {**definition["aggregation"], "function": "max"}
        if definition["aggregation"]["function"] != "max"
        else {**definition["aggregation"], "function": "min"}
    )
    body = {k: v for k, v in changed.items() if k in _DEFINITION_FIELDS}
    with pytest.raises(DefinitionConflictError):
        client.register_definition(body)


def test_an_unknown_code_from_a_newer_server_stays_a_string() -> None:
    assert code_of({"error": "rate_limited", "message": "slow down"}, 429) == ("rate_limited", "slow down")
    assert code_of("<html>bad gateway</html>", 502) == ("http_502", "<html>bad gateway</html>")


_DEFINITION_FIELDS = {
    "entity",
    "name",
    "version",
    "description",
    "owner",
    "tags",
    "source",
    "window",
    "aggregation",
    "value_type",
    "ttl",
    "freshness_slo",
    "sensitivity",
    "offline_retention",
    "allowed_lateness",
    "key_field",
}
