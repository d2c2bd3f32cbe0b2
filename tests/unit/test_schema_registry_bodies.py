"""Request bodies of the schema registry, as the feature API's: one that stalls is refused 408 at the body timeout
(it held its connection and handler for good), and one its client abandons is not carried out nor logged as the
registry's bug (a ``ClientDisconnect`` traceback and the 50001 path). Found by a fuzzer."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from registry.schema_registry.api import create_schema_registry_app
from registry.schema_registry.store import SchemaStore
from tests.http_server import serving
from tests.unit.test_schema_registry_api import db, store

__all__ = ["db", "store"]  # the fixtures, used by name

BODY = json.dumps({"schema": '"long"'}).encode()


@pytest.fixture
def url(store: SchemaStore) -> Iterator[str]:
    with serving(create_schema_registry_app(store, body_timeout_ms=300), http="h11") as served:
        yield served


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def test_a_body_that_stalls_is_refused_408_at_the_body_timeout(url: str) -> None:
    with _connect(url) as conn:
        started = time.monotonic()
        head = f"POST /subjects/slow/versions HTTP/1.1\r\nHost: r\r\nContent-Length: {len(BODY) + 10}\r\n\r\n"
        conn.sendall(head.encode() + BODY[:5])
        answer = conn.recv(65536)
        waited = time.monotonic() - started
    status, _, rest = answer.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 408"), answer
    assert json.loads(rest.partition(b"\r\n\r\n")[2]) == {
        "error_code": 40801,
        "message": "request body not received whole within 300 ms (5 bytes came)",
    }
    assert 0.3 <= waited < 5.0
    assert httpx.get(f"{url}/subjects/slow/versions").status_code == 404  # nothing registered


def test_a_body_its_client_abandons_is_not_carried_out_nor_logged_as_a_bug(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR), _connect(url) as conn:
        head = f"POST /subjects/gone/versions HTTP/1.1\r\nHost: r\r\nContent-Length: {len(BODY) + 1000}\r\n\r\n"
        conn.sendall(head.encode() + BODY)  # a whole schema, then 1,000 declared bytes never sent
        time.sleep(0.05)
    time.sleep(0.5)  # past the server's read of the disconnect (and before the 300 ms timeout would matter)
    assert httpx.get(f"{url}/subjects/gone/versions").status_code == 404
    assert httpx.post(f"{url}/subjects/gone/versions", content=BODY).json() == {"id": 1}  # the body itself is good
    assert not [r for r in caplog.records if "failed" in r.getMessage()], [r.getMessage() for r in caplog.records]
