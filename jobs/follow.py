"""Follow the registry: activations reach the running computation without restarting what is computed already.

``python -m jobs.follow`` runs the stream job as a set of jobs, one per set of versions (design §3.8). The first
computes the versions active when the follower first starts, with their streams' progress (``--progress stream``).
Whenever the definition store changes and an active version is computed by none of its jobs (a version activated,
a feature added), the follower starts one more job for those versions alone, with a progress key of each version's
own (``--progress version``, ``sinks.cassandra.layout.version_stream``): it replays what the topics retain for
them (a consumer group of its own), and serving judges them by how far that job has written them, while the jobs
already running go on untouched, so the other features' online values neither go missing nor stale.

A version that stops being active is still computed by its job (its rows keep being written under its own
version number, which nothing serves). The jobs, their versions and consumer groups are kept in
``<state-dir>/plan.json``: a follower started again starts the same jobs, each restored from its latest retained
checkpoint (``<state-dir>/<job>/checkpoints``), and then adds what is missing. To compute everything in one job
again, stop the follower and start it on an empty state directory: the new first job computes every active
version with its stream (it releases their own progress keys), replaying the topics (design §3.8).

A job that ends stops the follower: the others are stopped, and it exits 1 naming the job, its last error line
and its log (``<state-dir>/<job>.log``). SIGTERM or SIGINT stops every job (their checkpoints are kept) and
exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from jobs.backfill import absolute, job_error
from registry.core.arguments import host, whole
from registry.core.errors import FeatureStoreError
from registry.core.settings import Settings, settings_for_command
from registry.definition_store import DefinitionStore

_REPO = Path(__file__).resolve().parent.parent
PLAN_FILE = "plan.json"
STOP_GRACE_S = 20.0
"""How long a job may take to end after SIGTERM before it is killed (its checkpoints are kept either way)."""


@dataclass(frozen=True)
class PlannedJob:
    """One job of the follower: a name, the versions it computes (``entity.name@v``), where its progress goes
    (``stream`` or ``version``) and its consumer group."""

    name: str
    versions: tuple[str, ...]
    progress: str
    group_id: str


def ref(entity: str, name: str, version: int) -> str:
    return f"{entity}.{name}@{version}"


def load_plan(state_dir: Path) -> list[PlannedJob]:
    """The jobs a follower ran from ``state_dir`` (none for a new one); FeatureStoreError for a plan it cannot read."""
    path = state_dir / PLAN_FILE
    if not path.exists():
        return []
    try:
        raw = json.loads(path.read_text())
        return [
            PlannedJob(j["name"], tuple(j["versions"]), j["progress"], j["group_id"])
            for j in raw["jobs"]
            if j["progress"] in ("stream", "version")
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise FeatureStoreError(f"{path} is not a follower's plan ({exc}): start on an empty --state-dir") from None


def save_plan(state_dir: Path, jobs: list[PlannedJob]) -> None:
    path = state_dir / PLAN_FILE
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps({"jobs": [asdict(j) for j in jobs]}, indent=2) + "\n")
    partial.replace(path)  # whole or not at all: a crash leaves the plan before or after


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The newest completed checkpoint under ``checkpoints`` (``<job id>/chk-N`` with its ``_metadata``)."""
    done = list(checkpoints.glob("*/chk-*/_metadata"))
    return max(done, key=lambda p: p.stat().st_mtime_ns).parent if done else None


def missing_versions(store: DefinitionStore, jobs: list[PlannedJob]) -> list[str]:
    """The active versions no job of ``jobs`` computes, in the catalog's order."""
    computed = {v for j in jobs for v in j.versions}
    return [r for r in (ref(d.entity, d.name, d.version) for d in store.catalog().active()) if r not in computed]


