"""Background processes owned by the stack: started detached, recorded by PID, stopped by PID only.

A PID file holds the PID and the process's start time (from /proc), so a PID reused by an unrelated
process after a reboot or crash is never mistaken for ours and never signalled.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from infra.errors import InfraError


def _start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime); the command name in field 2 may contain spaces, so split after ')'.
    return stat.rsplit(")", 1)[1].split()[19]


@dataclass(frozen=True)
class PidFile:
    path: Path

    def read(self) -> int | None:
        """The PID if the recorded process is still the one we started, else None."""
        try:
            pid_text, ticks = self.path.read_text().split()
        except (OSError, ValueError):
            return None
        if not pid_text.isascii() or not pid_text.isdigit():  # a corrupt or hand-written file is not ours
            return None
        pid = int(pid_text)
        return pid if pid > 0 and _start_ticks(pid) == ticks else None

    def orphaned_group(self) -> int | None:
        """The recorded PID's process group when that process is gone and members of its group are left that
        ``spawn`` started for this PID file's folder (the workers of a feature API killed with SIGKILL: they carry
        its ``SPAWNED_FOR`` mark); a group of that number that is not ours (the PID reused) is never named."""
        try:
            pid_text, _ = self.path.read_text().split()
        except (OSError, ValueError):
            return None
        if not pid_text.isascii() or not pid_text.isdigit() or int(pid_text) <= 0:
            return None
        pid = int(pid_text)
        if alive(pid):
            return None
        mark = f"{SPAWNED_FOR}={self.path.parent}".encode()
        return pid if any(mark in _environ(member) for member in group_members(pid)) else None

    def write(self, pid: int) -> None:
        ticks = _start_ticks(pid)
        self.path.write_text(f"{pid} {ticks}\n")

    def clear(self) -> None:
        """Remove the file; a PID "file" that is not a file (a folder) is not ours and is left as it is. One that
        cannot be removed (a read-only state folder) is left too: it names a process that is gone, which ``read``
        ignores (it was a PermissionError traceback from ``down``, after the service had been stopped)."""
        with contextlib.suppress(OSError):
            self.path.unlink()


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            return sock.connect_ex((host, port)) == 0
        except (socket.gaierror, UnicodeError) as exc:  # a host name that does not resolve: named, not a traceback
            raise InfraError(f"FS_HOST={host}: cannot resolve it ({exc})") from None


def port_in_use(host: str, port: int) -> bool:
    """True if another socket holds host:port: one that accepts connections, or one bound without listening
    (a JVM's bind would fail on it: Kafka then exited after ~15 s with nothing about the port in its log tail)."""
    if port_open(host, port):
        return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the JVM binds: TIME_WAIT is no conflict
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def spawn(cmd: list[str], *, log_path: Path, cwd: Path, env: dict[str, str] | None = None) -> int:
    """Start cmd detached in its own session with output appended to log_path; return its PID."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    marked = {**(os.environ if env is None else env), SPAWNED_FOR: str(cwd)}  # ``PidFile.orphaned_group``
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=marked,
            start_new_session=True,
        )
    return proc.pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); treat it as dead.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


SPAWNED_FOR = "FS_INFRA_SPAWNED_FOR"
"""Set by ``spawn`` in a service's environment (its folder), inherited by what it starts: how ``down`` knows the
members a gone service left in its process group are ours."""


def group_members(pgid: int) -> list[int]:
    """The PIDs of the process group's members that are not zombies (an orphan that died is a zombie until its new
    parent reaps it, and the init of some machines, a VM's or a container's, never does: ``killpg(pgid, 0)`` then
    answered for a group that was gone)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def group_alive(pgid: int) -> bool:
    """True if the process group has a member that is not a zombie."""
    return bool(group_members(pgid))


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or another user's
        return b""


def stopped(pid: int) -> bool:
    """True if the process is stopped by a signal (SIGSTOP, SIGTSTP) or a tracer: it answers nothing until SIGCONT."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("T", "t")


def _signal(pid: int, sig: signal.Signals) -> None:
    """Signal the process group the PID leads (as ``spawn`` starts one), else the process alone: one that leads
    no group (started by another tool) was left running while ``down`` called it stopped."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        os.kill(pid, sig)


def terminate(pid: int, *, grace_s: float) -> bool:
    """SIGTERM the process group, then SIGKILL it if still alive after grace_s; False if it still lives then.

    SIGCONT follows SIGTERM: a stopped (SIGSTOPped) JVM keeps SIGTERM pending until it runs again, so without
    it a stopped service waited out its whole grace before the SIGKILL and never shut down cleanly."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            _signal(pid, sig)
            if sig == signal.SIGTERM:
                _signal(pid, signal.SIGCONT)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not alive(pid) and not group_alive(pid):  # its group too: workers may outlive their parent
                return True
            time.sleep(0.1)
    return not alive(pid) and not group_alive(pid)


# A log line's level: first (Cassandra, Python's logging) or after a timestamp (Kafka).
_LEVEL = re.compile(r"(\S+\s+)?(ERROR|FATAL|SEVERE)\b")
_EXCEPTION = re.compile(r"(Caused by: )?[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*(Exception|Error)\b.*")
_JVM_STDOUT = re.compile(
    r"((Error|Exception in thread|Caused by|Could not|Invalid|Unrecognized)\b|error:|# There is insufficient).*"
)
_TRACE_FRAME = re.compile(r"\s+(at |\.\.\. \d+ more|File \")")


def _new_lines(path: Path, offset: int) -> list[str]:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace").splitlines()
    except OSError:
        return []


def cause_in(lines: list[str]) -> str | None:
    """The line that says why a start failed: an ERROR/FATAL line's exception (the line after it, as
    Kafka and Cassandra log them) or its own message; else a JVM's or a Python command's last words
    (``Error: ...``, ``Exception in thread ...``, a traceback's final line, ``error: ...``)."""
    for i, line in enumerate(lines):
        if _LEVEL.match(line):
            following = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if _EXCEPTION.fullmatch(following):
                return following.removeprefix("Caused by: ")
            return line.strip()
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        last = [line for line in lines if line.strip() and not line.startswith((" ", "\t"))]
        return last[-1].strip() if last else None
    for i, line in enumerate(lines):
        if _JVM_STDOUT.match(line):
            # "Error occurred during initialization of VM" says less than the line after it
            following = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if following and not _TRACE_FRAME.match(lines[i + 1]):
                return f"{line.strip().removeprefix('# ').rstrip('.:')}: {following.removeprefix('# ')}"
            return line.strip().removeprefix("# ")
    return None


def failure_cause(marks: dict[Path, int]) -> tuple[Path, str] | None:
    """Why a service failed to start, from what its logs gained since ``marks`` (a log's size when the
    start began): the log that says so and the one line that says it; None if no log says anything."""
    for path, offset in marks.items():
        cause = cause_in(_new_lines(path, offset))
        if cause is not None:
            return path, cause
    return None


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
