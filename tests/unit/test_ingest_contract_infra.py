"""A service that fails to start is one named line with its cause and the log that says it (README "Set up",
design §3.7): Kafka logs to ``logs/server.log``, not to ``process.log``, so pointing at process.log (or showing
its tail) showed nothing of why. A fake ``java`` stands in for the JVM; the shared services are not touched."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest

from infra import process, services, stack
from infra.errors import InfraError
from infra.settings import StackSettings

_BIND = "org.apache.kafka.common.KafkaException: Socket server failed to bind to 127.0.0.1:1: Address already in use."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fake_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: str) -> None:
    """FS_JAVA_HOME holding a ``bin/java`` that says it is Java 17 and otherwise runs the shell text ``run``
    (``$LOGS``: the folder of ``-Dkafka.logs.dir=``)."""
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(
        "#!/bin/sh\n"
        'case "$1" in -version) echo \'openjdk version "17.0.9" 2023-10-17\' >&2; exit 0;; esac\n'
        'LOGS=""\nfor a in "$@"; do case "$a" in -Dkafka.logs.dir=*) LOGS="${a#-Dkafka.logs.dir=}";; esac; done\n'
        f"{run}\n"
    )
    java.chmod(0o755)
    monkeypatch.setenv("FS_JAVA_HOME", str(home))
    monkeypatch.setattr(stack.artifacts, "fetch", lambda *a, **k: None)
    monkeypatch.setattr(services.artifacts, "classpath", lambda *a, **k: "none")


def _settings(tmp_path: Path, *, formatted: bool = True, timeout_s: float = 30) -> StackSettings:
    settings = dataclasses.replace(
        StackSettings.from_env(),
        state_dir=tmp_path / "state",
        kafka_port=_free_port(),
        kafka_controller_port=_free_port(),
        start_timeout_s=timeout_s,
    )
    if formatted:  # no storage format step: the broker itself is started
        (tmp_path / "state" / "kafka" / "data").mkdir(parents=True)
        (tmp_path / "state" / "kafka" / "data" / "meta.properties").write_text("")
    return settings


def _up_error(settings: StackSettings) -> str:
    with pytest.raises(InfraError) as caught:
        stack.up(settings, ["kafka"])
    assert not (settings.state_dir / "kafka" / "pid").exists()
    return str(caught.value)


def test_kafka_exiting_names_the_cause_from_its_server_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_java(
        tmp_path,
        monkeypatch,
        'mkdir -p "$LOGS"; {\n'
        "echo '2026-12-04T05:29:27,700 INFO  [KafkaServer] starting'\n"
        "echo '2026-12-04T05:29:27,731 ERROR [DataPlaneAcceptor] Unable to start acceptor for PLAINTEXT'\n"
        f"echo '{_BIND}'\n"
        "echo '\tat kafka.network.Acceptor.openServerSocket(SocketServer.scala:751)'\n"
        "echo '2026-12-04T05:29:27,948 ERROR [Kafka$] Exiting Kafka due to fatal exception during startup.'\n"
        '} >> "$LOGS/server.log"\n'
        "echo 'WARN Unable to register Log4j shutdown hook because JVM is shutting down.'\nexit 1",
    )
    settings = _settings(tmp_path)
    said = _up_error(settings)
    assert "\n" not in said, said
    log = settings.state_dir / "kafka" / "logs" / "server.log"
    assert said == f"kafka: exited during start-up: {_BIND} (log: {log})"


def test_an_older_start_s_error_is_not_this_start_s_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_java(tmp_path, monkeypatch, "exit 1")
    settings = _settings(tmp_path)
    (settings.state_dir / "kafka" / "logs").mkdir(parents=True)
    (settings.state_dir / "kafka" / "logs" / "server.log").write_text(f"2026-01-01 ERROR [x] stale\n{_BIND}\n")
    said = _up_error(settings)
    assert "\n" not in said and "stale" not in said and "bind" not in said, said
    assert said.startswith("kafka: exited during start-up; its logs say nothing about it (")
    assert str(settings.state_dir / "kafka" / "process.log") in said


def test_a_jvm_that_cannot_start_is_named_from_its_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_java(
        tmp_path,
        monkeypatch,
        "echo 'Error occurred during initialization of VM'\n"
        "echo 'Could not reserve enough space for 67108864KB object heap'\nexit 1",
    )
    settings = _settings(tmp_path)
    said = _up_error(settings)
    log = settings.state_dir / "kafka" / "process.log"
    assert said == (
        "kafka: exited during start-up: Error occurred during initialization of VM: "
        f"Could not reserve enough space for 67108864KB object heap (log: {log})"
    )


def test_a_start_that_never_gets_healthy_names_its_last_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_java(
        tmp_path,
        monkeypatch,
        'mkdir -p "$LOGS"\n'
        "echo '2026-12-04T05:29:27,731 ERROR [RaftManager] Failed to reach the controller' >> \"$LOGS/server.log\"\n"
        "exec sleep 30",
    )
    settings = _settings(tmp_path, timeout_s=1)
    said = _up_error(settings)
    log = settings.state_dir / "kafka" / "logs" / "server.log"
    assert said == (
        "kafka: not healthy within 1s (stopped): 2026-12-04T05:29:27,731 ERROR [RaftManager] Failed to reach "
        f"the controller (log: {log})"
    )


def test_a_failed_storage_format_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_java(
        tmp_path,
        monkeypatch,
        "echo 'Formatting metadata directory'\n"
        "echo 'Exception in thread \"main\" java.nio.file.AccessDeniedException: /data/meta.properties' >&2\n"
        "echo '\tat java.base/sun.nio.fs.UnixException.translateToIOException(UnixException.java:90)' >&2\nexit 1",
    )
    settings = _settings(tmp_path, formatted=False)
    said = _up_error(settings)
    assert said == (
        f"kafka: formatting storage in {settings.state_dir / 'kafka' / 'data'} failed: "
        'Exception in thread "main" java.nio.file.AccessDeniedException: /data/meta.properties'
    )


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        (  # Cassandra's system.log
            "INFO  [main] 2026-12-03 22:27:11,369 PipelineConfigurator.java:148 - Starting listening\n"
            "ERROR [main] 2026-12-03 22:27:11,396 CassandraDaemon.java:887 - Exception encountered during startup\n"
            "java.lang.IllegalStateException: Failed to bind port 9042 on 127.0.0.1.\n"
            "\tat org.apache.cassandra.transport.Server.start(Server.java:144)\n"
            "Caused by: io.netty.channel.unix.Errors$NativeIoException: bind(..) failed: Address already in use\n",
            "java.lang.IllegalStateException: Failed to bind port 9042 on 127.0.0.1.",
        ),
        (  # a Python service's traceback
            'INFO: starting\nTraceback (most recent call last):\n  File "x.py", line 1, in <module>\n'
            "    bind()\nOSError: [Errno 98] Address already in use\n",
            "OSError: [Errno 98] Address already in use",
        ),
        ("error: FS_API_PORT='x' is not a port number\n", "error: FS_API_PORT='x' is not a port number"),
        (  # a missing or corrupt classpath
            "Error: Could not find or load main class kafka.Kafka\n"
            "Caused by: java.lang.ClassNotFoundException: kafka.Kafka\n",
            "Error: Could not find or load main class kafka.Kafka: Caused by: java.lang.ClassNotFoundException: "
            "kafka.Kafka",
        ),
        ("2026-12-04 INFO [x] log.level = ERROR\nall fine\n", None),  # ERROR as a value is not a level
    ],
)
def test_the_cause_line_of_a_log(text: str, cause: str | None) -> None:
    assert process.cause_in(text.splitlines()) == cause


_DIGEST = "0" * 64


@pytest.mark.parametrize(
    ("manifest", "said"),
    [
        (b"# pom x\ngarbage\n", "line 2 is corrupt: 'garbage'"),
        (b"# pom x\n", "lists no jars"),
        (b"# pom x\n\xff\xfe  a.jar\n", "is unreadable"),
        (f"# pom x\n{_DIGEST}  ../a.jar\n".encode(), "line 2 is corrupt"),
    ],
)
def test_a_corrupt_manifest_is_a_named_corrupt_download(tmp_path: Path, manifest: bytes, said: str) -> None:
    """It was a ValueError or UnicodeDecodeError traceback, or (no jars listed) a pass and a JVM without classes."""
    from infra.artifacts import verify_manifest

    (tmp_path / "kafka" / "lib").mkdir(parents=True)
    (tmp_path / "kafka" / "manifest.txt").write_bytes(manifest)
    with pytest.raises(InfraError, match=rf"kafka: manifest .* {said}.*fetch --force"):
        verify_manifest(tmp_path / "kafka" / "lib", tmp_path / "kafka" / "manifest.txt")


def test_a_jar_the_manifest_does_not_list_is_refused(tmp_path: Path) -> None:
    """The classpath is ``lib/*``: a jar slipped in beside the checked ones would run unchecked."""
    import hashlib

    from infra.artifacts import verify_manifest

    lib = tmp_path / "kafka" / "lib"
    lib.mkdir(parents=True)
    (lib / "a.jar").write_bytes(b"a")
    (tmp_path / "kafka" / "manifest.txt").write_text(f"# pom x\n{hashlib.sha256(b'a').hexdigest()}  a.jar\n")
    verify_manifest(lib, tmp_path / "kafka" / "manifest.txt")
    (lib / "evil.jar").write_bytes(b"e")
    with pytest.raises(InfraError, match=r"kafka: evil.jar in .* is not in the manifest"):
        verify_manifest(lib, tmp_path / "kafka" / "manifest.txt")


def test_a_java_that_does_not_run_is_named_as_such(tmp_path: Path) -> None:
    """A ``java`` that fails (a broken or foreign binary) was listed as ``(Java None)``."""
    from infra.java import find_java17

    broken = tmp_path / "java"
    broken.write_text("#!/bin/sh\necho 'cannot execute binary file' >&2\nexit 126\n")
    broken.chmod(0o755)
    with pytest.raises(InfraError) as caught:
        find_java17([broken])
    assert str(caught.value).endswith(f"; found: {broken} (did not say its version)")


def test_a_storage_format_that_hangs_is_stopped_and_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It was ``subprocess.TimeoutExpired``'s traceback."""
    _fake_java(tmp_path, monkeypatch, "exec sleep 30")
    monkeypatch.setattr(services, "FORMAT_TIMEOUT_S", 0.5)
    settings = _settings(tmp_path, formatted=False)
    said = _up_error(settings)
    assert (
        said
        == f"kafka: formatting storage in {settings.state_dir / 'kafka' / 'data'} did not finish within 0.5s (stopped)"
    )


def test_a_storage_format_is_bounded_by_the_start_timeout_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FS_START_TIMEOUT_S bounds a service's start (README); Kafka's storage format, part of its first start, waited
    its own 120 s whatever it said: `up` with a 0.5 s start timeout hung on a format that did not end."""
    import time

    _fake_java(tmp_path, monkeypatch, "exec sleep 30")
    settings = _settings(tmp_path, formatted=False, timeout_s=0.5)
    started = time.monotonic()
    said = _up_error(settings)
    assert time.monotonic() - started < 10
    assert said == (
        f"kafka: formatting storage in {settings.state_dir / 'kafka' / 'data'} did not finish within 0.5s (stopped)"
    )
