"""Stream benchmark: Kafka -> the feature job (``python -m jobs.feature_job``) -> Cassandra + Iceberg.

    python -m bench.stream                      # both phases (what `make bench-stream` runs)
    python -m bench.stream --only throughput    # or --only latency; --help for the sizes

Needs the running stack (`make up`: Kafka, Cassandra, schema registry). Each phase has its own
topic, keyspace, Iceberg SQL catalog (SQLite, in a temporary folder) and definitions DB, so the
demo's data is never touched; keyspaces and topics are dropped at the end, even on error.

1. **Throughput.** The real sliding feature group of ``registry/features/user_transactions.toml``
   (count + sum, 1 h windows sliding by 5 min; only topic and TTL changed, the TTL so that no
   window of the replay is too old to be written online) over a pre-produced backlog of
   ``--events`` transactions by ``--users`` users (skewed: user rank r has weight 1/(r+1)), spread
   over ``--hours`` of event time that ended more than an hour ago. The job runs ``--bounded``
   (as backfills do: no checkpoints). The bench polls the online store's ``stream_progress`` row
   (the writer updates it after each flush, after the Iceberg commit, so a new value means both
   stores hold that flush). Events/s = events processed after the first flush / (last flush
   seen - first flush seen): JVM start, job deployment, Python worker start and the first 5 s
   batch are excluded and printed separately. Events processed at the first flush are counted
   as those with an event time up to its window end + the out-of-orderness bound (what the
   watermark had to pass). The run is then checked: Iceberg rows and online rows against what the
   generated events must give, and no dead letters.

2. **Latency.** The same aggregations with ``--live-size`` windows sliding by ``--live-slide``,
   on a job run the production way (unbounded, checkpointing every 10 s). Once the job is up, a
   separate producer process sends each of ``--live-rates`` events/s in turn, over ``--live-users``
   users, with event time = the wall clock. The
   bench polls ``stream_progress`` every ``--poll-ms``; for every window end that the row passes,
   it records when the bench saw it (all values of that flush are in Cassandra then) and the
   writer's ``updated_at`` (taken when the flush started writing to Cassandra, after the Iceberg
   commit). Latency is printed from the window end and from the window close = window end + the
   source's ``max_out_of_orderness`` (the earliest moment the watermark can pass the end). Closes
   during the first ``--live-warmup`` seconds of each rate are not counted; a rate the job cannot
   keep up with shows as growing latency, and the bench estimates the rate the job did process
   from how fast window closes advanced.

The job runs unchanged, by default with ``--python-workers process`` (a Python worker process per
task slot, as on a cluster; PyFlink's local default, ``loopback``, runs every subtask's Python in
the job's client process). ``--flink-conf KEY=VALUE`` adds a Flink option to the job's
configuration through ``bench.stream_whatif``, to measure a setting before changing the job.

CPU: while measuring, the CPU seconds of the job's processes (the client, the JVM running the
Flink mini-cluster, the Python workers), of Kafka and of Cassandra are read from /proc and shown
as cores used and as CPU microseconds per event; the machine has 2 cores and is shared, so the
load average is printed at the start of each phase.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench.stream_events import Encoder, Events, check_encoding, generate, send_backlog, topic_size, wire_header
from registry.settings import Settings

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
    """The FS_* environment that makes the job use these settings (as tests/conftest.py's settings_env)."""
    env = dict(os.environ)
    env.update(extra or {})
    env.update({
        "FS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "FS_SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        "FS_CASSANDRA_HOSTS": ",".join(settings.cassandra_hosts), "FS_CASSANDRA_PORT": str(settings.cassandra_port),
        "FS_CASSANDRA_KEYSPACE": settings.cassandra_keyspace, "FS_ICEBERG_CATALOG_URI": settings.iceberg_catalog_uri,
        "FS_ICEBERG_WAREHOUSE": settings.iceberg_warehouse, "FS_ICEBERG_NAMESPACE": settings.iceberg_namespace,
        "FS_DEFINITIONS_DIR": str(settings.definitions_dir), "FS_DEFINITIONS_DB": str(settings.definitions_db),
        "FS_FLINK_JARS_DIR": str(settings.flink_jars_dir), "PYTHONPATH": str(REPO),
    })  # fmt: skip
    return env


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise RuntimeError(f"{FEATURES_TOML.name}: expected {old!r} once; the bench's edit of it needs updating")
    return text.replace(old, new)


def register_definitions(settings: Settings, topic: str, *, ttl: str, size: str | None = None,
                         slide: str | None = None) -> list[Any]:  # fmt: skip
    """The real feature file with the bench's topic, TTL and (optionally) window; registered in the phase's DB."""
    from registry.catalog import load_folder
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
            [sys.executable, "-m", *module, *args], cwd=REPO, env=job_env(settings, runtime),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
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
    from sinks.offline_layout import TABLE

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
    """CPU seconds so far: the job's session by role, Kafka, Cassandra, and the machine (busy, all)."""
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
            if "java" in exe:
                role = "job JVM"
            elif int(entry.name) == job_pid:
                role = "job Python client"
            elif "python" in exe:
                role = "job Python workers"
            else:
                continue  # the shell and tee that start a Python worker
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
        out += (f"\n  CPU per event (us): job {sum(job.values()) / events * 1e6:.0f} ({per}), cassandra {cass:.0f}, "
                f"kafka {spent.get('kafka', 0.0) / events * 1e6:.0f}")  # fmt: skip
    return out


# ---- the online store's progress row ---------------------------------------------------------------------------


class ProgressPoller:
    """Reads ``stream_progress`` of one stream: (closed through = min over writers, its updated_at), ms."""

    def __init__(self, settings: Settings, stream: str) -> None:
        from sinks.factory import connect_cassandra
        from sinks.online_layout import PROGRESS_TABLE

        self._cluster, self._session = connect_cassandra(settings)  # creates the keyspace the job will write
        self._select = self._session.prepare(
            f"SELECT writer, closed_through, updated_at FROM {settings.cassandra_keyspace}.{PROGRESS_TABLE} "
            "WHERE stream = ?"
        )
        self._stream = stream

    def read(self) -> tuple[int, int] | None:
        rows = list(self._session.execute(self._select, (self._stream,), timeout=5))
        if not rows:
            return None
        laggard = min(rows, key=lambda r: r.closed_through)
        return _ms(laggard.closed_through), _ms(laggard.updated_at)

    def count_online(self, keyspace: str) -> int:
        from sinks.online_layout import TABLE

        row = self._session.execute(f"SELECT count(*) FROM {keyspace}.{TABLE}", timeout=120).one()
        return int(row[0])

    def close(self) -> None:
        self._cluster.shutdown()


# ---- phase 1: throughput ---------------------------------------------------------------------------------------


@dataclass
class Flush:
    seen_s: float  # monotonic, when the bench saw it
    closed_through_ms: int
    updated_at_ms: int


@dataclass
class ThroughputRun:
    launched_s: float
    opened_s: float | None = None
    flushes: list[Flush] = field(default_factory=list)
    exited_s: float | None = None
    returncode: int | None = None
    cpu: tuple[dict[str, float], dict[str, float]] | None = None


def expected_offline_rows(events: Events, *, size_ms: int, slide_ms: int, features: int, until_ms: int) -> int:
    """(entity, window) pairs with at least one event, windows ending by ``until_ms``, times features."""
    k = events.times // slide_ms
    pairs = np.unique(events.users.astype(np.int64) * (1 << 40) + k)
    per = size_ms // slide_ms
    expanded = np.unique((pairs[:, None] + np.arange(1, per + 1)[None, :]).ravel())
    ends = (expanded % (1 << 40)) * slide_ms
    return int((ends <= until_ms).sum()) * features


def offline_rows(settings: Settings) -> int:
    from sinks.factory import connect_iceberg
    from sinks.offline_layout import TABLE

    table = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}")
    snapshot = table.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return 0
    return int(snapshot.summary.get("total-records", "0"))


