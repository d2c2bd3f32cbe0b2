"""Settings are read strictly: a set variable is checked by its own name even when empty, whole numbers are
ASCII digits with an optional sign and decimals plain decimal numbers, and a value that cannot be used
ends a command with one ``error:`` line naming the variable, exit status 1, no traceback."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from infra.settings import StackSettings
from registry.core.errors import SettingsError, StoreUnavailableError
from registry.core.settings import Settings
from serving.online.options import ApiOptions
from sinks.factory import connect_iceberg

REPO = Path(__file__).resolve().parents[2]

# Spellings int() and float() take that are not plain ASCII numbers.
NOT_WHOLE = ["1_000", " 64 ", "64 ", "\t64", "64\n", "٦٤", "６４", "0x40", "6.4e1", "64.0", "", "+", "--64"]
NOT_DECIMAL = ["0.0_1", " 0.5", "0.5 ", "0.5\n", "٠.٥", "0_0.5", ".", "e1", "1e", "nan", "NaN", "inf", "-inf", ""]


def _command(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env={
            **os.environ,
            "FS_STATE_DIR": str(tmp_path / "state"),
            "FS_DEFINITIONS_DB": str(tmp_path / "definitions.db"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_error_line(done: subprocess.CompletedProcess[str], start: str) -> str:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), done.stderr
    return lines[0]


# --- 1. the schema registry's FS_REGISTRY_PORT ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "extra", "message"),
    [
        ("abc", ["--help"], "error: FS_REGISTRY_PORT must be a port number, not 'abc'"),
        ("8_081", ["--help"], "error: FS_REGISTRY_PORT must be a port number, not '8_081'"),
        ("70000", [], "error: FS_REGISTRY_PORT must be from 1 to 65535, not 70000"),
        ("0", ["--help"], "error: FS_REGISTRY_PORT must be from 1 to 65535, not 0"),  # --help: never serves
    ],
)
def test_the_schema_registry_refuses_a_malformed_registry_port_in_one_line(
    tmp_path: Path, raw: str, extra: list[str], message: str
) -> None:
    # FS_SCHEMA_REGISTRY_URL set: the clients do not use FS_REGISTRY_PORT, the server still does (--port's default).
    done = _command(
        ["-m", "registry.schema_registry", "--db", str(tmp_path / "schemas.db"), *extra],
        tmp_path,
        FS_REGISTRY_PORT=raw,
        FS_SCHEMA_REGISTRY_URL="http://127.0.0.1:1",
    )
    assert _one_error_line(done, "error: FS_REGISTRY_PORT") == message


def test_a_schema_registry_that_cannot_start_says_why_in_one_line(tmp_path: Path) -> None:
    """A port in use, a host that does not resolve, a --db that is a folder or not SQLite: each was a traceback."""
    import socket

    (tmp_path / "text.db").write_text("not a database")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        cases = [
            (["--port", port], f"error: cannot start the schema registry on '127.0.0.1':{port}: [Errno 98]"),
            (
                ["--port", "0", "--host", "nosuch.invalid"],
                "error: cannot start the schema registry on 'nosuch.invalid':0:",
            ),
            (["--port", "0", "--db", str(tmp_path)], "error: cannot start the schema registry on '127.0.0.1':0: --db:"),
            (
                ["--port", "0", "--db", str(tmp_path / "text.db")],
                "error: cannot start the schema registry on '127.0.0.1':0: --db: file is not a database",
            ),
        ]
        for argv, message in cases:
            db = [] if "--db" in argv else ["--db", str(tmp_path / "s.db")]  # --db once: a second is a usage error
            done = _command(["-m", "registry.schema_registry", *db, *argv], tmp_path)
            assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
            assert done.stderr.count("\n") == 1 and done.stderr.startswith(message), done.stderr


@pytest.mark.parametrize("access_db", ["text", "folder"])
def test_a_schema_registry_whose_access_db_is_no_database_says_so_in_one_line(tmp_path: Path, access_db: str) -> None:
    """FS_AUTH=on: an --access-db that is a folder or not SQLite was a sqlite3 traceback (found by a CLI fuzzer)."""
    (tmp_path / "text").write_text("not a database")
    target = tmp_path / access_db if access_db == "text" else tmp_path
    argv = ["-m", "registry.schema_registry", "--port", "0", "--db", str(tmp_path / "s.db"), "--access-db", str(target)]
    done = _command(argv, tmp_path, FS_AUTH="on")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    prefix = f"error: cannot start the schema registry on '127.0.0.1':0: --access-db {target}: "
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(prefix), done.stderr


def test_port_for_command_reads_a_port_or_ends_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from registry.core.settings import port_for_command

    monkeypatch.delenv("FS_REGISTRY_PORT", raising=False)
    assert port_for_command("FS_REGISTRY_PORT", 8081) == 8081
    for raw, port in (("1", 1), ("65535", 65535), ("+8082", 8082)):
        monkeypatch.setenv("FS_REGISTRY_PORT", raw)
        assert port_for_command("FS_REGISTRY_PORT", 8081) == port
    for raw in ("0", "65536", "-1", "", " 8081", "8_081"):
        monkeypatch.setenv("FS_REGISTRY_PORT", raw)
        with pytest.raises(SystemExit, match=r"^error: FS_REGISTRY_PORT "):
            port_for_command("FS_REGISTRY_PORT", 8081)


# --- 2. an Iceberg catalog or warehouse that cannot be used ------------------------------------------------


def _iceberg(tmp_path: Path, *, uri: str | None = None, warehouse: str | None = None) -> Settings:
    return Settings(
        iceberg_catalog_uri=uri or f"sqlite:///{tmp_path / 'catalog.db'}",
        iceberg_warehouse=warehouse or (tmp_path / "warehouse").as_uri(),
    )


def _refused(settings: Settings, name: str) -> str:
    with pytest.raises(SettingsError) as caught:
        connect_iceberg(settings)
    message = str(caught.value)
    assert message.startswith(f"{name} "), message
    assert "\n" not in message and "Background on this error" not in message, message
    return message


def test_a_catalog_whose_folder_cannot_be_created_names_the_catalog_uri(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    message = _refused(
        _iceberg(tmp_path, uri=f"sqlite:///{tmp_path / 'file' / 'sub' / 'c.db'}"), "FS_ICEBERG_CATALOG_URI"
    )
    assert "cannot create the folder" in message


def test_a_warehouse_that_cannot_be_created_names_the_warehouse(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    _refused(_iceberg(tmp_path, warehouse=(tmp_path / "file" / "sub").as_uri()), "FS_ICEBERG_WAREHOUSE")
    message = _refused(_iceberg(tmp_path, warehouse=(tmp_path / "file").as_uri()), "FS_ICEBERG_WAREHOUSE")
    assert "a file is in its place" in message


def test_a_warehouse_given_as_a_plain_path_is_checked_too(tmp_path: Path) -> None:
    """``FS_ICEBERG_WAREHOUSE=/path/under/a/file`` (no ``file://``, which pyiceberg reads as a local path) passed the
    check and ended the job's first table creation in a NotADirectoryError traceback."""
    (tmp_path / "file").write_text("x")
    message = _refused(_iceberg(tmp_path, warehouse=str(tmp_path / "file" / "wh")), "FS_ICEBERG_WAREHOUSE")
    assert "cannot create the folder" in message
    message = _refused(_iceberg(tmp_path, warehouse=str(tmp_path / "file")), "FS_ICEBERG_WAREHOUSE")
    assert "a file is in its place" in message
    connect_iceberg(_iceberg(tmp_path, warehouse=str(tmp_path / "plain")))
    assert (tmp_path / "plain").is_dir()


def test_a_catalog_that_is_a_folder_or_not_a_database_names_the_catalog_uri(tmp_path: Path) -> None:
    assert "names a folder" in _refused(_iceberg(tmp_path, uri=f"sqlite:///{tmp_path}"), "FS_ICEBERG_CATALOG_URI")
    (tmp_path / "text.db").write_text("not a database " * 100)
    message = _refused(_iceberg(tmp_path, uri=f"sqlite:///{tmp_path / 'text.db'}"), "FS_ICEBERG_CATALOG_URI")
    assert message.endswith("file is not a database"), message


def test_a_catalog_that_is_down_is_unavailable_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyiceberg.catalog.sql
    from sqlalchemy.exc import OperationalError

    def down(*_: object, **__: object) -> None:
        raise OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked"))

    monkeypatch.setattr(pyiceberg.catalog.sql, "SqlCatalog", down)
    with pytest.raises(StoreUnavailableError) as caught:
        connect_iceberg(_iceberg(tmp_path))
    assert "\n" not in str(caught.value) and "Background on this error" not in str(caught.value)
    assert str(caught.value).endswith("database is locked"), str(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FS_ICEBERG_CATALOG_URI", "sqlite:///{tmp}/file/sub/c.db"),
        ("FS_ICEBERG_CATALOG_URI", "sqlite:///{tmp}"),
        ("FS_ICEBERG_WAREHOUSE", "file://{tmp}/file/sub"),
    ],
)
def test_a_command_with_an_unusable_catalog_ends_with_one_line_naming_it(tmp_path: Path, name: str, value: str) -> None:
    from registry.definition_store import DefinitionStore

    (tmp_path / "file").write_text("x")
    DefinitionStore(tmp_path / "definitions.db")  # the registry there (checked first): the catalog is what fails
    done = _command(["-m", "serving.offline.retention", "--dry-run"], tmp_path, **{name: value.format(tmp=tmp_path)})
    _one_error_line(done, f"error: {name} ")


