"""The services of the local stack: how each is configured, started and health-checked."""

from __future__ import annotations

import base64
import contextlib
import os
import string
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from infra import artifacts
from infra.errors import InfraError
from infra.java import find_java17
from infra.process import cause_in, port_open
from infra.settings import REPO_DIR, StackSettings

CONF_DIR = REPO_DIR / "infra" / "conf"
FORMAT_TIMEOUT_S = 120.0  # Kafka's storage format, a JVM run of a few seconds


def _render(template: Path, target: Path, values: dict[str, str], quote: Callable[[str], str]) -> None:
    """The template with each value written by ``quote`` in the target's own syntax: a state folder's path may
    hold any character a file name can (spaces, ``#``, ``: ``, non-ASCII)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for name, value in values.items():
        try:
            value.encode()
        except UnicodeEncodeError:  # a path of bytes that are not UTF-8 (Python keeps them as lone surrogates)
            raise InfraError(
                f"{target.name}: {name} {value!r} is not UTF-8: choose a folder with a UTF-8 name"
            ) from None
    quoted = {name: quote(value) for name, value in values.items()}
    target.write_text(string.Template(template.read_text()).substitute(quoted), encoding="utf-8")


def properties_text(value: str) -> str:
    """``value`` as a Java properties file reads it back: Kafka loads ``server.properties`` as ISO-8859-1, so every
    character outside printable ASCII is a ``\\uXXXX`` escape (UTF-16, as Java's own ``Properties.store``), and a
    backslash is doubled. Written as UTF-8, ``é`` in a state folder named another folder (``Ã©``), where Kafka kept
    its data, and a restart found no storage and formatted it again under a new cluster id, which Kafka refused."""
    out = []
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif " " <= char <= "~":
            out.append(char)
        else:
            units = char.encode("utf-16-be")
            out.extend(f"\\u{int.from_bytes(units[i : i + 2], 'big'):04x}" for i in range(0, len(units), 2))
    return "".join(out)


def yaml_text(value: str) -> str:
    """``value`` for the inside of a double-quoted YAML scalar: a backslash before ``"`` and ``\\``, control
    characters as ``\\u`` escapes. Pasted bare, a state folder holding `` #`` ended every Cassandra directory there
    (a comment), and Cassandra refused to start ("commitlog_directory must not be the same as any
    data_file_directories")."""
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        else:  # a control character: YAML allows none bare in a scalar
            out.append(f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}")
    return "".join(out)


@dataclass(frozen=True)
class Service:
    name: str
    ports: Callable[[StackSettings], list[int]]
    prepare: Callable[[StackSettings], list[str]]
    healthy: Callable[[StackSettings], bool]
    stop_grace_s: float = 20.0
    env: Callable[[StackSettings], dict[str, str]] | None = None
    # The service's own log files (its stdout and stderr go to process.log): where a failed start says why.
    logs: Callable[[StackSettings], list[Path]] = lambda s: []


# --- Kafka -------------------------------------------------------------------------------------


def _kafka_prepare(s: StackSettings) -> list[str]:
    java = find_java17()
    home = s.service_dir("kafka")
    data = home / "data"
    props = home / "server.properties"
    if "," in str(data):  # log.dirs is a list of folders separated by commas: one path would be read as two
        raise InfraError(
            f"kafka: its data folder {str(data)!r} holds a comma, which Kafka reads as two folders: set "
            "FS_STATE_DIR to a folder without one"
        )
    _render(
        CONF_DIR / "kafka" / "server.properties",
        props,
        {
            "FS_KAFKA_HOST": s.host,
            "FS_KAFKA_ADVERTISED_HOST": s.host,
            "FS_KAFKA_PORT": str(s.kafka_port),
            "FS_KAFKA_CONTROLLER_PORT": str(s.kafka_controller_port),
            "FS_KAFKA_DATA_DIR": str(data),
        },
        properties_text,
    )
    cp = artifacts.classpath(s, "kafka")
    base = [
        str(java),
        f"-Xmx{s.kafka_heap}",
        f"-Xms{s.kafka_heap}",
        "-cp",
        cp,
        f"-Dlog4j2.configurationFile={CONF_DIR / 'kafka' / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={home / 'logs'}",
    ]
    if not (data / "meta.properties").exists():
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # "--cluster-id=<id>", not "-t <id>": one id in 64 starts with "-", which the tool's parser
        # then takes for an option and refuses (seen: "argument --cluster-id/-t: expected one argument").
        timeout_s = min(FORMAT_TIMEOUT_S, s.start_timeout_s)  # part of the start FS_START_TIMEOUT_S bounds
        try:
            fmt = subprocess.run(
                [*base, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(props)],
                capture_output=True,
                text=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            raise InfraError(
                f"kafka: formatting storage in {data} did not finish within {timeout_s:g}s (stopped)"
            ) from None
        if fmt.returncode != 0:
            output = f"{fmt.stdout}\n{fmt.stderr}".splitlines()
            last = [line.strip() for line in output if line.strip()]
            cause = cause_in(output) or (last[-1] if last else f"exit {fmt.returncode}, no output")
            raise InfraError(f"kafka: formatting storage in {data} failed: {cause}")
    return [*base, "kafka.Kafka", str(props)]


def _kafka_healthy(s: StackSettings) -> bool:
    if not port_open(s.host, s.kafka_port):
        return False
    from confluent_kafka.admin import AdminClient

    # log_level 0: a broker that does not answer is this check's answer (False), not librdkafka's lines on stderr
    admin = AdminClient({"bootstrap.servers": f"{s.host}:{s.kafka_port}", "socket.timeout.ms": 2000, "log_level": 0})
    try:
        meta = admin.list_topics(timeout=3)
    except Exception:
        return False
    return bool(meta.brokers)


# --- Cassandra ---------------------------------------------------------------------------------


def _cassandra_prepare(s: StackSettings) -> list[str]:
    java = find_java17()
    home = s.service_dir("cassandra")
    if '"' in str(home):  # the GC log's -Xlog option quotes its path, and the JVM has no escape for a quote in it
        raise InfraError(
            f"cassandra: its folder {str(home)!r} holds a double quote, which the JVM's -Xlog option cannot take: "
            "set FS_STATE_DIR to a folder without one"
        )
    yaml = home / "cassandra.yaml"
    _render(
        CONF_DIR / "cassandra" / "cassandra.yaml",
        yaml,
        {
            "FS_CASSANDRA_HOST": s.host,
            "FS_CASSANDRA_PORT": str(s.cassandra_port),
            "FS_CASSANDRA_STORAGE_PORT": str(s.cassandra_storage_port),
            "FS_CASSANDRA_DATA_DIR": str(home),
            "FS_CASSANDRA_SEEDS": s.cassandra_seeds or f"{s.host}:{s.cassandra_storage_port}",
        },
        yaml_text,
    )
    (home / "logs").mkdir(parents=True, exist_ok=True)  # the GC log's folder must exist before the JVM starts
    # One option per line; "--add-opens X" is two JVM arguments, so join with "=".
    opts = [
        "=".join(line.split(None, 1))
        for line in (CONF_DIR / "cassandra" / "jvm17.options").read_text().splitlines()
        if line.strip().startswith("-")
    ]
    return [
        str(java),
        *opts,
        f"-Xms{s.cassandra_heap}",
        f"-Xmx{s.cassandra_heap}",
        f"-Dcassandra.config={yaml.resolve().as_uri()}",
        f"-Dcassandra.storagedir={home}",
        f"-Dcassandra.logdir={home / 'logs'}",
        # the file quoted: -Xlog splits on ":", and a state folder's path may hold one
        f'-Xlog:gc*,safepoint:file="{home / "logs" / "gc.log"}":time,uptime,level,tags:filecount=4,filesize=10m',
        f"-Dlogback.configurationFile={CONF_DIR / 'cassandra' / 'logback.xml'}",
        "-cp",
        artifacts.classpath(s, "cassandra"),
        "org.apache.cassandra.service.CassandraDaemon",
    ]


def _cassandra_healthy(s: StackSettings) -> bool:
    if not port_open(s.host, s.cassandra_port):
        return False
    from cassandra.cluster import Cluster

    cluster = Cluster([s.host], port=s.cassandra_port, connect_timeout=3, control_connection_timeout=3)
    try:
        session = cluster.connect()
        session.execute("SELECT release_version FROM system.local", timeout=3)
        return True
    except Exception:
        return False
    finally:
        cluster.shutdown()


# --- this project's Python services --------------------------------------------------------------


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _python_env(s: StackSettings) -> dict[str, str]:
    """The environment of a Python service: it runs in its own folder, so the state folder and the definitions,
    catalog, warehouse and jar paths are made absolute from this process's (a relative ``FS_STATE_DIR`` or
    ``FS_DEFINITIONS_DB`` named another file in each service)."""
    from registry.core.errors import FeatureStoreError
    from registry.core.settings import Settings, absolute

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_DIR), env.get("PYTHONPATH")]))
    env["FS_STATE_DIR"] = str(s.state_dir)
    with contextlib.suppress(FeatureStoreError):  # a setting the service cannot take: it says which, in its log
        env.update(absolute(Settings.from_env()).to_env())
    return env


