"""The serving bench's processes: the API server it starts (``python -m serving.online``, or
``bench.profiled``) on a free loopback port with the bench's settings, its cache hit rate from ``/metrics``,
and the CPU time of it and of the local stack's Cassandra (Linux /proc), which the bench waits to settle
after seeding."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(settings: Any, cache_ttl_ms: int, log_topic: str, auth: bool = False) -> dict[str, str]:
    """The server's environment: the bench's settings, its cache TTL and auth, and its own serving-log topic
    (``log_topic``), whatever ``FS_SERVING_LOG_TOPIC`` the bench was started with."""
    env = dict(os.environ)
    env["FS_AUTH"] = "on" if auth else "off"
    env.update(
        {
            "FS_CASSANDRA_HOSTS": ",".join(settings.cassandra_hosts),
            "FS_CASSANDRA_PORT": str(settings.cassandra_port),
            "FS_CASSANDRA_KEYSPACE": settings.cassandra_keyspace,
            "FS_DEFINITIONS_DB": str(settings.definitions_db),
            "FS_CACHE_TTL_MS": str(cache_ttl_ms),
            "FS_SERVING_LOG_TOPIC": log_topic,
            "PYTHONPATH": str(REPO),
        }
    )
    return env


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process (Linux /proc), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SETTLED_CORES = 0.15  # Cassandra's CPU use under which the seeding's flushes and compactions are over
SETTLE_MAX_S = 90.0


def settle(pid: int | None) -> tuple[float, float]:
    """Wait until Cassandra's CPU use over a second falls below ``SETTLED_CORES`` (at most ``SETTLE_MAX_S``):
    the seeding's memtable flushes and compactions otherwise run during the first measured run, which then
    measures them. Returns the seconds waited and the last second's use (0 without a pid)."""
    started = time.monotonic()
    busy = 0.0
    while pid is not None and time.monotonic() - started < SETTLE_MAX_S:
        before = cpu_seconds(pid)
        time.sleep(1.0)
        after = cpu_seconds(pid)
        if before is None or after is None:
            break
        busy = after - before
        if busy < SETTLED_CORES:
            break
    return time.monotonic() - started, busy


def settle_text(pid: int | None, waited: float, busy: float) -> str:
    """What ``settle`` found, in one line: how long Cassandra took to settle, or that its CPU could not be read."""
    if pid is None:
        return (
            "Cassandra's CPU use could not be measured (its pid file not found or not readable): the runs start "
            "without waiting for the seeding's flushes and compactions to settle; its CPU per request is not shown"
        )
    return (
        f"Cassandra settled after the seeding in {waited:.0f}s (it used {busy:.2f} cores over the last second; "
        f"the runs start below {SETTLED_CORES} or after {SETTLE_MAX_S:.0f}s)"
    )


def cassandra_pid() -> int | None:
    """The local stack's Cassandra (its PID file), to report its CPU time per request; None if not found."""
    from infra.settings import StackSettings

    try:
        pid = int((StackSettings.from_env().service_dir("cassandra") / "pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if cpu_seconds(pid) is not None else None


@contextmanager
def server(
    settings: Any,
    *,
    port: int,
    workers: int,
    cache_ttl_ms: int,
    profile: Path | None,
    log_topic: str,
    auth: bool = False,
) -> Iterator[int]:
    cmd = [sys.executable, "-m", "serving.online", "--port", str(port), "--workers", str(workers)]
    if profile is not None:
        cmd = [sys.executable, "-m", "bench.profiled", str(profile), "--port", str(port)]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=_env(settings, cache_ttl_ms, log_topic, auth),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # auth off logs one warning per route; a failed start is seen at /health
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and auth:
                    break  # up, and refusing the anonymous
                raise
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start (exit {proc.poll()})") from None
                time.sleep(0.2)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def cache_hit_rate(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return "?"
    counts = {}
    for line in text.splitlines():
        if line.startswith("fs_cache_requests_total{"):
            result = line.split('result="', 1)[1].split('"', 1)[0]
            counts[result] = float(line.rsplit(" ", 1)[1])
    total = sum(counts.values())
    return f"{counts.get('hit', 0) / total:.0%}" if total else "-"
