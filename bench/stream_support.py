"""Shared parts of the stream bench: isolation, topics, the job process, CPU sampling, progress polling."""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from registry.core.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SEC = 1000
MIN = 60 * SEC
HOUR = 60 * MIN
FEATURES_TOML = REPO / "registry" / "features" / "user_transactions.toml"
_EPOCH = datetime(1970, 1, 1)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _ms(value: datetime) -> int:
    """The driver returns Cassandra timestamps as naive UTC datetimes."""
    return (value.replace(tzinfo=None) - _EPOCH) // timedelta(milliseconds=1)


# ---- isolation: settings, definitions, environment of the job ------------------------------------------------


def isolated(base: Settings, run_id: str, name: str, tmp: Path) -> Settings:
    """Settings with a keyspace, Iceberg catalog and namespace, and definitions folder of this phase only."""
    folder = tmp / name
    (folder / "definitions").mkdir(parents=True)
    return base.model_copy(
        update={
            "cassandra_keyspace": f"bench_{run_id}_{name}",
            "iceberg_catalog_uri": f"sqlite:///{folder / 'iceberg' / 'catalog.db'}",
            "iceberg_warehouse": (folder / "iceberg" / "warehouse").as_uri(),
            "iceberg_namespace": f"bench_{run_id}_{name}",
            "definitions_dir": folder / "definitions",
            "definitions_db": folder / "definitions" / "definitions.db",
        }
    )


def job_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment that makes the job use these settings (``Settings.to_env``), run from the repository."""
    return {**os.environ, **(extra or {}), **settings.to_env(), "PYTHONPATH": str(REPO)}


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise RuntimeError(f"{FEATURES_TOML.name}: expected {old!r} once; the bench's edit of it needs updating")
    return text.replace(old, new)


def register_definitions(
    settings: Settings, topic: str, *, ttl: str, size: str | None = None, slide: str | None = None
) -> list[Any]:
    """The real feature file with the bench's topic, TTL and (optionally) window; registered in the phase's DB."""
    from registry.core.catalog import load_folder
    from registry.definition_store import DefinitionStore
    from registry.plan import apply

    text = FEATURES_TOML.read_text()
    text = _replace_once(text, 'topic = "card_transactions"', f'topic = "{topic}"')
    text = _replace_once(text, 'subject = "card_transactions-value"', f'subject = "{topic}-value"')
    text = _replace_once(text, 'ttl = "2h"', f'ttl = "{ttl}"')
    if size is not None:
        text = _replace_once(text, 'size = "1h"', f'size = "{size}"')
    if slide is not None:
        text = _replace_once(text, 'slide = "5m"', f'slide = "{slide}"')
    (settings.definitions_dir / "features.toml").write_text(text)
    definitions = load_folder(settings.definitions_dir)
    apply(DefinitionStore(settings.definitions_db), definitions)
    streams = {d.stream for d in definitions}
    if len(streams) != 1:
        raise RuntimeError(f"expected one window group, got {sorted(streams)}")
    return definitions


def ensure_topic(settings: Settings, topic: str, partitions: int) -> None:
    from jobs.produce import ensure_topics

    ensure_topics(settings.kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=partitions)


def delete_topics(settings: Settings, topics: list[str]) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    existing = set(admin.list_topics(timeout=30).topics)
    doomed = [t for t in topics if t in existing]
    for future in admin.delete_topics(doomed, operation_timeout=30).values() if doomed else []:
        with suppress(Exception):
            future.result(timeout=30)


def delete_subject(settings: Settings, subject: str) -> None:
    """Remove the schema subject the bench registered (soft, then permanent, as the registry requires)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    client = SchemaRegistryClient({"url": settings.schema_registry_url, "timeout": 10})
    for permanent in (False, True):
        with suppress(Exception):
            client.delete_subject(subject, permanent=permanent)


def drop_keyspace(settings: Settings) -> None:
    from cassandra.cluster import Cluster

    cluster = Cluster(list(settings.cassandra_hosts), port=settings.cassandra_port, protocol_version=5)
    try:
        session = cluster.connect()
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=120)
    finally:
        cluster.shutdown()


# ---- the job as a subprocess ---------------------------------------------------------------------------------


def runtime_env(args: argparse.Namespace) -> dict[str, str]:
    """PyFlink's Python worker mode for the job: ``_python_worker_execution_mode``.

    "loopback" is PyFlink's default for a local run: the Python operators of every subtask run in the
    job's client process, under one GIL. "process" starts a Python worker process per task slot, as
    on a cluster.
    """
    env = {"_python_worker_execution_mode": args.python_workers}
    if args.python_mode:
        env["FS_PYTHON_MODE"] = args.python_mode
    if args.flink_conf:
        env["FLINK_CONF"] = ";".join(args.flink_conf)
    return env


