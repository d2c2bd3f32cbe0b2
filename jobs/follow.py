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
version with its stream (and writes the own progress keys its versions have), replaying the topics (design §3.8).

The first job ending ends the follower: the others are stopped, and it exits 1 naming the job, its last error line
and its log (``<state-dir>/<job>.log``). An added job that ends is dropped from the plan and reported; the others go
on, and its versions get a new job after the next change of the definitions. At most ``--max-jobs`` jobs run (default
8, the first included; each is a Flink JVM): versions activated past it get no job, said on stderr, and are tried
again at the next change. SIGTERM or SIGINT stops every job
(their checkpoints are kept) and exits 0. One follower per state directory; its jobs end with it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from jobs.backfill import job_error
from registry.core.arguments import ArgumentParser, folder, group_id, host, number, whole
from registry.core.durable import open_regular, read_text_file, replace_durably
from registry.core.errors import FeatureStoreError, StoreUnavailableError
from registry.core.refs import parse_ref
from registry.core.settings import Settings, absolute, settings_for_command, state_folder
from registry.core.shown import error_line, printed_line, shown
from registry.definition_store import DefinitionStore

_REPO = Path(__file__).resolve().parent.parent
PLAN_FILE = "plan.json"
STOP_GRACE_S = 20.0
DEFAULT_MAX_JOBS = 8  # jobs a follower runs at most (each a Flink JVM; --max-jobs)
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


def _planned_ref(text: str) -> bool:
    """``text`` is a version as a plan writes it: ``entity.name@N``, N within the registry's versions."""
    parsed = parse_ref(text, with_entity=True)
    return (
        parsed is not None
        and parsed.entity is not None
        and parsed.version is not None
        and (text == ref(parsed.entity, parsed.name, parsed.version))
    )


def load_plan(state_dir: Path) -> list[PlannedJob]:
    """The jobs a follower ran from ``state_dir`` (none for a new one); FeatureStoreError for a plan it cannot read."""
    return _read_plan(state_dir)[0]


def load_failed(state_dir: Path) -> list[str]:
    """The versions whose job had ended when the plan was last written (``save_plan``'s ``failed``): a follower
    restarted on ``state_dir`` retries them in a job of their own, apart from versions activated meanwhile."""
    return _read_plan(state_dir)[1]


def _read_plan(state_dir: Path) -> tuple[list[PlannedJob], list[str]]:
    path = state_dir / PLAN_FILE
    try:
        if not path.exists():
            return [], []
        text = read_text_file(path)  # a FIFO in its place is refused, not waited on
    except OSError as exc:  # a folder in its place, no permission, a name longer than the system takes
        raise FeatureStoreError(f"{shown(path)}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise FeatureStoreError(
            f"{shown(path)} is not a follower's plan ({exc}): start on an empty --state-dir"
        ) from None
    try:
        raw = json.loads(text)
        for j in raw["jobs"]:
            if not isinstance(j["name"], str):
                raise ValueError(f"job {j['name']!r}: a name must be base or add-<n>")
            if not isinstance(j["versions"], list) or not all(isinstance(v, str) for v in j["versions"]):
                raise ValueError(f"job {j.get('name')!r}: versions must be a list of entity.name@version")
        jobs = [PlannedJob(j["name"], tuple(j["versions"]), j["progress"], j["group_id"]) for j in raw["jobs"]]
        for i, j in enumerate(jobs):
            if j.progress not in ("stream", "version") or job_index(j.name) is None:
                raise ValueError(f"job {j.name!r} with progress {j.progress!r}")
            if (i == 0) != (j.name == "base") or (i == 0 and j.progress != "stream"):
                raise ValueError(f"job {j.name!r} at place {i + 1}: the first job, and only it, is base, per stream")
            if j.name != f"add-{job_index(j.name)}" and j.name != "base":  # add-01 beside add-1: one metrics port
                raise ValueError(f"job {j.name!r}: add-<n> with n written without leading zeros")
            if not isinstance(j.group_id, str) or not _group_name(j.group_id):
                raise ValueError(f"job {j.name!r}: group_id must be a consumer group's name")
            if not j.versions or not all(_planned_ref(v) for v in j.versions):
                raise ValueError(f"job {j.name!r}: versions must be entity.name@version, at least one")
        names = [j.name for j in jobs]
        versions = [v for j in jobs for v in j.versions]
        if len(set(names)) < len(names) or len(set(versions)) < len(versions):
            raise ValueError("a job named twice, or a version computed by two jobs")
        failed = raw.get("failed", [])  # absent in a plan written before it was kept
        if not isinstance(failed, list) or not all(isinstance(v, str) and _planned_ref(v) for v in failed):
            raise ValueError("failed must be a list of entity.name@version")
        if set(failed) & set(versions):
            raise ValueError("a version both computed by a job and failed")
        return jobs, failed
    except (ValueError, KeyError, TypeError, RecursionError) as exc:  # RecursionError: JSON nested too deeply
        raise FeatureStoreError(
            f"{shown(path)} is not a follower's plan ({exc}): start on an empty --state-dir"
        ) from None


