"""A bounded run that fails inside Flink ends with one line naming its cause (``jobs.failures.job_failure``),
not the JVM's trace: the schema registry gone during the run, an error of ours raised in the Python writer, or
else the innermost Java cause."""

from __future__ import annotations

from typing import Any

import pytest
from py4j.protocol import Py4JJavaError

from jobs.failures import job_failure
from registry.core.errors import FeatureStoreError, StoreUnavailableError
from registry.core.settings import Settings


class _Class:
    def __init__(self, name: str) -> None:
        self._name = name

    def getName(self) -> str:
        return self._name


class _Throwable:
    """A Java exception as py4j hands it over: class, message, cause."""

    _target_id = "o1"  # py4j's object id

    def __init__(self, name: str, message: str | None, cause: _Throwable | None = None) -> None:
        self._class, self._message, self._cause = _Class(name), message, cause

    def getClass(self) -> _Class:
        return self._class

    def getMessage(self) -> str | None:
        return self._message

    def getCause(self) -> _Throwable | None:
        return self._cause


def _failed(*chain: tuple[str, str | None]) -> Any:
    cause = None
    for name, message in reversed(chain):
        cause = _Throwable(name, message, cause)
    return Py4JJavaError("An error occurred while calling o47.execute.", cause)


JOB = ("org.apache.flink.runtime.client.JobExecutionException", "Job execution failed.")
SETTINGS = Settings(schema_registry_url="http://127.0.0.1:18081")


def test_a_registry_gone_during_the_run_is_named() -> None:
    error = job_failure(
        _failed(
            JOB,
            ("org.apache.flink.runtime.JobException", "Recovery is suppressed by NoRestartBackoffTimeStrategy"),
            ("java.io.IOException", "schema registry unreachable: java.net.ConnectException"),
            ("java.net.ConnectException", None),
        ),
        SETTINGS,
    )
    assert isinstance(error, StoreUnavailableError)
    assert str(error).startswith(
        "schema registry at http://127.0.0.1:18081 unavailable during the run: java.net.ConnectException; "
    )
    assert "\n" not in str(error)


def test_an_error_of_ours_in_the_python_writer_is_that_error() -> None:
    trace = (
        "Error received from SDK harness for instruction 4:\nTraceback (most recent call last):\n"
        '  File "sinks/dual.py", line 50, in write\n'
        "registry.core.errors.StoreUnavailableError: Cassandra at 127.0.0.1:9042 unavailable: timed out\n"
    )
    error = job_failure(_failed(JOB, ("java.lang.RuntimeException", trace)), SETTINGS)
    assert type(error) is StoreUnavailableError
    assert str(error).startswith("Cassandra at 127.0.0.1:9042 unavailable: timed out; the job stopped")


@pytest.mark.parametrize("inner", [None, "disk full\nat line 2"])
def test_anything_else_is_its_innermost_cause_in_one_line(inner: str | None) -> None:
    error = job_failure(_failed(JOB, ("java.io.IOException", "no space"), ("java.io.IOException", inner)), SETTINGS)
    assert type(error) is FeatureStoreError
    assert str(error) == (
        "the job failed: IOException: disk full" if inner else "the job failed: IOException: no space"
    )


def test_another_python_error_in_the_writer_is_named_by_its_traceback() -> None:
    trace = "Error received from SDK harness:\nTraceback (most recent call last):\n  File ...\nValueError: bad cell\n"
    error = job_failure(_failed(JOB, ("org.apache.beam.PythonException", trace)), SETTINGS)
    assert type(error) is FeatureStoreError
    assert str(error) == "the job failed: ValueError: bad cell"
