"""The schema registry stopped or hung: commands that need it fail within seconds with one line naming it
(the stream job used to fail inside Flink after ~25 s with a Java trace, the producer with a traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs.produce import EventProducer
from jobs.registry_client import registry_client, require_registry
from registry.core.errors import StoreUnavailableError

REPO = Path(__file__).resolve().parents[2]


def test_a_stopped_registry_is_named_at_once(closed_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(
        StoreUnavailableError, match=rf"^schema registry at http://127.0.0.1:{closed_port} unavailable: "
    ):
        require_registry(f"http://127.0.0.1:{closed_port}")
    assert time.monotonic() - started < 3


def test_a_hung_registry_is_named_within_the_clients_bounds(silent_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(
        StoreUnavailableError, match=rf"^schema registry at http://127.0.0.1:{silent_port} unavailable: "
    ):
        require_registry(f"http://127.0.0.1:{silent_port}")
    assert time.monotonic() - started < 8  # three attempts of 1 s and short backoffs (about 3.6 s)


def test_the_producer_names_a_registry_that_stops_answering(closed_port: int) -> None:
    registry = registry_client(f"http://127.0.0.1:{closed_port}")
    producer = EventProducer(None, registry, "card_transaction", key_field="user_id", time_field="event_time")  # type: ignore[arg-type]
    event = {
        "transaction_id": "t1",
        "user_id": "u1",
        "merchant_id": "m1",
        "amount": 1.0,
        "currency": "EUR",
        "event_time": 1,
    }
    with pytest.raises(StoreUnavailableError, match=r"^schema registry unavailable: ConnectError"):
        producer.send("card_transactions", [event])


def test_serializing_one_event_names_a_registry_that_stops_answering(closed_port: int) -> None:
    """``EventProducer.serialize`` registers the schema as ``send`` does (bench/stream_events.py takes its header):
    a registry that does not answer was an httpx ConnectError traceback there."""
    registry = registry_client(f"http://127.0.0.1:{closed_port}")
    producer = EventProducer(None, registry, "card_transaction", key_field="user_id", time_field="event_time")  # type: ignore[arg-type]
    event = {
        "transaction_id": "t1",
        "user_id": "u1",
        "merchant_id": "m1",
        "amount": 1.0,
        "currency": "EUR",
        "event_time": 1,
    }
    with pytest.raises(StoreUnavailableError, match=r"^schema registry unavailable: ConnectError"):
        producer.serialize("card_transactions", event)


def test_the_job_names_a_stopped_registry_in_one_line(closed_port: int, answering_port: int, tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "FS_STATE_DIR": str(tmp_path),
        "FS_KAFKA_BOOTSTRAP": f"127.0.0.1:{answering_port}",
        "FS_SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{closed_port}",
        "PYTHONPATH": str(REPO),
    }
    applied = subprocess.run(
        [sys.executable, "-m", "registry.cli", "apply"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert applied.returncode == 0, applied.stderr
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "jobs.feature_job", "--bounded"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started < 20  # the interpreter's start and imports; no mini-cluster is started
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: schema registry at http://127.0.0.1:{closed_port} unavailable: ConnectError")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
