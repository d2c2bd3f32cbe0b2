"""Request bodies of the feature API: every route that takes one reads it through one bounded reader
(``serving.online.responses.read_body``), which holds at most its limit in memory and waits for it at most
``FS_BODY_TIMEOUT_MS``; and a JSON integer too long to convert is a number past the doubles' range, not bad JSON.

Before: a definition or feature-service body was read whole before its size was checked (300 MB held to answer
413), a stalled upload held its request and its ``FS_MAX_IN_FLIGHT`` slot for as long as its socket stayed
open (64 of them refused every read with 503 until they closed), and an integer of more than 4,300 digits was
``bad_json``."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from registry.core.catalog import FeatureCatalog
from registry.live import LiveCatalog
from serving.online.app import create_app
from serving.online.http_errors import ApiError, ErrorCode
from serving.online.options import ApiOptions
from serving.online.overload import InFlightLimit
from serving.online.responses import read_body
from tests.http_server import serving
from tests.unit.test_request_features import NOW, Source, store_with, vector

LIMIT = 1_000


def _scope(headers: list[tuple[bytes, bytes]], timeout_ms: int = 200) -> dict[str, Any]:
    return {"headers": headers, "app": SimpleNamespace(state=SimpleNamespace(body_timeout_ms=timeout_ms))}


def test_a_declared_length_over_the_limit_is_refused_before_any_of_the_body_is_read() -> None:
    async def receive() -> dict[str, Any]:
        raise AssertionError("the body was read")

    with pytest.raises(ApiError) as refused:
        asyncio.run(read_body(_scope([(b"content-length", str(LIMIT + 1).encode())]), receive, max_bytes=LIMIT))
    assert refused.value.code is ErrorCode.BODY_TOO_LARGE


def test_a_body_without_a_length_is_refused_as_soon_as_it_passes_the_limit() -> None:
    calls = 0

    async def receive() -> dict[str, Any]:  # chunked, never ending
        nonlocal calls
        calls += 1
        return {"type": "http.request", "body": b"x" * 300, "more_body": True}

    with pytest.raises(ApiError) as refused:
        asyncio.run(read_body(_scope([]), receive, max_bytes=LIMIT))
    assert refused.value.code is ErrorCode.BODY_TOO_LARGE and calls == 4  # 1,200 bytes: the first chunk past 1,000


@pytest.mark.parametrize("size", [0, 1, LIMIT])
def test_a_body_up_to_the_limit_is_read_whole(size: int) -> None:
    parts = [b"y" * (size // 2), b"y" * (size - size // 2)]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": parts.pop(0), "more_body": bool(parts)}

    assert asyncio.run(read_body(_scope([(b"content-length", str(size).encode())]), receive, max_bytes=LIMIT)) == (
        b"y" * size
    )


def test_a_body_that_stalls_is_refused_at_the_body_timeout() -> None:
    async def receive() -> dict[str, Any]:
        if not sent:
            sent.append(1)
            return {"type": "http.request", "body": b"{", "more_body": True}
        await asyncio.sleep(60)
        raise AssertionError("not reached")

    sent: list[int] = []
    started = time.monotonic()
    with pytest.raises(ApiError) as refused:
        asyncio.run(read_body(_scope([(b"content-length", b"100")], timeout_ms=200), receive, max_bytes=LIMIT))
    assert 0.2 <= time.monotonic() - started < 2.0
    assert refused.value.code is ErrorCode.BODY_TIMEOUT and ErrorCode.BODY_TIMEOUT.status == 408
    assert str(refused.value) == "request body not received whole within 200 ms (1 bytes came)"


@pytest.mark.parametrize(("raw", "value"), [(None, 1_000), ("1", 1), ("60000", 60_000)])
def test_the_body_timeout_setting(raw: str | None, value: int) -> None:
    assert ApiOptions.from_env({} if raw is None else {"FS_BODY_TIMEOUT_MS": raw}).body_timeout_ms == value


@pytest.mark.parametrize("raw", ["0", "60001", "1.5", "", "-1"])
def test_a_body_timeout_outside_its_range_stops_the_api(raw: str) -> None:
    from registry.core.errors import SettingsError

    with pytest.raises(SettingsError, match=r"FS_BODY_TIMEOUT_MS must be (from 1 to 60000|an integer)"):
        ApiOptions.from_env({"FS_BODY_TIMEOUT_MS": raw})


# --- through a real server -------------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path, shipped_catalog: FeatureCatalog) -> Any:
    """The API's URL and the app it serves (in this process)."""
    store = store_with(tmp_path / "d.db", shipped_catalog)
    app = create_app(
        LiveCatalog(store, refresh_s=0.0),
        Source({"u1": vector(4, 10.0)}),
        clock_us=lambda: NOW * 1000,
        max_in_flight=4,
        body_timeout_ms=300,
    )
    with serving(app, http="httptools", log_level="critical") as url:
        yield url, app


@pytest.fixture
def api(served: tuple[str, Any]) -> str:
    return str(served[0])


def _in_flight(app: Any) -> int:
    """The requests in flight by the app's shedding middleware, found down its middleware stack (built by Starlette
    at the app's first request: none in flight before)."""
    layer = app.middleware_stack
    if layer is None:
        return 0
    while not isinstance(layer, InFlightLimit):
        layer = layer.app
    return layer.in_flight


def _stalled(url: str, path: str, declared: int) -> socket.socket:
    """A connection that sent a POST's head and part of its body, then nothing."""
    host, port = url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=10)
    conn.sendall(f"POST {path} HTTP/1.1\r\nHost: api\r\nContent-Length: {declared}\r\n\r\n{{".encode())
    return conn


