"""Where the local stack keeps things and which ports it uses, read once from the environment."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from registry.core.hosts import is_host_name
from registry.core.places import DEFAULT_STATE, left_behind
from registry.core.shown import error_line, shown

REPO_DIR = Path(__file__).resolve().parent.parent

# The spellings of registry.core.settings (WHOLE, DECIMAL; not imported: that module loads pydantic):
# ASCII digits with an optional sign, a plain decimal number.
_WHOLE = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
# A JVM heap as -Xmx takes it: a whole number above 0 (leading zeros allowed, as the JVM reads it) with an
# optional unit (k, m, g or t, either case).
_HEAP = re.compile(r"0*[1-9][0-9]*[kKmMgGtT]?")


def _port_number(raw: str) -> int | None:
    """A port written as ``_WHOLE`` takes it, in 1-65535; None outside it. Sign and leading zeros are read
    before ``int``, which refuses more than 4,300 digits (a traceback, not a port out of range)."""
    digits = raw.lstrip("+-").lstrip("0")
    if len(digits) > 5:
        return None
    port = -int(digits or "0") if raw.startswith("-") else int(digits or "0")
    return port if 0 < port < 65536 else None


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    if _WHOLE.fullmatch(raw) is None:
        raise SystemExit(error_line(f"{name}={raw!r} is not a port number"))
    port = _port_number(raw)
    if port is None:
        raise SystemExit(error_line(f"{name}={raw if len(raw) <= 20 else raw[:20] + '...'} is outside 1-65535"))
    return port


def _seconds(name: str, default: float) -> float:
    """A duration in seconds: a finite number above 0 (``0.5`` and ``1e3`` are taken; 0, negatives, ``nan``
    and ``inf`` are not, nor ``1_000``, `` 5 `` or non-ASCII digits)."""
    raw = os.environ.get(name, str(default))
    if _DECIMAL.fullmatch(raw) is None and raw.lower() not in ("nan", "inf", "+inf", "-inf"):
        raise SystemExit(error_line(f"{name}={raw!r} is not a number of seconds"))
    seconds = float(raw)
    if not (math.isfinite(seconds) and seconds > 0):
        raise SystemExit(error_line(f"{name}={raw!r} must be a number of seconds above 0"))
    return seconds


def _host(name: str) -> str:
    """Where every service of the stack listens (and the clients look for them by default)."""
    raw = os.environ.get(name, "127.0.0.1")
    if not is_host_name(raw):  # registry.core.settings.check_host's grammar: every command reads FS_HOST so
        raise SystemExit(error_line(f"{name}={raw!r} is not one host name or IPv4 address"))
    return raw


def _folder(name: str, default: Path) -> Path:
    raw = os.environ.get(name, str(default))
    if not raw.strip():
        raise SystemExit(error_line(f"{name} must be a folder path, not empty"))
    return Path(raw)


def _state_dir(name: str, default: Path) -> Path:
    """The folder made absolute (FS_STATE_DIR, FS_CACHE_DIR); one that cannot be resolved (a symlink loop) ends as
    ``up`` words it."""
    folder = _folder(name, default)
    try:
        return folder.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise SystemExit(error_line(f"{name}={shown(folder)} is not a folder we can use: {exc}")) from None


def _stack_state() -> Path:
    """FS_STATE_DIR made absolute, or the default when no earlier install's data is left behind (``places``)."""
    if "FS_STATE_DIR" not in os.environ and (reason := left_behind()) is not None:
        raise SystemExit(error_line(reason))
    return _state_dir("FS_STATE_DIR", DEFAULT_STATE)


def _heap(name: str, default: str) -> str:
    raw = os.environ.get(name, default)
    if _HEAP.fullmatch(raw) is None:
        raise SystemExit(
            error_line(f"{name}={raw!r} is not a JVM heap size (a whole number with k, m, g or t: 512m, 1G)")
        )
    return raw


def _seeds(name: str) -> str:
    """``host:storage_port`` nodes separated by commas; unset (the default): the node is its own seed. Set but
    empty is refused, as every setting that is set is checked."""
    if name not in os.environ:
        return ""
    raw = os.environ[name]
    nodes = []
    for seed in raw.split(","):
        host, colon, port = seed.rpartition(":")
        number = _port_number(port) if colon and _WHOLE.fullmatch(port) else None
        if number is None or not is_host_name(host):
            raise SystemExit(error_line(f"{name}={raw[:200]!r} is not host:port nodes separated by commas"))
        nodes.append(f"{host}:{number}")  # as Cassandra reads it: no sign, no leading zeros (`+7000` it refuses)
    return ",".join(nodes)


@dataclass(frozen=True)
class StackSettings:
    """Ports, folders and limits of the local stack (all overridable by FS_* variables)."""

    cache_dir: Path
    state_dir: Path
    host: str
    kafka_port: int
    kafka_controller_port: int
    cassandra_port: int
    cassandra_storage_port: int
    registry_port: int
    api_port: int
    kafka_heap: str
    cassandra_heap: str
    start_timeout_s: float
    fetch_timeout_s: float
    cassandra_seeds: str = ""  # host:storage_port,... of the nodes to join; empty: this node alone (its own seed)

    @classmethod
    def from_env(cls) -> StackSettings:
        settings = cls(
            # absolute, as the state folder: the JVMs run in their service folder, the classpath names it
            cache_dir=_state_dir("FS_CACHE_DIR", Path.home() / ".cache" / "featurestore"),
            state_dir=_stack_state(),
            host=_host("FS_HOST"),
            kafka_port=_port("FS_KAFKA_PORT", 9092),
            kafka_controller_port=_port("FS_KAFKA_CONTROLLER_PORT", 9093),
            cassandra_port=_port("FS_CASSANDRA_PORT", 9042),
            cassandra_storage_port=_port("FS_CASSANDRA_STORAGE_PORT", 7000),
            registry_port=_port("FS_REGISTRY_PORT", 8081),
            api_port=_port("FS_API_PORT", 8000),
            kafka_heap=_heap("FS_KAFKA_HEAP", "512m"),
            cassandra_heap=_heap("FS_CASSANDRA_HEAP", "1G"),
            start_timeout_s=_seconds("FS_START_TIMEOUT_S", 180),
            fetch_timeout_s=_seconds("FS_FETCH_TIMEOUT_S", 900),
            cassandra_seeds=_seeds("FS_CASSANDRA_SEEDS"),
        )
        ports: dict[int, str] = {}
        for variable, port in (
            ("FS_KAFKA_PORT", settings.kafka_port),
            ("FS_KAFKA_CONTROLLER_PORT", settings.kafka_controller_port),
            ("FS_CASSANDRA_PORT", settings.cassandra_port),
            ("FS_CASSANDRA_STORAGE_PORT", settings.cassandra_storage_port),
            ("FS_REGISTRY_PORT", settings.registry_port),
            ("FS_API_PORT", settings.api_port),
        ):
            if port in ports:  # one service would find the other on it and stop, after the first had started
                raise SystemExit(
                    error_line(f"{ports[port]} and {variable} are both {port}: each service needs its own port")
                )
            ports[port] = variable
        return settings

    def lib_dir(self, component: str) -> Path:
        return self.cache_dir / component / "lib"

    def service_dir(self, service: str) -> Path:
        return self.state_dir / service
