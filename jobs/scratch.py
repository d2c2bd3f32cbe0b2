"""A local run's Flink scratch folder: one per process, removed when it ends, swept at the next start if killed.

Run locally, the mini-cluster lives in PyFlink's gateway JVM and writes its scratch files to the JVM's
``java.io.tmpdir`` (Flink's ``io.tmp.dirs`` defaults to it): the table planner's jar unpacked (43 MB), the
RPC system's jar (about 20 MB), the mini-cluster's blob and state folders, the Python dist cache. Flink
deletes them when its JVM shuts down, and only then: a job killed with SIGKILL (a stop that outlived its
grace, an out-of-memory kill, a crash test) left about 80 MB in /tmp for good, and a test run of the suite
left gigabytes.

``use_run_scratch`` points the gateway JVM at ``<tmp>/featurestore-flink-<uid>/<pid>-<random>/`` instead:
removed when this process exits normally, and, when it was killed, removed by the next local run, which
first sweeps the folders whose process no longer runs. Under ``flink run`` the cluster's configuration
decides and nothing here applies.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from infra.process import alive

JVM_ARGS = "JVM_ARGS"  # the extra JVM options PyFlink's gateway launcher passes to the local JVM
_given: Path | None = None  # this process's folder, once given


def scratch_root() -> Path:
    """Where every local run's scratch folder goes: per user, under the platform's temporary folder."""
    return Path(tempfile.gettempdir()) / f"featurestore-flink-{os.getuid()}"


def sweep(root: Path) -> list[Path]:
    """Remove the scratch folders in ``root`` whose process (the number before the first ``-``) has ended;
    folders of running processes, and names not of that form, are left. Returns the folders removed."""
    removed = []
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        pid = folder.name.partition("-")[0]
        if not folder.is_dir() or not pid.isdecimal() or alive(int(pid)):  # a zombie counts as ended
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def use_run_scratch() -> Path | None:
    """Give this process's gateway JVM (started by the first PyFlink call after this) a scratch folder of its
    own, after sweeping those of ended runs. Returns the folder, or None where it cannot be passed to the JVM
    (a temporary folder whose path holds whitespace: the launcher splits ``JVM_ARGS`` on it). A second call
    returns the first call's folder: the process has one gateway JVM."""
    global _given
    if _given is not None:
        return _given
    root = scratch_root()
    if any(c.isspace() for c in str(root)):
        return None
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    sweep(root)
    run = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
    atexit.register(shutil.rmtree, run, ignore_errors=True)
    existing = os.environ.get(JVM_ARGS, "").strip()
    os.environ[JVM_ARGS] = " ".join([*([existing] if existing else []), f"-Djava.io.tmpdir={run}"])
    _given = run
    return run
