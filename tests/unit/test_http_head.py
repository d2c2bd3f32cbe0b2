"""HEAD wherever GET (RFC 9110 §9.3.2), on every GET route of every HTTP app: the feature API (with feature
services and quality) and the schema registry. A HEAD answers the GET's status and headers (``Content-Length``
the GET body's) with no body; a path whose routes take no GET answers HEAD 405 as it answers GET.

The apps are called at the ASGI level, not through a test client, so a body the app sends is seen (an HTTP
client or server would drop it on its own). Also: an absolute-form target (RFC 9112 §3.2.2) is answered as its path."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from registry.access import Access
from registry.access_store import AccessStore
from registry.core.catalog import FeatureCatalog
from registry.feature_services import FeatureServiceStore, LiveFeatureServices
from registry.http_target import origin_form
from registry.live import LiveCatalog
from registry.quality import QualityStore
from registry.schema_registry.api import create_schema_registry_app
from registry.schema_registry.store import SchemaStore
from schemas import load_schema
from serving.online.app import create_app
from serving.online.auth import route_table
from tests.http_server import serving
from tests.unit.test_request_features import NOW, Source, store_with, vector

_Answer = tuple[int, dict[str, str], list[bytes]]


def _call(app: Any, method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b"") -> _Answer:
    """(status, headers, body chunks) of one request sent to an ASGI app."""
    path, _, query = target.partition("?")
    request_headers = [(b"host", b"api"), *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())]
    if body:
        request_headers.append((b"content-type", b"application/json"))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(path),
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": request_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("api", 80),
    }
    messages: list[dict[str, Any]] = []
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # a disconnect never comes while the app answers
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    asyncio.run(app(scope, receive, send))
    (start,) = [m for m in messages if m["type"] == "http.response.start"]
    answer_headers = {k.decode().lower(): v.decode() for k, v in start.get("headers", [])}
    return start["status"], answer_headers, [m.get("body", b"") for m in messages if m["type"] == "http.response.body"]


def _head_is_get(app: Any, target: str, headers: dict[str, str] | None = None) -> int:
    """Assert HEAD ``target`` answers GET's status and headers with no body; the status."""
    get_status, get_headers, get_body = _call(app, "GET", target, headers)
    head_status, head_headers, head_body = _call(app, "HEAD", target, headers)
    assert head_status == get_status, target
    assert all(chunk == b"" for chunk in head_body), target
    if get_headers.get("content-type", "").startswith("text/plain; version="):  # /metrics: its counters moved
        get_headers.pop("content-length"), head_headers.pop("content-length")
    else:
        assert int(get_headers["content-length"]) == len(b"".join(get_body)), target
    assert head_headers == get_headers, target
    return head_status


def _filled(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


# --- the feature API -------------------------------------------------------------------------------------


@pytest.fixture
def feature_api(tmp_path: Path, shipped_catalog: FeatureCatalog) -> Any:
    store = store_with(tmp_path / "d.db", shipped_catalog)
    services = LiveFeatureServices(FeatureServiceStore(tmp_path / "d.db"), refresh_s=0.0)
    quality = QualityStore(tmp_path / "d.db")
    app = create_app(
        LiveCatalog(store, refresh_s=0.0),
        Source({"u1": vector(4, 10.0)}),
        clock_us=lambda: NOW * 1000,
        services=services,
        quality=quality,
    )
    pin = [{"entity": "user", "name": "txn_count_1h", "version": 1}]
    service = json.dumps({"name": "fraud_model", "features": pin}).encode()
    assert _call(app, "POST", "/v1/feature-services", body=service)[0] == 201
    return app


def _feature_api_targets(app: Any) -> list[str]:
    """Every GET route of the app, its path parameters filled with registered things."""
    targets = []
    for method, path in route_table(app.routes):
        if method == "GET":
            name = "fraud_model" if path.startswith("/v1/feature-services") else "txn_count_1h"
            targets.append(_filled(path, {"entity_type": "user", "entity_id": "u1", "entity": "user", "name": name}))
    return targets


def test_every_get_route_of_the_feature_api_answers_head_as_get_without_a_body(feature_api: Any) -> None:
    targets = _feature_api_targets(feature_api)
    assert {"/health", "/metrics", "/v1/feature-definitions", "/v1/feature-services", "/openapi.json"} <= set(targets)
    assert "/v1/quality/user/txn_count_1h" in targets
    statuses = {target: _head_is_get(feature_api, target) for target in targets}
    for target in ("/health", "/metrics", "/v1/feature-definitions", "/v1/feature-definitions/user/txn_count_1h"):
        assert statuses[target] == 200, target
    for target in ("/v1/feature-services", "/v1/feature-services/fraud_model", "/v1/quality/user/txn_count_1h"):
        assert statuses[target] == 200, target
    assert statuses["/v1/features/user/u1"] == 200


@pytest.mark.parametrize(
    "target",
    [
        "/v1/features/user/u1?names=txn_count_1h",
        "/v1/features/user/u1?names=nope",  # 404 unknown_feature
        "/v1/features/user/u1?names=txn_count_1h&names=txn_count_1h",  # 400
        "/v1/features/user/u1?feature_service=fraud_model",
        "/v1/feature-services/nope",  # 404
        "/v1/feature-definitions/user/nope",  # 404
        "/v1/feature-definitions/user/txn_count_1h/history",
        "/v1/quality/user/txn_count_1h?version=x",  # 400
        "/v1/nothing-here",  # no route: 404 both ways
        "/v1/features/user%2Fu1",  # an escaped '/': 404 both ways
    ],
)
def test_head_answers_the_get_of_the_same_target_refusals_included(feature_api: Any, target: str) -> None:
    _head_is_get(feature_api, target)


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/v1/vectors", "POST"),
        ("/v1/feature-definitions/user/txn_count_1h/activate", "POST"),
    ],
)
def test_a_path_without_get_is_still_405_for_head(feature_api: Any, path: str, allow: str) -> None:
    status, headers, body = _call(feature_api, "HEAD", path)
    assert (status, headers["allow"], b"".join(body)) == (405, allow, b"")