def run_throughput(args: argparse.Namespace, base: Settings, run_id: str, tmp: Path, cleanup: list[Any]) -> None:
    settings = isolated(base, run_id, "tput", tmp)
    topic = f"bench_{run_id}_tput"
    cleanup.append((settings, topic))
    definitions = register_definitions(settings, topic, ttl="7d")
    d = definitions[0]
    size_ms, slide_ms = int(d.window.size.total_seconds() * SEC), int(d.window.slide.total_seconds() * SEC)
    ooo_ms = int(d.source.max_out_of_orderness.total_seconds() * SEC)
    ensure_topic(settings, topic, args.partitions)

    # Event time: --hours ending on a slide boundary more than one window before now, so every window
    # the events fall in has ended before the run (the writer drops windows that end in the future).
    end_ms = (now_ms() - size_ms - 10 * MIN) // slide_ms * slide_ms
    start_ms = end_ms - int(args.hours * HOUR)
    started = time.monotonic()
    events = generate(args.seed, events=args.events, users=args.users, start_ms=start_ms, span_ms=end_ms - start_ms)
    encoder = Encoder(wire_header(settings, topic), args.users, f"b{run_id}_")
    check_encoding(encoder, events)
    generated = time.monotonic()
    send_backlog(settings.kafka_bootstrap, topic, encoder, events)
    sent = time.monotonic()
    in_topic = topic_size(settings.kafka_bootstrap, topic)
    if in_topic != len(events):
        raise RuntimeError(f"topic {topic} holds {in_topic} records, {len(events)} were sent")
    print(f"backlog: {len(events):,} events, {args.users:,} users, event time {args.hours:g} h "
          f"({len(events) / (args.hours * 12):,.0f} events per 5 min), {args.partitions} partitions; "
          f"generated + encoded-check in {generated - started:.1f}s, produced in {sent - generated:.1f}s "
          f"({len(events) / (sent - generated):,.0f} events/s, acks=all, lz4), all {in_topic:,} in the topic",
          flush=True)  # fmt: skip
    print(f"feature group: {', '.join(x.name for x in definitions)} ({d.stream}; {size_ms // MIN} min windows "
          f"sliding by {slide_ms // MIN} min, max_out_of_orderness {ooo_ms} ms, ttl 7d); job: --bounded "
          f"--parallelism {args.parallelism}; load average before: {loadavg()}", flush=True)  # fmt: skip

    poller = ProgressPoller(settings, d.stream)
    log = tmp / "tput-job.log"
    run = ThroughputRun(launched_s=time.monotonic())
    cpu_first: dict[str, float] | None = None
    try:
        with feature_job(settings, log, args.runtime, "--bounded", "--parallelism", str(args.parallelism),
                         "--group-id", f"bench-{run_id}-tput") as proc:  # fmt: skip
            deadline = run.launched_s + args.timeout
            last: tuple[int, int] | None = None
            while True:
                now = time.monotonic()
                if now > deadline:
                    raise RuntimeError(f"the job did not finish within {args.timeout:.0f}s:\n{log_tail(log)}")
                done = proc.poll() is not None
                if run.opened_s is None and offline_table_exists(settings):
                    run.opened_s = now
                got = poller.read()
                if got is not None and got != last:
                    run.flushes.append(Flush(now, got[0], got[1]))
                    if cpu_first is None:
                        cpu_first = cpu_sample(proc.pid)
                    cpu_last = cpu_sample(proc.pid)
                    last = got
                if done:
                    run.exited_s, run.returncode = now, proc.returncode
                    break
                time.sleep(args.poll_ms / 1000)
        if run.returncode != 0:
            raise RuntimeError(f"the job exited with {run.returncode}:\n{log_tail(log)}")
        if len(run.flushes) < 2 or cpu_first is None:
            raise RuntimeError(f"saw {len(run.flushes)} flushes; cannot measure a rate:\n{log_tail(log)}")
        run.cpu = (cpu_first, cpu_last)
        report_throughput(settings, topic, poller, run, events, size_ms=size_ms, slide_ms=slide_ms, ooo_ms=ooo_ms,
                          features=len(definitions))  # fmt: skip
    finally:
        poller.close()


