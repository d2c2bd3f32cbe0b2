"""Bring services up (idempotently), report their status, and stop the ones we started."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from infra import artifacts
from infra.errors import InfraError
from infra.process import PidFile, alive, failure_cause, log_size, port_in_use, spawn, stopped, terminate
from infra.services import ORDER, SERVICES, Service
from infra.settings import REPO_DIR, StackSettings
from registry.core.shown import shown

_JVM_COMPONENT = {"kafka": "kafka", "cassandra": "cassandra"}


def _say(msg: str) -> None:
    """A progress line on stderr; one that cannot be written (a terminal closed: SIGHUP, then EIO) is dropped, so the
    stopping it announces still happens."""
    with contextlib.suppress(OSError):
        print(msg, file=sys.stderr, flush=True)


def _pidfile(settings: StackSettings, name: str) -> PidFile:
    return PidFile(settings.service_dir(name) / "pid")


def _log(settings: StackSettings, name: str) -> Path:
    return settings.service_dir(name) / "process.log"


def _marks(settings: StackSettings, name: str) -> dict[Path, int]:
    """The service's logs (its own first, then its stdout and stderr) with their sizes now: what a start
    adds after these is that start's."""
    return {path: log_size(path) for path in [*SERVICES[name].logs(settings), _log(settings, name)]}


def _why(name: str, marks: dict[Path, int], what: str) -> str:
    """One line: the service, what went wrong, the line of its logs that says why, and that log's path."""
    found = failure_cause(marks)
    if found is None:
        return f"{name}: {what}; its logs say nothing about it ({', '.join(map(str, marks))})"
    path, cause = found
    return f"{name}: {what}: {cause} (log: {path})"


def _check_state_dir(settings: StackSettings, *, create: bool) -> None:
    """FS_STATE_DIR must be a folder (made by ``up``): a file there was a traceback, or every service 'stopped'."""
    folder = settings.state_dir
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        elif folder.exists() and not folder.is_dir():
            raise NotADirectoryError(f"{shown(folder)} is not a folder")
        else:  # a path below a file can never be created: as up says, not "stopped" everywhere
            existing = next(p for p in (folder, *folder.parents) if p.exists())
            if not existing.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{shown(existing)} is not a folder")
    except OSError as exc:
        raise InfraError(f"FS_STATE_DIR={shown(folder)} is not a folder we can use: {exc.strerror or exc}") from None


