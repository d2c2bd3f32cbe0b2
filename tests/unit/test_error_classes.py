"""A store that is down is a 503; a bug is a 500 with a request id, never disguised as a 503."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from cassandra import InvalidRequest, OperationTimedOut, ReadTimeout
from cassandra.cluster import NoHostAvailable
from fastapi.testclient import TestClient

from registry.core.catalog import load_folder
from registry.core.errors import StoreUnavailableError
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from registry.plan import apply
from serving.online.app import create_app
from sinks.cassandra.reader import OnlineReader
from tests.conftest import PreparedCql


class _Future:
    def __init__(self, error: BaseException) -> None:
        self._error = error

    def add_callbacks(self, callback: Any, errback: Any, callback_args: tuple[Any, ...] = ()) -> None:
        errback(self._error)


class _Session:
    """Raises ``raise_now`` when a query is sent, or fails its future with ``fail_later``."""

    def __init__(self, raise_now: BaseException | None = None, fail_later: BaseException | None = None) -> None:
        self.raise_now, self.fail_later = raise_now, fail_later

    def prepare(self, cql: str) -> str:
        return PreparedCql(cql)

    def execute(self, statement: Any, params: Any = None, timeout: float | None = None) -> Any:
        raise self.raise_now or self.fail_later or AssertionError("nothing to raise")

    def execute_async(self, statement: Any, params: Any = None, timeout: float | None = None) -> _Future:
        if self.raise_now is not None:
            raise self.raise_now
        assert self.fail_later is not None
        return _Future(self.fail_later)


def _client(tmp_path: Path, session: _Session) -> TestClient:
    store = DefinitionStore(tmp_path / "d.db")
    apply(store, load_folder())
    return TestClient(create_app(LiveCatalog(store), OnlineReader(session, "ks")), raise_server_exceptions=False)  # type: ignore[arg-type]


STORE_DOWN = [
    NoHostAvailable("no host", {}),
    OperationTimedOut("timed out"),
    OSError("connection reset"),
    ReadTimeout("read timeout", consistency=1, required_responses=1, received_responses=0),
]
BUGS = [TypeError("bad bind"), InvalidRequest("unconfigured table"), KeyError("x")]


@pytest.mark.parametrize("error", STORE_DOWN, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("when", ["raise_now", "fail_later"])
def test_a_store_that_is_down_is_a_503(tmp_path: Path, error: BaseException, when: str) -> None:
    response = _client(tmp_path, _Session(**{when: error})).get("/v1/features/user/u1")
    assert (response.status_code, response.json()["error"]) == (503, "store_unavailable"), response.text


@pytest.mark.parametrize("error", BUGS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("when", ["raise_now", "fail_later"])
def test_a_bug_is_a_500_with_a_request_id_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, error: BaseException, when: str
) -> None:
    with caplog.at_level(logging.ERROR, logger="featurestore.api"):
        response = _client(tmp_path, _Session(**{when: error})).get("/v1/features/user/u1")
    assert (response.status_code, response.json()["error"]) == (500, "internal_error"), response.text
    request_id = response.json()["request_id"]
    assert any(request_id in r.getMessage() and r.exc_info for r in caplog.records)


def test_the_synchronous_read_keeps_the_same_line() -> None:
    with pytest.raises(StoreUnavailableError):
        OnlineReader(_Session(raise_now=OperationTimedOut("t")), "ks").read("user", "u1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bug"):
        OnlineReader(_Session(raise_now=TypeError("bug")), "ks").read("user", "u1")  # type: ignore[arg-type]
