"""Audit of the configuration contract (README "## Defaults", the API's settings): values the docs refuse are
refused with one line naming the variable, values they allow are taken, and nothing ends in a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.settings import StackSettings
from registry.core.errors import SettingsError
from registry.core.settings import Settings
from serving.online.options import ApiOptions

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def loop(tmp_path: Path) -> Path:
    """A path that can never be a folder: a symlink pointing at itself through another."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    return tmp_path / "a"


def test_a_state_dir_in_a_symlink_loop_stops_the_stack_with_one_line(
    monkeypatch: pytest.MonkeyPatch, loop: Path
) -> None:
    # README: "An FS_STATE_DIR that is a file or cannot be created gives `error: FS_STATE_DIR=<path> is not a
    # folder we can use: ...`, exit 1" (it was a RuntimeError traceback).
    monkeypatch.setenv("FS_STATE_DIR", str(loop))
    with pytest.raises(SystemExit, match=r"^error: FS_STATE_DIR=.* is not a folder we can use"):
        StackSettings.from_env()


def test_a_state_dir_in_a_symlink_loop_is_a_settings_error(monkeypatch: pytest.MonkeyPatch, loop: Path) -> None:
    monkeypatch.setenv("FS_STATE_DIR", str(loop / "x"))
    with pytest.raises(SettingsError, match="FS_STATE_DIR"):
        Settings.from_env()


def test_infra_status_with_a_looping_state_dir_is_one_error_line(tmp_path: Path, loop: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FS_STATE_DIR": str(loop)}
    done = subprocess.run(
        [sys.executable, "-m", "infra", "status"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [done.stderr.strip()] and done.stderr.startswith("error: FS_STATE_DIR=")


@pytest.mark.parametrize("raw", ["\x01h", "h\x7f", "a\x1bb", "h\x85"])
def test_a_host_with_a_control_character_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    # "one host name or IPv4 address": a control character is in neither (both readers agree).
    monkeypatch.setenv("FS_HOST", raw)
    with pytest.raises(SystemExit, match="FS_HOST"):
        StackSettings.from_env()
    with pytest.raises(SettingsError, match="FS_HOST"):
        Settings.from_env()


@pytest.mark.parametrize("raw", ["h\x01", "a,\x7fb"])
def test_cassandra_hosts_with_a_control_character_are_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("FS_CASSANDRA_HOSTS", raw)
    with pytest.raises(SettingsError, match="FS_CASSANDRA_HOSTS"):
        Settings.from_env()


@pytest.mark.parametrize("raw", ["[1:2]:9092", "[:]:9092", "[1.2.3.4]:9092", "h:1,[::::]:2", "h\x01:9092"])
def test_a_bootstrap_server_in_brackets_must_be_an_ipv6_address(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    # README: "a host name, an IPv4 address or a bracketed IPv6 address".
    monkeypatch.setenv("FS_KAFKA_BOOTSTRAP", raw)
    with pytest.raises(SettingsError, match="FS_KAFKA_BOOTSTRAP"):
        Settings.from_env()


@pytest.mark.parametrize("raw", ["[::1]:9092", "PLAINTEXT://[fe80::1]:1", "h:9092, [2001:db8::1]:65535"])
def test_bracketed_ipv6_bootstrap_servers_are_taken(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("FS_KAFKA_BOOTSTRAP", raw)
    assert Settings.from_env().kafka_bootstrap == raw


def test_an_empty_fs_auth_is_refused_not_taken_as_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # README: "a variable that is set is checked even when empty"; only an unset FS_AUTH means off.
    monkeypatch.setenv("FS_AUTH", "")
    with pytest.raises(SettingsError, match="FS_AUTH must be 'on' or 'off', not ''"):
        Settings.from_env()
    monkeypatch.delenv("FS_AUTH")
    assert Settings.from_env().auth is False
    monkeypatch.setenv("FS_AUTH", "on")
    assert Settings.from_env().auth is True


@pytest.mark.parametrize(("raw", "taken"), [("0512m", "0512m"), ("01G", "01G"), ("1", "1"), ("1t", "1t")])
def test_a_heap_is_any_whole_number_above_zero(monkeypatch: pytest.MonkeyPatch, raw: str, taken: str) -> None:
    # README: a heap "that is not a whole number above 0 with an optional k, m, g or t" is refused; the JVM
    # reads -Xmx0512m as 512 MB.
    monkeypatch.setenv("FS_KAFKA_HEAP", raw)
    assert StackSettings.from_env().kafka_heap == taken


@pytest.mark.parametrize("raw", ["0", "00m", "-1g", "1.5g", "512mb", " 512m", ""])
def test_a_heap_that_is_not_a_whole_number_above_zero_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("FS_CASSANDRA_HEAP", raw)
    with pytest.raises(SystemExit, match="FS_CASSANDRA_HEAP"):
        StackSettings.from_env()


@pytest.mark.parametrize("raw", [" ", "a b", "fs_serving_log ", "é", "a/b", ".", "..", "t" * 250])
def test_a_serving_log_topic_kafka_cannot_hold_is_refused(raw: str) -> None:
    with pytest.raises(SettingsError, match="FS_SERVING_LOG_TOPIC"):
        ApiOptions.from_env({"FS_SERVING_LOG_TOPIC": raw})


@pytest.mark.parametrize("raw", ["fs_serving_log", "a.b-c_D9", "t" * 249, "..."])
def test_a_legal_serving_log_topic_is_taken(raw: str) -> None:
    assert ApiOptions.from_env({"FS_SERVING_LOG_TOPIC": raw}).serving_log_topic == raw


@pytest.mark.parametrize("name", ["FS_KAFKA_PORT", "FS_REGISTRY_PORT", "FS_CASSANDRA_PORT"])
@pytest.mark.parametrize(("raw", "port"), [("9" * 5000, None), ("0" * 5000 + "7777", 7777), ("+" + "1" * 6, None)])
def test_a_port_of_thousands_of_digits_is_refused_or_read(
    monkeypatch: pytest.MonkeyPatch, name: str, raw: str, port: int | None
) -> None:
    # a port is "from 1 to 65535": past int()'s 4,300 digits it was a bare ValueError traceback
    monkeypatch.setenv(name, raw)
    if port is None:
        with pytest.raises(SettingsError, match=f"^{name} must be from 1 to 65535"):
            Settings.from_env()
    else:
        assert re.search(rf"[:=]{port}\b", repr(Settings.from_env()))  # the servers, the registry URL or the port
