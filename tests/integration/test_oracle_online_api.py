"""The feature API as README "Online serving" and docs/design.md §3.3 describe it, checked against
``python -m serving.online`` as a process of its own, reading a real Cassandra (no test client, no mocks):
the HTTP server itself (uvicorn) is part of what is checked.

- Hostile HTTP (raw bytes that are not UTF-8, broken percent-encoding, deep or huge JSON, repeated parameters,
  wrong methods): every answer is a 4xx in the API's error shape or the server's own refusal, never a 5xx.
- Bounds: 1,000 names and ids are read and 1,001 refused; a 256-character id is read and 257 refused; a body of
  exactly 1,048,576 bytes is read and one byte more is 413 ``body_too_large``, whole or chunked.
- A feature service with no pins of the entity type is 400 ``bad_feature_service`` on every request, not only
  the first (a repeat was served from the plan cache: 200 with an empty vector).
- A request field given twice in a JSON body is 400 ``bad_request_data``, as in a query string.
- The Python client: an empty id is a named refusal, not a ``JSONDecodeError``; an API that is gone or hung is
  ``StoreUnavailableError`` (at once, at the client's timeout).
- Cassandra paused (SIGSTOP) under a GET, a batch and a multi-entity vector: each is a 503
  ``store_unavailable`` well before any client timeout, never a 500; after SIGCONT the stored values return.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from infra.process import PidFile, alive
from infra.settings import StackSettings
from registry.core import entity_keys
from registry.core.catalog import load_folder
from registry.core.definitions import FeatureDefinition
from registry.core.errors import RequestError, StoreUnavailableError
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.plan import apply
from serving.online.client import FeatureClient
from sinks.cassandra.writer import OnlineWriter
from sinks.factory import connect_cassandra
from sinks.records import FeatureRow
from tests.conftest import REPO, isolated, settings_env
from tests.processes import pause, thread_states
from tests.unit.test_request_features import request_feature

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("frozen_heap")]

MIN = 60_000
LIMIT = 1_048_576
JSON = {"content-type": "application/json"}
PAIR = {
    "name": "oracle_pair_count",
    "entity": "user_merchant",
    "version": 1,
    "owner": "it",
    "value_type": "long",
    "source": {
        "topic": "oracle_pair_events",
        "event_schema": "card_transaction",
        "subject": "oracle_pair_events-value",
        "entity_key": ["user_id", "merchant_id"],
        "timestamp_field": "event_time",
    },
    "window": {"kind": "session", "gap": "1m"},
    "aggregation": {"function": "count"},
    "freshness_slo": "1h",
    "ttl": "1h",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Api:
    def __init__(self, settings: Settings, folder: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "api.log"
        env = {**settings_env(settings), "FS_CACHE_TTL_MS": "0", "FS_SERVING_LOG_SAMPLE": "0"}
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "serving.online", "--port", str(self.port)],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, f"the API exited during start-up:\n{self.log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API did not answer /health within 120 s"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def api(it_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Api]:
    folder = tmp_path_factory.mktemp("oracle_online")
    settings = isolated(it_settings, "oracle_online", folder)
    store = DefinitionStore(settings.definitions_db)
    apply(store, load_folder())
    store.register_all([FeatureDefinition.model_validate(PAIR)], [request_feature()])
    catalog = store.catalog()
    count, total = catalog.get("user", "txn_count_1h"), catalog.get("user", "txn_amount_sum_1h")
    pair = catalog.get("user_merchant", "oracle_pair_count")
    end = time.time_ns() // 1_000_000 // (5 * MIN) * 5 * MIN
    cluster, session = connect_cassandra(settings)
    try:
        writer = OnlineWriter(session, settings.cassandra_keyspace)
        for i in range(5):
            writer.add(FeatureRow.of(count, f"u{i}", 4 + i, end - 60 * MIN, end))
            writer.add(FeatureRow.of(total, f"u{i}", 10.0 * (i + 1), end - 60 * MIN, end))
        writer.add(FeatureRow.of(pair, entity_keys.encode(["u1", "m7"]), 3, end - MIN, end))
        writer.flush()
    finally:
        cluster.shutdown()
    server = _Api(settings, folder)
    try:
        yield server
    finally:
        server.stop()
        log = server.log.read_text()
        cluster, session = connect_cassandra(settings)
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
        cluster.shutdown()
        assert "Traceback" not in log, f"the API logged a traceback:\n{log[-5000:]}"


@pytest.fixture
def http(api: _Api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=30) as client:
        yield client


def _error(response: httpx.Response) -> tuple[int, object]:
    """The status and the body's error code (None for a body without one, so an assertion shows the body)."""
    try:
        body = response.json()
    except ValueError:
        return response.status_code, None
    return response.status_code, body.get("error") if isinstance(body, dict) else None