def test_a_405_lists_head_wherever_it_lists_get(feature_api: Any) -> None:
    for path, allow in [
        ("/v1/feature-definitions", "GET, HEAD, POST"),
        ("/v1/feature-services", "GET, HEAD, POST"),
        ("/health", "GET, HEAD"),
        ("/v1/features/user/batch", "GET, HEAD, POST"),
    ]:
        status, headers, _ = _call(feature_api, "DELETE", path)
        assert (status, headers["allow"]) == (405, allow), path


def test_a_head_is_counted_under_its_route(feature_api: Any) -> None:
    _call(feature_api, "HEAD", "/health")
    _call(feature_api, "HEAD", "/v1/features/user/u1")
    _, _, body = _call(feature_api, "GET", "/metrics")
    text = b"".join(body).decode()
    assert 'fs_requests_total{route="/health",status="200"} 1.0' in text
    assert 'fs_requests_total{route="/v1/features/{entity_type}/{entity_id}",status="200"} 1.0' in text
    assert 'route="unmatched"' not in text


def test_with_auth_on_a_head_needs_the_token_a_get_needs(tmp_path: Path, shipped_catalog: FeatureCatalog) -> None:
    access_store = AccessStore(tmp_path / "d.db")
    token = access_store.issue("scorer", "ml-team")
    store = store_with(tmp_path / "d.db", shipped_catalog)
    access = Access(access_store, enabled=True, refresh_s=0)
    app = create_app(LiveCatalog(store), Source({}), clock_us=lambda: NOW * 1000, access=access)
    assert _head_is_get(app, "/health") == 401
    assert _head_is_get(app, "/health", {"Authorization": f"Bearer {token}"}) == 200


# --- the schema registry ---------------------------------------------------------------------------------


@pytest.fixture
def schema_registry(tmp_path: Path) -> Any:
    app = create_schema_registry_app(SchemaStore(tmp_path / "schemas.db", default_compatibility="BACKWARD"))
    schema = json.dumps({"schema": json.dumps(load_schema("card_transaction"))}).encode()
    for subject in ("s", "a%2Fb"):
        assert _call(app, "POST", f"/subjects/{subject}/versions", body=schema)[0] == 200
    return app


def _schema_registry_targets(app: Any) -> list[str]:
    values = {"subject": "s", "version": "1", "schema_id": "1"}
    return [_filled(path, values) for method, path in route_table(app.routes) if method == "GET"]


def test_every_get_route_of_the_schema_registry_answers_head_as_get_without_a_body(schema_registry: Any) -> None:
    targets = _schema_registry_targets(schema_registry)
    assert {"/health", "/subjects", "/schemas/ids/1", "/config", "/mode", "/subjects/s/versions/1"} <= set(targets)
    statuses = {target: _head_is_get(schema_registry, target) for target in targets}
    assert statuses.pop("/config/s") == 404  # no subject-level config: 40408, for HEAD too
    assert statuses.pop("/mode/s") == 404  # 40409
    assert statuses.pop("/subjects/s/metadata") == 404  # no version holds metadata: 40403
    assert set(statuses.values()) == {200}, statuses


@pytest.mark.parametrize(
    "target",
    [
        "/subjects/a%2Fb/versions/latest",
        "/subjects/nope/versions",  # 40401
        "/subjects/s/versions/7",  # 40402
        "/subjects/s/versions/x",  # 42202
        "/schemas/ids/99",  # 40403
        "/mode/s?defaultToGlobal=true",
        "/nothing-here",
    ],
)
def test_schema_registry_head_answers_the_get_of_the_same_target(schema_registry: Any, target: str) -> None:
    _head_is_get(schema_registry, target)


