"""Audit of the local stack's lifecycle (README "make up / make down", design §3.7) where it still ended in a
traceback, a hang or a false "stopped". Stand-in processes (``sleep``) and temp folders only: the shared services,
their ports and their state directory are never touched."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra import process, stack
from infra.errors import InfraError
from infra.process import PidFile
from infra.settings import REPO_DIR, StackSettings


def test_down_stops_a_process_of_ours_that_does_not_lead_its_own_process_group(tmp_path: Path) -> None:
    """``terminate`` signalled the process group named by the PID only: a recorded process that is not a group
    leader (no such group) was reported stopped and its PID file removed while it ran on."""
    settings = dataclasses.replace(StackSettings.from_env(), state_dir=tmp_path)
    proc = subprocess.Popen(["sleep", "60"])  # in this test's process group, not its own
    try:
        (tmp_path / "registry").mkdir()
        PidFile(tmp_path / "registry" / "pid").write(proc.pid)
        stack.down(settings, ["registry"])
        assert proc.wait(timeout=10) is not None
        assert not (tmp_path / "registry" / "pid").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_fetch_timeout_past_what_a_timer_can_wait_is_no_traceback(tmp_path: Path) -> None:
    """FS_FETCH_TIMEOUT_S=1e10 is a finite number of seconds above 0, as README asks; the fetch's timer cannot
    wait that long (``threading.TIMEOUT_MAX``): its thread ended in an OverflowError traceback, no deadline kept."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text("#!/bin/sh\nsleep 1\necho '[ERROR] no network'\nexit 1\n")
    mvn.chmod(0o755)
    done = subprocess.run(
        [sys.executable, "-m", "infra", "fetch", "kafka", "--force"],
        cwd=REPO_DIR,
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "FS_CACHE_DIR": str(tmp_path / "cache"),
            "FS_FETCH_TIMEOUT_S": "1e10",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done
    errors = [line for line in done.stderr.splitlines() if not line.startswith("[fetch]")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("error: kafka: download from Maven Central failed (mvn exit 1)"), done.stderr
    assert "no network" in errors[0]


def test_down_in_a_state_dir_it_cannot_write_stops_ours_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state folder made read-only after ``up`` (a PID file that cannot be removed): ``down`` stopped the service,
    then ended in a PermissionError traceback; with only a stale PID file it failed the same, nothing running.
    A PID file left naming a dead process is ignored, as README says, so it is left."""
    settings = dataclasses.replace(StackSettings.from_env(), state_dir=tmp_path)
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        for name in ("registry", "api"):
            (tmp_path / name).mkdir()
        PidFile(tmp_path / "registry" / "pid").write(proc.pid)
        (tmp_path / "api" / "pid").write_text("999999999 1\n")
        real_unlink = Path.unlink

        def unlink(path: Path, missing_ok: bool = False) -> None:
            if path.parent.parent == tmp_path:  # as root, chmod would not stop it
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            real_unlink(path, missing_ok)

        monkeypatch.setattr(Path, "unlink", unlink)
        stack.down(settings, ["registry", "api"])
        assert proc.wait(timeout=10) is not None
        assert PidFile(tmp_path / "registry" / "pid").read() is None  # left, and ignored
        stack.down(settings)  # twice: still nothing to do
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs /sys, a folder even root cannot write in")
def test_up_in_a_state_dir_it_cannot_write_in_names_fs_state_dir(tmp_path: Path) -> None:
    """README: an unusable FS_STATE_DIR is ``error: FS_STATE_DIR=<path> is not a folder we can use: ...``; one that
    exists but takes no writes was ``error: cannot start the stack: Operation not permitted: /sys/kernel/registry``."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    done = subprocess.run(
        [sys.executable, "-m", "infra", "up", "registry"],
        cwd=REPO_DIR,
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "FS_STATE_DIR": "/sys/kernel",
            "FS_REGISTRY_PORT": str(port),
            "FS_API_PORT": str(port + 1 if port < 65535 else port - 1),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: FS_STATE_DIR=/sys/kernel is not a folder we can use: "), lines
    assert "/sys/kernel/registry" in lines[0]


def test_a_manifest_that_cannot_be_read_is_a_named_corrupt_download(tmp_path: Path) -> None:
    """A manifest that is not a readable file (a folder there; unreadable to its user) ended ``python -m infra fetch``
    in an IsADirectoryError traceback before any check said what was wrong or what to run."""
    (tmp_path / "cache" / "kafka" / "manifest.txt").mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-m", "infra", "fetch", "kafka"],
        cwd=REPO_DIR,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "FS_CACHE_DIR": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: kafka: manifest {tmp_path / 'cache' / 'kafka' / 'manifest.txt'} is unreadable")
    assert lines[0].endswith("run `python -m infra fetch --force`"), lines


def test_a_service_healthy_only_after_the_start_timeout_fails_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: a service not healthy within FS_START_TIMEOUT_S stops ``up``. Health was asked once more after the
    deadline had passed and a yes then counted: with 0.1 s, the registry healthy after 0.5 s was 'healthy after 1s'."""
    answers = iter([False, True, True])
    monkeypatch.setitem(
        stack.SERVICES,
        "registry",
        dataclasses.replace(
            stack.SERVICES["registry"], prepare=lambda s: ["sleep", "60"], env=None, healthy=lambda s: next(answers)
        ),
    )
    monkeypatch.setattr(stack, "_check_ports", lambda settings, svc: None)
    settings = dataclasses.replace(StackSettings.from_env(), state_dir=tmp_path, start_timeout_s=0.1)
    with pytest.raises(InfraError, match=r"^registry: not healthy within 0\.1s \(stopped\)"):
        stack.up(settings, ["registry"])
    assert not (tmp_path / "registry" / "pid").exists()


def test_a_failed_maven_download_is_one_clear_line_with_its_cause(tmp_path: Path) -> None:
    """Maven's tail was joined with line feeds, printed as literal ``\\n`` runs: ``...(mvn exit 1):\\n[ERROR] Failed
    ...\\n[ERROR] \\n[ERROR] To see the full stack trace...``; with no output, ``(mvn exit 1):\\n``. Its first error
    line says why."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text(
        "#!/bin/sh\necho '[INFO] Scanning'\necho '[ERROR] Failed to execute goal x: Could not resolve y'\n"
        "echo '[ERROR] '\necho '[ERROR] To see the full stack trace of the errors, re-run Maven with -e.'\nexit 1\n"
    )
    mvn.chmod(0o755)
    silent = bin_dir / "silent"
    silent.mkdir()
    (silent / "mvn").write_text("#!/bin/sh\nexit 3\n")
    (silent / "mvn").chmod(0o755)
    said = []
    for path in (bin_dir, silent):
        done = subprocess.run(
            [sys.executable, "-m", "infra", "fetch", "kafka", "--force"],
            cwd=REPO_DIR,
            env={"PATH": f"{path}:/usr/bin:/bin", "HOME": str(tmp_path), "FS_CACHE_DIR": str(tmp_path / "cache")},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1, done
        said += [line for line in done.stderr.splitlines() if not line.startswith("[fetch]")]
    assert said == [
        "error: kafka: download from Maven Central failed (mvn exit 1): [ERROR] Failed to execute goal x: Could not "
        "resolve y",
        "error: kafka: download from Maven Central failed (mvn exit 3), no output",
    ]


def test_down_stops_the_others_when_one_survives_sigkill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README: ``make down`` fails if a process survives SIGKILL. It failed at the first one (the API, stopped
    first) and left every service after it (the registry, Cassandra, Kafka) running."""
    settings = dataclasses.replace(StackSettings.from_env(), state_dir=tmp_path)
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    real_terminate = stack.terminate
    try:
        for name, pid in (("api", os.getpid()), ("registry", proc.pid)):
            (tmp_path / name).mkdir()
            PidFile(tmp_path / name / "pid").write(pid)
        monkeypatch.setattr(
            stack,
            "terminate",
            lambda pid, grace_s: False if pid == os.getpid() else real_terminate(pid, grace_s=grace_s),
        )
        with pytest.raises(InfraError, match=rf"^api: pid {os.getpid()} still running after SIGKILL; its PID file"):
            stack.down(settings, ["registry", "api"])
        assert proc.wait(timeout=10) is not None, "the registry was left running"
        assert PidFile(tmp_path / "api" / "pid").read() == os.getpid()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_relative_cache_dir_is_taken_from_where_the_command_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FS_CACHE_DIR=cache was kept relative: the JVMs start in their service folder, so Kafka's and Cassandra's
    classpath (``cache/kafka/lib/*``), checked from where ``up`` ran, named nothing where they ran ('Could not find
    or load main class'). FS_STATE_DIR was already made absolute."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FS_CACHE_DIR", "cache")
    settings = StackSettings.from_env()
    assert settings.cache_dir == tmp_path / "cache"
    assert settings.lib_dir("kafka").is_absolute()


def test_up_leaves_a_service_already_running_that_is_not_healthy_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: ``make up`` is idempotent, services already running are left as they are. One of ours that did not
    answer (still starting, busy, or started on other ports) was killed when the start timeout passed."""
    monkeypatch.setitem(
        stack.SERVICES, "registry", dataclasses.replace(stack.SERVICES["registry"], healthy=lambda s: False)
    )
    settings = dataclasses.replace(StackSettings.from_env(), state_dir=tmp_path, start_timeout_s=0.2)
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        (tmp_path / "registry").mkdir()
        PidFile(tmp_path / "registry" / "pid").write(proc.pid)
        with pytest.raises(
            InfraError, match=rf"^registry: not healthy within 0\.2s \(running before, pid {proc.pid}: left"
        ):
            stack.up(settings, ["registry"])
        assert proc.poll() is None, "a service running before up was stopped by it"
        assert PidFile(tmp_path / "registry" / "pid").read() == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_up_ended_by_sigterm_stops_what_it_started(tmp_path: Path) -> None:
    """README: anything that stops ``make up`` half-way stops what it had started. SIGTERM (``timeout``, a CI job
    cancelled) ended it at once and left the registry it had just started running."""
    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "FS_STATE_DIR": str(tmp_path / "state"),
        "FS_REGISTRY_PORT": str(ports[0]),
        "FS_API_PORT": str(ports[1]),
    }
    up = subprocess.Popen(
        [sys.executable, "-m", "infra", "up", "registry"], cwd=REPO_DIR, env=env, stderr=subprocess.PIPE, text=True
    )
    assert up.stderr is not None
    try:
        line = up.stderr.readline()
        assert "[up] registry: started" in line, line
        pid = PidFile(tmp_path / "state" / "registry" / "pid").read()
        assert pid is not None
        time.sleep(0.1)  # past the start itself, into the wait for health (the registry answers after ~0.5 s)
        up.terminate()
        up.wait(timeout=30)
        deadline = time.monotonic() + 15
        while process.alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not process.alive(pid), (up.returncode, up.stderr.read())
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        stack.down(dataclasses.replace(StackSettings.from_env(), state_dir=tmp_path / "state"))


def test_a_start_timed_out_whose_process_survives_sigkill_keeps_its_pid_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As ``down`` keeps the PID file of a process that survives SIGKILL, so does ``up`` at its start timeout: the
    file was removed anyway, and the process still running was then recorded nowhere (``down`` could not stop it)."""
    monkeypatch.setitem(
        stack.SERVICES,
        "registry",
        dataclasses.replace(
            stack.SERVICES["registry"], prepare=lambda s: ["sleep", "60"], env=None, healthy=lambda s: False
        ),
    )
    monkeypatch.setattr(stack, "_check_ports", lambda settings, svc: None)
    monkeypatch.setattr(stack, "terminate", lambda pid, grace_s: False)
    settings = dataclasses.replace(StackSettings.from_env(), state_dir=tmp_path, start_timeout_s=0.1)
    with pytest.raises(InfraError, match=r"still running after SIGKILL; its PID file is kept"):
        stack.up(settings, ["registry"])
    pid = PidFile(tmp_path / "registry" / "pid").read()
    assert pid is not None, "the PID file of a process still running was removed"
    monkeypatch.undo()
    stack.down(settings)
    assert not process.alive(pid)


def test_a_promtool_build_past_its_time_is_one_named_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m infra promtool`` (run by ``make test``): a ``go`` step that did not end in its time was a
    ``subprocess.TimeoutExpired`` traceback."""
    from infra.promtool import ensure_promtool

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "go").write_text("#!/bin/sh\nexec sleep 30\n")
    (bin_dir / "go").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    started = time.monotonic()
    with pytest.raises(InfraError, match=r"^building promtool did not finish within 0\.5s at `get github.com/"):
        ensure_promtool(tmp_path / "cache", timeout_s=0.5)
    assert time.monotonic() - started < 10


