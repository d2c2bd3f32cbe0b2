"""Every socket that a process of the project listens on is bound to the loopback interface.

The stack (Kafka, Cassandra, the schema registry, the feature API) and a running stream job that has
processed events, with its Flink mini-cluster (REST, RPC, blob and data ports), PyFlink's worker pool
and the job's Prometheus endpoint: their listening sockets are read from ``ss`` and each must be
127.0.0.1 (or ::1). Processes that are not the project's are not looked at. (In PyFlink's process mode
the JVM opens six Beam gRPC servers on every interface once the first records reach a Python
function; the job runs its Python functions in thread mode, which opens none: ``jobs.feature_job``.)
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from infra import stack
from infra.process import PidFile
from infra.settings import StackSettings
from jobs.produce import ensure_topics, make_producer
from registry.core.catalog import load_folder
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.plan import apply
from tests.conftest import REPO, isolated, settings_env

pytestmark = pytest.mark.integration

_LISTENER = re.compile(r"^\S+\s+\d+\s+\d+\s+(\S+):(\d+)\s+\S+\s+(.*)$")


def _listeners() -> dict[int, list[str]]:
    """pid -> the addresses it listens on (TCP), from ``ss``."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found: dict[int, list[str]] = {}
    for line in out.splitlines():
        match = _LISTENER.match(line.strip())
        if match:
            for pid in re.findall(r"pid=(\d+)", match.group(3)):
                found.setdefault(int(pid), []).append(f"{match.group(1)}:{match.group(2)}")
    return found


def _loopback(address: str) -> bool:
    host = address.strip("[]")
    if host == "*":
        return False
    ip = ipaddress.ip_address(host)
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return (mapped or ip).is_loopback


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def api(local_stack: StackSettings) -> Iterator[StackSettings]:
    started = stack.up(local_stack, ["api"])
    try:
        yield local_stack
    finally:
        stack.down(local_stack, started)


def _events_in(port: int) -> float:
    """The job's ``events_in`` counter (0 until its decoder has processed records)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.endswith("_events_in")
    )


@pytest.fixture(scope="module")
def job(it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """An unbounded job on a topic of its own with events in it, with its metrics endpoint, once it has
    processed events (every listener a Python function needs is open by then): (process group, metrics port)."""
    settings = isolated(it_settings, "listen", tmp_path_factory.mktemp("listen"))
    topic = f"it_{run_id}_listen_txns"
    toml = (REPO / "registry" / "features" / "user_transactions.toml").read_text()
    (settings.definitions_dir / "user_transactions.toml").write_text(
        toml.replace('topic = "card_transactions"', f'topic = "{topic}"')
    )
    apply(DefinitionStore(settings.definitions_db), load_folder(settings.definitions_dir))
    ensure_topics(settings.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=1)
    producer = make_producer(settings)
    now_ms = time.time_ns() // 1_000_000
    producer.send(
        topic,
        [
            {
                "transaction_id": f"t{i}",
                "user_id": f"u{i % 3}",
                "merchant_id": "m1",
                "amount": 1.0 + i,
                "currency": "EUR",
                "event_time": now_ms - 3_600_000 + i * 60_000,
            }
            for i in range(20)
        ],
    )
    producer.flush()
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "jobs.feature_job", "--metrics-port", str(port), "--group-id", f"{run_id}-listen"],
        cwd=REPO,
        env=settings_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, process.stderr.read().decode()[-3000:] if process.stderr else ""
            if _events_in(port) > 0:
                break
            assert time.monotonic() < deadline, "the job processed no events within 180 s"
            time.sleep(1)
        yield process.pid, port
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def _group(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,pgid="], capture_output=True, text=True, check=True).stdout
    return [int(pid) for pid, group in (line.split() for line in out.splitlines()) if int(group) == pgid]


def test_every_listener_of_the_stack_and_the_job_is_loopback(api: StackSettings, job: tuple[int, int]) -> None:
    pgid, metrics_port = job
    ours: dict[int, str] = {}
    for name in ("kafka", "cassandra", "registry", "api"):
        pid = PidFile(api.service_dir(name) / "pid").read()
        if pid is not None:  # None: a service this run did not start (already running, e.g. `make up`)
            ours.update({p: name for p in _group(os.getpgid(pid))})
    ours.update({p: "stream job" for p in _group(pgid)})
    listening = _listeners()
    seen = {(ours[pid], address) for pid in ours for address in listening.get(pid, [])}
    assert any(name == "stream job" and address.endswith(f":{metrics_port}") for name, address in seen)
    assert sum(1 for name, _ in seen if name == "stream job") >= 4  # REST or RPC, blob, data, worker pool, metrics
    exposed = sorted((name, address) for name, address in seen if not _loopback(address.rsplit(":", 1)[0]))
    assert not exposed, f"listening beyond the loopback interface: {exposed}"
    print(sorted(seen))


def test_the_loopback_check_itself() -> None:
    assert _loopback("127.0.0.1") and _loopback("[::1]") and _loopback("[::ffff:127.0.0.1]")
    assert not _loopback("*") and not _loopback("0.0.0.0") and not _loopback("[::]") and not _loopback("10.0.0.1")
