"""Faults a tester of ``python -m infra`` injects (README "Defaults", design §3.7): each is a fast, named failure
or is ignored, never a traceback, a hang or a wait for a grace period that cannot end."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra import process, stack
from infra.errors import InfraError
from infra.process import PidFile, alive
from infra.settings import REPO_DIR, StackSettings
from registry.core.errors import SettingsError


@pytest.fixture
def bound_port() -> Iterator[int]:
    """A port another process has bound but does not listen on (connect() is refused, Kafka's bind fails)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


@pytest.mark.parametrize("text", ["abc 123\n", "12x 5\n", "1 2 3\n", "\n", "-5 1\n"])
def test_a_corrupt_pid_file_is_not_ours(tmp_path: Path, text: str) -> None:
    path = tmp_path / "pid"
    path.write_text(text)
    assert PidFile(path).read() is None


def test_status_and_down_ignore_a_corrupt_pid_file(tmp_path: Path) -> None:
    settings = dataclasses.replace(StackSettings.from_env(), state_dir=tmp_path, registry_port=_free_port())
    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / "pid").write_text("abc 1\n")
    assert stack.status(settings)["registry"] == "stopped"
    stack.down(settings, ["registry"])
    assert not (tmp_path / "registry" / "pid").exists()


def test_a_port_bound_without_listening_is_in_use(bound_port: int) -> None:
    assert process.port_in_use("127.0.0.1", bound_port)


def test_a_free_port_is_not_in_use() -> None:
    assert not process.port_in_use("127.0.0.1", _free_port())


def test_up_names_a_port_bound_by_another_process_at_once(tmp_path: Path, bound_port: int) -> None:
    settings = dataclasses.replace(StackSettings.from_env(), state_dir=tmp_path, registry_port=bound_port)
    started = time.monotonic()
    with pytest.raises(InfraError, match=rf"registry: port\(s\) {bound_port} .* already in use"):
        stack.up(settings, ["registry"])
    assert time.monotonic() - started < 5
    assert not (tmp_path / "registry" / "pid").exists()


def test_terminate_stops_a_sigstopped_process_without_waiting_out_its_grace() -> None:
    """A stopped JVM keeps SIGTERM pending until SIGCONT: down waited the whole grace (30 s) and then SIGKILLed."""
    code = "import signal,sys,time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); print(1, flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline()  # its handler is installed
        os.kill(proc.pid, signal.SIGSTOP)
        started = time.monotonic()
        process.terminate(proc.pid, grace_s=20)
        assert time.monotonic() - started < 5
        assert proc.wait(timeout=5) == 0, "not stopped by its own SIGTERM handler"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_process_that_survives_sigkill_is_named_by_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = dataclasses.replace(StackSettings.from_env(), state_dir=tmp_path)
    pidfile = PidFile(tmp_path / "registry" / "pid")
    (tmp_path / "registry").mkdir()
    pidfile.write(os.getpid())
    monkeypatch.setattr(stack, "terminate", lambda pid, grace_s: False)
    with pytest.raises(InfraError, match=rf"registry: pid {os.getpid()} still running after SIGKILL"):
        stack.down(settings, ["registry"])
    assert pidfile.read() == os.getpid(), "the PID file of a process still running was removed"
    assert alive(os.getpid())


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra", *args],
        cwd=REPO_DIR,
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", [["up", "registry"], ["down"], ["status"]])
def test_a_state_dir_that_is_a_file_is_one_error_line(tmp_path: Path, command: list[str]) -> None:
    state = tmp_path / "a-file"
    state.write_text("")
    done = _run(*command, FS_STATE_DIR=str(state))
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: FS_STATE_DIR="), done.stderr
    assert str(state) in lines[0]