class Follower:
    """Runs the planned jobs as child processes and adds one whenever an active version has none."""

    def __init__(
        self,
        settings: Settings,
        state_dir: Path,
        *,
        group_id: str,
        parallelism: int,
        metrics_port: int,
        bind_host: str,
        out: TextIO = sys.stderr,
    ) -> None:
        self._settings = settings
        self._state_dir = state_dir
        self._group_id = group_id
        self._parallelism = parallelism
        self._metrics_port = metrics_port
        self._bind_host = bind_host
        self._out = out
        db = settings.definitions_db
        self._store = DefinitionStore.existing(db, name=f"FS_DEFINITIONS_DB={db}")
        self.jobs = load_plan(state_dir)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = threading.Event()

    def _say(self, text: str) -> None:
        print(f"[follow] {text}", file=self._out, flush=True)

    def _launch(self, job: PlannedJob) -> None:
        checkpoints = self._state_dir / job.name / "checkpoints"
        checkpoints.mkdir(parents=True, exist_ok=True)
        restore = latest_checkpoint(checkpoints)
        first = job is self.jobs[0]
        cmd = [
            sys.executable,
            "-m",
            "jobs.feature_job",
            "--versions",
            ",".join(job.versions),
            "--progress",
            job.progress,
            "--group-id",
            job.group_id,
            "--parallelism",
            str(self._parallelism),
            "--checkpoint-dir",
            str(checkpoints.resolve()),
            "--metrics-port",
            str(self._metrics_port if first else 0),
            "--bind-host",
            self._bind_host,
            *(["--restore-from", str(restore)] if restore is not None else []),
        ]
        log = (self._state_dir / f"{job.name}.log").open("ab")
        env = {**os.environ, **absolute(self._settings).to_env()}
        self.procs[job.name] = subprocess.Popen(
            cmd, cwd=_REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self._say(
            f"job {job.name} started (pid {self.procs[job.name].pid}, progress per {job.progress}"
            f"{', restored from ' + str(restore) if restore else ''}): {','.join(job.versions)}"
        )

    def _add(self, versions: list[str]) -> None:
        first = not self.jobs
        name = "base" if first else f"add-{len(self.jobs)}"
        job = PlannedJob(name, tuple(versions), "stream" if first else "version", f"{self._group_id}-{name}")
        if not first:  # serving judges them by their own progress from now on, before the job has written any
            self._hold_progress(versions)
        self.jobs.append(job)
        save_plan(self._state_dir, self.jobs)
        self._launch(job)

    def _hold_progress(self, versions: list[str]) -> None:
        from jobs.feature_job import resolve_refs
        from sinks.cassandra.writer import hold_version_progress
        from sinks.factory import connect_cassandra

        definitions = resolve_refs(self._store.catalog(), ",".join(versions))
        cluster, session = connect_cassandra(self._settings)
        try:
            hold_version_progress(session, self._settings.cassandra_keyspace, definitions)
        finally:
            cluster.shutdown()

    def _ended(self) -> tuple[str, int] | None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return name, proc.returncode
        return None

    def stop(self) -> None:
        """SIGTERM to every job's process group, SIGKILL to what is left after ``STOP_GRACE_S``."""
        for proc in self.procs.values():
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()

    def run(self, poll_s: float) -> int:
        """Until stopped (0) or a job ends (1)."""
        self._state_dir.mkdir(parents=True, exist_ok=True)
        try:
            for job in self.jobs:
                self._launch(job)
            seq: int | None = None
            while not self.stopping.is_set():
                ended = self._ended()
                if ended is not None:
                    name, code = ended
                    log = self._state_dir / f"{name}.log"
                    print(f"error: job {name} ended (exit {code}): {job_error(log)}; log {log}", file=sys.stderr)
                    return 1
                now = self._store.change_seq()
                if now != seq:
                    seq = now
                    missing = missing_versions(self._store, self.jobs)
                    if missing:
                        self._add(missing)
                self.stopping.wait(poll_s)
            return 0
        finally:
            self.stop()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.follow", description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", type=Path, default=Path(".state/follow"), help="the plan, logs, checkpoints")
    parser.add_argument("--group-id", default="featurestore-follow", help="prefix of the jobs' consumer groups")
    parser.add_argument("--parallelism", type=whole(1), default=1)
    parser.add_argument(
        "--poll-interval-s",
        type=float,
        default=1.0,
        help="how often the definition store is checked for a change (seconds, more than 0)",
    )
    parser.add_argument(
        "--metrics-port", type=whole(0, 65_535), default=9249, help="the first job's metrics endpoint (0: none)"
    )
    parser.add_argument("--bind-host", type=host, default="127.0.0.1")
    args = parser.parse_args(argv)
    if not args.poll_interval_s > 0 or args.poll_interval_s == float("inf"):
        parser.error(f"--poll-interval-s must be a number of seconds above 0, not {args.poll_interval_s}")
    settings = settings_for_command()
    try:
        follower = Follower(
            settings,
            args.state_dir.resolve(),
            group_id=args.group_id,
            parallelism=args.parallelism,
            metrics_port=args.metrics_port,
            bind_host=args.bind_host,
        )
    except FeatureStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: follower.stopping.set())
    try:
        return follower.run(args.poll_interval_s)
    except FeatureStoreError as exc:  # the store or the registry failed while adding a job: the others are stopped
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
