"""A local run's Flink scratch files go to a folder of its own, which the next run sweeps when it was killed.

Before: the gateway JVM wrote them to /tmp (``java.io.tmpdir``) and deleted them only at a clean JVM shutdown,
so every job whose process group was killed with SIGKILL left about 80 MB behind; one run of the suite left
gigabytes, and a machine's disk filled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import scratch

ROOT = Path(__file__).resolve().parents[2]

# Uses the table planner (which unpacks its jar into the JVM's temporary folder), says where its scratch folder
# is, and waits to be killed.
_KILLED_RUN = """
import sys, time
from jobs.scratch import use_run_scratch
run = use_run_scratch()
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment
t_env = StreamTableEnvironment.create(StreamExecutionEnvironment.get_execution_environment())
t_env.execute_sql("SELECT 1").collect().close()
print(run, flush=True)
time.sleep(600)
"""


def _ended_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_sweep_removes_the_folders_of_ended_processes_only(tmp_path: Path) -> None:
    ended = tmp_path / f"{_ended_pid()}-abc"
    running = tmp_path / f"{os.getpid()}-def"
    other = tmp_path / "notapid-ghi"
    for folder in (ended, running, other):
        (folder / "inside").mkdir(parents=True)
    (tmp_path / "123456789-file").write_text("a file, not a run's folder")

    assert scratch.sweep(tmp_path) == [ended]
    assert not ended.exists()
    assert running.is_dir() and other.is_dir() and (tmp_path / "123456789-file").is_file()
    assert scratch.sweep(tmp_path / "missing") == []


def test_use_run_scratch_passes_one_folder_to_the_jvm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(scratch, "_given", None)
    monkeypatch.setattr(scratch.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("JVM_ARGS", "-Xmx1g")
    stale = tmp_path / f"featurestore-flink-{os.getuid()}" / f"{_ended_pid()}-old"
    stale.mkdir(parents=True)

    run = scratch.use_run_scratch()

    assert run is not None and run.parent == stale.parent and run.name.startswith(f"{os.getpid()}-")
    assert os.environ["JVM_ARGS"] == f"-Xmx1g -Djava.io.tmpdir={run}"
    assert not stale.exists()  # swept
    assert scratch.use_run_scratch() == run  # one JVM per process: the same folder, the option not repeated
    assert os.environ["JVM_ARGS"] == f"-Xmx1g -Djava.io.tmpdir={run}"


def test_use_run_scratch_gives_none_where_the_path_holds_whitespace(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(scratch, "_given", None)
    monkeypatch.setattr(scratch.tempfile, "tempdir", str(tmp_path / "a b"))
    monkeypatch.delenv("JVM_ARGS", raising=False)
    assert scratch.use_run_scratch() is None
    assert "JVM_ARGS" not in os.environ


def test_a_killed_runs_scratch_files_stay_in_its_folder_and_the_next_run_sweeps_them(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("JVM_ARGS", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        run = Path(proc.stdout.readline().strip())
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group, the gateway JVM with it: no shutdown hook runs
        proc.wait(timeout=60)
    assert run.parent == tmp_path / f"featurestore-flink-{os.getuid()}"
    left = [p.name for p in run.iterdir()]
    assert any(name.startswith("flink-table-planner") for name in left), left  # the JVM wrote here, not /tmp

    assert scratch.sweep(run.parent) == [run]
    assert not run.exists()