def test_down_stops_the_workers_a_killed_leader_left_behind(tmp_path: Path) -> None:
    """A feature API with workers killed with SIGKILL left its workers serving, in its process group: ``status`` said
    "not started by us; port busy", ``down`` stopped nothing and ``up`` then failed on the port (audit). The group of a
    recorded PID that is gone is ours (no PID is reused while a group of that ID has members): stopped by ``down``."""
    settings = dataclasses.replace(StackSettings.from_env(), state_dir=tmp_path)
    script = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"  # a worker, then wait
    folder = tmp_path / "api"
    folder.mkdir()
    leader = process.spawn([sys.executable, "-c", script], log_path=folder / "log", cwd=folder)
    # not ours though of the same shape: a group whose leader is gone, started by something else
    stranger = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        PidFile(folder / "pid").write(leader)
        (tmp_path / "registry").mkdir()
        PidFile(tmp_path / "registry" / "pid").write(stranger.pid)  # as a stale PID file naming a reused PID
        deadline = time.monotonic() + 10
        while not all(_members(p, alive_only=True) - {p} for p in (leader, stranger.pid)):
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.05)
        os.kill(leader, signal.SIGKILL)
        stranger.kill()
        stranger.wait()
        deadline = time.monotonic() + 10
        while process.alive(leader):
            assert time.monotonic() < deadline, "the leader did not die"
            with contextlib.suppress(ChildProcessError):
                os.waitpid(leader, os.WNOHANG)
            time.sleep(0.05)
        assert process.group_alive(leader) and not process.alive(leader)  # a zombie, perhaps never reaped
        assert "processes of its group still run" in stack.status(settings)["api"]
        assert PidFile(tmp_path / "registry" / "pid").orphaned_group() is None  # no mark of ours: never named
        stack.down(settings, ["api", "registry"])
        assert not process.group_alive(leader)  # its worker stopped (a zombie its new parent may never reap)
        assert process.group_alive(stranger.pid)  # the stranger's left running
        assert not (folder / "pid").exists()
        assert "its group" not in stack.status(settings)["api"]  # stopped (or the port another process's)
    finally:
        for pid in (*_members(leader, alive_only=False), *_members(stranger.pid, alive_only=False)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _members(pgid: int, *, alive_only: bool) -> set[int]:
    """The PIDs of a process group's members (zombies left out with ``alive_only``)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[2] == str(pgid) and not (alive_only and fields[0] == "Z"):
            found.add(int(stat.parent.name))
    return found


def test_a_second_signal_does_not_cut_short_the_stopping_of_what_up_started() -> None:
    """A second Ctrl-C during ``up``'s clean-up (or a CI cancel's SIGINT then SIGTERM) interrupted it: Kafka was left
    running with its PID file (audit). The clean-up holds those signals; they are back as they were after it."""
    before = {sig: signal.getsignal(sig) for sig in stack.HELD_SIGNALS}
    with stack.signals_held():
        for sig in stack.HELD_SIGNALS:
            os.kill(os.getpid(), sig)  # ignored: no KeyboardInterrupt, no SystemExit, the process goes on
        time.sleep(0.05)
    assert {sig: signal.getsignal(sig) for sig in stack.HELD_SIGNALS} == before
