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
        iceberg_catalog_uri="sqlite:////x.db",
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
        ("FS_CASSANDRA_HOSTS", ""),
        ("FS_CASSANDRA_HOSTS", "a,,b"),
        ("FS_SCHEMA_REGISTRY_URL", "notaurl"),
        ("FS_SCHEMA_REGISTRY_URL", "ftp://h:8081"),
        ("FS_SCHEMA_REGISTRY_URL", "http://"),
        ("FS_SCHEMA_REGISTRY_URL", "http://h:port"),
        ("FS_DEFINITIONS_DB", ""),
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


_PORT = ("FS_CASSANDRA_PORT", "cql", "error: FS_CASSANDRA_PORT must be a port number, not 'cql'")


@pytest.mark.parametrize(
    ("command", "setting"),
    [
        (["-m", "registry.cli", "validate"], _PORT),
        (
            [
                *("-m", "serving.offline.historical", "--labels", "x", "--out", "y", "--entity-type", "user"),
                *("--entity-column", "user_id", "--features", "a"),
            ],
            _PORT,
        ),
        (["-m", "jobs.produce", "--events", "1"], _PORT),
        (
            ["-m", "sinks.cassandra.migrate"],
            ("FS_CASSANDRA_HOSTS", "", "error: FS_CASSANDRA_HOSTS must be host names separated by commas, not ''"),
        ),
        (
            ["-m", "registry.cli", "gate", "m.toml"],
            (
                "FS_SCHEMA_REGISTRY_URL",
                "notaurl",
                "error: FS_SCHEMA_REGISTRY_URL must be an http:// or https:// URL with a host, not 'notaurl'",
            ),
        ),
        (
            [
                *("-m", "serving.offline.batch_scoring", "--entity-type", "user", "--features", "a"),
                *("--as-of", "1", "--out", "y"),
            ],
            (
                "FS_ICEBERG_CATALOG_URI",
                "bogus://x",
                "error: FS_ICEBERG_CATALOG_URI 'bogus://x' is not a database SQLAlchemy can open: "
                "Can't load plugin: sqlalchemy.dialects:bogus",
            ),
        ),
    ],
)
def test_a_command_with_a_malformed_setting_ends_with_one_line_naming_it(
    command: list[str], setting: tuple[str, str, str], tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    from registry.core.catalog import load_folder
    from registry.definition_store import DefinitionStore
    from registry.plan import apply

    # a registry of its own: the commands that read one name a missing one first (the checkout's .state holds one
    # only once `make up` or the demo has run, and this test ran before them on a fresh clone)
    apply(DefinitionStore(tmp_path / "definitions.db"), load_folder())
    name, value, message = setting
    done = subprocess.run(
        [sys.executable, *command],
        env={**os.environ, "FS_DEFINITIONS_DB": str(tmp_path / "definitions.db"), name: value},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == message


def test_migrate_with_cassandra_down_ends_with_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from registry.definition_store import DefinitionStore

    DefinitionStore(tmp_path / "d.db")
    done = subprocess.run(
        [sys.executable, "-m", "sinks.cassandra.migrate", "--definitions-db", str(tmp_path / "d.db")],
        env={**os.environ, "FS_CASSANDRA_HOSTS": "127.0.0.1", "FS_CASSANDRA_PORT": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: Cassandra at 127.0.0.1:1 unavailable") and done.stderr.count("\n") == 1


@pytest.mark.parametrize("table", ["iceberg_tables", "iceberg_namespace_properties"])
def test_a_database_whose_catalog_tables_are_another_programs_is_a_settings_error(tmp_path: Path, table: str) -> None:
    """A SQLite file holding a table of a catalog's name with other columns: the job and the backfill ended with
    a 60-130 line SQLAlchemy traceback at their first query (audit), where §6 promises one line."""
    import sqlite3

    from registry.core.errors import SettingsError

    database = tmp_path / "other.db"
    with sqlite3.connect(database) as db:
        db.execute(f"CREATE TABLE {table} (x INTEGER)")
    settings = Settings(iceberg_catalog_uri=f"sqlite:///{database}", iceberg_warehouse=(tmp_path / "w").as_uri())
    with pytest.raises(SettingsError, match=r"FS_ICEBERG_CATALOG_URI .* holds tables that are not an Iceberg SQL"):
        connect_iceberg(settings)


def test_relative_paths_are_made_absolute_where_they_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table created under a relative warehouse recorded relative locations in the catalog: a process started in
    another folder (a backfill's job, a service, a rebuild) then opened other files. A warehouse path is kept a plain
    path: as a file URI (``as_uri()``) a folder "a b" became "a%20b" to pyiceberg, which does not unescape it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FS_STATE_DIR", str(tmp_path / "s p"))
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", "w h")
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", "sqlite:///c.db")
    monkeypatch.setenv("FS_DEFINITIONS_DB", "d.db")
    settings = Settings.from_env()
    assert settings.iceberg_warehouse == str(tmp_path / "w h")
    assert settings.iceberg_catalog_uri == f"sqlite:///{tmp_path / 'c.db'}"
    assert settings.definitions_db == tmp_path / "d.db"
    monkeypatch.delenv("FS_ICEBERG_WAREHOUSE")
    assert Settings.from_env().iceberg_warehouse == str(tmp_path / "s p" / "iceberg" / "warehouse")


def test_an_in_memory_catalog_and_a_warehouse_with_a_hash_are_taken_as_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Made absolute, ``sqlite:///:memory:`` became a file ``<folder>/:memory:``; a plain warehouse path holding
    ``#`` was cut there (read as a URL) and a folder made at the cut."""
    from registry.core.settings import absolute

    monkeypatch.chdir(tmp_path)
    memory = Settings(iceberg_catalog_uri="sqlite:///:memory:")
    assert absolute(memory).iceberg_catalog_uri == "sqlite:///:memory:"
    warehouse = tmp_path / "a b#c" / "wh"
    settings = Settings(iceberg_catalog_uri=f"sqlite:///{tmp_path / 'c.db'}", iceberg_warehouse=str(warehouse))
    connect_iceberg(settings).create_namespace("ns")
    assert warehouse.is_dir() and not (tmp_path / "a b").exists()