def _group_name(raw: str) -> bool:
    """Whether ``raw`` is a consumer group's name as ``--group-id`` takes one (``registry.core.arguments.group_id``)."""
    try:
        group_id(raw)
    except argparse.ArgumentTypeError:
        return False
    return True


def save_plan(state_dir: Path, jobs: list[PlannedJob], failed: Iterable[str] = ()) -> None:
    """The plan, and ``failed``: versions whose job ended, kept across a restart (``load_failed``)."""
    path = state_dir / PLAN_FILE
    text = json.dumps({"jobs": [asdict(j) for j in jobs], "failed": sorted(set(failed))}, indent=2) + "\n"
    try:
        replace_durably(path, text.encode())  # whole or not at all: a crash leaves the plan before or after
    except OSError as exc:  # the state directory removed, the disk full: the follower ends with its error line
        raise FeatureStoreError(f"{shown(path)}: cannot write it ({exc.strerror or exc})") from None


def job_index(name: str) -> int | None:
    """A job's number from its name: 0 for ``base``, ``n`` >= 1 for ``add-<n>``, None for any other name
    (``add-0`` included: its metrics port would be base's)."""
    if name == "base":
        return 0
    digits = name.removeprefix("add-")
    number = int(digits) if name.startswith("add-") and digits.isascii() and digits.isdigit() else 0
    return number or None


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The newest completed checkpoint under ``checkpoints`` (``<job id>/chk-N`` with its ``_metadata``): the highest
    N. A job restored from ``chk-N`` numbers its checkpoints from N + 1, so the numbers grow across every run of a
    job; the files' times do not order them (a clock set back made a previous run's checkpoint look newer, and a
    restart went back to it). Equal numbers (none restored from the other) are told apart by time."""

    def number(metadata: Path) -> int:
        digits = metadata.parent.name.removeprefix("chk-")
        return int(digits) if digits.isascii() and digits.isdigit() else -1

    done = [p for p in checkpoints.glob("*/chk-*/_metadata") if number(p) >= 0]
    return max(done, key=lambda p: (number(p), p.stat().st_mtime_ns)).parent if done else None


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
        max_jobs: int = DEFAULT_MAX_JOBS,
    ) -> None:
        self._settings = settings
        self._max_jobs = max_jobs
        self._state_dir = state_dir
        self._group_id = group_id
        self._parallelism = parallelism
        self._metrics_port = metrics_port
        self._bind_host = bind_host
        self._out = out
        db = settings.definitions_db
        self._store = DefinitionStore.existing(db, name=f"FS_DEFINITIONS_DB={shown(db)}")
        self.jobs = load_plan(state_dir)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._log_start: dict[str, int] = {}  # where each job's run begins in its (appended) log
        # version -> the store's change sequence when its job ended (-1: retried apart at the next look); those of a run
        # before a restart too: kept apart from versions activated meanwhile, never started in one job with them
        self._failed: dict[str, int] = dict.fromkeys(load_failed(state_dir), -1)
        self.stop_requested = False  # set by a signal handler: a plain flag (an Event's lock is not reentrant)
        self._lock_fd: int | None = None
        self._said_error: str | None = None  # the poll loop's last error line, not said again while it repeats

    def _say(self, text: str) -> None:
        print(f"[follow] {printed_line(text)}", file=self._out, flush=True)

    def _say_error(self, text: str) -> None:
        """``text`` said unless it is the poll loop's last error line: an outage says it once, not every poll."""
        if text != self._said_error:
            self._say(text)
        self._said_error = text

    def _save(self) -> None:
        save_plan(self._state_dir, self.jobs, self._failed)

    def _ready(self, job: PlannedJob) -> None:
        """``job``'s checkpoint folder made and its log opened for appending, as ``_launch`` does, without starting
        it; FeatureStoreError naming the job and the path when either cannot be (a folder in the log's place)."""
        try:
            (self._state_dir / job.name / "checkpoints").mkdir(parents=True, exist_ok=True)
            open_regular(self._state_dir / f"{job.name}.log", "ab").close()
        except OSError as exc:
            raise FeatureStoreError(f"cannot start job {job.name}: {exc}") from None

    def _launch(self, job: PlannedJob) -> None:
        checkpoints = self._state_dir / job.name / "checkpoints"
        checkpoints.mkdir(parents=True, exist_ok=True)
        restore = latest_checkpoint(checkpoints)
        index = job_index(job.name) or 0
        port = self._metrics_port + index if self._metrics_port and self._metrics_port + index <= 65_535 else 0
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
            str(port),
            "--bind-host",
            self._bind_host,
            *(["--restore-from", str(restore)] if restore is not None else []),
        ]
        log_path = self._state_dir / f"{job.name}.log"
        with open_regular(log_path, "ab") as log:
            self._log_start[job.name] = log.tell()
            # The job's own Flink log (its restarts and their causes): pyflink's default folder is one file for
            # every local job of the machine, emptied whenever any of them starts.
            flink_log = (self._state_dir / job.name / "flink-log").resolve()
            flink_log.mkdir(exist_ok=True)
            env = {**os.environ, **absolute(self._settings).to_env(), "FLINK_LOG_DIR": str(flink_log)}
            self.procs[job.name] = subprocess.Popen(
                cmd,
                cwd=_REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its JVM and workers with it: stopped as one group
                preexec_fn=_end_with_parent,
                pass_fds=(self._lock_fd,) if self._lock_fd is not None else (),
            )
        self._say(
            f"job {job.name} started (pid {self.procs[job.name].pid}, progress per {job.progress}"
            f"{', metrics on :' + str(port) if port else ''}"
            f"{', restored from ' + str(restore) if restore else ''}): {','.join(job.versions)}"
        )

    def _next_name(self) -> str:
        """``base`` for the first job, then ``add-<n>`` with an ``n`` no job of this state directory had (a job
        dropped after it ended keeps its directory, checkpoints of other versions included)."""
        if not self.jobs:
            return "base"
        used = [
            job_index(name) or 0
            for name in [p.name for p in self._state_dir.glob("add-*")] + [j.name for j in self.jobs]
        ]
        return f"add-{max(used, default=0) + 1}"

    def _add(self, versions: list[str], *, retried: bool = False) -> None:
        """One more job for ``versions``; ``retried``: versions whose job ended, kept apart from others if refused."""
        if len(self.jobs) >= self._max_jobs:  # each job is a Flink JVM: registry writers must not fork without end
            if retried:  # the others had no job yet: tried again with the versions activated next, not with these
                self._failed.update(dict.fromkeys(versions, -1))
                self._save()
            self._say(
                f"error: {len(self.jobs)} jobs run already (--max-jobs {self._max_jobs}): no job for "
                f"{','.join(versions)}; they wait for the next change (restart with a larger --max-jobs, or start "
                "a fresh state directory to compute every active version in one job)"
            )
            return
        name = self._next_name()
        first = name == "base"
        # A consumer group no earlier plan used: a job started without state must replay the topics, not resume
        # from offsets an earlier job committed (its windows' state went with that job).
        group = f"{self._group_id}-{name}-{uuid.uuid4().hex[:8]}"
        job = PlannedJob(name, tuple(versions), "stream" if first else "version", group)
        if not first:  # serving judges them by their own progress from now on, before the job has written any
            self._hold_progress(versions)
        self.jobs.append(job)
        self._save()
        try:
            self._launch(job)
        except (OSError, subprocess.SubprocessError) as exc:  # fork refused (memory), a log it cannot open
            if first:
                raise FeatureStoreError(f"cannot start job {name}: {exc}") from None
            self.jobs.remove(job)
            self._failed.update(dict.fromkeys(versions, -1))
            self._save()
            self._say(
                f"error: cannot start job {name} ({exc}); its versions wait for the next change of the definitions: "
                f"{','.join(versions)}"
            )

    def _hold_progress(self, versions: list[str]) -> None:
        from jobs.feature_job import resolve_refs
        from sinks.cassandra.job_progress import hold_version_progress
        from sinks.factory import connect_cassandra

        definitions = resolve_refs(self._store.catalog(), ",".join(versions))
        cluster, session = connect_cassandra(self._settings)
        try:
            hold_version_progress(session, self._settings.cassandra_keyspace, definitions)
        finally:
            cluster.shutdown()

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

    def _ended(self, seq: int | None) -> int | None:
        """Looks at the jobs: 1 if the first one ended (the follower ends), else None. An added job that ended is
        dropped from the plan, and its versions wait for the next change of the definition store (``seq`` now)."""
        for name, proc in list(self.procs.items()):
            code = proc.poll()
            if code is None:
                continue
            log = self._state_dir / f"{name}.log"
            said = f"job {name} ended (exit {code}): {job_error(log, self._log_start.get(name, 0))}; log {log}"
            if name == self.jobs[0].name:
                print(error_line(said), file=sys.stderr, flush=True)
                return 1
            job = next(j for j in self.jobs if j.name == name)
            self.jobs.remove(job)
            _signal_group(proc, signal.SIGKILL)  # what its process left in its group (a JVM, workers) goes with it
            del self.procs[name]
            self._failed.update(dict.fromkeys(job.versions, -1 if seq is None else seq))
            self._save()
            self._say(
                f"error: {said}; its versions wait for the next change of the definitions: {','.join(job.versions)}"
            )
        return None

    def _pause(self, poll_s: float) -> None:
        """``poll_s`` seconds, or less once a stop is asked for: a signal handler only sets a flag, and a long
        ``--poll-interval-s`` (up to an hour) would otherwise keep SIGTERM waiting for the whole interval."""
        deadline = time.monotonic() + poll_s
        while not self.stop_requested and (left := deadline - time.monotonic()) > 0:
            if any(proc.poll() is not None for proc in self.procs.values()):
                return  # a job ended: seen now, not a whole interval later (the first one ends the follower)
            time.sleep(min(left, 0.1))

    def run(self, poll_s: float) -> int:
        """Until stopped (0) or the first job ends (1)."""
        try:
            self._state_dir.mkdir(parents=True, exist_ok=True)
            lock = open_regular(self._state_dir / "follow.lock", "w")
        except OSError as exc:  # a file in its place, no permission: one line, not a traceback
            raise FeatureStoreError(
                f"--state-dir {shown(self._state_dir)}: cannot use it ({exc.strerror or exc})"
            ) from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise FeatureStoreError(f"another follower runs on {shown(self._state_dir)}") from None
        # The jobs hold the lock too (its file description): after the follower is killed it stays held until its
        # last job has ended, so a follower restarted at once does not start the same jobs beside the old ones.
        self._lock_fd = lock.fileno()
        try:
            if len(self.jobs) > self._max_jobs:  # a plan made under a larger --max-jobs: none started, not all
                raise FeatureStoreError(
                    f"{shown(self._state_dir / PLAN_FILE)} plans {len(self.jobs)} jobs, more than --max-jobs "
                    f"{self._max_jobs}: give --max-jobs {len(self.jobs)} or more, or start on an empty --state-dir"
                )
            for job in self.jobs:  # each planned job's folder and log first: one that cannot be used starts none
                self._ready(job)
            for job in self.jobs:
                try:
                    self._launch(job)
                except (OSError, subprocess.SubprocessError) as exc:  # the fork refused: the others are stopped
                    raise FeatureStoreError(f"cannot start job {job.name}: {exc}") from None
            seq: int | None = None
            while not self.stop_requested:
                if self._ended(seq) is not None:
                    return 1
                try:
                    now = self._store.change_seq()
                    missing = missing_versions(self._store, self.jobs) if now != seq else []
                except (FeatureStoreError, sqlite3.Error) as exc:  # the registry's file unreadable: tried again
                    self._say_error(f"error: cannot read the definition store: {exc}")
                    self._pause(poll_s)
                    continue
                if now != seq:
                    waiting = {v for v, at in self._failed.items() if at == now}
                    retried = {v for v in self._failed if v not in waiting}
                    self._failed = {v: at for v, at in self._failed.items() if at == now}
                    missing = [v for v in missing if v not in waiting]
                    # Versions whose job ended before go in a job of their own: one that cannot start (its topic
                    # does not exist) never takes versions activated since down with it.
                    groups = [[v for v in missing if v not in retried], [v for v in missing if v in retried]]
                    try:
                        for versions, retry in zip(groups, (False, True), strict=True):
                            if versions:
                                self._add(versions, retried=retry)
                        seq = now
                    except StoreUnavailableError as exc:  # Cassandra down: the running jobs go on; tried again
                        self._failed.update(dict.fromkeys(retried - self._failed.keys(), -1))  # still apart then
                        self._say_error(f"error: cannot start a job for {','.join(missing)} yet: {exc}")
                if seq == now:  # caught up: an error line that comes again is said again
                    self._said_error = None
                self._pause(poll_s)
            return 0
        finally:
            self.stop()
            lock.close()


