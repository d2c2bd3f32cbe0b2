"""The local stack's own settings (``python -m infra``): a malformed port or duration stops the command with
one line naming the variable, before anything is fetched or started."""

from __future__ import annotations

import subprocess
import sys

import pytest

from infra.settings import REPO_DIR, StackSettings


@pytest.mark.parametrize("name", ["FS_START_TIMEOUT_S", "FS_FETCH_TIMEOUT_S"])
@pytest.mark.parametrize("raw", ["0", "-5", "nan", "inf", "soon", ""])
def test_a_duration_must_be_a_finite_number_of_seconds_above_zero(
    monkeypatch: pytest.MonkeyPatch, name: str, raw: str
) -> None:
    monkeypatch.setenv(name, raw)
    with pytest.raises(SystemExit, match=name):
        StackSettings.from_env()


def test_durations_and_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FS_START_TIMEOUT_S", raising=False)
    monkeypatch.setenv("FS_FETCH_TIMEOUT_S", "0.5")
    settings = StackSettings.from_env()
    assert settings.start_timeout_s == 180 and settings.fetch_timeout_s == 0.5
    monkeypatch.setenv("FS_START_TIMEOUT_S", "1e3")
    assert StackSettings.from_env().start_timeout_s == 1000


@pytest.mark.parametrize(("raw", "said"), [("0", "outside 1-65535"), ("65536", "outside 1-65535"), ("x", "not a port")])
def test_a_port_outside_its_range_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str, said: str) -> None:
    monkeypatch.setenv("FS_CASSANDRA_STORAGE_PORT", raw)
    with pytest.raises(SystemExit, match=said):
        StackSettings.from_env()


def test_the_command_ends_with_one_line_naming_the_variable() -> None:
    env = {"PATH": "/usr/bin:/bin", "FS_START_TIMEOUT_S": "nan"}
    done = subprocess.run(
        [sys.executable, "-m", "infra", "status"], cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "error: FS_START_TIMEOUT_S='nan' must be a number of seconds above 0"