@contextmanager
def feature_job(
    settings: Settings, log: Path, runtime: dict[str, str], *args: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m jobs.feature_job ARGS`` in its own session; the whole process group is killed at the end.

    With ``FLINK_CONF`` in ``runtime`` (KEY=VALUE options, ";"-separated) it runs under ``bench.stream_whatif``.
    """
    extra = [o for o in runtime.get("FLINK_CONF", "").split(";") if o]
    module = ["bench.stream_whatif", *extra, "--"] if extra else ["jobs.feature_job"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", *module, *args],
            cwd=REPO,
            env=job_env(settings, runtime),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # client, mini-cluster JVM and Python workers
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)


def log_tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def offline_table_exists(settings: Settings) -> bool:
    """True once the job's writer has opened (it creates the Iceberg table in ``open``)."""
    from sinks.iceberg.layout import TABLE

    path = settings.iceberg_catalog_uri.removeprefix("sqlite:///")
    if not Path(path).exists():
        return False
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            row = db.execute(
                "SELECT 1 FROM iceberg_tables WHERE table_namespace = ? AND table_name = ?",
                (settings.iceberg_namespace, TABLE),
            ).fetchone()
        return row is not None
    except sqlite3.Error:
        return False


# ---- CPU accounting from /proc ---------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _service_pid(name: str) -> int | None:
    from infra.settings import StackSettings

    try:
        pid = int((StackSettings.from_env().service_dir(name) / "pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _stat(pid) is not None else None


def cpu_sample(job_pid: int | None) -> dict[str, float]:
    """CPU seconds so far: the job's session by role, Kafka, Cassandra, and the machine (busy, all).

    A Python worker that has ended (a bounded run's writer subtask that finished first) still counts: its CPU is
    in its reaped parents' children's time (``cutime``/``cstime``): the shells that start the workers, and the JVM,
    whose only children are those shells. Without that, a worker gone between two samples took its CPU from the
    sum (at parallelism 2 the workers showed 1-2 µs per event)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    if job_pid is not None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            fields = _stat(int(entry.name))
            if fields is None or int(fields[3]) != job_pid:  # fields[3]: session id
                continue
            cmd = _cmdline(int(entry.name))
            exe = cmd.split(" ", 1)[0]
            reaped = (int(fields[13]) + int(fields[14])) / tick  # children waited for: cutime + cstime
            if "java" in exe:
                role = "job JVM"
                out["job Python workers"] = out.get("job Python workers", 0.0) + reaped
            elif int(entry.name) == job_pid:
                role = "job Python client"
            elif "python" in exe:
                role = "job Python workers"
            else:  # the shell and tee that start a Python worker: the worker's CPU once it has ended
                out["job Python workers"] = out.get("job Python workers", 0.0) + reaped
                continue
            out[role] = out.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    for name in ("kafka", "cassandra"):
        pid = _service_pid(name)
        fields = _stat(pid) if pid is not None else None
        if fields is not None:
            out[name] = (int(fields[11]) + int(fields[12])) / tick
    out["bench (this process)"] = sum(os.times()[:2])
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in cpu]
    out["machine: all"] = sum(values[:8]) / tick
    out["machine: busy"] = (sum(values[:8]) - values[3] - values[4]) / tick
    return out


def cpu_report(before: dict[str, float], after: dict[str, float], seconds: float, events: int = 0) -> str:
    """Cores used by each part over ``seconds``, and CPU microseconds per event if ``events``."""
    if seconds <= 0:
        return ""
    spent = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    cores = spent.pop("machine: all", 0.0) / seconds
    busy = spent.pop("machine: busy", 0.0) / seconds
    parts = [f"{k} {v / seconds:.2f}" for k, v in sorted(spent.items(), key=lambda kv: -kv[1]) if v / seconds >= 0.005]
    out = f"cores used: {', '.join(parts)}; whole machine {busy:.2f} of {cores:.1f} busy"
    if events:
        job = {k: v for k, v in spent.items() if k.startswith("job")}
        per = ", ".join(f"{k.removeprefix('job ')} {v / events * 1e6:.0f}" for k, v in job.items())
        cass = spent.get("cassandra", 0.0) / events * 1e6
        out += (
            f"\n  CPU per event (us): job {sum(job.values()) / events * 1e6:.0f} ({per}), cassandra {cass:.0f}, "
            f"kafka {spent.get('kafka', 0.0) / events * 1e6:.0f}"
        )
    return out


# ---- the online store's progress row ---------------------------------------------------------------------------


class ProgressPoller:
    """Reads ``stream_progress`` of one stream: (closed through = min over writers, its updated_at), ms."""

    def __init__(self, settings: Settings, stream: str) -> None:
        from sinks.cassandra.layout import LAST_KNOWN_WRITER, PROGRESS_TABLE
        from sinks.factory import connect_cassandra

        self._cluster, self._session = connect_cassandra(settings)  # creates the keyspace the job will write
        self._select = self._session.prepare(
            f"SELECT writer, closed_through, updated_at FROM {settings.cassandra_keyspace}.{PROGRESS_TABLE} "
            "WHERE stream = ?"
        )
        self._stream = stream
        self._last_known = LAST_KNOWN_WRITER

    def read(self) -> tuple[int, int] | None:
        rows = [
            r for r in self._session.execute(self._select, (self._stream,), timeout=5) if r.writer != self._last_known
        ]
        if not rows:
            return None
        laggard = min(rows, key=lambda r: r.closed_through)
        return _ms(laggard.closed_through), _ms(laggard.updated_at)

    def online_vectors(self, keyspace: str, entity_type: str) -> dict[str, Any]:
        """Every stored entity's vector, ``entity_id -> {(name, version): (value, window end ms)}`` as serving reads
        it (``sinks.cassandra.reader.scan_vectors``: of several cells of a feature, the newest); an entity of another
        type keyed ``<type>:<id>``."""
        from sinks.cassandra.reader import scan_vectors

        return {
            entity_id if kind == entity_type else f"{kind}:{entity_id}": vector
            for kind, entity_id, vector in scan_vectors(self._session, keyspace)
        }

    def close(self) -> None:
        self._cluster.shutdown()


# ---- phase 1: throughput ---------------------------------------------------------------------------------------
