"""Kafka stopped: commands that need it fail at once with one line naming it (librdkafka alone waits 30 s)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry.core.errors import StoreUnavailableError
from sinks.topics import require_reachable

REPO = Path(__file__).resolve().parents[2]


def test_no_server_accepting_is_a_named_failure(closed_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=rf"^Kafka at 127.0.0.1:{closed_port} unavailable: no bootstrap"):
        require_reachable(f"127.0.0.1:{closed_port}")
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("form", ["127.0.0.1:{}", "PLAINTEXT://127.0.0.1:{}", "127.0.0.1:{closed},127.0.0.1:{}"])
def test_one_server_accepting_is_enough(form: str, answering_port: int, closed_port: int) -> None:
    require_reachable(form.format(answering_port, closed=closed_port))


def test_a_server_that_accepts_and_never_answers_is_a_named_failure(silent_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as caught:
        require_reachable(f"127.0.0.1:{silent_port}", timeout_s=0.5)
    assert time.monotonic() - started < 2
    assert str(caught.value) == (
        f"Kafka at 127.0.0.1:{silent_port} unavailable: no bootstrap server answers "
        f"(127.0.0.1:{silent_port}: accepted a connection but sent no answer within 0.5 s)"
    )


def test_one_answering_server_is_enough_beside_silent_and_closed_ones(
    silent_port: int, closed_port: int, answering_port: int
) -> None:
    require_reachable(f"127.0.0.1:{closed_port},127.0.0.1:{silent_port},127.0.0.1:{answering_port}", timeout_s=0.5)


def test_a_list_it_cannot_read_is_left_to_the_client() -> None:
    require_reachable("not a bootstrap list")  # librdkafka names what is wrong with it


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "jobs.produce", "--events", "1"],
        ["-m", "sinks.archive", "--topic", "card_transactions"],
        ["-m", "sinks.serving_log", "--once"],
        ["-m", "jobs.feature_job"],
    ],
)
def test_commands_name_a_stopped_broker_in_one_line(command: list[str], closed_port: int, tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "FS_STATE_DIR": str(tmp_path),
        "FS_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed_port}",
        "PYTHONPATH": str(REPO),
    }
    applied = subprocess.run(
        [sys.executable, "-m", "registry.cli", "apply"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert applied.returncode == 0, applied.stderr
    started = time.monotonic()
    done = subprocess.run([sys.executable, *command], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 20  # the interpreter's start and imports; a probe is milliseconds
    assert done.returncode == 1
    assert done.stderr == (
        f"error: Kafka at 127.0.0.1:{closed_port} unavailable: no bootstrap server accepts a connection "
        f"(127.0.0.1:{closed_port}: Connection refused)\n"
    )


def test_the_stacks_health_check_of_a_hung_broker_is_false_and_quiet(
    silent_port: int, capfd: pytest.CaptureFixture[str]
) -> None:
    """``python -m infra status`` with Kafka paused: "unhealthy", without librdkafka's log lines on stderr."""
    import dataclasses

    from infra.services import _kafka_healthy
    from infra.settings import StackSettings

    settings = dataclasses.replace(StackSettings.from_env(), host="127.0.0.1", kafka_port=silent_port)
    assert _kafka_healthy(settings) is False
    time.sleep(1.5)  # librdkafka logs from its own threads, also after the call returned
    assert "rdkafka" not in capfd.readouterr().err
