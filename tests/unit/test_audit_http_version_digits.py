"""README "Online serving": ``?version=`` on ``/v1/feature-definitions/{entity}/{name}``, its ``/activate`` and
``/v1/quality/{entity}/{name}`` is 400 ``bad_request`` when not written as an integer, and a well-formed version no
feature has is 404 ``unknown_feature``, up to 4,300 digits: one longer is refused by the parameter's own parsing
(Python's limit on converting text to int), 400 ``bad_request`` (was undocumented: the README's rule said 404)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from registry.live import LiveCatalog
from registry.quality import QualityStore
from serving.online.app import create_app
from tests.unit.test_request_features import NOW, Source, store_with, vector


@pytest.fixture
def client(tmp_path: Path, shipped_catalog: FeatureCatalog) -> TestClient:
    store = store_with(tmp_path / "d.db", shipped_catalog)
    app = create_app(
        LiveCatalog(store),
        Source({"u1": vector(4, 10.0)}),
        clock_us=lambda: NOW * 1000,
        quality=QualityStore(tmp_path / "d.db"),
    )
    return TestClient(app, raise_server_exceptions=False)


ROUTES = [
    ("GET", "/v1/feature-definitions/user/txn_count_1h"),
    ("POST", "/v1/feature-definitions/user/txn_count_1h/activate"),
    ("GET", "/v1/quality/user/txn_count_1h"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("version", ["0", "2147483648", "1" * 4300])
def test_a_well_formed_version_no_feature_has_is_404(client: TestClient, method: str, path: str, version: str) -> None:
    r = client.request(method, f"{path}?version={version}")
    assert (r.status_code, r.json()["error"]) == (404, "unknown_feature"), r.text[:300]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("version", ["1" * 4301, "+1", "01", "1.0"])
def test_past_4300_digits_or_not_an_integer_is_400(client: TestClient, method: str, path: str, version: str) -> None:
    r = client.request(method, f"{path}?version={version.replace('+', '%2B')}")
    assert (r.status_code, r.json()["error"]) == (400, "bad_request"), r.text[:300]