def _process_state(pid: int) -> str:
    """The states of the process's threads and its command line as /proc gives them (T: stopped), for a failure's
    message."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:200].decode(errors="replace")
    except OSError as exc:
        return f"pid {pid}: {exc}"
    return f"pid {pid} threads {sorted(thread_states(pid))}: {command}"


def _raw(api: _Api, request: bytes) -> bytes:
    """One raw HTTP/1.1 exchange (the request closes the connection): the whole answer."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=30) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer


HOSTILE = [
    b"GET /v1/features/user/\xff\xfe?names=txn_count_1h",
    b"GET /v1/features/\xff/u1?names=txn_count_1h",
    b"GET /v1/features/user/u1?names=\xff",
    b"GET /v1/features/user/u1?names=%FF",
    b"GET /v1/features/user/%FF%FE?names=txn_count_1h",
    b"GET /v1/features/user/u1?names=%ZZ",
    b"GET /v1/features/user/%ZZ?names=txn_count_1h",
    b"GET /v1/features/user/u1%?names=txn_count_1h",
    b"GET /v1/features/user/a%00b?names=txn_count_1h",
    b"GET /v1/features/user/u1?names=%00",
    b"GET /v1/features/%FF/u1?names=txn_count_1h",
    b"GET /v1/features/user_merchant?user_id=%FF&merchant_id=m7",
    b"GET /v1/features/user_merchant?user_id=u1&merchant_id=m7&merchant_id=m7",
    b"GET /v1/features/user/u1?feature_service=%FF",
    b"GET /v1/features/user/u1?names=amount_vs_mean_1h&amount=%FF",
    b"GET /v1/features/user/u1?names=amount_vs_mean_1h&amount=1e400",
    b"GET /v1/feature-services/%FF?version=%FF",
    b"GET /v1/feature-services/a?version=99999999999999999999999",
    b"GET /v1/quality/%FF/%FF?since=%FF",
    b"GET /v1/features/user/u1?" + b"a=1&" * 5000 + b"names=txn_count_1h&names=txn_count_1h",
    b"GET //v1/features/user/u1?names=txn_count_1h",
    b"OPTIONS /v1/features/user/u1?names=txn_count_1h",
    b"DELETE /v1/vectors",
    b"GET * ",
]


