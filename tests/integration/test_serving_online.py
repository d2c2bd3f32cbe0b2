"""The read path against real Cassandra: batch reads, a feature service pinning an older version, and a
store that stops answering (503 within the request budget, then recovery), each through both readers:
the Python driver's (``sinks.cassandra.reader``) and the C++ driver's (``sinks.cassandra.native_reader``,
the API's default)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.feature_services import FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from serving.online.app import create_app
from sinks.cassandra.native_reader import NativeOnlineReader
from sinks.cassandra.reader import OnlineReader
from sinks.cassandra.writer import OnlineWriter
from sinks.factory import connect_cassandra
from sinks.records import FeatureRow

if TYPE_CHECKING:
    from cassandra.cluster import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("frozen_heap")]  # the bounds time requests

MIN = 60_000
BUDGET_S = 0.1


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture(scope="module")
def serving_settings(it_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    folder = tmp_path_factory.mktemp("serving_online")
    settings = it_settings.model_copy(
        update={
            "cassandra_keyspace": f"{it_settings.cassandra_keyspace}_serving",
            "definitions_db": folder / "definitions.db",
        }
    )
    yield settings
    cluster, session = connect_cassandra(settings)
    session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
    cluster.shutdown()


@pytest.fixture(scope="module")
def seeded(serving_settings: Settings) -> int:
    """txn_count_1h v1 and v2 (v2 active, other values) and txn_amount_sum_1h v1 for alice and bob; returns the window end."""
    shipped = FeatureCatalog.from_folder()
    v1 = shipped.get("user", "txn_count_1h")
    v2 = v1.model_copy(update={"version": 2, "ttl": v1.ttl * 2})
    total = shipped.get("user", "txn_amount_sum_1h")
    store = DefinitionStore(serving_settings.definitions_db)
    for d in (v1, total):
        store.register(d)
    store.register(v2, activate=True)
    end = time.time_ns() // 1_000_000 // (5 * MIN) * 5 * MIN
    cluster, session = connect_cassandra(serving_settings)
    try:
        writer = OnlineWriter(session, serving_settings.cassandra_keyspace)
        for entity, count, amount in (("alice", 3, 35.5), ("bob", 1, 100.0)):
            writer.add(FeatureRow.of(v1, entity, count, end - 60 * MIN, end))
            writer.add(FeatureRow.of(v2, entity, count * 10, end - 60 * MIN, end))
            writer.add(FeatureRow.of(total, entity, amount, end - 60 * MIN, end))
        writer.flush()
    finally:
        cluster.shutdown()
    return end


@pytest.fixture(params=["python", "native"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _app(
    settings: Settings,
    driver: str,
    *,
    port: int | None = None,
    budget_s: float = BUDGET_S,
    batch_budget_s: float = 1.0,
    progress_ttl_s: float = 1.0,
) -> tuple[TestClient, _Closing]:
    from cassandra.query import tuple_factory

    at = settings if port is None else settings.model_copy(update={"cassandra_port": port})
    cluster, session = connect_cassandra(at)
    session.row_factory = tuple_factory
    live = LiveCatalog(DefinitionStore(settings.definitions_db))
    services = LiveFeatureServices(FeatureServiceStore(settings.definitions_db))
    reader: OnlineReader | NativeOnlineReader = (
        OnlineReader(
            session,
            settings.cassandra_keyspace,
            timeout_s=budget_s,
            batch_timeout_s=batch_budget_s,
            progress_ttl_s=progress_ttl_s,
        )
        if driver == "python"
        else NativeOnlineReader(at.cassandra_hosts, at.cassandra_port, settings.cassandra_keyspace, timeout_s=budget_s)
    )
    client = TestClient(create_app(live, reader, services=services), raise_server_exceptions=False)
    client.__enter__()  # one event loop for all its requests, as in the API process (a native session belongs to one)
    if isinstance(reader, NativeOnlineReader):
        assert client.portal is not None
        client.portal.call(reader.connect)  # as the API does at start-up
    return client, _Closing(client, cluster)


class _Closing:
    def __init__(self, client: TestClient, cluster: Cluster) -> None:
        self._client, self._cluster = client, cluster

    def shutdown(self) -> None:
        self._client.__exit__(None, None, None)
        self._cluster.shutdown()


def test_batch_reads_real_partitions(serving_settings: Settings, seeded: int, driver: str) -> None:
    client, cluster = _app(serving_settings, driver)
    try:
        response = client.post(
            "/v1/features/user/batch",
            json={"entity_ids": ["alice", "carol", "bob"], "names": ["txn_count_1h", "txn_amount_sum_1h"]},
        )
    finally:
        cluster.shutdown()
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["names"], body["versions"]) == (["txn_count_1h", "txn_amount_sum_1h"], [2, 1])
    alice, carol, bob = body["results"]
    assert (alice["entity_id"], alice["values"], alice["statuses"]) == ("alice", [30, 35.5], ["present", "present"])
    assert alice["feature_timestamps"] == [_iso(seeded), _iso(seeded)]
    assert carol["statuses"] == ["missing", "missing"]
    assert bob["values"] == [10, 100.0]


def test_feature_service_serves_the_pinned_older_version(serving_settings: Settings, seeded: int, driver: str) -> None:
    client, cluster = _app(serving_settings, driver)
    try:
        registered = client.post(
            "/v1/feature-services",
            json={
                "name": "fraud-detector",
                "features": [
                    {"entity": "user", "name": "txn_count_1h", "version": 1},
                    {"entity": "user", "name": "txn_amount_sum_1h", "version": 1},
                ],
            },
        )
        assert registered.status_code in (200, 201), registered.text
        ref = registered.json()["feature_service"]["ref"]
        pinned = client.get("/v1/features/user/alice", params={"feature_service": ref}).json()["features"]
        active = client.get("/v1/features/user/alice", params={"names": "txn_count_1h"}).json()["features"]
        batch = client.post("/v1/features/user/batch", json={"entity_ids": ["bob"], "feature_service": ref}).json()
    finally:
        cluster.shutdown()
    assert (pinned["txn_count_1h"]["value"], pinned["txn_count_1h"]["version"]) == (3, 1)  # v1's row, not v2's
    assert pinned["txn_amount_sum_1h"]["value"] == 35.5
    assert (active["txn_count_1h"]["value"], active["txn_count_1h"]["version"]) == (30, 2)
    assert (batch["versions"], batch["results"][0]["values"]) == ([1, 1], [1, 100.0])


class _Proxy:
    """A TCP proxy to Cassandra that can stop forwarding (a node that hangs) or drop every connection (a dead one)."""

    def __init__(self, target: tuple[str, int], port: int = 0) -> None:
        self._target = target
        self._server = socket.create_server(("127.0.0.1", port))  # SO_REUSEADDR: a restart takes the same port
        self.port = self._server.getsockname()[1]
        self.paused = threading.Event()
        self.delay_s = 0.0  # added to each answer of the store's (a slow store)
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        try:
            while data := src.recv(65536):
                while self.paused.is_set() and not self._closed.is_set():
                    time.sleep(0.005)
                if answers and self.delay_s:
                    time.sleep(self.delay_s)
                dst.sendall(data)
        except OSError:
            pass

    def drop_all(self) -> None:
        self._closed.set()
        self._server.close()
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def test_a_hanging_or_dead_store_answers_503_within_the_budget(
    serving_settings: Settings, seeded: int, driver: str
) -> None:
    proxy = _Proxy((serving_settings.cassandra_hosts[0], serving_settings.cassandra_port))
    client, cluster = _app(serving_settings, driver, port=proxy.port)
    try:
        # The store answers before the fault: the first read through a fresh proxy and client may take longer
        # than the 100 ms budget on a loaded machine (a 503 then is the budget working, not the fault).
        deadline = time.monotonic() + 10
        while client.get("/v1/features/user/alice").status_code != 200:
            assert time.monotonic() < deadline, "the store never answered through the proxy"
            time.sleep(0.2)
        proxy.paused.set()  # Cassandra stops answering, connections stay open
        for path in ("/v1/features/user/bob", "/v1/features/user/dave"):
            started = time.perf_counter()
            response = client.get(path)
            elapsed = time.perf_counter() - started
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "store_unavailable"
            assert elapsed < BUDGET_S + 0.3, (
                elapsed
            )  # the budget, plus a loaded machine's scheduling and TestClient's overhead
        started = time.perf_counter()
        batch = client.post("/v1/features/user/batch", json={"entity_ids": ["alice", "bob", "erin"]})
        assert batch.status_code == 503
        assert time.perf_counter() - started < BUDGET_S + 0.3
        proxy.paused.clear()
        deadline = time.monotonic() + 15
        while client.get("/v1/features/user/bob").status_code != 200:  # the same client recovers by itself
            assert time.monotonic() < deadline, "no recovery after the store answered again"
            time.sleep(0.2)
        if driver == "native":
            return  # the C++ driver also connects to the port the node advertises, around the proxy (see below)
        proxy.drop_all()  # the node is gone: connections refused
        started = time.perf_counter()
        gone = client.get("/v1/features/user/frank")
        assert gone.status_code == 503
        assert time.perf_counter() - started < BUDGET_S + 0.3
    finally:
        proxy.drop_all()
        cluster.shutdown()


def test_a_slow_store_answers_503_at_one_budget_for_the_progress_and_the_vectors(
    serving_settings: Settings, seeded: int
) -> None:
    """README: a request's budget runs from its start. A lookup reads the streams' progress (cached a second), then the
    vectors: each read had a budget of its own, so a store answering each read in 0.2 s with a budget of 0.3 s was a
    200 at 0.4 s (audit: 200s at twice the budget, and 503s at twice it). Now the vectors' read has what the progress
    left: 503 at the budget; a batch's budget (0.35 s here) runs from the same start. With the progress cached, the
    same store answers within either. The Python driver only (the C++ driver also connects around the proxy, see
    below)."""
    budget_s, batch_s, delay_s = 0.3, 0.35, 0.2
    proxy = _Proxy((serving_settings.cassandra_hosts[0], serving_settings.cassandra_port))
    client, cluster = _app(
        serving_settings, "python", port=proxy.port, budget_s=budget_s, batch_budget_s=batch_s, progress_ttl_s=3.0
    )
    try:
        deadline = time.monotonic() + 10
        while client.get("/v1/features/user/alice").status_code != 200:
            assert time.monotonic() < deadline, "the store never answered through the proxy"
            time.sleep(0.2)
        proxy.delay_s = delay_s
        for request in (
            lambda: client.get("/v1/features/user/bob"),
            lambda: client.post("/v1/features/user/batch", json={"entity_ids": ["alice", "erin"]}),
        ):
            time.sleep(3.2)  # the progress no longer cached: this request reads it first
            started = time.perf_counter()
            response = request()
            elapsed = time.perf_counter() - started
            assert response.status_code == 503, response.text  # 200 at 0.4 s before
            assert response.json()["error"] == "store_unavailable"
            assert elapsed < batch_s + delay_s, elapsed  # the budget, plus a loaded machine's scheduling
            time.sleep(delay_s + 0.1)  # the proxy delays answers one after another: the late answer is sent first
            cached = client.get("/v1/features/user/dave")  # the progress read above is cached now (3 s)
            assert cached.status_code == 200, cached.text
    finally:
        proxy.drop_all()
        cluster.shutdown()


def test_reads_recover_within_2_s_of_the_store_returning_whatever_the_outage(
    serving_settings: Settings, seeded: int
) -> None:
    """A node gone for 12 s (past the early steps of an exponential reconnection schedule): every read in
    the outage is a fast 503, and reads answer correctly again within 2 s of the node's return.

    The Python driver only: the C++ driver, once connected, also opens connections to the port the node
    advertises (9042), around the proxy, so the proxy cannot take the node away from it. The API process
    reads through the C++ driver while the real Cassandra is stopped, killed and restarted in
    ``tests/integration/test_faults.py``."""
    driver = "python"  # not the fixture's two drivers: it would be a skip on every run for the native one
    target = (serving_settings.cassandra_hosts[0], serving_settings.cassandra_port)
    proxy = _Proxy(target)
    port = proxy.port
    client, cluster = _app(serving_settings, driver, port=port)
    try:
        healthy = client.get("/v1/features/user/bob").json()["features"]
        proxy.drop_all()
        outage_ends = time.monotonic() + 12
        refused = 0
        while time.monotonic() < outage_ends:
            started = time.perf_counter()
            response = client.get("/v1/features/user/bob")
            assert response.status_code == 503, response.text
            assert time.perf_counter() - started < BUDGET_S + 0.3
            refused += 1
            time.sleep(0.25)
        proxy = _Proxy(target, port=port)  # the node is back, at the same address
        back = time.monotonic()
        while (response := client.get("/v1/features/user/bob")).status_code != 200:
            assert response.status_code == 503, response.text
            assert time.monotonic() - back < 2.0, "no answer within 2 s of the store's return"
            time.sleep(0.05)
        recovered_s = time.monotonic() - back
        print(f"{refused} fast 503s in the outage; recovered {recovered_s:.2f} s after the store returned")
        after = response.json()["features"]
        assert {k: (v["value"], v["feature_timestamp"], v["version"]) for k, v in after.items()} == {
            k: (v["value"], v["feature_timestamp"], v["version"]) for k, v in healthy.items()
        }  # the values and timestamps served before the outage: nothing false served
    finally:
        proxy.drop_all()
        cluster.shutdown()
