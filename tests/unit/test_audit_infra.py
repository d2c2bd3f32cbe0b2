"""Audit of ``python -m infra`` status/up/down against README "Set up on a fresh machine" and design §3.7:
the documented status strings, PID files that are dead, reused or unreadable (ignored, never a traceback),
an unusable FS_STATE_DIR. Real short-lived processes (``sleep``) stand in for the services; every port is a
free one and the state dir a temp folder, so the shared services are never touched."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra import process, stack
from infra.errors import InfraError
from infra.process import PidFile
from infra.settings import StackSettings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def settings(tmp_path: Path) -> StackSettings:
    return dataclasses.replace(
        StackSettings.from_env(),
        state_dir=tmp_path / "state",
        host="127.0.0.1",
        kafka_port=_free_port(),
        kafka_controller_port=_free_port(),
        cassandra_port=_free_port(),
        cassandra_storage_port=_free_port(),
        registry_port=_free_port(),
        api_port=_free_port(),
        start_timeout_s=10,
    )


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process in its own session, as ``spawn`` starts a service."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    for sig in (signal.SIGCONT, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
    proc.wait(timeout=10)


def _pidfile(settings: StackSettings, name: str) -> Path:
    path = settings.state_dir / name / "pid"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_status_of_nothing_is_stopped_everywhere(settings: StackSettings) -> None:
    assert stack.status(settings) == dict.fromkeys(("kafka", "cassandra", "registry", "api"), "stopped")


def test_status_names_a_port_another_process_holds_listening_or_only_bound(settings: StackSettings) -> None:
    with socket.socket() as listening, socket.socket() as bound:
        listening.bind(("127.0.0.1", settings.api_port))
        listening.listen()
        bound.bind(("127.0.0.1", settings.kafka_controller_port))
        report = stack.status(settings)
    assert report["api"] == f"not started by us; port {settings.api_port} busy (another process)"
    assert report["kafka"] == f"not started by us; port {settings.kafka_controller_port} busy (another process)"
    assert report["registry"] == "stopped"


def _until_stopped(pid: int, timeout_s: float = 10.0) -> None:
    """Wait until the kernel shows ``pid`` stopped."""
    deadline = time.monotonic() + timeout_s
    while not process.stopped(pid):
        assert time.monotonic() < deadline, f"pid {pid} not stopped within {timeout_s} s"
        time.sleep(0.01)


def test_a_sigstopped_service_of_ours_is_named_by_status_up_and_stopped_by_down(
    settings: StackSettings, sleeper: subprocess.Popen[bytes]
) -> None:
    PidFile(_pidfile(settings, "registry")).write(sleeper.pid)
    os.kill(sleeper.pid, signal.SIGSTOP)
    _until_stopped(sleeper.pid)  # the signal is delivered asynchronously: a loaded machine may not have yet
    assert stack.status(settings)["registry"] == (
        f"running (pid {sleeper.pid}), stopped by a signal (SIGSTOP): not answering"
    )
    with pytest.raises(InfraError, match=rf"^registry: pid {sleeper.pid} is stopped by a signal \(SIGSTOP\); "):
        stack.up(settings, ["registry"])
    stack.down(settings, ["registry"])
    assert not process.alive(sleeper.pid)  # down reaped it (its child here)
    assert not _pidfile(settings, "registry").exists()


def test_dead_reused_and_unreadable_pid_files_are_ignored(settings: StackSettings) -> None:
    """A dead PID, this very process under another start time (a reused PID), text, bytes that are not UTF-8,
    and a folder where the PID file should be: none is ours, none is signalled, none is a traceback."""
    _pidfile(settings, "kafka").write_text("999999999 1\n")
    _pidfile(settings, "cassandra").write_text(f"{os.getpid()} 1\n")
    _pidfile(settings, "registry").write_bytes(b"\xff\xfe\n")
    _pidfile(settings, "api").mkdir()
    assert set(stack.status(settings).values()) == {"stopped"}
    stack.down(settings)
    assert process.alive(os.getpid())
    assert _pidfile(settings, "api").is_dir()  # not ours: left as it is


def test_up_that_cannot_write_a_pid_file_leaves_nothing_running(
    settings: StackSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was an IsADirectoryError traceback, with the service left running and recorded nowhere."""
    monkeypatch.setitem(
        stack.SERVICES,
        "registry",
        dataclasses.replace(stack.SERVICES["registry"], prepare=lambda s: ["sleep", "60"], env=None),
    )
    spawned: list[int] = []

    def spawn(*args: object, **kwargs: object) -> int:
        pid = process.spawn(*args, **kwargs)  # type: ignore[arg-type]
        spawned.append(pid)
        return pid

    monkeypatch.setattr(stack, "spawn", spawn)
    _pidfile(settings, "registry").mkdir()
    with pytest.raises(InfraError, match=r"^registry: cannot write its PID file .*/registry/pid: "):
        stack.up(settings, ["registry"])
    assert len(spawned) == 1
    assert not process.alive(spawned[0])


@pytest.mark.parametrize("command", ["status", "down"])
def test_a_state_dir_that_cannot_be_created_is_an_error_not_all_stopped(
    settings: StackSettings, tmp_path: Path, command: str
) -> None:
    """README: an FS_STATE_DIR that is a file or cannot be created gives ``error: FS_STATE_DIR=<path> is not a
    folder we can use: ...``; a path below a file was 'stopped' everywhere, exit 0."""
    (tmp_path / "a-file").write_text("")
    below_a_file = dataclasses.replace(settings, state_dir=tmp_path / "a-file" / "state")
    with pytest.raises(InfraError, match=rf"^FS_STATE_DIR={below_a_file.state_dir} is not a folder we can use: "):
        getattr(stack, command)(below_a_file)