def test_make_down_fails_when_down_fails(tmp_path: Path) -> None:
    """`make down` swallowed every failure of `python -m infra down` (`|| true`): a stop that failed said success."""
    state = tmp_path / "a-file"
    state.write_text("")
    done = subprocess.run(
        ["make", "-s", "down"],
        cwd=REPO_DIR,
        env={**os.environ, "FS_STATE_DIR": str(state)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0, done
    assert "error: FS_STATE_DIR=" in done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_busy_port_of_a_later_service_starts_nothing(tmp_path: Path, bound_port: int) -> None:
    """With Cassandra's port held, `make up` failed after starting Kafka and left it running."""
    settings = dataclasses.replace(
        StackSettings.from_env(), state_dir=tmp_path, registry_port=_free_port(), api_port=bound_port
    )
    try:
        with pytest.raises(InfraError, match=rf"api: port\(s\) {bound_port} .* already in use"):
            stack.up(settings, ["registry", "api"])
        assert PidFile(tmp_path / "registry" / "pid").read() is None, "registry left running by a failed up"
    finally:
        stack.down(settings)


def test_fetch_of_an_unknown_component_is_one_error_line() -> None:
    """`python -m infra fetch bogus` ran Maven on a POM that does not exist and printed its 11 [ERROR] lines."""
    done = _run("fetch", "bogus")
    assert done.returncode == 1, done
    assert done.stderr.strip() == "error: unknown component(s): bogus (known: kafka, cassandra, flink)"


@pytest.fixture
def stopped_registry(tmp_path: Path) -> Iterator[tuple[StackSettings, int]]:
    """A registry PID file naming a live process of ours that is SIGSTOPped."""
    settings = dataclasses.replace(StackSettings.from_env(), state_dir=tmp_path, registry_port=_free_port())
    proc = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        (tmp_path / "registry").mkdir()
        PidFile(tmp_path / "registry" / "pid").write(proc.pid)
        os.kill(proc.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while not process.stopped(proc.pid) and time.monotonic() < deadline:  # the signal lands asynchronously
            time.sleep(0.01)
        yield settings, proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_status_names_a_sigstopped_service_at_once(stopped_registry: tuple[StackSettings, int]) -> None:
    settings, pid = stopped_registry
    started = time.monotonic()
    assert stack.status(settings)["registry"] == f"running (pid {pid}), stopped by a signal (SIGSTOP): not answering"
    assert time.monotonic() - started < 2


def test_up_names_a_sigstopped_service_at_once_and_leaves_it(
    stopped_registry: tuple[StackSettings, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make up` with a SIGSTOPped service waited FS_START_TIMEOUT_S (180 s), then killed a process it had not started."""
    settings, pid = stopped_registry
    started = time.monotonic()
    with pytest.raises(InfraError, match=rf"registry: pid {pid} is stopped by a signal \(SIGSTOP\)"):
        stack.up(settings, ["registry"])
    assert time.monotonic() - started < 5
    assert alive(pid), "up killed a service it had not started"


def test_a_fetch_whose_maven_prints_nothing_stops_at_the_fetch_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline was checked between Maven's lines: one that hung silent ran past FS_FETCH_TIMEOUT_S (a fake
    `mvn` sleeping 15 s with a 2 s timeout returned after 15 s, "produced no jars")."""
    import time

    from infra import artifacts
    from infra.errors import InfraError
    from infra.settings import StackSettings

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text("#!/bin/sh\nexec sleep 30\n")
    mvn.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FS_FETCH_TIMEOUT_S", "0.5")
    started = time.monotonic()
    with pytest.raises(InfraError, match=r"^kafka: fetch took longer than 0\.5s \(FS_FETCH_TIMEOUT_S\)$"):
        artifacts.fetch(StackSettings.from_env(), "kafka", force=True)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("FS_KAFKA_PORT", "1" * 5000, "error: FS_KAFKA_PORT=11111111111111111111... is outside 1-65535"),
        (
            "FS_API_PORT",
            "8081",
            "error: FS_REGISTRY_PORT and FS_API_PORT are both 8081: each service needs its own port",
        ),
        ("FS_HOST", "a\uff0fb", "error: FS_HOST='a\uff0fb' is not one host name or IPv4 address"),
        ("FS_CASSANDRA_SEEDS", "a:" + "7" * 5000, "error: FS_CASSANDRA_SEEDS="),
    ],
)
def test_stack_settings_refuse_what_would_end_in_a_traceback_or_a_port_clash(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, said: str
) -> None:
    """5,000 digits ended in int()'s ValueError; two services on one port started one, then failed at the other."""
    from infra.settings import StackSettings

    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as refused:
        StackSettings.from_env()
    assert str(refused.value).startswith(said)


@pytest.mark.parametrize("raw", ["127.1", "123", "1.2.3", "2130706433", "-a", "a-", "a_b", "256.1.1.1", "a\u00e9b"])
def test_infra_refuses_every_fs_host_the_other_commands_refuse(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    """One grammar (README: an IPv4 address, or dot-separated labels ... not all of them numbers): ``make status``
    took ``FS_HOST=127.1``, which the job, the producer, the API and the registry then refused."""
    from infra.settings import StackSettings
    from registry.core.settings import Settings

    monkeypatch.setenv("FS_HOST", raw)
    with pytest.raises(SystemExit) as refused:
        StackSettings.from_env()
    assert str(refused.value) == f"error: FS_HOST={raw!r} is not one host name or IPv4 address"
    with pytest.raises(SettingsError, match="FS_HOST must be one host name or IPv4 address"):
        Settings.from_env()


@pytest.mark.parametrize("raw", ["127.0.0.1", "localhost", "stack.internal", "a-b.c1", "10.0.0.255"])
def test_infra_and_the_commands_take_the_same_hosts(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    from infra.settings import StackSettings
    from registry.core.settings import Settings

    monkeypatch.setenv("FS_HOST", raw)
    assert StackSettings.from_env().host == raw
    Settings.from_env()


def test_seed_ports_are_written_as_cassandra_reads_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """`+7000` was passed to cassandra.yaml as given, which Cassandra's HostAndPort refuses at start."""
    from infra.settings import StackSettings

    monkeypatch.setenv("FS_CASSANDRA_SEEDS", "a:+7000,b:007001")
    assert StackSettings.from_env().cassandra_seeds == "a:7000,b:7001"
    monkeypatch.setenv("FS_KAFKA_PORT", "0" * 5000 + "9092")
    assert StackSettings.from_env().kafka_port == 9092


def test_a_host_that_does_not_resolve_is_one_named_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.errors import InfraError
    from infra.process import port_open

    with pytest.raises(InfraError, match=r"^FS_HOST=nosuchhost\.invalid: cannot resolve it"):
        port_open("nosuchhost.invalid", 9092)


@pytest.mark.parametrize("failure", [FileExistsError(17, "File exists", "/state/api"), KeyboardInterrupt()])
def test_up_stops_what_it_started_whatever_ends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    """Only an InfraError stopped the services already started: an OSError (a service folder that is a file) was a
    traceback and Ctrl-C returned 130, both leaving the registry running."""
    from infra import stack
    from infra.errors import InfraError
    from infra.settings import StackSettings

    monkeypatch.setenv("FS_STATE_DIR", str(tmp_path / "state"))
    settings = StackSettings.from_env()
    stopped: list[list[str]] = []
    pids = iter([4242])

    def start(settings: StackSettings, svc: object, marks: dict[str, dict[Path, int]]) -> int:
        if getattr(svc, "name", "") == "api":
            raise failure
        return next(pids)

    monkeypatch.setattr(stack, "_check_ports", lambda settings, svc: None)
    monkeypatch.setattr(stack, "_start", start)
    monkeypatch.setattr(stack, "_wait_healthy", lambda *args: None)
    monkeypatch.setattr(stack, "_down", lambda settings, selected: stopped.append(list(selected)))
    expected = InfraError if isinstance(failure, OSError) else KeyboardInterrupt
    with pytest.raises(expected) as raised:
        stack.up(settings, ["registry", "api"])
    assert stopped == [["registry"]]
    if isinstance(failure, OSError):
        assert str(raised.value) == "cannot start the stack: File exists: /state/api"


def test_promtool_names_a_cache_folder_it_cannot_use(tmp_path: Path) -> None:
    """FS_CACHE_DIR naming a file ended in a NotADirectoryError traceback."""
    import shutil

    from infra.errors import InfraError
    from infra.promtool import ensure_promtool

    afile = tmp_path / "afile"
    afile.write_text("x")
    if not shutil.which("go") and not Path("/usr/local/go/bin/go").exists():
        pytest.skip("no go command: ensure_promtool refuses before it makes the folder")
    with pytest.raises(InfraError, match=rf"^FS_CACHE_DIR={afile}: cannot keep promtool there \(Not a directory\)$"):
        ensure_promtool(afile)
