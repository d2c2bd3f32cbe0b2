"""The Python client against the API's answers that are not a JSON body (serving/online/client.py's contract:
every failure arrives as one of the project's named errors, ``RequestError`` for a refusal).

An empty entity id is a path the API answers with a redirect (README "Online serving": ``/v1/features/user/``
redirects to the path without the slash, another route). The client sent it and parsed the empty redirect body
as JSON, raising a bare ``JSONDecodeError``; it now refuses the empty id as ``bad_entity_id`` itself, and any
answer that is not JSON (a redirect, a proxy's page) is a ``RequestError`` naming its HTTP status."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from registry.core.errors import RequestError
from registry.live import LiveCatalog
from serving.online.app import create_app
from serving.online.client import FeatureClient
from tests.unit.test_request_features import NOW, Source, store_with, vector


@pytest.fixture
def fs(tmp_path: Path, shipped_catalog: FeatureCatalog) -> FeatureClient:
    store = store_with(tmp_path / "d.db", shipped_catalog)
    app = create_app(LiveCatalog(store), Source({"u1": vector(4, 10.0)}), clock_us=lambda: NOW * 1000)
    # As the client's own httpx.Client: redirects are not followed.
    return FeatureClient(client=TestClient(app, raise_server_exceptions=False, follow_redirects=False))


def test_an_empty_entity_id_is_a_named_refusal(fs: FeatureClient) -> None:
    with pytest.raises(RequestError) as refused:
        fs.get_features("user", "", ["txn_count_1h"])
    assert refused.value.code == "bad_entity_id"
    assert fs.get_features("user", "u1", ["txn_count_1h"])["features"]["txn_count_1h"]["value"] == 4


def test_the_redirect_the_api_answers_for_a_trailing_slash_is_a_named_refusal(fs: FeatureClient) -> None:
    with pytest.raises(RequestError) as refused:
        fs._call("GET", "/v1/features/user/u1/", params={"names": "txn_count_1h"})
    assert refused.value.code == "http_307"


def test_a_success_status_without_a_json_body_is_a_named_refusal() -> None:
    def proxy_page(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>maintenance</html>")

    fs = FeatureClient(client=httpx.Client(transport=httpx.MockTransport(proxy_page), base_url="http://api"))
    with pytest.raises(RequestError) as refused:
        fs.get_features("user", "u1", ["txn_count_1h"])
    assert refused.value.code == "http_200"
    assert "maintenance" in str(refused.value)