# --- 3. set but empty, and FS_HOST by its own name ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FS_SCHEMA_REGISTRY_URL", ""),
        ("FS_SCHEMA_REGISTRY_URL", "http://[::1"),
        ("FS_KAFKA_BOOTSTRAP", ""),
        ("FS_KAFKA_BOOTSTRAP", " "),
        ("FS_KAFKA_BOOTSTRAP", "a:9092,,b:9092"),
        ("FS_ICEBERG_CATALOG_URI", ""),
        ("FS_ICEBERG_WAREHOUSE", " "),
        ("FS_HOST", ""),
        ("FS_HOST", " "),
        ("FS_HOST", "a b"),
        ("FS_HOST", "h/x"),
        ("FS_HOST", "h:1"),
        ("FS_HOST", "a,b"),
        ("FS_HOST", "a\uff0fb"),  # a fullwidth solidus: "/" once NFKC-normalised
    ],
)
def test_a_set_variable_is_checked_by_its_own_name(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    for unset in ("FS_HOST", "FS_KAFKA_BOOTSTRAP", "FS_SCHEMA_REGISTRY_URL", "FS_CASSANDRA_HOSTS"):
        monkeypatch.delenv(unset, raising=False)
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env()
    assert str(caught.value).startswith(f"{name} "), str(caught.value)


def test_fs_host_is_where_the_clients_look_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for unset in ("FS_KAFKA_BOOTSTRAP", "FS_SCHEMA_REGISTRY_URL", "FS_CASSANDRA_HOSTS", "FS_KAFKA_PORT"):
        monkeypatch.delenv(unset, raising=False)
    monkeypatch.setenv("FS_HOST", "stack.internal")
    monkeypatch.setenv("FS_REGISTRY_PORT", "18081")
    settings = Settings.from_env()
    assert settings.kafka_bootstrap == "stack.internal:9092"
    assert settings.schema_registry_url == "http://stack.internal:18081"
    assert settings.cassandra_hosts == ("stack.internal",)
    monkeypatch.setenv("FS_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    monkeypatch.setenv("FS_SCHEMA_REGISTRY_URL", "https://registry.example")
    monkeypatch.setenv("FS_CASSANDRA_HOSTS", "c1,c2")
    settings = Settings.from_env()
    assert (settings.kafka_bootstrap, settings.schema_registry_url) == ("k1:9092,k2:9092", "https://registry.example")
    assert settings.cassandra_hosts == ("c1", "c2")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "FS_SCHEMA_REGISTRY_URL",
            "error: FS_SCHEMA_REGISTRY_URL must be an http:// or https:// URL with a host, not ''",
        ),
        ("FS_KAFKA_BOOTSTRAP", "error: FS_KAFKA_BOOTSTRAP must be host:port servers separated by commas, not ''"),
        ("FS_HOST", "error: FS_HOST must be one host name or IPv4 address, not ''"),
    ],
)
def test_a_command_with_an_empty_setting_ends_with_one_line_naming_it(tmp_path: Path, name: str, message: str) -> None:
    done = _command(["-m", "registry.cli", "validate"], tmp_path, **{name: ""})
    assert _one_error_line(done, f"error: {name} ") == message