def report_throughput(settings: Settings, topic: str, poller: ProgressPoller, run: ThroughputRun,
                      events: Events, *, size_ms: int, slide_ms: int, ooo_ms: int, features: int) -> None:  # fmt: skip
    first, last = run.flushes[0], run.flushes[-1]
    n = len(events)

    def done_by(flush: Flush) -> int:  # events the watermark had to pass for this flush's windows to close
        return int(np.searchsorted(events.times, flush.closed_through_ms + ooo_ms, side="right"))

    counted = n - done_by(first)
    seconds = last.seen_s - first.seen_s
    assert run.exited_s is not None
    print(f"job: launch -> Python operators running (the writer makes its Iceberg table on its first bundle) "
          f"{(run.opened_s or first.seen_s) - run.launched_s:.1f}s; -> first flush seen "
          f"{first.seen_s - run.launched_s:.1f}s ({done_by(first):,} events done by then); last flush seen at "
          f"{last.seen_s - run.launched_s:.1f}s; process exit at {run.exited_s - run.launched_s:.1f}s; "
          f"{len(run.flushes)} flushes seen", flush=True)  # fmt: skip
    # steadiness: rate over consecutive ~10 s stretches of flushes
    stretches, mark = [], first
    for f in run.flushes[1:]:
        if f.seen_s - mark.seen_s >= 10 or f is last:
            stretches.append((done_by(f) - done_by(mark)) / (f.seen_s - mark.seen_s))
            mark = f
    print("  events/s per ~10 s stretch (from the windows closed): " + " ".join(f"{r / 1000:.1f}K" for r in stretches))
    assert run.cpu is not None
    print("  " + cpu_report(run.cpu[0], run.cpu[1], seconds, counted))
    offline = offline_rows(settings)
    until = max(f.closed_through_ms for f in run.flushes)
    expected = expected_offline_rows(events, size_ms=size_ms, slide_ms=slide_ms, features=features, until_ms=until)
    online = poller.count_online(settings.cassandra_keyspace)
    users = len(np.unique(events.users))
    dead = topic_size(settings.kafka_bootstrap, f"{topic}.dlq")
    ok = offline == expected and online == users * features and dead == 0
    print(f"  check: Iceberg rows {offline:,} (expected {expected:,}), online rows {online:,} (expected "
          f"{users * features:,}), dead letters {dead}: {'OK' if ok else 'MISMATCH'}")  # fmt: skip
    print(f"THROUGHPUT: {counted / seconds:,.0f} events/s sustained through Kafka -> job -> Iceberg + Cassandra "
          f"({counted:,} events in {seconds:.1f}s between the first and the last flush seen); "
          f"{n / (run.exited_s - run.launched_s):,.0f} events/s with start-up and exit "
          f"({run.exited_s - run.launched_s:.1f}s for all {n:,}); {offline / seconds:,.0f} offline rows/s",
          flush=True)  # fmt: skip


