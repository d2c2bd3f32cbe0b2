"""``python -m sinks.archive --metrics-port PORT`` when PORT is taken: one line naming the port, exit 1, nothing
archived (it used to end in Python's traceback of ``OSError: [Errno 98] Address already in use``)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from registry.core.settings import Settings
from sinks.topics import ensure_topics
from tests.conftest import isolated, run_module

pytestmark = pytest.mark.integration  # the live stack


def test_a_metrics_port_in_use_is_named_in_one_line(it_settings: Settings, tmp_path: Path) -> None:
    settings = isolated(it_settings, "archport", tmp_path / "definitions")
    topic = f"jc_archport_{settings.cassandra_keyspace}"
    ensure_topics(settings.kafka_bootstrap, [topic])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_module(settings, "sinks.archive", "--topic", topic, "--once", "--metrics-port", str(port))
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [f"error: --metrics-port {port}: 127.0.0.1:{port} is in use or not ours to listen on"], done.stderr
