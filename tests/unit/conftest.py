"""Shared builders for the unit tests: feature definitions built from plain dicts, the shipped catalog."""

from __future__ import annotations

import copy
import signal
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from sinks.cassandra.reader import StoredValue

# A complete, valid definition (the shape of the shipped txn_count_1h). Tests override top-level keys.
BASE_DEFINITION: dict[str, Any] = {
    "name": "txn_count_1h",
    "entity": "user",
    "version": 1,
    "owner": "risk-team",
    "description": "Number of card transactions in the last hour.",
    "tags": ["risk"],
    "value_type": "long",
    "source": {
        "topic": "card_transactions",
        "event_schema": "card_transaction",
        "subject": "card_transactions-value",
        "entity_key": "user_id",
        "timestamp_field": "event_time",
    },
    "window": {"kind": "sliding", "size": "1h", "slide": "5m"},
    "aggregation": {"function": "count"},
    "freshness_slo": "10m",
    "ttl": "2h",
}


class NoValues:
    """An online store with no values: for tests of the registry's HTTP routes, which read none."""

    def read(self, entity_type: str, entity_id: str) -> dict[tuple[str, int], StoredValue]:
        return {}

    def progress(self) -> dict[str, int]:
        return {}


def definition_dict(**overrides: Any) -> dict[str, Any]:
    """BASE_DEFINITION with keys replaced; ``"source.topic"`` style keys replace one nested key.

    A top-level nested dict (``window={...}``) replaces the whole table; a value of None removes the key.
    """
    raw = copy.deepcopy(BASE_DEFINITION)
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        target = raw
        for parent in parents:
            target = target.setdefault(parent, {})
        if value is None:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return raw


def build_definition(**overrides: Any) -> FeatureDefinition:
    return FeatureDefinition.model_validate(definition_dict(**overrides))


@pytest.fixture(scope="session")
def make_definition() -> Callable[..., FeatureDefinition]:
    """``make_definition(name="x", window={...}, **{"source.topic": "t"})``: a validated definition."""
    return build_definition


@pytest.fixture(scope="session")
def make_definition_dict() -> Callable[..., dict[str, Any]]:
    return definition_dict


@pytest.fixture(scope="session")
def shipped_catalog() -> FeatureCatalog:
    return FeatureCatalog.from_folder()


# Hypothesis keeps no example database and writes its cache to a temporary directory, not the checkout, and
# sets no deadline: its default (200 ms per example) fails a property whose one example was slowed by the machine (a
# loaded CI core, a GC pause, a first import), as 'DeadlineExceeded' or 'Unreliable test timings'. No property here
# is about speed; the ones that are measure time themselves.
def _configure_hypothesis() -> None:
    import atexit
    import shutil
    import tempfile

    from hypothesis import settings
    from hypothesis.configuration import set_hypothesis_home_dir

    home = tempfile.mkdtemp(prefix="featurestore-hypothesis-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    set_hypothesis_home_dir(home)
    settings.register_profile("unit", database=None, deadline=None)
    settings.load_profile("unit")


_configure_hypothesis()


# --- ports standing in for a service that is stopped, hung or answering (the fast-failure tests) ---


@contextmanager
def answer_server(answer: bytes, *, byte_every_s: float = 0.0) -> Iterator[int]:
    """A port answering every connection's first bytes with ``answer`` (a byte every ``byte_every_s`` if above 0:
    a server trickling its answer), then closing it. Leaving the block closes the port and stops every trickle (no
    thread outlives the test sending, or calls ``time.sleep``)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    over = threading.Event()

    def reply(connection: socket.socket) -> None:
        with connection:
            try:
                connection.recv(65536)
                if not byte_every_s:
                    connection.sendall(answer)
                    return
                for i in range(len(answer)):
                    connection.sendall(answer[i : i + 1])
                    if over.wait(byte_every_s):
                        return
            except OSError:  # the client gave up
                return

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            threading.Thread(target=reply, args=(connection,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        over.set()
        server.close()


def http_answer(body: bytes, *, status: bytes = b"200 OK", content_type: bytes = b"application/json") -> bytes:
    """A whole HTTP/1.1 answer with ``body`` (closing the connection)."""
    head = b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
    return head % (status, content_type, len(body)) + body


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound, then released): a stopped service."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose connections the kernel accepts and nobody answers: a paused (SIGSTOP) service."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


@pytest.fixture
def answering_port() -> Iterator[int]:
    """A port that answers the first bytes of every connection, as a broker answers ApiVersions
    (enough for ``sinks.topics.require_reachable``)."""
    with answer_server(b"\x00\x00\x00\x04\x00\x00\x00\x01") as port:
        yield port


NOT_A_STORE = ("empty", "other-program", "not-sqlite")


def not_a_store(path: Path, kind: str) -> Path:
    """A file at ``path`` that is no definition store: ``empty``, ``other-program`` (another program's SQLite
    database) or ``not-sqlite`` (plain text)."""
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "other-program":
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE notes (body TEXT)")
        conn.close()
    elif kind == "not-sqlite":
        path.write_bytes(b"plain text, not a database" * 10)
    else:
        raise ValueError(kind)
    return path


@pytest.fixture
def services_at_closed_port(monkeypatch: pytest.MonkeyPatch, closed_port: int, tmp_path: Path) -> None:
    """Every service a bench or command reaches at a closed port, the registry's database under ``tmp_path``: a test
    that gets past the options by mistake never reaches the shared stack."""
    monkeypatch.setenv("FS_CASSANDRA_HOSTS", "127.0.0.1")
    monkeypatch.setenv("FS_CASSANDRA_PORT", str(closed_port))
    monkeypatch.setenv("FS_KAFKA_BOOTSTRAP", f"127.0.0.1:{closed_port}")
    monkeypatch.setenv("FS_SCHEMA_REGISTRY_URL", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "defs.db"))


@pytest.fixture
def sigterm_kept() -> Iterator[None]:
    """The benches set a SIGTERM handler (so their cleanup runs): pytest's own is put back."""
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, handler)