# ---- phase 2: latency ------------------------------------------------------------------------------------------


@dataclass
class Close:
    window_end_ms: int
    seen_ms: int  # wall clock when the bench saw the progress row pass this window end
    flush_started_ms: int  # the writer's updated_at of that flush


def percentile(values: list[float], q: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Segment:
    """One rate of the live phase: its producer, and the window closes it measured."""

    rate: int
    count_from_ms: int
    closes: list[Close] = field(default_factory=list)
    produced: dict[str, Any] = field(default_factory=dict)
    cpu: str = ""
    complete: bool = True


def _start_producer(settings: Settings, spec: dict[str, Any], spec_file: Path) -> subprocess.Popen[str]:
    spec_file.write_text(json.dumps(spec))
    return subprocess.Popen(
        [sys.executable, "-m", "bench.stream_events", "live", str(spec_file)], cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def _stop_producer(producer: subprocess.Popen[str], stop_file: Path) -> dict[str, Any]:
    stop_file.touch()
    try:
        out, err = producer.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(producer.pid, signal.SIGKILL)
        producer.wait(timeout=30)
        return {"error": "did not stop within 60 s"}
    lines = out.strip().splitlines()
    return dict(json.loads(lines[-1])) if lines else {"error": err[-2000:]}


def run_latency(args: argparse.Namespace, base: Settings, run_id: str, tmp: Path, cleanup: list[Any]) -> None:
    from registry.durations import parse_duration

    settings = isolated(base, run_id, "live", tmp)
    topic = f"bench_{run_id}_live"
    cleanup.append((settings, topic))
    definitions = register_definitions(settings, topic, ttl="1h", size=args.live_size, slide=args.live_slide)
    d = definitions[0]
    slide_ms = int(d.window.slide.total_seconds() * SEC)
    ooo_ms = int(d.source.max_out_of_orderness.total_seconds() * SEC)
    warmup_s = parse_duration(args.live_warmup).total_seconds()
    rates = [int(r) for r in args.live_rates.split(",")]
    ensure_topic(settings, topic, args.partitions)
    header = wire_header(settings, topic)
    poller = ProgressPoller(settings, d.stream)
    log = tmp / "live-job.log"
    print(f"feature group: {', '.join(x.name for x in definitions)} ({d.stream}), max_out_of_orderness "
          f"{ooo_ms} ms; job unbounded, checkpoints every 10 s; load: {' then '.join(f'{r:,}' for r in rates)} events/s over "
          f"{args.live_users:,} users, event time = now, each rate for {warmup_s:g}s of warm-up + "
          f"{args.live_closes} window closes; polling every {args.poll_ms} ms; load average before: {loadavg()}",
          flush=True)  # fmt: skip
    segments: list[Segment] = []
    producer: subprocess.Popen[str] | None = None
    try:
        with feature_job(settings, log, args.runtime, "--parallelism", str(args.parallelism),
                         "--group-id", f"bench-{run_id}-live", "--checkpoint-dir", str(tmp / "checkpoints"),
                         "--checkpoint-interval-ms", "10000") as job:  # fmt: skip
            launched = time.monotonic()
            # Running once it has completed a checkpoint (all tasks deployed); the Python operators
            # themselves start on their first bundle, so the warm-up covers their start.
            while not any((tmp / "checkpoints").glob("*/chk-*/_metadata")):
                if job.poll() is not None or time.monotonic() - launched > args.timeout:
                    raise RuntimeError(f"the live job did not start:\n{log_tail(log)}")
                time.sleep(0.2)
            print(f"job running (first checkpoint) {time.monotonic() - launched:.1f}s after launch", flush=True)
            last: int | None = None
            for n, rate in enumerate(rates):
                stop_file = tmp / f"live-{n}.stop"
                bound_s = warmup_s + args.live_closes * slide_ms / SEC + 60  # a job that falls behind stops here
                producer = _start_producer(settings, {
                    "bootstrap": settings.kafka_bootstrap, "topic": topic, "rate": rate, "seconds": bound_s + 60,
                    "users": args.live_users, "seed": args.seed + 1 + n, "header_hex": header.hex(),
                    "id_prefix": f"l{run_id}{n}_", "stop_file": str(stop_file), "linger_ms": 5,
                }, tmp / f"live-{n}.json")  # fmt: skip
                segment = Segment(rate, now_ms() + int(warmup_s * SEC))
                segments.append(segment)
                cpu_from: dict[str, float] | None = None
                cpu_from_s = 0.0
                deadline = time.monotonic() + bound_s
                while len(segment.closes) < args.live_closes:
                    if time.monotonic() > deadline:
                        segment.complete = False
                        break
                    if job.poll() is not None:
                        raise RuntimeError(f"the live job exited with {job.returncode}:\n{log_tail(log)}")
                    if producer.poll() is not None:
                        raise RuntimeError(f"the live producer stopped early: {producer.communicate()}")
                    got = poller.read()
                    seen = now_ms()
                    if got is not None and got[0] != last:
                        closed, started = got
                        for end in range(closed if last is None else last + slide_ms, closed + 1, slide_ms):
                            if end + ooo_ms >= segment.count_from_ms:  # every window end this flush passed
                                segment.closes.append(Close(end, seen, started))
                        last = closed
                        if segment.closes and cpu_from is None:
                            cpu_from, cpu_from_s = cpu_sample(job.pid), time.monotonic()
                    time.sleep(args.poll_ms / 1000)
                if cpu_from is not None:
                    segment.cpu = cpu_report(cpu_from, cpu_sample(job.pid), time.monotonic() - cpu_from_s)
                segment.produced = _stop_producer(producer, stop_file)
                producer = None
                report_latency(segment, ooo_ms, slide_ms)
    finally:
        if producer is not None and producer.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(producer.pid, signal.SIGKILL)
            producer.wait(timeout=30)
        poller.close()


def report_latency(segment: Segment, ooo_ms: int, slide_ms: int) -> None:
    produced, closes = segment.produced, segment.closes
    print(f"-- {segment.rate:,} events/s --")
    if "rate" in produced:
        print(f"  producer: {produced['sent']:,} events in {produced['seconds']:.1f}s = {produced['rate']:,.0f} "
              f"events/s (most behind its schedule: {produced['max_behind']:,} events; undelivered "
              f"{produced['undelivered']})")  # fmt: skip
    else:
        print(f"  producer: no report ({produced})")
    if segment.cpu:
        print("  " + segment.cpu)
    if not closes:
        print(f"LATENCY at {segment.rate:,} events/s: no window closed within the time allowed (the job is far "
              "behind this load)", flush=True)  # fmt: skip
        return
    from_close = [float(c.seen_ms - c.window_end_ms - ooo_ms) for c in closes]
    from_end = [float(c.seen_ms - c.window_end_ms) for c in closes]
    flush_start = [float(c.flush_started_ms - c.window_end_ms - ooo_ms) for c in closes]
    blocks = [from_close[i : i + 10] for i in range(0, len(from_close), 10)]
    growing = len(blocks) >= 2 and percentile(blocks[-1], 50) > 2 * percentile(blocks[0], 50) + slide_ms
    print("  p50 from close per 10 closes, in order: " + " ".join(f"{percentile(b, 50) / 1000:.2f}s" for b in blocks)
          + ("  <- growing: the job falls behind this load" if growing else ""))  # fmt: skip
    if len(closes) >= 2 and closes[-1].seen_ms > closes[0].seen_ms:
        advance = (closes[-1].window_end_ms - closes[0].window_end_ms) / (closes[-1].seen_ms - closes[0].seen_ms)
        print(f"  windows closed online {advance:.2f} s of event time per second (kept pace: ~1.00): the job "
              f"processed ~{advance * produced.get('rate', segment.rate):,.0f} events/s of this load")  # fmt: skip
    if not segment.complete:
        print(f"  only {len(closes)} window closes seen in the time allowed: the job is behind this load")

    def stats(values: list[float]) -> str:
        return (f"p50 {percentile(values, 50) / 1000:.3f}s  p90 {percentile(values, 90) / 1000:.3f}s  "
                f"p99 {percentile(values, 99) / 1000:.3f}s  max {max(values) / 1000:.3f}s")  # fmt: skip

    print(f"  writer's flush start (stream_progress.updated_at) from window close: {stats(flush_start)}")
    print(f"LATENCY at {segment.rate:,} events/s, window end -> online store ({len(closes)} closes, every "
          f"{slide_ms / 1000:g}s): {stats(from_end)}")  # fmt: skip
    print(f"LATENCY at {segment.rate:,} events/s, window close (end + {ooo_ms} ms) -> online store: "
          f"{stats(from_close)}", flush=True)  # fmt: skip


# ---- main ------------------------------------------------------------------------------------------------------


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stream", description=__doc__, formatter_class=_Help)
    parser.add_argument("--only", choices=["throughput", "latency"], help="one phase only; both when not given")
    parser.add_argument("--events", type=int, default=1_000_000, help="backlog size of the throughput phase")
    parser.add_argument("--users", type=int, default=10_000, help="users of the backlog")
    parser.add_argument("--hours", type=float, default=3.0, help="event time the backlog spans")
    parser.add_argument("--partitions", type=int, default=3, help="of the bench's topics")
    parser.add_argument("--parallelism", type=int, default=1, help="of the job, both phases")
    parser.add_argument(
        "--python-workers",
        choices=["loopback", "process"],
        default="process",
        help="PyFlink's Python worker mode (loopback: its local default, all Python in one process)",
    )
    parser.add_argument("--flink-conf", action="append", metavar="KEY=VALUE",
                        help="a Flink option added to the job's configuration, e.g. "
                        "python.fn-execution.bundle.time=100 (repeatable; a what-if run through "
                        "bench.stream_whatif: the job's code is unchanged)")  # fmt: skip
    parser.add_argument("--live-rates", default="2000,20000", help="events/s of the latency phase, in turn")
    parser.add_argument("--live-users", type=int, default=1000, help="users of the live load")
    parser.add_argument("--live-size", default="1m", help="window size of the latency phase")
    parser.add_argument("--live-slide", default="2s", help="window slide of the latency phase")
    parser.add_argument("--live-closes", type=int, default=50, help="window closes measured per rate")
    parser.add_argument("--live-warmup", default="20s", help="load at each rate before closes count")
    parser.add_argument("--poll-ms", type=int, default=25, help="how often stream_progress is read")
    parser.add_argument("--seed", type=int, default=7, help="of the generated events")
    parser.add_argument("--timeout", type=float, default=900, help="bound on each job run, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (job logs)")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the cleanup below runs
    base = Settings.from_env()
    run_id = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    cleanup: list[tuple[Settings, str]] = []
    started = time.monotonic()
    print(f"bench.stream {run_id}: load average at start {loadavg()} ({os.cpu_count()} cores, shared); "
          f"temporary folder {tmp}", flush=True)  # fmt: skip
    args.runtime = runtime_env(args)
    print(f"job: python -m jobs.feature_job, parallelism {args.parallelism}, Python workers: {args.python_workers}"
          + (f", Flink options: {'; '.join(args.flink_conf)}" if args.flink_conf else ""), flush=True)  # fmt: skip
    try:
        if args.only in (None, "throughput"):
            print("\n== throughput: a backlog through the job, bounded ==", flush=True)
            run_throughput(args, base, run_id, tmp, cleanup)
        if args.only in (None, "latency"):
            print("\n== latency: window close -> online store, live ==", flush=True)
            run_latency(args, base, run_id, tmp, cleanup)
    finally:
        for settings, topic in cleanup:
            with suppress(Exception):
                drop_keyspace(settings)
            with suppress(Exception):
                delete_topics(settings, [topic, f"{topic}.dlq"])
            delete_subject(settings, f"{topic}-value")
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"\ndropped the keyspaces, topics and schema subjects of {', '.join(t for _, t in cleanup)}; bench took "
              f"{time.monotonic() - started:.0f}s; load average at end {loadavg()}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
