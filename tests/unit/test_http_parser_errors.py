"""A request the HTTP parser refuses, before the app sees it, is answered in the API's one error shape: 400
``bad_request`` as ``application/json``, the connection closed (uvicorn's own answer was ``text/plain``)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from registry.core.catalog import FeatureCatalog
from registry.live import LiveCatalog
from serving.online.__main__ import _server_options
from serving.online.app import create_app
from tests.http_server import serving
from tests.unit.test_request_features import NOW, Source, store_with, vector


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory, shipped_catalog: FeatureCatalog) -> Iterator[int]:
    store = store_with(tmp_path_factory.mktemp("parser") / "d.db", shipped_catalog)
    app = create_app(LiveCatalog(store, refresh_s=0.0), Source({"u1": vector(4, 10.0)}), clock_us=lambda: NOW * 1000)
    with serving(app, http=_server_options()["http"], log_level="critical") as url:  # the server's own protocol
        yield int(url.rsplit(":", 1)[1])


def _answer(port: int, request: bytes) -> tuple[bytes, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):  # the server closes the connection after its 400
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    return status_line.encode(), {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}, body


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"FOO /health HTTP/1.1\r\nHost: api\r\n\r\n",  # no such method
        b"POST /v1/features/user/batch HTTP/1.1\r\nHost: api\r\nContent-Length: -5\r\n\r\n",
        b"POST /v1/features/user/batch HTTP/1.1\r\nHost: api\r\nContent-Length: 1x\r\n\r\n",
        b"GET /v1/features/user/\xc3\xa9 HTTP/1.1\r\nHost: api\r\n\r\n",  # raw non-ASCII in the target
        b"GET /health HTTP/9.9x\r\nHost: api\r\n\r\n",
        b"POST /v1/features/user/batch HTTP/1.1\r\nHost: api\r\nContent-Length: 18446744073709551616\r\n\r\n",
        # an upgrade to llhttp whatever its headers: never parsed again (that recursed without end)
        b"CONNECT api:443 HTTP/1.1\r\nHost: api:443\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    ],
    ids=[
        "method",
        "negative-length",
        "length-not-digits",
        "raw-utf8-target",
        "version",
        "length-past-2^64-1",
        "connect",
    ],
)
def test_a_request_the_parser_refuses_is_a_json_400(port: int, request_bytes: bytes) -> None:
    status_line, headers, body = _answer(port, request_bytes)
    assert status_line.startswith(b"HTTP/1.1 400"), status_line
    assert headers["content-type"] == "application/json" and headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    problem = json.loads(body)
    assert problem["error"] == "bad_request" and problem["message"].startswith("malformed HTTP request")


def test_a_request_it_reads_is_answered_by_the_app(port: int) -> None:
    status_line, _, body = _answer(port, b"GET /health HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
    assert status_line.startswith(b"HTTP/1.1 200") and json.loads(body) == {"status": "ok"}


def test_a_length_the_parser_holds_past_the_limit_is_the_apps_413(port: int) -> None:
    """docs/design.md §3.3, 413: a ``Content-Length`` above the limit is refused before any of the body is read, up to
    2^64 - 1 (past it the parser's 400 above)."""
    request = b"POST /v1/features/user/batch HTTP/1.1\r\nHost: api\r\nContent-Length: 18446744073709551615\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"}"):
            data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert json.loads(body)["error"] == "body_too_large"


def _scraped(port: int) -> dict[str, float]:
    _, _, body = _answer(port, b"GET /metrics HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
    samples = {}
    for line in body.decode().splitlines():
        if line.startswith(("fs_requests_total{", "fs_errors_total{", "fs_request_seconds_count{")):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_a_request_the_parser_refuses_is_counted_as_a_refusal(port: int) -> None:
    """design §7: ``fs_errors_total{class}`` counts every refusal by its code, and ``fs_requests_total`` every
    request; a request the parser refused was answered 400 ``bad_request`` outside the app and counted by neither
    (found by an audit)."""
    before = _scraped(port)
    for request in (b"FOO /health HTTP/1.1\r\nHost: api\r\n\r\n", b"GET /health HTTP/9.9x\r\nHost: api\r\n\r\n"):
        assert _answer(port, request)[0].startswith(b"HTTP/1.1 400")
    after = _scraped(port)
    for name in (
        'fs_errors_total{class="bad_request"}',
        'fs_requests_total{route="unmatched",status="400"}',
        'fs_request_seconds_count{route="unmatched"}',
    ):
        assert after.get(name, 0.0) - before.get(name, 0.0) == 2.0, (name, before, after)


_BATCH = b'{"entity_ids":["u1"],"names":["txn_count_1h"]}'
_UPGRADE = b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"


def _answers(port: int, parts: list[bytes], count: int) -> list[tuple[bytes, bytes]]:
    """(status line, body) of the first ``count`` answers on one connection that sent ``parts`` 50 ms apart."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        for i, part in enumerate(parts):
            if i:
                time.sleep(0.05)
            conn.sendall(part)
        data = b""
        answers: list[tuple[bytes, bytes]] = []
        while len(answers) < count:
            chunk = conn.recv(65536)
            assert chunk, (data, answers)
            data += chunk
            while b"\r\n\r\n" in data:
                head, _, rest = data.partition(b"\r\n\r\n")
                length = next(
                    int(v) for k, _, v in (h.partition(b": ") for h in head.split(b"\r\n")) if k == b"content-length"
                )
                if len(rest) < length:
                    break
                answers.append((head.split(b"\r\n")[0], rest[:length]))
                data = rest[length:]
    return answers


@pytest.mark.parametrize("framing", ["one_packet", "body_later", "chunked"])
def test_a_request_asking_to_upgrade_is_served_as_http_1_1_with_its_body(port: int, framing: str) -> None:
    """RFC 9110 §7.8: a server may ignore ``Upgrade``. ``curl --http2`` sends ``Upgrade: h2c`` over plain HTTP: the
    parser took the request as ending at its head, and a valid batch was answered 400 ``bad_json`` on an empty body
    (found by a fuzzer). Served whole, and the connection goes on with the next request."""
    head = b"POST /v1/features/user/batch HTTP/1.1\r\nHost: api\r\n" + _UPGRADE + b"Content-Type: application/json\r\n"
    if framing == "chunked":
        body = f"{len(_BATCH):x}\r\n".encode() + _BATCH + b"\r\n0\r\n\r\n"
        parts = [head + b"Transfer-Encoding: chunked\r\n\r\n" + body]
    else:
        parts = [head + f"Content-Length: {len(_BATCH)}\r\n\r\n".encode(), _BATCH]
        if framing == "one_packet":
            parts = [b"".join(parts)]
    parts[-1] += b"GET /v1/features/user/u1?names=txn_count_1h HTTP/1.1\r\nHost: api\r\n" + _UPGRADE + b"\r\n"
    (batch_status, batch), (get_status, got) = _answers(port, parts, 2)
    assert batch_status.startswith(b"HTTP/1.1 200") and json.loads(batch)["results"][0]["values"] == [4], batch
    assert get_status.startswith(b"HTTP/1.1 200") and json.loads(got)["features"]["txn_count_1h"]["value"] == 4, got