@pytest.mark.parametrize("raw", ["", " ", "a b", "h/x", "h:1", "\udcff"])  # the last: the byte 0xff, not UTF-8
def test_the_stack_refuses_a_malformed_host(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("FS_HOST", raw)
    with pytest.raises(SystemExit, match="FS_HOST"):
        StackSettings.from_env()


# --- 4. whole and decimal numbers as plain ASCII ------------------------------------------------------------


@pytest.mark.parametrize("raw", NOT_WHOLE)
@pytest.mark.parametrize("name", ["FS_MAX_IN_FLIGHT", "FS_CACHE_TTL_MS", "FS_GC_GEN0_THRESHOLD"])
def test_an_api_integer_is_ascii_digits_only(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name} must be an integer, not "):
        ApiOptions.from_env({name: raw})


def test_an_api_integer_may_carry_a_sign_as_command_options_do() -> None:
    assert ApiOptions.from_env({"FS_MAX_IN_FLIGHT": "+64"}).max_in_flight == 64
    assert ApiOptions.from_env({"FS_MAX_IN_FLIGHT": "0064"}).max_in_flight == 64
    assert ApiOptions.from_env({"FS_CACHE_TTL_MS": "-0"}).cache_ttl_ms == 0


@pytest.mark.parametrize("raw", NOT_DECIMAL)
def test_the_serving_log_sample_is_a_plain_decimal(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"^FS_SERVING_LOG_SAMPLE "):
        ApiOptions.from_env({"FS_SERVING_LOG_SAMPLE": raw})


@pytest.mark.parametrize(("raw", "value"), [(".5", 0.5), ("1.", 1.0), ("5e-1", 0.5), ("1E0", 1.0), ("+0.25", 0.25)])
def test_plain_decimal_spellings_of_the_sample(raw: str, value: float) -> None:
    assert ApiOptions.from_env({"FS_SERVING_LOG_SAMPLE": raw}).serving_log_sample == value


@pytest.mark.parametrize("raw", NOT_WHOLE)
@pytest.mark.parametrize("name", ["FS_CASSANDRA_PORT", "FS_KAFKA_PORT", "FS_REGISTRY_PORT"])
def test_a_store_port_is_ascii_digits_only(monkeypatch: pytest.MonkeyPatch, name: str, raw: str) -> None:
    monkeypatch.setenv(name, raw)
    with pytest.raises(SettingsError, match=f"^{name} must be a port number, not "):
        Settings.from_env()


def test_a_store_port_may_carry_a_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FS_CASSANDRA_PORT", "+9042")
    assert Settings.from_env().cassandra_port == 9042


@pytest.mark.parametrize("raw", NOT_WHOLE)
def test_a_stack_port_is_ascii_digits_only(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("FS_CASSANDRA_STORAGE_PORT", raw)
    with pytest.raises(SystemExit, match=r"^error: FS_CASSANDRA_STORAGE_PORT=.* is not a port number$"):
        StackSettings.from_env()


@pytest.mark.parametrize("raw", ["1_0", " 5", "5 ", "٥", "0x10", "e3", ""])
def test_a_stack_duration_is_a_plain_decimal(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("FS_START_TIMEOUT_S", raw)
    with pytest.raises(SystemExit, match=r"^error: FS_START_TIMEOUT_S=.* is not a number of seconds$"):
        StackSettings.from_env()


def test_stack_numbers_in_plain_spellings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FS_CASSANDRA_STORAGE_PORT", "+7001")
    monkeypatch.setenv("FS_START_TIMEOUT_S", ".5")
    monkeypatch.setenv("FS_FETCH_TIMEOUT_S", "1e3")
    settings = StackSettings.from_env()
    assert (settings.cassandra_storage_port, settings.start_timeout_s, settings.fetch_timeout_s) == (7001, 0.5, 1000)


# --- 5. names and folders ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FS_CASSANDRA_KEYSPACE", ""),
        ("FS_CASSANDRA_KEYSPACE", "Feature_Store"),  # unquoted CQL folds it to lowercase: another name
        ("FS_CASSANDRA_KEYSPACE", "fs-test"),
        ("FS_CASSANDRA_KEYSPACE", "1fs"),
        ("FS_CASSANDRA_KEYSPACE", "_fs"),
        ("FS_CASSANDRA_KEYSPACE", "fs; DROP KEYSPACE x"),
        ("FS_CASSANDRA_KEYSPACE", "a" * 49),
        ("FS_CASSANDRA_KEYSPACE", "fs\n"),
        ("FS_CASSANDRA_KEYSPACE", "table"),  # a reserved word: CREATE KEYSPACE's syntax error, as a traceback
        ("FS_CASSANDRA_KEYSPACE", "keyspace"),
        ("FS_ICEBERG_NAMESPACE", ""),
        ("FS_ICEBERG_NAMESPACE", " "),
        ("FS_ICEBERG_NAMESPACE", "a..b"),
        ("FS_ICEBERG_NAMESPACE", ".a"),
        ("FS_ICEBERG_NAMESPACE", "a."),
        ("FS_ICEBERG_NAMESPACE", "a b"),
        ("FS_ICEBERG_NAMESPACE", "a#b"),  # the warehouse's URL lost "#b": every table's metadata in one file "a"
        ("FS_ICEBERG_NAMESPACE", "a?b"),
        ("FS_ICEBERG_NAMESPACE", "a\x01b"),
        ("FS_ICEBERG_NAMESPACE", "a\udcffb"),  # a byte that is not UTF-8, as Python reads it: was a traceback
        ("FS_ICEBERG_NAMESPACE", "fs." + "x" * 251),  # "<level>.db" past a file name's 255 bytes: OSError
        ("FS_ICEBERG_NAMESPACE", "é" * 126 + "x"),  # 253 bytes: one past the most
        ("FS_DEFINITIONS_DIR", ""),
        ("FS_STATE_DIR", ""),
        ("FS_CACHE_DIR", " "),
        ("FS_FLINK_JARS_DIR", ""),
    ],
)
def test_a_name_or_folder_setting_is_checked_by_its_own_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env()
    assert str(caught.value).startswith(f"{name} must be "), str(caught.value)


def test_the_reserved_words_refused_are_cassandras_own() -> None:
    """The list held is the one the Cassandra the stack runs reads (from its jar, fetched by ``make fetch``)."""
    import zipfile

    from infra.settings import StackSettings
    from registry.core.settings import CQL_RESERVED

    jars = sorted((StackSettings.from_env().cache_dir / "cassandra" / "lib").glob("cassandra-all-*.jar"))
    if not jars:
        pytest.skip("Cassandra's jar is not fetched (make fetch)")
    with zipfile.ZipFile(jars[-1]) as jar:
        words = jar.read("org/apache/cassandra/cql3/reserved_keywords.txt").decode().split()
    assert {w.lower() for w in words} == CQL_RESERVED


def test_keyspace_and_namespace_at_their_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FS_CASSANDRA_KEYSPACE", "a" + "b_9" * 15 + "cd")  # 48 characters: the most there is
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "team.fs_2")
    settings = Settings.from_env()
    assert len(settings.cassandra_keyspace) == 48
    assert settings.iceberg_namespace == "team.fs_2"
    # one folder "<namespace>.db" in the warehouse: 252 bytes in all, dots included, are the most (255 less ".db")
    at_most = "x" * 125 + ".é" + "y" * 124
    assert len(at_most.encode()) == 252
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", at_most)
    assert Settings.from_env().iceberg_namespace == at_most
    for past in (at_most + "z", "x" * 126 + "." + "y" * 126, "x" * 250 + ".é" + "y" * 248):
        monkeypatch.setenv("FS_ICEBERG_NAMESPACE", past)
        with pytest.raises(SettingsError, match="at most 252 bytes of UTF-8 in all"):
            Settings.from_env()