def _make_service_dir(settings: StackSettings, name: str) -> None:
    """The service's folder, made and written in once before it starts: a state folder we cannot write in
    (read-only, ``/sys``) is named as README says, not ``cannot start the stack: Operation not permitted: <path>``."""
    folder = settings.service_dir(name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InfraError(
            f"FS_STATE_DIR={settings.state_dir} is not a folder we can use: cannot write in {folder}: "
            f"{exc.strerror or exc}"
        ) from None


LOCK_NAME = ".up-down.lock"
_LOCK_POLL_S = 0.2


def _lock_wait_s(settings: StackSettings) -> float:
    """How long an ``up`` or ``down`` waits for another one on the same state folder: the longest the other can take
    (a start that times out, then every service's stop), and a minute more."""
    return settings.start_timeout_s + sum(svc.stop_grace_s for svc in SERVICES.values()) + 60.0


@contextlib.contextmanager
def _exclusive(settings: StackSettings, verb: str) -> Iterator[None]:
    """One ``up`` or ``down`` at a time per ``FS_STATE_DIR``: two at once both found no PID file, both started
    Kafka, and the loser's clean-up removed the winner's PID file, leaving a Kafka nothing could stop.

    The other waits (saying so once) for at most ``_lock_wait_s``, then fails with one line naming the holder. A
    lock file that cannot be made (a state folder that takes no writes) is no lock: what follows names that folder
    as the README says, and such a folder can hold no service to race for."""
    path = settings.state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        deadline = time.monotonic() + _lock_wait_s(settings)
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
                if time.monotonic() >= deadline:
                    raise InfraError(
                        f"another `python -m infra up` or `down` (pid {holder}) has held {path} for more than "
                        f"{_lock_wait_s(settings):.0f}s; wait for it to end or stop it"
                    ) from None
                if not said:
                    _say(f"[{verb}] waiting for another up or down of {settings.state_dir} to end (pid {holder})")
                    said = True
                time.sleep(_LOCK_POLL_S)
        with contextlib.suppress(OSError):  # the holder's PID, for the others' message only
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _select(names: Iterable[str] | None) -> list[str]:
    """The named services in start order; None means all of them, an empty list none."""
    wanted = list(ORDER) if names is None else list(names)
    unknown = [n for n in wanted if n not in SERVICES]
    if unknown:
        raise InfraError(f"unknown service(s): {', '.join(unknown)} (known: {', '.join(ORDER)})")
    return [n for n in ORDER if n in wanted]


def _check_ports(settings: StackSettings, svc: Service) -> None:
    busy = [p for p in svc.ports(settings) if port_in_use(settings.host, p)]
    orphans = _pidfile(settings, svc.name).orphaned_group() if busy else None
    if orphans is not None:
        raise InfraError(
            f"{svc.name}: port(s) {', '.join(map(str, busy))} held by what is left of its pid {orphans}'s process "
            f"group (pid {orphans} is gone): `make down` stops it"
        )
    if busy:
        raise InfraError(
            f"{svc.name}: port(s) {', '.join(map(str, busy))} on {settings.host} already in use by another "
            f"process; stop it or choose other ports (FS_*_PORT variables)"
        )


def _start(settings: StackSettings, svc: Service, marks: dict[str, dict[Path, int]]) -> int:
    """Spawn svc unless it already runs; return the PID to wait for. ``marks`` gets the service's
    logs as they were before it started (``_marks``), for ``_why``."""
    pidfile = _pidfile(settings, svc.name)
    pid = pidfile.read()
    if pid is not None and alive(pid):
        if stopped(pid):  # it would never become healthy: up waited FS_START_TIMEOUT_S, then killed it
            raise InfraError(
                f"{svc.name}: pid {pid} is stopped by a signal (SIGSTOP); `kill -CONT {pid}` resumes it, "
                "`make down` stops it"
            )
        _say(f"[up] {svc.name}: already running (pid {pid})")
        return pid
    _check_ports(settings, svc)
    component = _JVM_COMPONENT.get(svc.name)
    if component:
        artifacts.fetch(settings, component)
    _make_service_dir(settings, svc.name)
    marks[svc.name] = _marks(settings, svc.name)
    cmd = svc.prepare(settings)
    env = svc.env(settings) if svc.env else None
    pid = spawn(cmd, log_path=_log(settings, svc.name), cwd=settings.service_dir(svc.name), env=env)
    try:
        pidfile.write(pid)
    except OSError as exc:  # unrecorded, nothing could ever stop it: stop it now (it was a traceback and an orphan)
        terminate(pid, grace_s=svc.stop_grace_s)
        raise InfraError(f"{svc.name}: cannot write its PID file {pidfile.path}: {exc.strerror or exc}") from None
    logs = ", ".join(map(str, [*svc.logs(settings), _log(settings, svc.name)]))
    _say(f"[up] {svc.name}: started (pid {pid}), log {logs}")
    return pid


def _timed_out(settings: StackSettings, name: str, pid: int, marks: dict[str, dict[Path, int]]) -> str:
    """Why ``name`` is not up, stopping it if this call started it (it has ``marks``); one running before is left
    as it is (README: up is idempotent), it was killed."""
    within = f"not healthy within {settings.start_timeout_s:g}s"
    if name not in marks:
        return f"{name}: {within} (running before, pid {pid}: left as it is; `python -m infra down {name}` stops it)"
    if not terminate(pid, grace_s=5):  # recorded still, as down keeps it: removed, nothing could stop it
        return f"{name}: {within}; pid {pid} still running after SIGKILL; its PID file is kept"
    _pidfile(settings, name).clear()
    return _why(name, marks[name], f"{within} (stopped)")


def _wait_healthy(
    settings: StackSettings, names: list[str], pids: dict[str, int], marks: dict[str, dict[Path, int]]
) -> None:
    started = time.monotonic()
    pending = list(names)
    last_report = 0.0
    while pending:
        # The deadline before asking: a yes asked for after it (one more poll) counted as healthy within it.
        elapsed = time.monotonic() - started
        if elapsed > settings.start_timeout_s:
            raise InfraError("; ".join(_timed_out(settings, name, pids[name], marks) for name in pending))
        for name in list(pending):
            svc = SERVICES[name]
            pid = pids[name]
            if not alive(pid):
                _pidfile(settings, name).clear()
                raise InfraError(_why(name, marks.get(name) or _marks(settings, name), "exited during start-up"))
            if svc.healthy(settings):
                _say(f"[up] {name}: healthy after {time.monotonic() - started:.0f}s")
                pending.remove(name)
        if pending and elapsed - last_report >= 10:
            last_report = elapsed
            _say(f"[up] waiting for {', '.join(pending)} ... {elapsed:.0f}s")
        if pending:
            time.sleep(0.5)


def up(settings: StackSettings, names: Iterable[str] | None = None) -> list[str]:
    """Start the named services (all by default); return the names this call actually started. One ``up`` or
    ``down`` at a time per state folder: another waits for it (``_exclusive``)."""
    selected = _select(names)
    _check_state_dir(settings, create=True)
    with _exclusive(settings, "up"):
        return _up(settings, selected)


def _up(settings: StackSettings, selected: list[str]) -> list[str]:
    # Every port first: a port held by another process starts nothing (it started Kafka, then failed at Cassandra's).
    for name in selected:
        pid = _pidfile(settings, name).read()
        if pid is None or not alive(pid):
            _check_ports(settings, SERVICES[name])
    started: list[str] = []
    try:
        # JVMs first and together (they take the longest), then the Python services that need them.
        for group in ([n for n in selected if n in _JVM_COMPONENT], [n for n in selected if n not in _JVM_COMPONENT]):
            pids: dict[str, int] = {}
            marks: dict[str, dict[Path, int]] = {}
            for name in group:
                was_running = _pidfile(settings, name).read()
                pids[name] = _start(settings, SERVICES[name], marks)
                if was_running is None or not alive(was_running):
                    started.append(name)
            _wait_healthy(settings, list(pids), pids, marks)
    except InfraError:
        with signals_held():
            _down(settings, _select(started))
        raise
    except OSError as exc:  # a service folder that is a file, a log that cannot be opened: one line, nothing left
        with signals_held():
            _down(settings, _select(started))
        raise InfraError(f"cannot start the stack: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None
    except BaseException:  # Ctrl-C while starting: what this call started is stopped too
        with signals_held():
            _down(settings, _select(started))
        raise
    return started


HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP ignored in this block (on the main thread): a second Ctrl-C, or a CI cancel's
    SIGINT then SIGTERM, interrupted the stopping of what ``up`` had started and left the rest running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {sig: signal.signal(sig, signal.SIG_IGN) for sig in HELD_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)


def down(settings: StackSettings, names: Iterable[str] | None = None) -> None:
    """Stop the named services that we started (by PID file); never touch anything else. Waits for an ``up`` or
    ``down`` of the same state folder under way (``_exclusive``)."""
    _check_state_dir(settings, create=False)
    selected = _select(names)
    if not settings.state_dir.is_dir():  # never made: nothing was ever started there
        return
    with _exclusive(settings, "down"):
        _down(settings, selected)


def _down(settings: StackSettings, selected: list[str]) -> None:
    survivors: list[str] = []  # said once all are stopped: one that survives no longer leaves the others running
    for name in reversed(selected):
        pidfile = _pidfile(settings, name)
        pid = pidfile.read()
        if pid is None or not alive(pid):
            orphans = pidfile.orphaned_group()
            if orphans is None:
                pidfile.clear()
                continue
            pid = orphans
            _say(f"[down] {name}: stopping what is left of pid {pid}'s process group (pid {pid} is gone)")
        else:
            _say(f"[down] {name}: stopping pid {pid}")
        if not terminate(pid, grace_s=SERVICES[name].stop_grace_s):
            survivors.append(f"{name}: pid {pid} still running after SIGKILL; its PID file is kept")
            continue
        pidfile.clear()
    if survivors:
        raise InfraError("; ".join(survivors))


def status(settings: StackSettings) -> dict[str, str]:
    _check_state_dir(settings, create=False)
    report: dict[str, str] = {}
    for name in ORDER:
        pid = _pidfile(settings, name).read()
        if pid is not None and alive(pid) and stopped(pid):
            report[name] = f"running (pid {pid}), stopped by a signal (SIGSTOP): not answering"
        elif pid is not None and alive(pid):
            health = "healthy" if SERVICES[name].healthy(settings) else "starting or unhealthy"
            report[name] = f"running (pid {pid}), {health}"
        elif (orphans := _pidfile(settings, name).orphaned_group()) is not None:
            report[name] = f"pid {orphans} is gone, processes of its group still run (workers): `down` stops them"
        else:
            busy = [p for p in SERVICES[name].ports(settings) if port_in_use(settings.host, p)]
            report[name] = f"not started by us; port {busy[0]} busy (another process)" if busy else "stopped"
    return report


__all__ = ["REPO_DIR", "down", "status", "up"]