SERVICES: dict[str, Service] = {
    "kafka": Service(
        name="kafka",
        ports=lambda s: [s.kafka_port, s.kafka_controller_port],
        prepare=_kafka_prepare,
        healthy=_kafka_healthy,
        stop_grace_s=30.0,
        logs=lambda s: [s.service_dir("kafka") / "logs" / "server.log"],
    ),
    "cassandra": Service(
        name="cassandra",
        ports=lambda s: [s.cassandra_port, s.cassandra_storage_port],
        prepare=_cassandra_prepare,
        healthy=_cassandra_healthy,
        stop_grace_s=30.0,
        logs=lambda s: [s.service_dir("cassandra") / "logs" / "system.log"],
    ),
    "registry": Service(
        name="registry",
        ports=lambda s: [s.registry_port],
        prepare=lambda s: [
            sys.executable,
            "-m",
            "registry.schema_registry",
            "--host",
            s.host,
            "--port",
            str(s.registry_port),
        ],
        healthy=lambda s: _http_ok(f"http://{s.host}:{s.registry_port}/health"),
        stop_grace_s=10.0,
        env=_python_env,
    ),
    "api": Service(
        name="api",
        ports=lambda s: [s.api_port],
        prepare=lambda s: [sys.executable, "-m", "serving.online", "--host", s.host, "--port", str(s.api_port)],
        healthy=lambda s: _http_ok(f"http://{s.host}:{s.api_port}/health"),
        stop_grace_s=10.0,
        env=_python_env,
    ),
}

# Start order: the API reads Cassandra and the registry, so it comes last.
ORDER = ("kafka", "cassandra", "registry", "api")