@pytest.mark.parametrize("path", ["/subjects/s", "/compatibility/subjects/s/versions"])
def test_a_schema_registry_path_without_get_is_still_405_for_head(schema_registry: Any, path: str) -> None:
    status, _, body = _call(schema_registry, "HEAD", path)
    assert (status, b"".join(body)) == (405, b"")
    assert _call(schema_registry, "GET", path)[0] == 405


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/subjects/s", "POST, DELETE"),
        ("PUT", "/schemas/ids/1", "GET, HEAD"),
        ("DELETE", "/compatibility/subjects/s/versions", "POST"),
    ],
)
def test_a_schema_registry_405_names_every_method_its_path_takes(
    schema_registry: Any, method: str, path: str, allow: str
) -> None:
    """HTTP requires ``Allow`` on a 405; the registry's Confluent-shaped error body dropped Starlette's header."""
    status, headers, _ = _call(schema_registry, method, path)
    assert (status, headers.get("allow")) == (405, allow)


# --- through a real server ----------------------------------------------------------------------------------


@contextmanager
def _served(app: Any, http: str) -> Iterator[int]:
    """``app`` under uvicorn with the HTTP implementation ``http``, on a free loopback port."""
    with serving(app, http=http, log_level="critical") as url:
        yield int(url.rsplit(":", 1)[1])


def _pipelined(port: int, requests: list[tuple[str, str]]) -> list[tuple[int, dict[str, str], bytes]]:
    """(status, headers, body) of each request, sent one after another on one keep-alive connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        heads = [f"{method} {path} HTTP/1.1\r\nHost: api\r\n" for method, path in requests]
        heads[-1] += "Connection: close\r\n"
        conn.sendall("".join(head + "\r\n" for head in heads).encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    answers = []
    for method, _ in requests:  # a HEAD answer is its head only: the next answer starts right after it
        head, _, data = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        size = 0 if method == "HEAD" else int(headers["content-length"])
        answers.append((int(status_line.split()[1]), headers, data[:size]))
        data = data[size:]
    assert data == b""
    return answers


@pytest.mark.parametrize("http", ["h11", "httptools"])
@pytest.mark.parametrize("which", ["feature_api", "schema_registry"])
def test_a_server_sends_a_head_answer_without_a_body_and_keeps_the_connection(
    http: str, which: str, request: pytest.FixtureRequest
) -> None:
    """The server's own HEAD handling stays intact: no body, the GET's Content-Length, the next request answered."""
    app = request.getfixturevalue(which)
    with _served(app, http) as port:
        answers = _pipelined(port, [("HEAD", "/health"), ("GET", "/health"), ("HEAD", "/nothing-here")])
    (head_status, head_headers, _), (get_status, get_headers, get_body), (missing, _, _) = answers
    assert (head_status, get_status, missing) == (200, 200, 404)
    assert head_headers["content-length"] == get_headers["content-length"] == str(len(get_body))


@pytest.mark.parametrize("http", ["h11", "httptools"])
@pytest.mark.parametrize(
    ("which", "path"),
    [("feature_api", "/health"), ("schema_registry", "/subjects"), ("schema_registry", "/subjects/a%2Fb/versions")],
)
def test_an_absolute_form_target_is_answered_as_its_path(
    http: str, which: str, path: str, request: pytest.FixtureRequest
) -> None:
    """RFC 9112 §3.2.2: ``GET http://host/path`` (as sent through a proxy) is answered as ``GET /path``; uvicorn's
    h11 server passed the whole URI on as the path, and the schema registry answered every such request 404."""
    app = request.getfixturevalue(which)
    targets = [path, f"http://api:8080{path}", f"HTTPS://API{path}", f"{path}?x=1", f"http://api{path}?x=1"]
    with _served(app, http) as port:
        answers = [(status, body) for status, _, body in _pipelined(port, [("GET", t) for t in targets])]
    origin, absolute, upper, query, absolute_query = answers
    assert origin[0] == 200, origin
    assert absolute == origin and upper == origin
    assert absolute_query == query


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b"http://h/a", b"/a"),
        (b"HTTPS://h:1/a/b%2Fc", b"/a/b%2Fc"),
        (b"http://h", b"/"),
        (b"/http://h/a", None),
        (b"/a", None),
        (b"*", None),
        (b"ftp://h/a", None),
    ],
)
def test_origin_form_takes_the_path_of_an_absolute_uri_only(raw: bytes, path: bytes | None) -> None:
    assert origin_form(raw) == path