@pytest.mark.parametrize("line", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_requests_are_refused_never_a_5xx(api: _Api, line: bytes) -> None:
    """Each is a 4xx: the server's own for bytes HTTP does not allow, else the API's ``{error, message}``."""
    if not line.endswith(b" "):
        line += b" "
    answer = _raw(api, line + b"HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:500]
    if b"content-type: application/json" in head.lower():
        assert set(json.loads(body)) >= {"error", "message"}, body


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"entity_ids": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"entity_ids": [' + b"9" * 5000 + b'], "names": ["txn_count_1h"]}',
        b'{"entity_ids": [NaN], "names": ["txn_count_1h"]}',
        b'{"entity_ids": ["\xff"], "names": ["txn_count_1h"]}',
        b'\xef\xbb\xbf{"entity_ids": ["u1"]}',
        b"",
        b"null",
        b'{"entity_keys": [{"user_id": "u1", "user_id": "u2"}]}',
        b'{"entity_ids": ["u1"], "request_data": {"amount": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
    ],
    ids=range(10),
)
@pytest.mark.parametrize("path", ["/v1/features/user/batch", "/v1/features/user_merchant/batch", "/v1/vectors"])
def test_hostile_json_bodies_are_a_400(http: httpx.Client, path: str, body: bytes) -> None:
    response = http.post(path, content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert set(response.json()) >= {"error", "message"}


def test_names_ids_and_bodies_at_their_bounds(http: httpx.Client) -> None:
    names = ",".join(["txn_count_1h"] * 1000)
    assert http.get(f"/v1/features/user/u1?names={names}").json()["features"]["txn_count_1h"]["value"] == 5
    assert _error(http.get(f"/v1/features/user/u1?names={names},txn_count_1h")) == (400, "bad_names")
    assert http.get("/v1/features/user/" + "a" * 256 + "?names=txn_count_1h").status_code == 200
    assert _error(http.get("/v1/features/user/" + "a" * 257 + "?names=txn_count_1h")) == (400, "bad_entity_id")
    ids = [f"u{i % 5}" for i in range(1000)]
    batch = http.post("/v1/features/user/batch", json={"entity_ids": ids, "names": ["txn_count_1h"]})
    assert [r["values"][0] for r in batch.json()["results"]] == [4 + i % 5 for i in range(1000)]
    refused = http.post("/v1/features/user/batch", json={"entity_ids": [*ids, "u1"], "names": ["txn_count_1h"]})
    assert _error(refused) == (400, "bad_entity_ids")
    bodies = {
        "/v1/features/user/batch": json.dumps({"entity_ids": ["u2"], "names": ["txn_count_1h"]}).encode(),
        "/v1/vectors": json.dumps(
            {"entities": [{"entity_type": "user", "entity_id": "u2", "names": ["txn_count_1h"]}]}
        ).encode(),
    }
    for path, body in bodies.items():
        exact = body.ljust(LIMIT)  # JSON allows the white space
        for content in (exact, iter([exact[:1000], exact[1000:]])):
            assert http.post(path, content=content, headers=JSON).status_code == 200, path
        for content in (exact + b" ", iter([exact[:1000], exact[1000:] + b" "])):
            assert _error(http.post(path, content=content, headers=JSON)) == (413, "body_too_large"), path


def test_a_service_without_pins_of_the_type_is_refused_on_every_request(http: httpx.Client) -> None:
    pins = [{"entity": "user_merchant", "name": "oracle_pair_count", "version": 1}]
    created = http.post("/v1/feature-services", json={"name": "oracle-pairs", "version": 1, "features": pins})
    assert created.status_code == 201, created.text
    part = {"entity_type": "user", "entity_id": "u1", "feature_service": "oracle-pairs@1"}
    for _ in range(3):
        assert _error(http.get("/v1/features/user/u1?feature_service=oracle-pairs@1")) == (400, "bad_feature_service")
        batch = http.post("/v1/features/user/batch", json={"entity_ids": ["u1"], "feature_service": "oracle-pairs@1"})
        assert _error(batch) == (400, "bad_feature_service")
        assert _error(http.post("/v1/vectors", json={"entities": [part]})) == (400, "bad_feature_service")
    served = http.get("/v1/features/user_merchant?user_id=u1&merchant_id=m7&feature_service=oracle-pairs@1")
    assert served.json()["features"]["oracle_pair_count"]["value"] == 3


def test_a_request_field_twice_in_a_body_is_refused_as_in_a_query(http: httpx.Client) -> None:
    query = http.get("/v1/features/user/u1?names=amount_vs_mean_1h&amount=25&amount=50")
    assert _error(query) == (400, "bad_request_data")
    batch = (
        b'{"entity_ids": ["u1"], "names": ["amount_vs_mean_1h"], "request_data": {"amount": [25.0], "amount": [50.0]}}'
    )
    assert _error(http.post("/v1/features/user/batch", content=batch, headers=JSON)) == (400, "bad_request_data")
    part = b'{"entity_type": "user", "entity_id": "u1", "names": ["amount_vs_mean_1h"], "request_data": '
    vectors = b'{"entities": [' + part + b'{"amount": 25.0, "amount": 50.0}}]}'
    refused = http.post("/v1/vectors", content=vectors, headers=JSON)
    assert _error(refused) == (400, "bad_request_data") and refused.json()["message"].startswith("entities[0]: ")
    once = http.post("/v1/vectors", content=b'{"entities": [' + part + b'{"amount": 25.0}}]}', headers=JSON)
    assert once.json()["vectors"][0]["features"]["amount_vs_mean_1h"]["value"] == 25.0 / (20.0 / 5)


def test_the_client_names_every_failure(api: _Api) -> None:
    with FeatureClient(api.url, timeout_s=5.0) as fs:
        with pytest.raises(RequestError) as empty:
            fs.get_features("user", "", ["txn_count_1h"])
        assert empty.value.code == "bad_entity_id"
        assert fs.get_features("user", "..", ["txn_count_1h"])["entity_id"] == ".."
        assert fs.get_features("user", "u3", ["txn_count_1h"])["features"]["txn_count_1h"]["value"] == 7
    with FeatureClient(f"http://127.0.0.1:{_free_port()}", timeout_s=5.0) as gone:
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            gone.get_features("user", "u1", ["txn_count_1h"])
        assert time.monotonic() - started < 4.0  # refused at once, not at the timeout
    with socket.socket() as hung:  # accepts connections (the kernel's backlog), never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        with FeatureClient(f"http://127.0.0.1:{hung.getsockname()[1]}", timeout_s=1.0) as fs:
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError):
                fs.get_vectors([{"entity_type": "user", "entity_id": "u1", "names": ["txn_count_1h"]}])
            assert time.monotonic() - started < 30.0  # the 1 s timeout plus a loaded machine: never a hang


