"""The local stack's start/stop contract: idempotent, PID-scoped, and fast, named failures."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra import artifacts, stack
from infra.errors import InfraError
from infra.java import find_java17
from infra.process import PidFile, alive, port_open
from infra.settings import StackSettings

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def listener() -> Iterator[int]:
    """A port held by a process that is not ours."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_up_is_idempotent_and_status_says_healthy(local_stack: StackSettings) -> None:
    assert stack.up(local_stack, ["kafka", "cassandra", "registry"]) == []  # all already running
    report = stack.status(local_stack)
    for name in ("kafka", "cassandra", "registry"):
        assert report[name].startswith("running (pid "), report
        assert report[name].endswith("healthy"), report


def test_port_in_use_is_a_fast_named_error(tmp_path: Path, listener: int) -> None:
    settings = dataclasses.replace(StackSettings.from_env(), state_dir=tmp_path, registry_port=listener)
    started = time.monotonic()
    with pytest.raises(InfraError, match=rf"registry: port\(s\) {listener} .* already in use"):
        stack.up(settings, ["registry"])
    assert time.monotonic() - started < 5


def test_down_stops_what_up_started_and_nothing_else(tmp_path: Path) -> None:
    settings = dataclasses.replace(StackSettings.from_env(), state_dir=tmp_path, registry_port=_free_port())
    assert stack.up(settings, ["registry"]) == ["registry"]
    pid = PidFile(tmp_path / "registry" / "pid").read()
    assert pid is not None and alive(pid)
    # A PID file naming some other live process (its start time does not match) must be ignored.
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "api").mkdir()
        (tmp_path / "api" / "pid").write_text(f"{stranger.pid} 1\n")
        stack.down(settings)
        assert not alive(pid)
        assert not port_open("127.0.0.1", settings.registry_port)
        assert stranger.poll() is None, "down signalled a process it did not start"
    finally:
        stranger.kill()
        stranger.wait()


def test_down_of_an_empty_list_stops_nothing(local_stack: StackSettings) -> None:
    stack.down(local_stack, [])  # what a test session that started nothing passes on teardown
    assert all(state.startswith("running") for name, state in stack.status(local_stack).items() if name != "api")


def test_unknown_service_is_refused() -> None:
    with pytest.raises(InfraError, match="unknown service"):
        stack.up(StackSettings.from_env(), ["zookeeper"])


def test_failed_download_names_the_component(tmp_path: Path) -> None:
    maven = tmp_path / "maven" / "ghost"
    maven.mkdir(parents=True)
    (maven / "pom.xml").write_text(
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>t</groupId><artifactId>t</artifactId><version>1</version><packaging>pom</packaging>"
        "<dependencies><dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>"
        "<version>0.0.0-does-not-exist</version></dependency></dependencies></project>"
    )
    settings = dataclasses.replace(StackSettings.from_env(), cache_dir=tmp_path / "cache")
    with pytest.raises(InfraError, match="ghost: download from Maven Central failed"):
        artifacts.fetch(settings, "ghost", maven_dir=tmp_path / "maven")
    assert not (tmp_path / "cache" / "ghost" / "lib").exists()


def test_corrupt_jar_is_caught_before_start(tmp_path: Path) -> None:
    settings = dataclasses.replace(StackSettings.from_env(), cache_dir=tmp_path)
    real = StackSettings.from_env()
    artifacts.fetch(real, "flink")  # cached: verifies and returns
    lib = settings.lib_dir("flink")
    lib.mkdir(parents=True)
    (tmp_path / "flink" / "manifest.txt").write_text((real.cache_dir / "flink" / "manifest.txt").read_text())
    for jar in real.lib_dir("flink").glob("*.jar"):
        (lib / jar.name).write_bytes(jar.read_bytes()[:-1])  # truncated by one byte
    with pytest.raises(InfraError, match="missing or corrupt"):
        artifacts.verify(settings, "flink")


def test_no_jdk17_is_a_named_error(tmp_path: Path) -> None:
    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"21.0.2\" 2024-01-16' >&2\n")
    fake.chmod(0o755)
    with pytest.raises(InfraError, match=r"no JDK 17 found .*Java 21"):
        find_java17([fake, tmp_path / "missing" / "java"])


def test_kafka_formats_storage_with_a_cluster_id_that_starts_with_a_dash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One random cluster id in 64 starts with "-"; the storage tool took it for an option and refused it."""
    import uuid

    from infra import services

    monkeypatch.setattr(services.uuid, "uuid4", lambda: uuid.UUID(bytes=b"\xf8" + bytes(15)))
    settings = dataclasses.replace(StackSettings.from_env(), state_dir=tmp_path)
    services._kafka_prepare(settings)
    meta = (tmp_path / "kafka" / "data" / "meta.properties").read_text()
    assert "cluster.id=-" in meta, meta


def test_kafka_keeps_its_storage_in_a_state_folder_named_with_non_ascii_and_a_hash(tmp_path: Path) -> None:
    """Kafka reads server.properties as ISO-8859-1: written as UTF-8, 'é' named another folder ('Ã©'), where the
    storage was formatted; the next start found none in the state folder and formatted again."""
    from infra import services

    state = tmp_path / "st é #1"
    settings = dataclasses.replace(StackSettings.from_env(), state_dir=state)
    services._kafka_prepare(settings)
    assert (state / "kafka" / "data" / "meta.properties").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["st é #1"]
