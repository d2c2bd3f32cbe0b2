"""A state folder's path reaches the services' configuration files written in each file's own syntax: Kafka's
``server.properties`` (read by Java as ISO-8859-1) and Cassandra's ``cassandra.yaml``. Pasted as UTF-8 text, a
folder named with ``é`` sent Kafka's data to a folder named with ``Ã©`` (a restart then found no storage, formatted
again and refused its own new cluster id), and one holding `` #`` cut every Cassandra directory at a YAML comment."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
import yaml

from infra import services
from infra.errors import InfraError
from infra.java import find_java17
from infra.services import properties_text, yaml_text
from infra.settings import StackSettings

ODD = "/tmp/st é #1: 'a' \"b\" \\c 𝄞\t~"


def _java_properties_value(text: str) -> str:
    """How java.util.Properties.load reads one value back (the escapes this project writes)."""
    raw = text.encode("iso-8859-1").decode("iso-8859-1")  # what load(InputStream) sees: bytes as Latin-1
    out, i = [], 0
    while i < len(raw):
        if raw[i] == "\\" and raw[i + 1] == "u":
            out.append(chr(int(raw[i + 2 : i + 6], 16)))
            i += 6
        elif raw[i] == "\\":
            out.append(raw[i + 1])
            i += 2
        else:
            out.append(raw[i])
            i += 1
    return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16")


def test_a_properties_value_is_ascii_and_reads_back_as_the_path() -> None:
    written = properties_text(ODD)
    assert written.isascii() and written.isprintable(), written
    assert _java_properties_value(written) == ODD
    assert properties_text("/plain/path_1-2.x") == "/plain/path_1-2.x"


def test_a_yaml_value_reads_back_as_the_path() -> None:
    for value in (ODD, "a\x7fb\x85c\x00d", "/plain/path"):
        assert yaml.safe_load(f'key: "{yaml_text(value)}/data"') == {"key": f"{value}/data"}


def test_the_rendered_cassandra_yaml_names_the_state_folder(tmp_path: Path) -> None:
    state = tmp_path / "st é #1: x"
    settings = dataclasses.replace(StackSettings.from_env(), state_dir=state)
    services._cassandra_prepare(settings)
    config = yaml.safe_load((state / "cassandra" / "cassandra.yaml").read_text(encoding="utf-8"))
    home = str(state / "cassandra")
    assert config["data_file_directories"] == [f"{home}/data"]
    for key in ("commitlog", "saved_caches", "hints", "cdc_raw"):
        assert config[f"{key}_directory"] == f"{home}/{key}"
    assert config["storage_port"] == settings.cassandra_storage_port  # numbers stay numbers


def test_the_jvm_takes_cassandras_gc_log_option_in_a_folder_with_a_colon(tmp_path: Path) -> None:
    """-Xlog splits its option on ":": the GC log's path in a state folder holding one ended Cassandra's JVM at once
    ("Invalid -Xlog option")."""
    state = tmp_path / "st é: x"
    (xlog,) = (
        a
        for a in services._cassandra_prepare(dataclasses.replace(StackSettings.from_env(), state_dir=state))
        if a.startswith("-Xlog:")
    )
    done = subprocess.run([str(find_java17()), xlog, "-version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (state / "cassandra" / "logs" / "gc.log").is_file()  # the path itself, not one with the quotes in it


def test_a_folder_with_a_comma_a_quote_or_not_utf8_is_refused(tmp_path: Path) -> None:
    settings = StackSettings.from_env()
    with pytest.raises(InfraError, match="holds a comma, which Kafka reads as two folders"):
        services._kafka_prepare(dataclasses.replace(settings, state_dir=tmp_path / "a,b"))
    with pytest.raises(InfraError, match="holds a double quote, which the JVM's -Xlog option cannot take"):
        services._cassandra_prepare(dataclasses.replace(settings, state_dir=tmp_path / 'a"b'))
    with pytest.raises(InfraError, match="is not UTF-8"):
        services._cassandra_prepare(dataclasses.replace(settings, state_dir=tmp_path / "a\udcffb"))