def test_a_state_dir_not_made_yet_is_all_stopped_and_not_created(settings: StackSettings) -> None:
    assert set(stack.status(settings).values()) == {"stopped"}
    stack.down(settings)
    assert not settings.state_dir.exists()


def test_a_running_service_of_ours_not_answering_is_starting_or_unhealthy(
    settings: StackSettings, sleeper: subprocess.Popen[bytes]
) -> None:
    PidFile(_pidfile(settings, "registry")).write(sleeper.pid)
    assert stack.status(settings)["registry"] == f"running (pid {sleeper.pid}), starting or unhealthy"


def test_up_refuses_a_busy_port_of_the_last_service_before_starting_any(
    settings: StackSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_start(*args: object, **kwargs: object) -> None:
        raise AssertionError("nothing may be fetched or started")

    monkeypatch.setattr(stack, "spawn", no_start)
    monkeypatch.setattr(stack.artifacts, "fetch", no_start)
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", settings.api_port))  # bound, not listening
        with pytest.raises(InfraError) as caught:
            stack.up(settings)
    assert str(caught.value) == (
        f"api: port(s) {settings.api_port} on 127.0.0.1 already in use by another process; "
        "stop it or choose other ports (FS_*_PORT variables)"
    )


def test_fetch_of_an_unknown_component_is_one_error_line_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from infra import __main__ as cli

    def no_fetch(*args: object, **kwargs: object) -> None:
        raise AssertionError("nothing may be fetched")

    monkeypatch.setattr(cli.artifacts, "fetch", no_fetch)
    assert cli.main(["fetch", "kafka", "zookeeper"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown component(s): zookeeper") and err.count("\n") == 1


def test_python_services_get_every_path_setting_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A service runs in its own folder: a relative FS_STATE_DIR reached the API and the schema registry as given,
    so each read its own ``<service folder>/relstate/...`` and the API served no definitions after ``make up``."""
    from infra.services import _python_env
    from registry.core.settings import Settings

    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("FS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FS_STATE_DIR", "relstate")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", "wh")
    env = _python_env(StackSettings.from_env())
    assert env["FS_STATE_DIR"] == str(tmp_path / "relstate")
    assert env["FS_DEFINITIONS_DB"] == str(tmp_path / "relstate" / "registry" / "definitions.db")
    assert env["FS_ICEBERG_CATALOG_URI"] == f"sqlite:///{tmp_path / 'relstate' / 'iceberg' / 'catalog.db'}"
    assert env["FS_ICEBERG_WAREHOUSE"] == str(tmp_path / "wh")
    (tmp_path / "relstate").mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_path / "relstate")  # where a service runs: what it reads is the caller's, all the same
    monkeypatch.setattr(os, "environ", env)
    seen = Settings.from_env()
    assert seen.definitions_db == tmp_path / "relstate" / "registry" / "definitions.db"
    assert seen.iceberg_warehouse == str(tmp_path / "wh")


def test_an_installed_package_keeps_its_data_outside_site_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without FS_STATE_DIR an installed package kept the registry, catalog, warehouse, Kafka and Cassandra data in
    ``site-packages/.state``, which a new virtualenv deletes; a checkout keeps its own ``.state``."""
    from registry.core import places

    assert Path(places.__file__).resolve().parents[2] / ".state" == places.DEFAULT_STATE  # this checkout
    monkeypatch.setattr(places, "_REPO", tmp_path / "site-packages")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert places._default_state() == tmp_path / "xdg" / "featurestore"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert places._default_state() == tmp_path / "home" / ".local" / "state" / "featurestore"


def test_an_upgraded_install_does_not_pass_over_the_data_left_at_the_earlier_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An installed package kept its data in ``site-packages/.state`` until 2026-12-07; upgraded in the same
    virtualenv, every command took the new default (empty) as a fresh install: the registry CLI said to apply the
    definitions again, and the schema registry gave id 1, which the topics' records carry, to another schema
    (audit, 2026-12-07). Without FS_STATE_DIR, and while the new default does not exist, that is one error naming
    both folders; FS_STATE_DIR set, or the new default made, and the commands run as before."""
    from infra.settings import StackSettings
    from registry.core import places
    from registry.core.errors import SettingsError
    from registry.core.settings import settings_for_command, state_folder

    earlier, default = tmp_path / "site-packages" / ".state", tmp_path / "xdg" / "featurestore"
    monkeypatch.setattr(places, "EARLIER_STATE", earlier)
    monkeypatch.setattr(places, "DEFAULT_STATE", default)
    monkeypatch.delenv("FS_STATE_DIR", raising=False)
    earlier.mkdir(parents=True)
    assert places.left_behind() is None  # an empty folder holds nothing to pass over
    (earlier / "registry").mkdir()
    with pytest.raises(SettingsError) as refused:
        state_folder()
    assert str(default) in str(refused.value) and str(earlier) in str(refused.value)
    with pytest.raises(SystemExit) as exited:
        settings_for_command()
    assert str(exited.value.code).startswith("error: FS_STATE_DIR is not set and the default state folder")
    with pytest.raises(SystemExit) as exited:
        StackSettings.from_env()
    assert str(exited.value.code).startswith("error: FS_STATE_DIR is not set and the default state folder")
    monkeypatch.setenv("FS_STATE_DIR", str(earlier))
    assert state_folder() == earlier and StackSettings.from_env().state_dir == earlier
    monkeypatch.delenv("FS_STATE_DIR")
    default.mkdir(parents=True)  # moved, or made on purpose: the default is used
    assert places.left_behind() is None
    monkeypatch.setattr(places, "EARLIER_STATE", default)  # a checkout: the two are one folder
    default.rmdir()
    assert places.left_behind() is None