@pytest.mark.parametrize("path", ["/v1/features/user/batch", "/v1/vectors", "/v1/feature-definitions"])
def test_stalled_uploads_hold_no_slot_past_the_body_timeout(served: tuple[str, Any], path: str) -> None:
    api, app = served
    read = httpx.Client(base_url=api, params={"names": "txn_count_1h"}, timeout=5)  # made before: no set-up to wait
    conns = [_stalled(api, path, 100) for _ in range(4)]  # every in-flight slot of the process
    try:
        # The slots are held from when the server has read the four heads to their 300 ms body timeout: the read is
        # sent once all four are in flight, on a client made beforehand (a fixed 0.1 s sleep and a new client's
        # set-up put it outside that window on a loaded machine, where it was served 200).
        deadline = time.monotonic() + 10
        while _in_flight(app) < 4:
            assert time.monotonic() < deadline, "the stalled uploads never took their slots"
            time.sleep(0.005)
        during = read.get("/v1/features/user/u1")
        assert during.status_code == 503 and during.json()["error"] == "overloaded"  # the bound holds meanwhile
        for conn in conns:  # each stalled upload is answered 408 at its timeout
            status_line, _, rest = conn.recv(65536).partition(b"\r\n")
            assert status_line.startswith(b"HTTP/1.1 408"), status_line
            assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"] == "body_timeout"
        after = httpx.get(f"{api}/v1/features/user/u1", params={"names": "txn_count_1h"}, timeout=5)
        assert after.status_code == 200  # the slots are free again, the sockets still open
    finally:
        read.close()
        for conn in conns:
            conn.close()


def test_a_definition_body_declared_past_its_limit_is_refused_before_it_is_sent(api: str) -> None:
    host, port = api.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        declared = 300 << 20  # 300 MB announced, none of it sent: the answer comes at once
        conn.sendall(
            f"POST /v1/feature-definitions HTTP/1.1\r\nHost: api\r\nContent-Length: {declared}\r\n\r\n".encode()
        )
        answer = conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"] == "body_too_large"


@pytest.mark.parametrize("digits", [400, 4_300, 4_301, 20_000])
def test_an_integer_of_any_length_is_json_and_its_member_is_refused_with_its_own_code(api: str, digits: int) -> None:
    number = "9" * digits
    answer = httpx.post(
        f"{api}/v1/features/user/batch",
        content=f'{{"entity_ids": [{number}], "names": ["txn_count_1h"]}}'.encode(),
        timeout=5,
    )
    assert (answer.status_code, answer.json()["error"]) == (400, "bad_entity_id")
    escaped = f'{{"entity_ids": ["u\\u0031", {number}], "names": ["txn_count_1h"]}}'  # an escape: read again
    answer = httpx.post(f"{api}/v1/features/user/batch", content=escaped.encode(), timeout=5)
    assert (answer.status_code, answer.json()["error"]) == (400, "bad_entity_id")


def test_a_client_that_closes_before_its_body_is_whole_is_refused() -> None:
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"a": 1', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    with pytest.raises(ApiError) as refused:
        asyncio.run(read_body(_scope([(b"content-length", b"100")]), receive, max_bytes=LIMIT))
    assert refused.value.code is ErrorCode.BAD_REQUEST
    assert str(refused.value) == "request body incomplete: the client closed the connection after 7 bytes"


_ABORTED = {
    "entity": "user",
    "name": "aborted_upload",
    "version": 1,
    "value_type": "long",
    "owner": "risk-team",
    "description": "d",
    "ttl": "2h",
    "freshness_slo": "10m",
    "source": {
        "topic": "card_transactions",
        "event_schema": "card_transaction",
        "subject": "card_transactions-value",
        "entity_key": "user_id",
        "timestamp_field": "event_time",
        "event_id_field": "transaction_id",
    },
    "window": {"kind": "sliding", "size": "1h", "slide": "5m"},
    "aggregation": {"function": "count"},
}


def _bad_requests(api: str) -> float:
    for line in httpx.get(f"{api}/metrics", timeout=5).text.splitlines():
        if line.startswith('fs_errors_total{class="bad_request"}'):
            return float(line.rpartition(" ")[2])
    return 0.0


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_an_upload_the_client_aborts_is_not_carried_out(api: str, framing: str) -> None:
    """Before, a POST whose client closed the connection before its body was whole was carried out on the bytes
    that came: a whole definition followed by a missing 1,000 declared bytes, or a chunked body without its last
    chunk, registered the definition (found by a fuzzer)."""
    body = json.dumps(_ABORTED).encode()
    if framing == "length":
        head = f"Content-Length: {len(body) + 1000}\r\n"
        sent = body
    else:
        head = "Transfer-Encoding: chunked\r\n"
        sent = f"{len(body):x}\r\n".encode() + body + b"\r\n"  # no closing 0-length chunk
    before = _bad_requests(api)
    host, port = api.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(f"POST /v1/feature-definitions HTTP/1.1\r\nHost: api\r\n{head}\r\n".encode() + sent)
        time.sleep(0.05)
    deadline = time.monotonic() + 10
    while _bad_requests(api) < before + 1:  # the request was refused when its client went
        assert time.monotonic() < deadline, "the aborted upload was never refused"
        time.sleep(0.01)
    assert httpx.get(f"{api}/v1/feature-definitions/user/aborted_upload", timeout=5).status_code == 404
    assert httpx.post(f"{api}/v1/feature-definitions", content=body, timeout=5).status_code == 201  # the body is good