@pytest.mark.disruptive
def test_a_paused_store_is_a_503_on_every_read_route_and_reads_recover(
    api: _Api, http: httpx.Client, local_stack: StackSettings
) -> None:
    reads = {
        "get": lambda: http.get("/v1/features/user/u2?names=txn_count_1h"),
        "batch": lambda: http.post(
            "/v1/features/user/batch", json={"entity_ids": ["u1", "u2", "nobody"], "names": ["txn_count_1h"]}
        ),
        "vectors": lambda: http.post(
            "/v1/vectors",
            json={
                "entities": [
                    {"entity_type": "user", "entity_id": "u2", "names": ["txn_count_1h"]},
                    {
                        "entity_type": "user_merchant",
                        "entity_key": {"user_id": "u1", "merchant_id": "m7"},
                        "names": ["oracle_pair_count"],
                    },
                ]
            },
        ),
    }
    before = {name: read().json() for name, read in reads.items()}
    pid = PidFile(local_stack.service_dir("cassandra") / "pid").read()
    assert pid is not None and alive(pid)
    pause(pid)
    try:
        for name, read in reads.items():
            started = time.monotonic()
            response = read()
            # the budget is 100 ms; a loaded CI machine adds scheduling, but never a client's timeout (30 s)
            assert time.monotonic() - started < 10.0, name
            assert _error(response) == (503, "store_unavailable"), (name, response.text, _process_state(pid))
    finally:
        os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 60
    for name, read in reads.items():
        while (response := read()).status_code != 200:
            assert _error(response) == (503, "store_unavailable"), (name, response.text)
            assert time.monotonic() < deadline, f"{name}: no recovery within 60 s of SIGCONT"
            time.sleep(0.1)
        after = response.json()
        for body in (before[name], after):  # values are what they were; only the clock moved
            body.pop("served_at", None)
            for part in [body, *body.get("vectors", []), *body.get("results", [])]:
                part.pop("served_at", None)
                part.pop("age_seconds", None)
                for feature in part.get("features", {}).values():
                    feature.pop("age_seconds", None)
        assert after == before[name], name
