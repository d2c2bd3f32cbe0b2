"""Audit of the fault contract (design §6 "Failure modes and what users see", both tables): a service that is down,
hung or trickling its answer gives a fast failure naming it, and nothing is started or written before it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jobs import backfill, demo
from registry.core.catalog import load_folder
from registry.core.definitions import Window
from registry.core.errors import StoreUnavailableError
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.plan import apply
from tests.unit.conftest import (  # noqa: F401  (fixtures)
    answer_server,
    answering_port,
    closed_port,
    http_answer,
    silent_port,
)
from tests.unit.test_events_table import SOURCE

REPO = Path(__file__).resolve().parents[2]


def _http_server(body: bytes, *, byte_every_s: float, content_type: bytes = b"application/json") -> Iterator[int]:
    """A port answering every request 200 with ``body``, each byte of the whole answer ``byte_every_s`` apart."""
    with answer_server(http_answer(body, content_type=content_type), byte_every_s=byte_every_s) as port:
        yield port


@pytest.fixture
def trickling_port() -> Iterator[int]:
    """An HTTP server that answers, one byte every 0.1 s (some 15 s for the whole answer): never silent for a
    socket's timeout, never done within a client's."""
    yield from _http_server(b'["card_transactions-value"]' + b" " * 40, byte_every_s=0.1)


@pytest.fixture
def registry_port() -> Iterator[int]:
    """An HTTP server answering as a schema registry does (a JSON list of subjects), at once."""
    yield from _http_server(b"[]", byte_every_s=0)


@pytest.fixture
def closing_port() -> Iterator[int]:
    """A port that accepts every connection and closes it at once, unanswered (a broker shutting down, a proxy
    whose backend is gone): it reads the request, then closes with nothing said."""
    with answer_server(b"") as port:
        yield port


# --- Kafka: a bootstrap server that accepts but does not answer ------------------------------------------------------


def test_a_broker_that_closes_every_connection_unanswered_is_named_at_once(closing_port: int) -> None:
    """It counted as answering: the command then met librdkafka's 30 s and its log lines, and ended with
    `Kafka at ... unavailable: KafkaError{code=_TRANSPORT,...}` (a producer's, after 30 s)."""
    from sinks.topics import require_reachable

    kafka = f"127.0.0.1:{closing_port}"
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as raised:
        require_reachable(kafka)
    assert str(raised.value) == (
        f"Kafka at {kafka} unavailable: no bootstrap server answers "
        f"({kafka}: accepted a connection but closed it without an answer)"
    )
    assert time.monotonic() - started < 5


def test_a_command_names_a_broker_that_closes_every_connection_in_one_line(closing_port: int, tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "FS_STATE_DIR": str(tmp_path),
        "FS_KAFKA_BOOTSTRAP": f"127.0.0.1:{closing_port}",
        "PYTHONPATH": str(REPO),
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "sinks.serving_log", "--once"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert time.monotonic() - started < 20  # the interpreter's start and imports; librdkafka alone waits 30 s
    assert (done.returncode, done.stderr) == (
        1,
        f"error: Kafka at 127.0.0.1:{closing_port} unavailable: no bootstrap server answers "
        f"(127.0.0.1:{closing_port}: accepted a connection but closed it without an answer)\n",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no table, no catalog


def test_one_answering_broker_is_enough_beside_a_closing_one(closing_port: int, answering_port: int) -> None:  # noqa: F811
    from sinks.topics import require_reachable

    require_reachable(f"127.0.0.1:{closing_port},127.0.0.1:{answering_port}")


# --- the Python client of the feature API: 1 s timeout -> StoreUnavailableError ---------------------------------


def test_the_client_gives_up_on_an_api_that_trickles_its_answer_at_its_timeout(trickling_port: int) -> None:
    """httpx's timeout is per socket read: a byte every 0.1 s held the client for the whole answer (~15 s)."""
    from serving.online.client import FeatureClient

    started = time.monotonic()
    client = FeatureClient(f"http://127.0.0.1:{trickling_port}", timeout_s=0.5)
    with client, pytest.raises(StoreUnavailableError, match="feature API unreachable: ReadTimeout"):
        client.get_features("user", "u1", ["txn_count_1h"])
    assert time.monotonic() - started < 3


def test_the_client_gives_up_on_an_api_that_hangs_at_its_timeout(silent_port: int) -> None:  # noqa: F811
    from serving.online.client import FeatureClient

    started = time.monotonic()
    client = FeatureClient(f"http://127.0.0.1:{silent_port}", timeout_s=0.5)
    with client, pytest.raises(StoreUnavailableError):
        client.list_definitions()
    assert 0.4 < time.monotonic() - started < 3


def test_the_clients_deadline_is_per_call(registry_port: int) -> None:
    """Calls one after another, more than the timeout apart in all, each get the whole timeout."""
    from serving.online.client import FeatureClient

    with FeatureClient(f"http://127.0.0.1:{registry_port}", timeout_s=1.0) as client:
        for _ in range(3):
            assert client.list_definitions() == []
            time.sleep(0.6)


# --- the schema registry's client: 1 s per attempt, at most 2 retries ----------------------------------------------


def test_a_registry_that_trickles_its_answer_is_named_within_the_clients_bounds(trickling_port: int) -> None:
    """``jobs/registry_client.py``: 1 s per attempt; a trickled answer held each attempt for ~15 s."""
    from jobs.registry_client import require_registry

    url = f"http://127.0.0.1:{trickling_port}"
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=rf"^schema registry at {url} unavailable: ReadTimeout: "):
        require_registry(url)
    assert time.monotonic() - started < 8


def test_a_registry_lookup_of_a_trickling_registry_is_bounded(trickling_port: int) -> None:
    from jobs.registry_client import schema_lookup

    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        schema_lookup(f"http://127.0.0.1:{trickling_port}")(1)
    assert time.monotonic() - started < 8


def test_a_server_that_is_not_a_registry_is_named_not_a_traceback() -> None:
    """A 200 answer that is not JSON (another web server on the port) was a JSONDecodeError traceback."""
    from jobs.registry_client import require_registry

    for port in _http_server(b"<html>hello</html>", byte_every_s=0, content_type=b"text/html"):
        url = f"http://127.0.0.1:{port}"
        with pytest.raises(StoreUnavailableError, match=rf"^schema registry at {url} unavailable: "):
            require_registry(url)


@pytest.mark.parametrize(
    ("status", "body", "registry"),
    [
        (b"404 Not Found", b'{"detail": "Not Found"}', False),  # the feature API, FastAPI's 404
        (b"404 Not Found", b"<html>no</html>", False),
        (b"401 Unauthorized", b'{"error_code": 401, "message": "Unauthorized: no token"}', True),
        (b"403 Forbidden", b'{"error_code": 40301, "message": "User x is denied"}', True),
    ],
)
def test_an_error_answer_counts_only_when_it_is_a_registrys(status: bytes, body: bytes, registry: bool) -> None:
    """Any error answer counted as the registry's: the producer then created its topics before failing on the
    schema (`404: Not Found ... SR code None`), against the feature API's port."""
    from jobs.registry_client import require_registry

    with answer_server(http_answer(body, status=status), byte_every_s=0) as port:
        url = f"http://127.0.0.1:{port}"
        if registry:
            require_registry(url)
        else:
            with pytest.raises(
                StoreUnavailableError, match=rf"^schema registry at {url} unavailable: its answer is not"
            ):
                require_registry(url)


def test_a_registry_that_answers_is_used(registry_port: int) -> None:
    from jobs.registry_client import registry_client, require_registry

    require_registry(f"http://127.0.0.1:{registry_port}")
    assert registry_client(f"http://127.0.0.1:{registry_port}").get_subjects() == []


# --- commands started while a service is down: one `error:` line, nothing started ----------------------------------


def _with_version_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "definitions.db"
    store = DefinitionStore(db)
    apply(store, load_folder())
    v1 = store.catalog().get("user", "txn_count_1h")
    store.register(v1.model_copy(update={"version": 2, "window": Window(kind="tumbling", size=timedelta(minutes=30))}))
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "wh").as_uri())
    return db


