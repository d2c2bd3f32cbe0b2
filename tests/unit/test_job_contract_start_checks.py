"""What the stream job checks before it starts anything, each failure one line, exit 1.

README "The stream job": the job's metrics are at ``--metrics-port`` (9249 unless given). A port another process
holds used to leave the job running without its metrics endpoint and without a word (Flink's reporter only logs
the bind failure). And ``--events archive`` decodes with the schema registry: a stopped one is named first."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _applied_env(closed_port: int, tmp_path: Path) -> dict[str, str]:
    """An environment whose Kafka and schema registry are a closed port, with the definitions applied in it."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "FS_STATE_DIR": str(tmp_path),
        "FS_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed_port}",
        "FS_SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{closed_port}",
        "PYTHONPATH": str(REPO),
    }
    applied = subprocess.run(
        [sys.executable, "-m", "registry.cli", "apply"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert applied.returncode == 0, applied.stderr
    return env


def test_a_metrics_port_in_use_is_named_before_anything_starts(closed_port: int, tmp_path: Path) -> None:
    env = _applied_env(closed_port, tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "jobs.feature_job", "--bounded", "--metrics-port", str(port)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert time.monotonic() - started < 20
    assert done.returncode == 1
    assert done.stderr == f"error: --metrics-port {port}: 127.0.0.1:{port} is in use or not ours to listen on\n"


def test_a_stopped_registry_is_named_before_the_archive_is_read(closed_port: int, tmp_path: Path) -> None:
    """design §6 "Schema registry down": a command started while the registry does not answer fails before it
    starts anything with ``error: schema registry at <url> unavailable: ...``; ``--events archive`` decodes with
    the registry too (it read the archive and the topic first, then said ``schema registry unreachable``)."""
    env = _applied_env(closed_port, tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "jobs.feature_job", "--events", "archive", "--metrics-port", "0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: schema registry at http://127.0.0.1:{closed_port} unavailable: ConnectError")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