def _end_with_parent() -> None:
    """In the child before it runs: SIGTERM when the follower dies, however it dies (Linux ``PR_SET_PDEATHSIG``), so
    no job outlives it unwatched. The job's JVM ends with its Python process (PyFlink's gateway watches its stdin)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _check_no_plan_left_behind(default: Path) -> None:
    """FeatureStoreError if the default folder has no plan but ``.state/follow`` here (the default before it
    followed ``FS_STATE_DIR``) has one: a follower started on the new one would begin again, replaying every topic."""
    with contextlib.suppress(OSError, RuntimeError):
        before = Path(".state/follow").resolve()
        if before != default.resolve() and (before / "plan.json").is_file() and not (default / "plan.json").exists():
            raise FeatureStoreError(
                f"a follower's plan is in {shown(before)} (the default before it was <FS_STATE_DIR>/follow), not in "
                f"{shown(default)}: give --state-dir {shown(before)}, or move that folder there (or --state-dir "
                f"{shown(default)} to start anew)"
            )


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m jobs.follow", description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", type=folder, help="the plan, logs, checkpoints (default: <FS_STATE_DIR>/follow)")
    parser.add_argument(
        "--group-id", type=group_id, default="featurestore-follow", help="prefix of the jobs' consumer groups"
    )
    parser.add_argument("--parallelism", type=whole(1), default=1)
    parser.add_argument(
        "--poll-interval-s",
        type=number(0.01, 3_600.0),
        default=1.0,
        help="how often the definition store is checked for a change (seconds, from 0.01 to 3600)",
    )
    parser.add_argument(
        "--metrics-port",
        type=whole(0, 65_535),
        default=9249,
        help="the first job's metrics port; the job add-<n>'s is this plus n (0: none)",
    )
    parser.add_argument("--bind-host", type=host, default="127.0.0.1")
    parser.add_argument(
        "--max-jobs",
        type=whole(1, 1_000),
        default=DEFAULT_MAX_JOBS,
        help=f"jobs (each a Flink JVM) at most, the first included (default {DEFAULT_MAX_JOBS}, from 1 to 1000); "
        "versions activated past it wait, said on stderr",
    )
    args = parser.parse_args(argv)
    settings = settings_for_command()
    try:
        if args.state_dir is None:
            args.state_dir = state_folder() / "follow"  # where the stack's other data is, whatever the folder run in
            _check_no_plan_left_behind(args.state_dir)
        try:
            state_dir = args.state_dir.resolve()
        except (
            RuntimeError,
            OSError,
        ) as exc:  # a symlink loop (RuntimeError on Python 3.11): one line, not a traceback
            raise FeatureStoreError(f"--state-dir {shown(args.state_dir)}: cannot use it ({exc})") from None
        follower = Follower(
            settings,
            state_dir,
            group_id=args.group_id,
            parallelism=args.parallelism,
            metrics_port=args.metrics_port,
            bind_host=args.bind_host,
            max_jobs=args.max_jobs,
        )
    except FeatureStoreError as exc:
        print(error_line(exc), file=sys.stderr)
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: setattr(follower, "stop_requested", True))
    try:
        return follower.run(args.poll_interval_s)
    except FeatureStoreError as exc:  # the store or the registry failed while adding a job: the others are stopped
        print(error_line(exc), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
