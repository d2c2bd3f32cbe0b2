"""Faults injected into the real services: SIGSTOP (a process that hangs), kill -9 (one that dies) and a
restart, for the feature API, the schema registry, Kafka and Cassandra. (The stream job's kill -9 and
restore from a checkpoint is ``test_crash_restart.py``.)

Each test asserts what a user sees: during the fault a fast answer that names it (503
``store_unavailable`` from the API, a client error from the registry or the API client, never a hang);
after the service returns, correct answers within 2 s; nothing lost, nothing duplicated, no false value
served. The services are the session's own (``infra``), restarted in place, so later tests find them
healthy again.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from infra import stack
from infra.process import PidFile, alive
from infra.settings import StackSettings
from jobs.registry_client import CLIENT_CONFIG, registry_client
from registry.core.catalog import load_folder
from registry.core.errors import StoreUnavailableError
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.plan import apply
from serving.online.client import FeatureClient
from sinks.cassandra.writer import OnlineWriter
from sinks.factory import connect_cassandra
from sinks.records import FeatureRow
from tests.conftest import REPO, isolated, settings_env
from tests.processes import pause

pytestmark = [pytest.mark.integration, pytest.mark.disruptive, pytest.mark.usefixtures("frozen_heap")]

BUDGET_MS = 100
FAST_S = BUDGET_MS / 1000 + 0.3  # the budget, plus a loaded machine's scheduling and an HTTP round trip
RECOVERY_S = 2.0
MIN = 60_000
RECOVERIES: dict[str, float] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _service_pid(local_stack: StackSettings, name: str) -> int:
    pid = PidFile(local_stack.service_dir(name) / "pid").read()
    assert pid is not None and alive(pid), f"{name} is not running under infra's PID file"
    return pid


def _kill_and_restart(local_stack: StackSettings, name: str, during: Callable[[], None]) -> float:
    """kill -9 the service, run ``during`` while it is dead, restart it in place; monotonic time it is healthy."""
    pid = _service_pid(local_stack, name)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while alive(pid):
        assert time.monotonic() < deadline, f"{name} survived SIGKILL"
        time.sleep(0.05)
    during()
    stack.up(local_stack, [name])  # returns once the service answers its health check
    return time.monotonic()


def _until(check: Callable[[], bool], since: float, what: str) -> float:
    """Poll ``check`` until it holds; the seconds it took from ``since``, which must stay within RECOVERY_S."""
    while not check():
        assert time.monotonic() - since < RECOVERY_S, f"{what}: no recovery within {RECOVERY_S} s"
        time.sleep(0.02)
    return time.monotonic() - since


# --- the feature API and the store behind it ---------------------------------------------------------


@pytest.fixture(scope="module")
def fault_settings(it_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = isolated(it_settings, "faults", tmp_path_factory.mktemp("faults"))
    yield settings
    cluster, session = connect_cassandra(settings)
    session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
    cluster.shutdown()


@pytest.fixture(scope="module")
def seeded(fault_settings: Settings) -> tuple[dict[str, Any], float]:
    """Two features of entity ``f1`` in the online store; (their values as served, when they were written)."""
    apply(DefinitionStore(fault_settings.definitions_db), load_folder())
    catalog = DefinitionStore(fault_settings.definitions_db).catalog()
    count, total = catalog.get("user", "txn_count_1h"), catalog.get("user", "txn_amount_sum_1h")
    end = time.time_ns() // 1_000_000 // (5 * MIN) * 5 * MIN
    cluster, session = connect_cassandra(fault_settings)
    try:
        writer = OnlineWriter(session, fault_settings.cassandra_keyspace)
        writer.add(FeatureRow.of(count, "f1", 4, end - 60 * MIN, end))
        writer.add(FeatureRow.of(total, "f1", 40.5, end - 60 * MIN, end))
        writer.flush()
    finally:
        cluster.shutdown()
    return {"txn_count_1h": 4, "txn_amount_sum_1h": 40.5}, time.monotonic()


class _Api:
    """``python -m serving.online`` as a process of its own, restartable on the same port."""

    def __init__(self, settings: Settings) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {**settings_env(settings), "FS_REQUEST_BUDGET_MS": str(BUDGET_MS), "FS_CACHE_TTL_MS": "0"}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "serving.online", "--port", str(self.port)],
            cwd=REPO,
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, "the API exited during start-up"
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return time.monotonic()
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API did not answer /health within 60 s"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def api(fault_settings: Settings, seeded: tuple[dict[str, Any], float]) -> Iterator[_Api]:
    server = _Api(fault_settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _values(response: httpx.Response) -> dict[str, Any]:
    return {name: f["value"] for name, f in response.json()["features"].items()}


def _served(api: _Api, expected: dict[str, Any]) -> Callable[[], bool]:
    def check() -> bool:
        try:
            response = httpx.get(f"{api.url}/v1/features/user/f1", timeout=1)
        except httpx.TransportError:
            return False
        if response.status_code != 200:
            assert response.status_code == 503, response.text  # recovering: only "store unavailable", never a 500
            return False
        assert _values(response) == expected, "a value served after the fault differs from the stored one"
        return True

    return check


def _fast_503s(api: _Api, n: int = 5) -> None:
    for _ in range(n):
        started = time.perf_counter()
        response = httpx.get(f"{api.url}/v1/features/user/f1", timeout=5)
        elapsed = time.perf_counter() - started
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "store_unavailable"
        assert elapsed < FAST_S, f"a 503 took {elapsed:.3f} s"
        time.sleep(0.1)


def test_the_api_process_stopped_or_killed_fails_fast_in_the_client_and_recovers(
    api: _Api, seeded: tuple[dict[str, Any], float]
) -> None:
    expected, _ = seeded
    client = FeatureClient(api.url, timeout_s=1.0)
    assert {k: v["value"] for k, v in client.get_features("user", "f1")["features"].items()} == expected
    assert api.process is not None
    pause(api.process.pid, group=True)  # hangs: accepts nothing, answers nothing
    try:
        started = time.perf_counter()
        with pytest.raises(StoreUnavailableError):
            client.get_features("user", "f1")
        assert time.perf_counter() - started < 1.0 + 0.5  # the client's timeout, not a hang
    finally:
        os.killpg(api.process.pid, signal.SIGCONT)
    RECOVERIES["api after SIGCONT"] = _until(_served(api, expected), time.monotonic(), "API after SIGCONT")
    api.stop()  # kill -9
    started = time.perf_counter()
    with pytest.raises(StoreUnavailableError):
        client.get_features("user", "f1")
    assert time.perf_counter() - started < 0.5  # refused at once
    back = api.start()
    RECOVERIES["api after kill -9 and restart"] = _until(_served(api, expected), back, "API after restart")
    client.close()
    print(f"recoveries so far (s): {RECOVERIES}")


def test_cassandra_stopped_or_killed_gives_fast_503s_and_reads_recover_within_2_s(
    local_stack: StackSettings, api: _Api, seeded: tuple[dict[str, Any], float]
) -> None:
    expected, written_at = seeded
    assert _served(api, expected)()
    pid = _service_pid(local_stack, "cassandra")
    pause(pid)
    try:
        _fast_503s(api)
    finally:
        os.kill(pid, signal.SIGCONT)
    RECOVERIES["cassandra after SIGCONT"] = _until(_served(api, expected), time.monotonic(), "after SIGCONT")
    # Cassandra syncs its commit log every 10 s (infra/conf/cassandra/cassandra.yaml): rows older than that
    # survive a kill -9, and the API must serve them again, not a false or missing value.
    time.sleep(max(0.0, written_at + 11 - time.monotonic()))
    back = _kill_and_restart(local_stack, "cassandra", lambda: _fast_503s(api))
    RECOVERIES["cassandra after kill -9 and restart"] = _until(_served(api, expected), back, "after restart")
    print(f"recoveries so far (s): {RECOVERIES}")


def test_the_api_stopped_by_sigterm_while_cassandra_hangs_ends_without_a_hang(
    local_stack: StackSettings, fault_settings: Settings, seeded: tuple[dict[str, Any], float]
) -> None:
    """README: the API stopped by SIGTERM ends as after Ctrl-C, exit 0. With Cassandra frozen, reads failing for a
    second start a fresh session in the background; a SIGTERM then cancelled it with the loop's last tasks, and
    freeing a session the C++ driver is still connecting blocked the process (audit: alive 20 s after SIGTERM, and
    10 s after the store came back; minutes in another run). Its shutdown now waits for it (the connect timeout)."""
    server = _Api(fault_settings)
    server.start()
    assert server.process is not None
    pid = _service_pid(local_stack, "cassandra")
    pause(pid)
    try:
        _fast_503s(server, n=12)  # 1.2 s and more of failing reads: a fresh session is being opened
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            code = server.process.wait(timeout=15)  # the store still frozen: its connect timeout (5 s) ends the attempt
        except subprocess.TimeoutExpired:
            code = None
    finally:
        os.kill(pid, signal.SIGCONT)
        server.stop()
    assert code == 0, "the API did not end within 15 s of SIGTERM" if code is None else f"exit {code}"


# --- the schema registry --------------------------------------------------------------------------------


def _registry_client(local_stack: StackSettings) -> Any:
    return registry_client(f"http://127.0.0.1:{local_stack.registry_port}")  # as the producer and decoder use it


def test_the_schema_registry_stopped_or_killed_fails_fast_and_keeps_its_ids(local_stack: StackSettings) -> None:
    from confluent_kafka.schema_registry import Schema

    subject = f"faults-{uuid.uuid4().hex[:8]}-value"
    schema = Schema('{"type": "record", "name": "F", "fields": [{"name": "a", "type": "long"}]}', "AVRO")
    schema_id = _registry_client(local_stack).register_schema(subject, schema)

    def found() -> bool:
        try:  # a fresh client each time: nothing answered from a client-side cache
            stored = _registry_client(local_stack).get_schema(schema_id).schema_str
            return bool(json.loads(stored or "null") == json.loads(schema.schema_str or "null"))
        except Exception:
            return False

    def fails_within(limit_s: float) -> Callable[[], None]:
        def check() -> None:
            started = time.perf_counter()
            assert not found()
            assert time.perf_counter() - started < limit_s, "a registry call outlived the client's bounds"

        return check

    # Hung: three attempts of at most 1 s and two waits of at most 0.5 s (jobs/registry_client.py).
    hung_limit_s = 3 * CLIENT_CONFIG["timeout"] + 2 * CLIENT_CONFIG["retries.max.wait.ms"] / 1000 + 0.5
    assert found()  # healthy: the check can pass, so its failures below are the fault's
    pid = _service_pid(local_stack, "registry")
    pause(pid)
    try:
        fails_within(hung_limit_s)()
    finally:
        os.kill(pid, signal.SIGCONT)
    RECOVERIES["registry after SIGCONT"] = _until(found, time.monotonic(), "registry after SIGCONT")
    back = _kill_and_restart(local_stack, "registry", fails_within(1.5))  # refused: no attempt waits
    RECOVERIES["registry after kill -9 and restart"] = _until(found, back, "registry after restart")
    # Nothing lost: the same schema under the same subject has the same id, and a new one takes the next.
    assert _registry_client(local_stack).register_schema(subject, schema) == schema_id
    assert _registry_client(local_stack).get_latest_version(subject).schema_id == schema_id
    print(f"recoveries so far (s): {RECOVERIES}")


# --- Kafka ---------------------------------------------------------------------------------------------


def test_kafka_stopped_or_killed_loses_and_duplicates_nothing(
    local_stack: StackSettings, fault_settings: Settings
) -> None:
    """A producer sends throughout a SIGSTOP of the broker, then a kill -9 and restart: every event is in the
    topic exactly once (idempotent producer, acks=all), and deliveries resume within 2 s of the broker's return."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from jobs.produce import ensure_topics, producer_config

    topic = f"faults-{uuid.uuid4().hex[:8]}"
    ensure_topics(fault_settings.kafka_bootstrap, [topic], partitions=2)
    from confluent_kafka import Producer

    producer = Producer({**producer_config(fault_settings), "message.timeout.ms": 180_000})
    delivered: list[tuple[float, int]] = []
    errors: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            delivered.append((time.monotonic(), int(msg.value())))

    stop = threading.Event()
    sent = [0]

    def produce() -> None:
        while not stop.is_set():
            producer.produce(topic, key=str(sent[0] % 7).encode(), value=str(sent[0]).encode(), on_delivery=on_delivery)
            sent[0] += 1
            producer.poll(0)
            time.sleep(0.005)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        time.sleep(1)
        pid = _service_pid(local_stack, "kafka")
        pause(pid)  # a broker that hangs: the producer queues and retries
        try:
            time.sleep(3)
        finally:
            os.kill(pid, signal.SIGCONT)
        resumed = time.monotonic()
        time.sleep(RECOVERY_S + 1)
        stopped_after = [t for t, _ in delivered if t >= resumed]
        assert stopped_after, "nothing delivered after the broker resumed"
        RECOVERIES["kafka producer after SIGCONT"] = min(stopped_after) - resumed
        assert min(stopped_after) - resumed < RECOVERY_S
        back = _kill_and_restart(local_stack, "kafka", lambda: time.sleep(2))
        time.sleep(3)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert producer.flush(120) == 0, "events still undelivered two minutes after the broker returned"
    assert not errors, errors[:3]
    after = [t for t, _ in delivered if t >= back]
    assert after, "nothing delivered after the restart"
    RECOVERIES["kafka producer after kill -9 and restart"] = min(after) - back
    assert min(after) - back < RECOVERY_S
    consumer = Consumer(
        {
            "bootstrap.servers": fault_settings.kafka_bootstrap,
            "group.id": f"faults-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(2)])
    seen: list[int] = []
    deadline = time.monotonic() + 60
    while len(seen) < sent[0] and time.monotonic() < deadline:
        for message in consumer.consume(1000, timeout=1):
            value = message.value()
            if message.error() is None and value is not None:
                seen.append(int(value))
    consumer.close()
    assert len(seen) == len(set(seen)), "duplicated events"
    assert sorted(seen) == list(range(sent[0])), f"{sent[0] - len(set(seen))} events lost"
    print(f"{sent[0]} events through a broker kill -9, none lost or duplicated; recoveries so far (s): {RECOVERIES}")
