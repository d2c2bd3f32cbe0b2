"""Store clients built from settings."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from registry.core.settings import Settings
from sinks.factory import connect_iceberg


def test_writers_opening_a_new_catalog_together_all_succeed(tmp_path: Path) -> None:
    # The stream job opens one catalog per writer operator at once; on a fresh SQLite catalog they
    # race to create its tables.
    for round_ in range(5):
        settings = Settings(
            iceberg_catalog_uri=f"sqlite:///{tmp_path / f'catalog{round_}.db'}",
            iceberg_warehouse=(tmp_path / f"warehouse{round_}").as_uri(),
        )
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        def open_catalog(
            settings: Settings = settings, barrier: threading.Barrier = barrier, errors: list[BaseException] = errors
        ) -> None:
            barrier.wait()
            try:
                connect_iceberg(settings).list_namespaces()
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=open_catalog) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[0]


def test_settings_survive_the_trip_through_a_child_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    custom = Settings(
        kafka_bootstrap="k:1",
        schema_registry_url="http://r:2",
        cassandra_hosts=("a", "b"),
        cassandra_port=3,
        cassandra_keyspace="ks",
        iceberg_catalog_uri="sqlite:///x.db",
        iceberg_warehouse="file:///w",
        iceberg_namespace="ns",
        definitions_dir=Path("/d"),
        definitions_db=Path("/d/x.db"),
        flink_jars_dir=Path("/j"),
    )
    for key, value in custom.to_env().items():
        monkeypatch.setenv(key, value)
    assert Settings.from_env() == custom


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FS_CASSANDRA_PORT", "cql"),
        ("FS_CASSANDRA_PORT", "0"),
        ("FS_CASSANDRA_PORT", "65536"),
        ("FS_CASSANDRA_PORT", ""),
        ("FS_AUTH", "yes"),
        ("FS_KAFKA_PORT", "kafka"),
        ("FS_REGISTRY_PORT", "70000"),
    ],
)
def test_a_malformed_setting_is_a_settings_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    from registry.core.errors import SettingsError

    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        Settings.from_env()


@pytest.mark.parametrize("port", ["1", "65535"])
def test_both_ends_of_the_port_range_are_ports(monkeypatch: pytest.MonkeyPatch, port: str) -> None:
    monkeypatch.setenv("FS_CASSANDRA_PORT", port)
    assert Settings.from_env().cassandra_port == int(port)


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "registry.cli", "validate"],
        [
            *("-m", "serving.offline.historical", "--labels", "x", "--out", "y", "--entity-type", "user"),
            *("--entity-column", "user_id", "--features", "a"),
        ],
        ["-m", "jobs.produce", "--events", "1"],
    ],
)
def test_a_command_with_a_malformed_setting_ends_with_one_line_naming_it(command: list[str]) -> None:
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, *command],
        env={**os.environ, "FS_CASSANDRA_PORT": "cql"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == "error: FS_CASSANDRA_PORT must be a port number, not 'cql'"