def _no_job(*_: Any, **__: Any) -> subprocess.Popen[bytes]:
    raise AssertionError("a job was started")


@pytest.mark.parametrize("down", ["kafka", "registry"])
def test_a_backfill_from_the_archive_names_a_stopped_service_before_starting_a_job(
    down: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    closed_port: int,  # noqa: F811
    registry_port: int,
    answering_port: int,  # noqa: F811
) -> None:
    """§6: ``jobs.backfill --events archive`` fails with `error: Kafka at ... unavailable: ...` (or the registry's
    line) at once. It started the job, which failed in turn: `error: backfill job failed (exit 1): Kafka at ...`
    after the job's start-up, with a log file written."""
    db = _with_version_2(tmp_path, monkeypatch)
    kafka = f"127.0.0.1:{closed_port if down == 'kafka' else answering_port}"
    registry = f"http://127.0.0.1:{closed_port if down == 'registry' else registry_port}"
    monkeypatch.setenv("FS_KAFKA_BOOTSTRAP", kafka)
    monkeypatch.setenv("FS_SCHEMA_REGISTRY_URL", registry)
    monkeypatch.setattr(backfill.subprocess, "Popen", _no_job)
    assert backfill.main(["user.txn_count_1h@2", "--events", "archive"]) == 1
    expected = (
        f"error: Kafka at {kafka} unavailable: no bootstrap server accepts a connection ({kafka}: Connection refused)\n"
        if down == "kafka"
        else f"error: schema registry at {registry} unavailable: ConnectError: [Errno 111] Connection refused\n"
    )
    assert capsys.readouterr().err == expected
    assert not list(db.parent.glob("backfill-*.log"))
    assert not (tmp_path / "cat.db").exists()


