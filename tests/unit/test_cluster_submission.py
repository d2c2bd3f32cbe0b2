"""Under ``flink run -m <jobmanager> --python jobs/feature_job.py`` the job keeps the jars the Flink CLI ships.

``flink run --python`` lists flink-python's jar (the Python operators' classes; a stock Flink distribution keeps
it in ``opt/``, not ``lib/``) in ``pipeline.jars``, and ``get_execution_environment(config)`` lays ``config`` over
that configuration: a ``pipeline.jars`` of the job's own would replace the list, and the cluster would refuse the
job (``ClassNotFoundException: ...ExternalPythonKeyedProcessOperator``). No JVM here: the environment is a fake
that merges as Flink's context environment does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import jobs.flink_environment as flink_environment
from registry.core.settings import Settings

FLINK_PYTHON = "file:/opt/flink/opt/flink-python-2.0.2.jar"


class _Configuration:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def set_string(self, key: str, value: str) -> None:
        self.values[key] = value


class _ContextEnvironment:
    """``flink run``'s context: its configuration (the CLI's ``pipeline.jars``) with the job's laid over it."""

    def __init__(self, config: _Configuration) -> None:
        self.values = {"pipeline.jars": FLINK_PYTHON, **config.values}

    @classmethod
    def get_execution_environment(cls, config: _Configuration) -> _ContextEnvironment:
        return cls(config)

    def add_jars(self, *jars: str) -> None:  # PyFlink's: appended to the list already there
        self.values["pipeline.jars"] = ";".join([self.values["pipeline.jars"], *jars])

    def set_parallelism(self, parallelism: int) -> None:
        self.values["parallelism.default"] = str(parallelism)


def _submitted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, python_mode: str, **options: Any) -> Any:
    """``create_environment`` as ``flink run`` runs it: the context environment it returns."""
    lib = tmp_path / "flink" / "lib"
    lib.mkdir(parents=True)
    for name in ("flink-sql-connector-kafka-4.0.1-2.0.jar", "flink-sql-avro-2.0.0.jar", "decode.jar", "batch.jar"):
        (lib / name).write_bytes(b"")
    settings = Settings.from_env().model_copy(update={"flink_jars_dir": lib})
    monkeypatch.setenv("PYFLINK_GATEWAY_PORT", "1")  # set by the Flink CLI for the program it runs
    monkeypatch.setattr(flink_environment, "Configuration", _Configuration)
    monkeypatch.setattr(flink_environment, "StreamExecutionEnvironment", _ContextEnvironment)
    monkeypatch.setattr(flink_environment, "decoder_jar", lambda s: lib / "decode.jar")
    monkeypatch.setattr(flink_environment, "batch_jar", lambda s: lib / "batch.jar")
    return flink_environment.create_environment(settings, python_mode=python_mode, metrics_port=9249, **options)


def test_flink_run_keeps_the_clis_jars_and_adds_the_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _submitted(tmp_path, monkeypatch, "process")

    jars = env.values["pipeline.jars"].split(";")
    assert jars[0] == FLINK_PYTHON, jars
    assert {Path(j.removeprefix("file://")).name for j in jars[1:]} == {
        "flink-sql-connector-kafka-4.0.1-2.0.jar",
        "flink-sql-avro-2.0.0.jar",
        "decode.jar",
        "batch.jar",
    }
    # the cluster's own configuration decides listeners and reporters
    assert not any(k.startswith(("metrics.reporter", "rest.", "taskmanager.", "jobmanager.")) for k in env.values)


def test_flink_run_in_thread_mode_gives_the_task_managers_interpreter_the_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thread mode (an unbounded run's default) under ``flink run``: the task managers' embedded interpreter,
    started from ``python.executable`` (this interpreter), gets this environment's packages and the project's
    on ``python.pythonpath`` as a local run's does; without them, on a venv, it fails at its first record with
    ``ModuleNotFoundError: No module named 'pemja'`` (it starts from the base installation's paths)."""
    import site

    import jobs

    env = _submitted(tmp_path, monkeypatch, "thread")
    paths = env.values["python.pythonpath"].split(os.pathsep)
    assert str(Path(jobs.__file__).resolve().parent.parent) in paths
    assert set(site.getsitepackages()) <= set(paths)


@pytest.mark.parametrize("bounded", [True, False])
def test_a_bounded_run_never_restarts_even_when_checkpointed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bounded: bool
) -> None:
    """Design §6: a bounded run does not restart; a failure ends it with one line. Given --checkpoint-interval-ms,
    it took the live job's restart strategy (never give up): with the schema registry down it ran on silently for as
    long as the outage lasted (146 s, then killed). A live job keeps restarting within about 2 s."""
    env = _submitted(tmp_path, monkeypatch, "process", checkpoint_interval_ms=1000, bounded=bounded)
    assert env.values["execution.checkpointing.interval"] == "1000 ms"
    assert env.values["restart-strategy.type"] == ("none" if bounded else "exponential-delay")