def test_a_command_with_an_empty_keyspace_ends_with_one_line_naming_it(tmp_path: Path) -> None:
    done = _command(["-m", "registry.cli", "validate"], tmp_path, FS_CASSANDRA_KEYSPACE="")
    assert _one_error_line(done, "error: FS_CASSANDRA_KEYSPACE ") == (
        "error: FS_CASSANDRA_KEYSPACE must be a lowercase letter then lowercase letters, digits or underscores"
        " (48 characters at most), not ''"
    )


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("FS_STATE_DIR", ""),
        ("FS_CACHE_DIR", " "),
        ("FS_KAFKA_HEAP", ""),
        ("FS_KAFKA_HEAP", "512 m"),
        ("FS_CASSANDRA_HEAP", "0G"),
        ("FS_CASSANDRA_HEAP", "1GB"),
        ("FS_CASSANDRA_HEAP", "-1G"),
        ("FS_CASSANDRA_SEEDS", "10.0.0.1"),
        ("FS_CASSANDRA_SEEDS", "10.0.0.1:7000,"),
        ("FS_CASSANDRA_SEEDS", "10.0.0.1:70000"),
        ("FS_CASSANDRA_SEEDS", "a b:7000"),
        ("FS_CASSANDRA_SEEDS", ""),  # set but empty: was the node its own seed, silently
    ],
)
def test_the_stack_refuses_an_unusable_folder_heap_or_seed_list(
    monkeypatch: pytest.MonkeyPatch, name: str, raw: str
) -> None:
    monkeypatch.setenv(name, raw)
    with pytest.raises(SystemExit, match=f"^error: {name}"):
        StackSettings.from_env()


