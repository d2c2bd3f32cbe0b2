"""The feature API's settings (``serving.online.options``): defaults, both ends of every range in, one past
each end out, and a clear error naming the variable for anything else, before anything is connected."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from registry.core.errors import FeatureStoreError
from serving.online.options import ApiOptions
from sinks.cassandra.native_reader import NativeOnlineReader

RANGES = {
    "FS_REQUEST_BUDGET_MS": (1, 60_000),
    "FS_BATCH_BUDGET_MS": (1, 60_000),
    "FS_ONLINE_PARTITIONS_PER_READ": (1, 100),
    "FS_SPECULATIVE_EXECUTIONS": (1, 4),
    "FS_CACHE_TTL_MS": (0, 3_600_000),
    "FS_CACHE_MAX_ENTRIES": (1, 10_000_000),
    "FS_MAX_IN_FLIGHT": (1, 100_000),
    "FS_MAX_ENTITIES_IN_FLIGHT": (1, 1_000_000),
    "FS_GC_GEN0_THRESHOLD": (100, 10_000_000),
    "FS_GIL_SWITCH_INTERVAL_US": (1, 100_000),
}


def test_the_defaults() -> None:
    options = ApiOptions.from_env({})
    assert options == ApiOptions()
    assert (options.budget_ms, options.batch_budget_ms, options.speculative_delay_ms) == (100, 1000, 0)
    assert (options.driver, options.partitions_per_read, options.max_entities_in_flight) == ("native", 25, 400)
    assert (options.serving_log_sample, options.serving_log_topic) == (0.01, "fs_serving_log")
    with pytest.raises(FeatureStoreError, match="FS_SERVING_LOG_TOPIC"):
        ApiOptions.from_env({"FS_SERVING_LOG_TOPIC": ""})


@pytest.mark.parametrize("name", sorted(RANGES))
def test_each_integer_takes_both_ends_of_its_range_and_nothing_past_them(name: str) -> None:
    low, high = RANGES[name]
    for value in (low, high):
        ApiOptions.from_env({name: str(value)})
    for bad in (str(low - 1), str(high + 1), "2.5", "", "ten"):
        with pytest.raises(FeatureStoreError, match=name):
            ApiOptions.from_env({name: bad})


def test_speculative_delay_is_below_the_request_budget_and_needs_the_native_driver() -> None:
    assert ApiOptions.from_env({"FS_SPECULATIVE_DELAY_MS": "0"}).speculative_delay_ms == 0
    on = ApiOptions.from_env({"FS_REQUEST_BUDGET_MS": "6", "FS_SPECULATIVE_DELAY_MS": "5"})
    assert (on.budget_ms, on.speculative_delay_ms) == (6, 5)
    for bad in ("6", "-1", "x"):
        with pytest.raises(FeatureStoreError, match="FS_SPECULATIVE_DELAY_MS"):
            ApiOptions.from_env({"FS_REQUEST_BUDGET_MS": "6", "FS_SPECULATIVE_DELAY_MS": bad})
    with pytest.raises(FeatureStoreError, match="FS_ONLINE_DRIVER=native"):
        ApiOptions.from_env({"FS_ONLINE_DRIVER": "python", "FS_SPECULATIVE_DELAY_MS": "2"})
    assert ApiOptions.from_env({"FS_ONLINE_DRIVER": "python"}).driver == "python"
    with pytest.raises(FeatureStoreError, match="FS_ONLINE_DRIVER"):
        ApiOptions.from_env({"FS_ONLINE_DRIVER": "java"})


def test_the_reader_refuses_a_speculative_delay_at_or_past_its_budget() -> None:
    NativeOnlineReader(["h"], 9042, "ks", timeout_s=0.006, speculative_delay_ms=5, speculative_executions=4)
    with pytest.raises(ValueError, match="less than the budget"):
        NativeOnlineReader(["h"], 9042, "ks", timeout_s=0.006, speculative_delay_ms=6)
    with pytest.raises(ValueError, match="speculative_executions"):
        NativeOnlineReader(["h"], 9042, "ks", speculative_delay_ms=2, speculative_executions=5)


@pytest.mark.parametrize(
    "value",
    # the last two: exponents past Decimal's, taken as their floats (0.0)
    [
        *("0", "1", "0.5", "1.000000000000000000000", "-0", "0.00000000000000000001"),
        *("1e-9" + "9" * 20, "0e9" + "9" * 20),
    ],
)
def test_the_serving_log_sample_is_a_number_from_0_to_1(value: str) -> None:
    assert ApiOptions.from_env({"FS_SERVING_LOG_SAMPLE": value}).serving_log_sample == float(value)


# 1.00000000000000000001 and -0.00000000000000000001 as written: past the ends, though their floats are 1.0 and -0.0
@pytest.mark.parametrize(
    "value",
    [
        *("-0.01", "1.01", "nan", "inf", "", "some", "1.00000000000000000001"),
        *("-0.0000000000000000000001", "1e9" + "9" * 20),
    ],
)
def test_any_other_sample_is_refused(value: str) -> None:
    with pytest.raises(FeatureStoreError, match="FS_SERVING_LOG_SAMPLE"):
        ApiOptions.from_env({"FS_SERVING_LOG_SAMPLE": value})


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"FS_API_PORT": "http"}, "FS_API_PORT"),
        ({"FS_API_WORKERS": "0"}, "FS_API_WORKERS"),
        ({"FS_REQUEST_BUDGET_MS": "0"}, "FS_REQUEST_BUDGET_MS"),
        ({"FS_API_WORKERS": "2", "FS_CACHE_TTL_MS": "-1"}, "FS_CACHE_TTL_MS"),
    ],
)
def test_the_api_process_stops_at_once_naming_a_bad_setting(env: dict[str, str], named: str) -> None:
    """Checked before any store is reached (Cassandra is pointed at a closed port): exit status 1, the
    variable named, no traceback."""
    import os

    done = subprocess.run(
        [sys.executable, "-m", "serving.online"],
        env={**os.environ, "FS_CASSANDRA_HOSTS": "127.0.0.1", "FS_CASSANDRA_PORT": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert named in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("host", ["in_use", "256.1.1.1", "::1::"])
def test_the_api_process_that_cannot_listen_stops_at_once_in_one_line(host: str) -> None:
    """A port in use or a host that is no address was uvicorn's log line and exit status 3, after the stores were
    connected (found by a CLI fuzzer); now one error line, exit 1, before anything is connected (Cassandra is a closed
    port here)."""
    import os
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        shown = "127.0.0.1" if host == "in_use" else host
        done = subprocess.run(
            [sys.executable, "-m", "serving.online", "--host", shown, "--port", str(port)],
            env={**os.environ, "FS_CASSANDRA_HOSTS": "127.0.0.1", "FS_CASSANDRA_PORT": "1"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"error: cannot serve on '{shown}':{port}: "), done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_registry_the_api_cannot_make_is_one_line_with_one_worker_or_several(workers: str, tmp_path: Path) -> None:
    """A definitions database under a plain file was a FileExistsError traceback with one worker, and with two the
    workers failed at their start and were started again forever (audit: 21 restarts in 60 s); the parent now builds
    the app once before any worker starts."""
    import os

    a_file = tmp_path / "a-file"
    a_file.write_text("")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run(
        [sys.executable, "-m", "serving.online", "--port", str(port)],
        env={
            **os.environ,
            "FS_CASSANDRA_HOSTS": "127.0.0.1",
            "FS_CASSANDRA_PORT": "1",
            "FS_DEFINITIONS_DB": str(a_file / "defs.db"),
            "FS_API_WORKERS": workers,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"error: registry store {a_file}/defs.db unavailable: "), done.stderr
    assert "Traceback" not in done.stderr


def test_a_worker_that_cannot_start_stops_the_server_unless_its_store_is_only_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With several workers, a worker failing at its start was started again forever (any exit but uvicorn's start-up
    failure); and when that stopped the server, the API exited 0. A setting or the registry: the start-up failure
    status and a mark the parent turns into exit 1. The online store unavailable (an outage): exit 1, started again."""
    from uvicorn.config import STARTUP_FAILURE

    from registry.core.errors import SettingsError, StoreUnavailableError
    from registry.sqlite_store import RegistryStoreUnavailable
    from serving.online import __main__ as api

    mark = tmp_path / "start-failed"
    monkeypatch.setenv(api.START_FAILED, str(mark))
    for error, status, marked in (
        (SettingsError("FS_X must be ..."), STARTUP_FAILURE, True),
        (RegistryStoreUnavailable("registry store /x unavailable: ..."), STARTUP_FAILURE, True),
        (StoreUnavailableError("Cassandra at 127.0.0.1:9042 unavailable"), 1, False),
    ):
        mark.unlink(missing_ok=True)

        def build(*_: object, error: Exception = error, **__: object) -> None:
            raise error

        monkeypatch.setattr(api, "build", build)
        with pytest.raises(SystemExit) as ended:
            api.worker_app()
        assert (ended.value.code, mark.exists()) == (status, marked), error