def test_reading_the_archive_names_a_stopped_broker_whatever_the_archive_holds(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    closed_port: int,  # noqa: F811
) -> None:
    """``--events archive`` with Kafka stopped and no archive yet: the archive's absence was named, not Kafka."""
    from jobs.history import read_history

    _with_version_2(tmp_path, monkeypatch)
    monkeypatch.setenv("FS_KAFKA_BOOTSTRAP", f"127.0.0.1:{closed_port}")
    with pytest.raises(StoreUnavailableError, match=rf"^Kafka at 127.0.0.1:{closed_port} unavailable: no bootstrap"):
        read_history(Settings.from_env(), SOURCE, now_ms=0)
    assert not (tmp_path / "cat.db").exists()


@pytest.mark.parametrize("down", ["kafka", "registry"])
def test_the_demo_names_a_stopped_service_in_one_error_line_before_touching_anything(
    down: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    closed_port: int,  # noqa: F811
    registry_port: int,
    answering_port: int,  # noqa: F811
) -> None:
    """§6 names ``jobs.demo``: `error: Kafka at ... unavailable: ...`, exit 1. It registered the definitions, then
    met librdkafka's KafkaException (a traceback after 10 s) or printed `demo failed: ...`. (The stack's own start is
    stubbed: the clients' addresses are the ones given.)"""
    kafka = f"127.0.0.1:{closed_port if down == 'kafka' else answering_port}"
    registry = f"http://127.0.0.1:{closed_port if down == 'registry' else registry_port}"
    monkeypatch.setenv("FS_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("FS_KAFKA_BOOTSTRAP", kafka)
    monkeypatch.setenv("FS_SCHEMA_REGISTRY_URL", registry)
    monkeypatch.setattr(demo.stack, "up", lambda settings, services: None)
    assert demo.main([]) == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == (
        f"error: Kafka at {kafka} unavailable: no bootstrap server accepts a connection ({kafka}: Connection refused)"
        if down == "kafka"
        else f"error: schema registry at {registry} unavailable: ConnectError: [Errno 111] Connection refused"
    )
    assert not (tmp_path / "registry").exists()  # no definition registered


def test_the_producer_creates_no_topic_while_the_registry_is_down(
    closed_port: int,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """design §6: a command started while the registry does not answer fails before it starts anything."""
    from jobs import produce

    created: list[list[str]] = []
    monkeypatch.setattr(produce, "require_reachable", lambda *_, **__: None)  # Kafka answers
    monkeypatch.setattr(produce, "ensure_topics", lambda _bootstrap, topics, **__: created.append(list(topics)))
    monkeypatch.setenv("FS_SCHEMA_REGISTRY_URL", f"http://127.0.0.1:{closed_port}")
    assert produce.main(["--events", "1"]) == 1
    assert created == []
    err = capsys.readouterr().err
    assert err.startswith(f"error: schema registry at http://127.0.0.1:{closed_port} unavailable: "), err
    assert err.count("\n") == 1


@pytest.mark.parametrize("schema", [b"42", b'{"type": "record"}', b"null"])
def test_a_registry_answer_without_schema_text_is_a_failure_not_a_bad_record(schema: bytes) -> None:
    """design §6: only a 404 with error code 40403 is an unknown id; any other answer is a failure (the JVM decoder
    fails the same way): a 200 whose ``schema`` is not a string dead-letters nothing."""
    from jobs.registry_client import schema_lookup

    body = b'{"schema": %s}' % schema
    with (
        contextmanager(_http_server)(body, byte_every_s=0) as port,
        pytest.raises(StoreUnavailableError, match=r"^schema registry"),
    ):
        schema_lookup(f"http://127.0.0.1:{port}")(7)


def test_the_demo_prints_its_usage_for_help_and_refuses_options_before_touching_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m jobs.demo --help`` ran the whole demo (it resets the demo's topic and tables)."""

    def never(*_: Any, **__: Any) -> None:
        raise AssertionError("the demo started")

    monkeypatch.setattr(demo.stack, "up", never)
    with pytest.raises(SystemExit) as help_exit:
        demo.main(["--help"])
    assert help_exit.value.code == 0 and "RESETS" in capsys.readouterr().out
    with pytest.raises(SystemExit) as usage_exit:
        demo.main(["--fast"])
    assert usage_exit.value.code == 2


def test_a_cassandra_host_that_does_not_resolve_is_named_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver refuses unresolvable contact points while the cluster object is made, before connecting:
    `cassandra.UnresolvableContactPoints: {}` ended the API, the migration, erasure and the job with a traceback."""
    from sinks.factory import connect_cassandra

    monkeypatch.setenv("FS_CASSANDRA_HOSTS", "nosuch.invalid")
    with pytest.raises(StoreUnavailableError, match=r"^Cassandra at nosuch\.invalid:\d+ unavailable: no contact point"):
        connect_cassandra(Settings.from_env())


def test_a_schema_step_cassandra_leaves_unanswered_is_named_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """A DDL Cassandra takes and does not answer within its timeout (a node busy compacting, a schema agreement
    that never comes) raised the driver's `OperationTimedOut` past `connect_cassandra`: a traceback, not a named
    store, and the cluster's threads left running."""
    from cassandra import OperationTimedOut
    from cassandra.cluster import Cluster

    from sinks import factory
    from sinks.cassandra import writer

    shut: list[bool] = []
    monkeypatch.setattr(Cluster, "connect", lambda self, *_a, **_k: object())
    monkeypatch.setattr(Cluster, "shutdown", lambda self: shut.append(True))

    def unanswered(_session: object, _keyspace: str) -> None:
        raise OperationTimedOut(errors={"127.0.0.1:9042": "Client request timeout"}, last_host="127.0.0.1:9042")

    monkeypatch.setattr(writer, "ensure_schema", unanswered)
    with pytest.raises(StoreUnavailableError, match=r"^Cassandra at [^ ]+:\d+ unavailable: .*timeout"):
        factory.connect_cassandra(Settings.from_env())
    assert shut == [True]


def test_a_topic_the_broker_does_not_create_in_time_is_named_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broker that took a CreateTopics request and left it unanswered made `future.result(timeout)` raise a bare
    `TimeoutError` (a traceback from the job, the producer and the demo) instead of naming Kafka."""
    from concurrent.futures import Future

    from sinks import topics

    class Unanswering:
        def create_topics(self, new: list[Any], **_: Any) -> dict[str, Future[None]]:
            return {t.topic: Future() for t in new}

    monkeypatch.setattr(topics, "_existing_topics", lambda _bootstrap, _timeout: (Unanswering(), set()))
    started = time.monotonic()
    with pytest.raises(
        StoreUnavailableError, match=r"^Kafka at k:9092 unavailable: creating topic t1 did not end within 0\.2 s$"
    ):
        topics.ensure_topics("k:9092", ["t1"], timeout_s=0.2)
    assert time.monotonic() - started < 5


def test_a_run_over_the_archive_names_a_registry_gone_as_a_flink_decoded_run_does(trickling_port: int) -> None:
    """Design §6: a registry that stops answering during a run is `error: schema registry at <url> unavailable during
    the run: ...`. A run over the archive (``--events archive``: decoded in Python, ``jobs.history``) said its
    client's words instead (`schema registry unreachable: timed out`), without the URL."""
    from jobs.history import run_lookup
    from registry.core.settings import Settings

    url = f"http://127.0.0.1:{trickling_port}"
    with pytest.raises(StoreUnavailableError) as raised:
        run_lookup(Settings(schema_registry_url=url))(1)
    said = str(raised.value)
    assert said.startswith(f"schema registry at {url} unavailable during the run: "), said
    assert "schema registry unreachable" not in said and "\n" not in said
    assert said.endswith("a rerun once it answers completes what was written")
