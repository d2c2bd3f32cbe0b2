"""One ``python -m infra up`` or ``down`` at a time per FS_STATE_DIR (README "make up"): two at once both found no PID
file and both started the service; the loser's clean-up then removed or stopped the winner's, leaving a process
nothing could stop. Temp state folders and free ports only: the shared services are never touched."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from infra import stack
from infra.errors import InfraError
from infra.process import PidFile, alive, port_open
from infra.settings import REPO_DIR, StackSettings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path, registry_port: int) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "FS_STATE_DIR": str(tmp_path / "state"),
        "FS_HOST": "127.0.0.1",
        "FS_REGISTRY_PORT": str(registry_port),
        "FS_API_PORT": str(_free_port()),
        "FS_START_TIMEOUT_S": "60",
    }


def _infra(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "infra", *args],
        cwd=REPO_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_ups_at_once_start_a_service_once_and_down_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race made sure: the service takes 0.5 s to prepare (Kafka verifies its jars there), so both ``up`` calls
    read "no PID file" before either writes one. Both started it, and one process outlived ``down``."""
    spawned: list[int] = []
    real_spawn = stack.spawn

    def spawn(cmd: list[str], **kwargs: Any) -> int:
        pid = real_spawn(cmd, **kwargs)
        spawned.append(pid)
        return pid

    def prepare(settings: StackSettings) -> list[str]:
        time.sleep(0.5)
        return ["sleep", "60"]

    monkeypatch.setitem(
        stack.SERVICES,
        "registry",
        dataclasses.replace(stack.SERVICES["registry"], prepare=prepare, env=None, healthy=lambda s: True),
    )
    monkeypatch.setattr(stack, "_check_ports", lambda settings, svc: None)
    monkeypatch.setattr(stack, "spawn", spawn)
    settings = dataclasses.replace(StackSettings.from_env(), state_dir=tmp_path)
    results: list[list[str]] = []
    ups = [threading.Thread(target=lambda: results.append(stack.up(settings, ["registry"]))) for _ in range(2)]
    try:
        for t in ups:
            t.start()
        for t in ups:
            t.join(timeout=60)
        assert sorted(results) == [[], ["registry"]], "both calls started the service"
        assert len(spawned) == 1
    finally:
        stack.down(settings)
        left = [pid for pid in spawned if alive(pid)]  # a zombie (stopped, not yet reaped) counts as gone
        for pid in spawned:
            with contextlib.suppress(ProcessLookupError):
                if pid in left:
                    os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    assert not left, f"still running after down, recorded nowhere: {left}"


def test_two_ups_of_the_real_registry_at_once_start_it_once(tmp_path: Path) -> None:
    port = _free_port()
    env = _env(tmp_path, port)
    ups = [_infra("up", "registry", env=env) for _ in range(2)]
    try:
        outs = [p.communicate(timeout=120) for p in ups]
        for p, (_, err) in zip(ups, outs, strict=True):
            assert p.returncode == 0, err
        said = "".join(err for _, err in outs)
        assert len(re.findall(r"registry: started \(pid", said)) == 1, said
        assert "registry: already running (pid" in said, said
        pid = PidFile(tmp_path / "state" / "registry" / "pid").read()
        assert pid is not None and alive(pid), said
        assert port_open("127.0.0.1", port)
    finally:
        down = subprocess.run(
            [sys.executable, "-m", "infra", "down"], cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=120
        )
    assert down.returncode == 0, down.stderr
    deadline = time.monotonic() + 10
    while port_open("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not port_open("127.0.0.1", port), "a registry nothing recorded is still serving: an orphan"


def _hold(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def test_down_waits_for_an_up_or_down_under_way_then_runs(tmp_path: Path) -> None:
    env = _env(tmp_path, _free_port())
    fd = _hold(tmp_path / "state" / stack.LOCK_NAME)
    proc = _infra("down", env=env)
    try:
        assert proc.stderr is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stderr, selectors.EVENT_READ)
            assert sel.select(timeout=60), "down said nothing while another held the lock"
        line = proc.stderr.readline()
        assert line == f"[down] waiting for another up or down of {tmp_path / 'state'} to end (pid {os.getpid()})\n"
        time.sleep(0.5)
        assert proc.poll() is None, "down ran while another up or down held the state folder"
    finally:
        os.close(fd)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def test_a_lock_held_past_the_wait_is_one_named_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = dataclasses.replace(StackSettings.from_env(), state_dir=tmp_path)
    monkeypatch.setattr(stack, "_lock_wait_s", lambda settings: 0.3)
    fd = _hold(tmp_path / stack.LOCK_NAME)
    try:
        started = time.monotonic()
        with pytest.raises(InfraError) as caught:
            stack.up(settings, ["registry"])
        assert time.monotonic() - started < 10
    finally:
        os.close(fd)
    assert str(caught.value) == (
        f"another `python -m infra up` or `down` (pid {os.getpid()}) has held {tmp_path / stack.LOCK_NAME} for "
        "more than 0s; wait for it to end or stop it"
    )
    assert not (tmp_path / "registry").exists(), "up started something without the lock"


def test_the_lock_is_let_go_when_up_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed ``up`` (here: its service's port busy) leaves no lock behind: the next ``down`` runs at once."""
    settings = dataclasses.replace(StackSettings.from_env(), state_dir=tmp_path, host="127.0.0.1")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        settings = dataclasses.replace(settings, registry_port=busy.getsockname()[1], api_port=_free_port())
        with pytest.raises(InfraError, match=r"^registry: port"):
            stack.up(settings, ["registry"])
    monkeypatch.setattr(stack, "_lock_wait_s", lambda settings: 0.0)
    stack.down(settings)
