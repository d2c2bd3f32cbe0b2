"""The stream job's Flink environments: a local mini-cluster configured by us, or under ``flink run`` the cluster's.

``create_environment`` sets the job's jars (checked against the fetched manifest), its Python execution mode,
checkpoints and the restart strategy, and, run locally, binds every listener (REST, RPC, blob, data, the
Python worker pool, the Prometheus reporter) to one host. ``table_environment`` is the SQL side on top of it:
UTC, the dedup state's TTL and late firing on or explicitly off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from pyflink.common import Configuration
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from infra.artifacts import verify_manifest
from jobs.batching import batch_jar
from jobs.decoder import decoder_jar
from jobs.reporter import FACTORY as PROMETHEUS_REPORTER
from jobs.scratch import use_run_scratch
from registry.core.durations import to_millis
from registry.core.errors import FeatureStoreError
from registry.core.settings import Settings

# Where a local run's Flink listeners bind and what they advertise. On a cluster (`flink run -m ...`)
# the cluster's own configuration decides.
_BIND_KEYS = (
    "rest.bind-address",
    "rest.address",
    "jobmanager.bind-host",
    "jobmanager.rpc.address",
    "taskmanager.bind-host",
    "taskmanager.host",
)


def _put_prometheus_reporter_on_classpath(settings: Settings) -> None:
    """Put Flink's Prometheus reporter and ours (``jobs.reporter``: the same, bound to one host) on the
    mini-cluster's classpath: PyFlink's local mini-cluster finds metric reporters there only, not among
    the plugins PyFlink ships; the gateway JVM (started by the first PyFlink call) adds HADOOP_CLASSPATH."""
    import pyflink

    from jobs.java_build import flink_dist
    from jobs.reporter import reporter_jar

    plugin = sorted((Path(pyflink.__file__).parent / "plugins" / "metrics-prometheus").glob("*.jar"))
    if not plugin:
        raise FeatureStoreError("PyFlink's metrics-prometheus jar is missing; run with --metrics-port 0")
    ours = reporter_jar(settings.flink_jars_dir.parent / "reporter", [flink_dist(), plugin[0]])
    existing = os.environ.get("HADOOP_CLASSPATH")
    os.environ["HADOOP_CLASSPATH"] = os.pathsep.join([*([existing] if existing else []), str(plugin[0]), str(ours)])


def _loopback_worker_pool_on_localhost() -> None:
    """Bind PyFlink's loopback worker pool to the loopback addresses instead of every interface.

    Run locally, PyFlink serves a gRPC worker pool through which the mini-cluster (in this process's
    own JVM) starts Python workers; PyFlink 2.0 binds it to ``[::]:0``, hard-coded in
    ``pyflink.fn_execution.beam.beam_worker_pool_service``, and starts one per environment. This is
    that method with one change: ``localhost:0``, which gRPC binds on 127.0.0.1 and ::1 alike, so the
    ``localhost:<port>`` address it hands the mini-cluster still resolves.
    """
    import atexit
    import functools

    import grpc
    from apache_beam.portability.api import beam_fn_api_pb2_grpc
    from apache_beam.utils import thread_pool_executor
    from pyflink.fn_execution.beam.beam_worker_pool_service import BeamFnLoopbackWorkerPoolServicer

    def start(self: Any) -> str:
        if not self._worker_address:
            server = grpc.server(thread_pool_executor.shared_unbounded_instance())
            address = f"localhost:{server.add_insecure_port('localhost:0')}"
            beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(self, server)
            server.start()
            self._worker_address = address
            atexit.register(functools.partial(server.stop, 1))
        return str(self._worker_address)

    BeamFnLoopbackWorkerPoolServicer.start = start


RESTART_STRATEGY = {
    "restart-strategy.type": "exponential-delay",
    "restart-strategy.exponential-delay.initial-backoff": "500 ms",
    "restart-strategy.exponential-delay.max-backoff": "2 s",
    "restart-strategy.exponential-delay.backoff-multiplier": "2.0",
    "restart-strategy.exponential-delay.attempts-before-reset-backoff": "2147483647",
}


def checkpoint_options_problem(checkpoint_dir: Path | None, restore_from: str | None) -> str | None:
    """What is wrong with ``--checkpoint-dir`` or ``--restore-from`` on this machine's file system, or None.

    Flink finds out only once the job runs, after the stores were prepared and the mini-cluster started, and names
    neither option ("the job failed: FileAlreadyExistsException: <path>"). A folder is checked as far as it exists
    (a missing one is made by Flink); a checkpoint on another file system (``s3://``, ``hdfs://``) is left to Flink,
    and so is every path of a job submitted to a cluster (``flink run``: its paths are the cluster's). A checkpoint to
    restore is a retained ``…/chk-<n>`` folder holding ``_metadata``, or that ``_metadata`` file; a ``file:`` URI's
    path is taken as Flink takes it (not unescaped; ``#`` and ``?`` are part of it).
    """
    if "PYFLINK_GATEWAY_PORT" in os.environ:
        return None
    checks: list[tuple[str, object, Callable[[], str | None]]] = []
    if checkpoint_dir is not None:
        checks.append(("--checkpoint-dir", checkpoint_dir, partial(_folder_problem, checkpoint_dir)))
    if restore_from is not None:
        checks.append(("--restore-from", restore_from, partial(_checkpoint_problem, restore_from)))
    for option, value, check in checks:
        try:
            found = check()
        except OSError as exc:  # a folder on the way that cannot be searched (EACCES), a name too long
            found = f"cannot be read ({exc.strerror or exc})"
        if found is not None:
            return f"{option} {value}: {found}"
    return None


def _folder_problem(folder: Path) -> str | None:
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        return f"{existing} is not a folder"
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} cannot be written"
    return None


def _checkpoint_problem(location: str) -> str | None:
    if location[:5].lower() == "file:" and not location[5:].startswith("/"):
        return "a file: URI's path is absolute (file:///<path>)"  # Flink: "Relative path in absolute URI"
    path = _local_path(location)
    if path is None or (path / "_metadata").is_file() or (path.name == "_metadata" and path.is_file()):
        return None
    return "no checkpoint there (a retained <checkpoint dir>/<job id>/chk-<n> folder holding _metadata, or that _metadata file)"


def _local_path(location: str) -> Path | None:
    """The local file a checkpoint location names (a path, or a ``file:`` URI as Flink reads one), None for one on
    another file system."""
    scheme, colon, rest = location.partition(":")
    if not colon or "/" in scheme:  # no scheme: a path (relative or absolute)
        return Path(location)
    if scheme.lower() != "file":
        return None
    if rest.startswith("//"):  # file://<authority>/<path>
        slash = rest.find("/", 2)
        rest = "/" if slash < 0 else rest[slash:]
    return Path(rest)


def network_memory_mib(sources: int, parallelism: int) -> int:
    """The local mini-cluster's network memory for a job reading ``sources`` topics at ``parallelism``: Flink's local
    default (64 MiB) up to 32 of them, then 32 MiB more than one MiB per topic and subtask (a job of 100 topics
    started within the default, one of 200 did not)."""
    return max(_LOCAL_NETWORK_MIB, 32 + sources * parallelism)


_LOCAL_NETWORK_MIB = 64  # Flink's network memory for a local mini-cluster when none is configured


def create_environment(
    settings: Settings,
    *,
    parallelism: int = 1,
    checkpoint_dir: Path | None = None,
    checkpoint_interval_ms: int | None = None,
    restore_from: str | None = None,
    metrics_port: int | None = None,
    bind_host: str = "127.0.0.1",
    python_mode: str = "thread",
    bounded: bool = False,
    sources: int = 1,
) -> StreamExecutionEnvironment:
    """The job's execution environment: a local mini-cluster, or under ``flink run`` the cluster's.

    ``sources``: the topics the job reads. Each one's chain of exchanges (decode, dedup, windows, writer) takes
    network buffers of the mini-cluster's own; its default 64 MiB (2,048 buffers) failed a job of 200 topics at
    start ("Insufficient number of network buffers"), so it gets 32 MiB more than one MiB per topic and subtask,
    at least the default (``network_memory_mib``). On a cluster its configuration decides.

    ``bounded``: a run that ends (``--bounded``, ``--events``) never restarts, checkpointed or not: a failure ends it
    with its one line (``jobs.failures``). Flink restarts a checkpointed job without end by default (fixed delay),
    and ``RESTART_STRATEGY`` never gives up either: a bounded run given ``--checkpoint-interval-ms`` whose registry
    or store went down ran on silently for as long as the outage lasted.

    ``python_mode``: where the job's Python function (the writer) runs. ``thread`` runs it
    in the JVM through PemJa: no Python worker processes, no Beam gRPC servers (in process mode the JVM
    opens six, on every interface, once records reach a Python function), and no bundles between the
    window operator and the writer (close -> online p99 1.2 s at 2,000 events/s where process mode took
    3 s). ``process`` runs it in Beam Python worker processes; it took about a third less CPU per event on
    a backlog while every window result crossed into Python alone (PemJa converts every field), which is why
    bounded runs default to it (``jobs.feature_job.main``). Since results cross in batches (``jobs.batching``)
    the two modes measured alike (design §2.4).
    """
    jars = sorted(settings.flink_jars_dir.glob("*.jar"))
    if not jars:
        raise FeatureStoreError(
            f"no Flink connector jars in {settings.flink_jars_dir}; run `python -m infra fetch flink`"
        )
    # Under `flink run` the Flink CLI launched PyFlink's gateway (and set PYFLINK_GATEWAY_PORT): the job is
    # submitted to a cluster whose own configuration decides listeners and metric reporters. Run locally,
    # the mini-cluster is ours to configure.
    local = "PYFLINK_GATEWAY_PORT" not in os.environ
    metrics_port = metrics_port if local else None
    if local:  # the mini-cluster's scratch files in a folder of this run's, not left in /tmp if it is killed
        use_run_scratch()
    if metrics_port:
        _put_prometheus_reporter_on_classpath(settings)
    if python_mode not in ("process", "thread"):
        raise FeatureStoreError(f"the Python execution mode is process or thread, not {python_mode!r}")
    if local and bind_host in ("127.0.0.1", "localhost"):
        _loopback_worker_pool_on_localhost()
    config = Configuration()
    manifest = settings.flink_jars_dir.parent / "manifest.txt"
    if manifest.exists():  # fetched by infra: check the jars against their recorded SHA-256 first
        verify_manifest(settings.flink_jars_dir, manifest)
    # The job's own operators (jobs/java/decode, jobs/java/batch), each built once per edit.
    jars += [decoder_jar(settings), batch_jar(settings)]
    uris = [j.resolve().as_uri() for j in jars]
    if local:
        config.set_string("pipeline.jars", ";".join(uris))
    config.set_string("python.executable", sys.executable)
    config.set_string("python.client.executable", sys.executable)
    config.set_string("python.execution-mode", python_mode)
    if python_mode == "thread":
        # The JVM's embedded interpreter starts from the base installation's paths, not this environment's:
        # give it this environment's packages and the project's own. Under `flink run` too: the task managers
        # run python.executable (this interpreter's path), so they are assumed to have this layout.
        import site

        paths = [str(Path(__file__).resolve().parent.parent), *site.getsitepackages()]
        config.set_string("python.pythonpath", os.pathsep.join(paths))
    config.set_string("table.local-time-zone", "UTC")
    network_mib = network_memory_mib(sources, parallelism)
    if local and network_mib > _LOCAL_NETWORK_MIB:  # else Flink's own default, as it was
        config.set_string("taskmanager.memory.network.min", f"{network_mib}m")
        config.set_string("taskmanager.memory.network.max", f"{network_mib}m")
    for key in _BIND_KEYS if local else ():  # the mini-cluster's listeners (REST, RPC, blob, data) on one host
        config.set_string(key, bind_host)
    if checkpoint_dir is not None:
        # ``file://`` and the path as it is: Flink does not unescape a URI's path (``as_uri()`` made a folder with a
        # space ``sp%20ace``), and refuses a checkpoint folder without a scheme
        config.set_string("execution.checkpointing.dir", f"file://{checkpoint_dir.resolve()}")
        config.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    if checkpoint_interval_ms is not None:
        config.set_string("execution.checkpointing.interval", f"{checkpoint_interval_ms} ms")
    if bounded:
        config.set_string("restart-strategy.type", "none")
    elif checkpoint_interval_ms is not None:
        # A store that fails a flush fails the task; the job restarts from its last checkpoint. Retry every
        # 0.5 s, backing off to at most 2 s (Flink's default backs off to a minute), and never give up:
        # the job is running again within about 2 s of a store's return, whatever the outage's length.
        for key, value in RESTART_STRATEGY.items():
            config.set_string(key, value)
    if restore_from is not None:
        config.set_string("execution.state-recovery.path", restore_from)
    if metrics_port:
        # Flink's Prometheus reporter, bound to bind_host (jobs.reporter): the job's metrics, ours included,
        # at http://<host>:<port>/metrics.
        config.set_string("metrics.reporter.prom.factory.class", PROMETHEUS_REPORTER)
        config.set_string("metrics.reporter.prom.host", bind_host)
        config.set_string("metrics.reporter.prom.port", str(metrics_port))
    # Run locally this builds a mini-cluster; under `flink run -m <jobmanager> --python jobs/feature_job.py`
    # the same call returns the cluster's environment, so the job is submitted unchanged.
    env = StreamExecutionEnvironment.get_execution_environment(config)
    if not local:
        # `flink run --python` lists its own jars in pipeline.jars (flink-python's: the Python operators'
        # classes, which a stock cluster keeps in opt/, not lib/). A pipeline.jars in `config` would replace
        # that list and the cluster would refuse the job (ClassNotFoundException:
        # ExternalPythonKeyedProcessOperator); add_jars appends ours to it instead.
        env.add_jars(*uris)
    env.set_parallelism(parallelism)
    return env


def table_environment(env: StreamExecutionEnvironment, late_fire: timedelta | None) -> StreamTableEnvironment:
    t_env = StreamTableEnvironment.create(env)
    config = t_env.get_config()
    config.set("table.local-time-zone", "UTC")
    config.set("table.exec.state.ttl", "1 d")  # event-id dedup state; windows clean up by watermark
    if late_fire is not None:
        # Legacy group windows re-fire on every late event within the allowed lateness (-U/+U).
        config.set("table.exec.emit.late-fire.enabled", "true")
        config.set("table.exec.emit.late-fire.delay", "0 s")
        config.set("table.exec.emit.allow-lateness", f"{to_millis(late_fire)} ms")
    else:
        # Explicitly off: translating another table environment's query writes its configuration into the
        # shared execution environment, and one created after it would inherit late firing (Flink then
        # refuses a session window: "Session window doesn't support EMIT strategy currently").
        config.set("table.exec.emit.late-fire.enabled", "false")
        config.set("table.exec.emit.allow-lateness", "0 ms")
    return t_env