def test_the_stack_takes_heaps_and_seeds_as_the_jvm_and_cassandra_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FS_KAFKA_HEAP", "768M")
    monkeypatch.setenv("FS_CASSANDRA_HEAP", "2g")
    monkeypatch.setenv("FS_CASSANDRA_SEEDS", "127.0.0.2:7000,node-b:7001")
    settings = StackSettings.from_env()
    assert (settings.kafka_heap, settings.cassandra_heap) == ("768M", "2g")
    assert settings.cassandra_seeds == "127.0.0.2:7000,node-b:7001"


# --- 4. server lists: the form README states ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FS_KAFKA_BOOTSTRAP", "localhost"),  # no port
        ("FS_KAFKA_BOOTSTRAP", "a b:1"),
        ("FS_KAFKA_BOOTSTRAP", "a:0"),
        ("FS_KAFKA_BOOTSTRAP", "a:65536"),
        ("FS_KAFKA_BOOTSTRAP", "a:port"),
        ("FS_KAFKA_BOOTSTRAP", "a:9092/x"),
        ("FS_KAFKA_BOOTSTRAP", "::1:9092"),  # an IPv6 host needs its brackets
        ("FS_CASSANDRA_HOSTS", "a b"),
        ("FS_CASSANDRA_HOSTS", "a:9042"),
        ("FS_CASSANDRA_HOSTS", "a,b/c"),
    ],
)
def test_a_malformed_server_list_is_refused_by_its_name(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env()
    assert str(caught.value).startswith(f"{name} "), str(caught.value)


@pytest.mark.parametrize(
    "value",
    ["a:1", "a:65535", "k1:9092, k2:9092", "PLAINTEXT://broker.internal:9092", "[::1]:9092", "10.0.0.1:9092"],
)
def test_kafka_bootstrap_takes_host_port_servers(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("FS_KAFKA_BOOTSTRAP", value)
    assert Settings.from_env().kafka_bootstrap == value


@pytest.mark.parametrize(("value", "hosts"), [("a, b", ("a", "b")), ("10.0.0.1", ("10.0.0.1",)), ("::1", ("::1",))])
def test_cassandra_hosts_take_host_names_and_addresses(
    monkeypatch: pytest.MonkeyPatch, value: str, hosts: tuple[str, ...]
) -> None:
    monkeypatch.setenv("FS_CASSANDRA_HOSTS", value)
    assert Settings.from_env().cassandra_hosts == hosts


@pytest.mark.parametrize(
    "url",
    [
        "HTTP://127.0.0.1:8081",
        "Http://h",
        "http://exa\nmple:1",
        "http://a b:1",
        " http://h",
        "http://h\n",
        "http://h:0",
    ],
)
def test_a_registry_url_the_clients_would_refuse_is_refused_at_start(url: str) -> None:
    """These passed (urlsplit lower-cases the scheme and tolerates white space), then the registry client raised
    `ValueError: Invalid url` or `httpx.InvalidURL` in a traceback, or the port 0 failed at connect."""
    from registry.core.errors import SettingsError
    from registry.core.settings import http_url

    with pytest.raises(SettingsError, match="FS_SCHEMA_REGISTRY_URL"):
        http_url("FS_SCHEMA_REGISTRY_URL", url)
    assert http_url("FS_SCHEMA_REGISTRY_URL", "https://[::1]:65535") == "https://[::1]:65535"


def test_a_bootstrap_prefix_is_one_of_kafkas_security_protocols() -> None:
    """Any `<letters>://` passed: `http://h:1` then failed every client (librdkafka: unsupported protocol "HTTP")."""
    from registry.core.errors import SettingsError
    from registry.core.settings import _servers

    for good in ("PLAINTEXT://h:1", "sasl_ssl://h:1,SSL://[::1]:9", "h:1"):
        assert _servers("FS_KAFKA_BOOTSTRAP", good) == good
    for bad in ("http://h:1", "x://h:1", "PLAIN://h:1"):
        with pytest.raises(SettingsError, match="FS_KAFKA_BOOTSTRAP"):
            _servers("FS_KAFKA_BOOTSTRAP", bad)


@pytest.mark.parametrize("raw", ["%", "_", "..", "a'b", "a;b", "!", "999.999.999.999", "1.2.3", "٣", "x" * 300, "-a"])
def test_a_host_is_an_ipv4_address_or_a_host_name(raw: str) -> None:
    """`--bind-host %` and FS_HOST=_ passed; the listener then failed, blamed on `--metrics-port`."""
    from registry.core.errors import SettingsError
    from registry.core.settings import check_host

    with pytest.raises(SettingsError, match="one host name or IPv4 address"):
        check_host("FS_HOST", raw)
    for good in ("127.0.0.1", "0.0.0.0", "localhost", "my-host.example", "a" * 63):
        assert check_host("FS_HOST", good) == good


def test_epoch_milliseconds_with_thousands_of_leading_zeros_are_read() -> None:
    """Past Python's 4,300-digit limit for int(), the message was the interpreter's own."""
    from registry.core.durations import EPOCH, parse_instant

    assert parse_instant("0" * 5000 + "1") == EPOCH + timedelta(milliseconds=1)
    with pytest.raises(ValueError, match="past the year 9999"):
        parse_instant("1" + "0" * 5000)


def test_a_repeated_versions_or_events_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """`--versions a@2 --versions b@3` computed b@3 alone, a@2 dropped without a word."""
    from jobs import feature_job

    for argv in (["--versions", "user.a@2", "--versions", "user.b@3"], ["--events", "a.parquet", "--events", "b"]):
        with pytest.raises(SystemExit) as ended:
            feature_job.main(argv)
        assert ended.value.code == 2
        assert "given more than once" in capsys.readouterr().err


@pytest.mark.parametrize("raw", [" on ", "on\n", "\toff"])
def test_fs_auth_with_white_space_around_it_is_refused_as_every_setting_is(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry.core.errors import SettingsError
    from registry.core.settings import Settings

    monkeypatch.setenv("FS_AUTH", raw)
    with pytest.raises(SettingsError, match="FS_AUTH must be 'on' or 'off'"):
        Settings.from_env()
    monkeypatch.setenv("FS_AUTH", "ON")
    assert Settings.from_env().auth


def test_bootstrap_and_cassandra_hosts_are_held_to_the_host_grammar() -> None:
    """`a／b` (a fullwidth slash that NFKC makes `/`) and `a_b` were refused in FS_HOST but taken here."""
    from registry.core.errors import SettingsError
    from registry.core.settings import _hosts, _servers

    for bad in ("a／b:1", "a_b:1", "999.1.1.1:9092"):
        with pytest.raises(SettingsError, match="FS_KAFKA_BOOTSTRAP"):
            _servers("FS_KAFKA_BOOTSTRAP", bad)
    for bad in ("a／b", "a_b", "h, _"):
        with pytest.raises(SettingsError, match="FS_CASSANDRA_HOSTS"):
            _hosts("FS_CASSANDRA_HOSTS", bad)
    assert _hosts("FS_CASSANDRA_HOSTS", "10.0.0.1, node-b, ::1") == ("10.0.0.1", "node-b", "::1")
