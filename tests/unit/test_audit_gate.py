"""Audit of the deployment gate (docs/design.md §6 and §9): a schema registry that hangs, trickles its answer,
does not speak HTTP or cuts its answer short is one named `error:` line, soon; a deprecation date is a UTC date."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from registry import cli, gate
from registry.core.catalog import load_folder
from registry.definition_store import DefinitionStore
from registry.gate import ModelManifest, PinnedFeature, check_model
from registry.plan import apply
from tests.unit.conftest import answer_server, http_answer

MODEL = 'model = "fraud"\n[[features]]\nentity = "user"\nname = "txn_count_1h"\nversion = 1\n'


@pytest.fixture
def serve() -> Iterator[Callable[..., int]]:
    with ExitStack() as servers:
        yield lambda answer, byte_every_s=0.0: servers.enter_context(answer_server(answer, byte_every_s=byte_every_s))


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "d.db"
    apply(DefinitionStore(path), load_folder())
    (tmp_path / "m.toml").write_text(MODEL)
    return str(path)


def _gate(db: str, tmp_path: Path, port: int) -> tuple[int, float]:
    started = time.monotonic()
    code = cli.main(["--db", db, "gate", str(tmp_path / "m.toml"), "--schema-registry", f"http://127.0.0.1:{port}"])
    return code, time.monotonic() - started


def test_gate_a_registry_trickling_its_answer_is_a_named_failure_within_the_bound(
    db: str,
    tmp_path: Path,
    serve: Callable[..., int],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """urllib's timeout bounds each socket operation: a registry sending a byte every 0.1 s held the gate for as
    long as its answer lasted (here 20 s; a real trickle, indefinitely). The whole answer is bounded now."""
    monkeypatch.setattr(gate, "REGISTRY_ANSWER_S", 1.0)
    body = b'{"subject": "' + b"x" * 150 + b'"}'
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    port = serve(answer, byte_every_s=0.1)
    code, took = _gate(db, tmp_path, port)
    err = capsys.readouterr().err
    assert code == 1 and took < 6, (took, err)
    assert err == f"error: schema registry http://127.0.0.1:{port} unreachable: no whole answer within 1 s\n"


def test_gate_a_hung_registry_is_a_named_failure_within_the_bound(
    db: str, tmp_path: Path, silent_port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(gate, "REGISTRY_ANSWER_S", 1.0)
    code, took = _gate(db, tmp_path, silent_port)
    err = capsys.readouterr().err
    assert code == 1 and took < 4, (took, err)  # the 1 s bound set here (the default is 5 s)
    assert (
        err.startswith(f"error: schema registry http://127.0.0.1:{silent_port} unreachable: ") and err.count("\n") == 1
    ), err


@pytest.mark.parametrize(
    "answer",
    [
        b"hello there\r\nsecond line\r\n\r\n",  # another protocol on that port: http.client's BadStatusLine
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b'{"schema"',  # closed mid-body: IncompleteRead
    ],
    ids=["not-http", "cut-short"],
)
def test_gate_an_answer_that_is_not_http_or_is_cut_short_is_one_error_line(
    db: str, tmp_path: Path, serve: Callable[..., int], capsys: pytest.CaptureFixture[str], answer: bytes
) -> None:
    """Both were a traceback (http.client's exceptions are not OSErrors)."""
    port = serve(answer)
    code, _ = _gate(db, tmp_path, port)
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"error: schema registry http://127.0.0.1:{port}") and err.count("\n") == 1, err
    assert "card_transactions-value" in err and "Traceback" not in err


@pytest.fixture
def local_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    def set_zone(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    yield set_zone
    monkeypatch.undo()
    time.tzset()


def test_gate_a_deprecation_date_is_judged_in_utc_whatever_the_local_zone(
    tmp_path: Path, local_zone: Callable[[str], None]
) -> None:
    """The gate read today's date in the machine's zone: 14 hours ahead of UTC a feature deprecated after today
    (UTC) was refused, 12 hours behind one deprecated after yesterday passed (one or the other at any hour)."""
    store = DefinitionStore(tmp_path / "d.db")
    apply(store, load_folder())
    count = store.catalog().get("user", "txn_count_1h")
    model = ModelManifest(model="fraud", features=(PinnedFeature(entity="user", name="txn_count_1h", version=1),))
    today = datetime.now(UTC).date()

    store.register(count.model_copy(update={"status": "deprecated", "deprecated_after": today}))
    local_zone("Etc/GMT-14")  # POSIX sign: UTC+14
    assert check_model(model, store.catalog(), None) == []

    store.register(count.model_copy(update={"status": "deprecated", "deprecated_after": today - timedelta(days=1)}))
    local_zone("Etc/GMT+12")  # UTC-12
    yesterday = (today - timedelta(days=1)).isoformat()
    assert check_model(model, store.catalog(), None) == [f"user.txn_count_1h@v1: deprecated since {yesterday}"]


def test_gate_only_the_registrys_own_404_means_no_schema(
    db: str, tmp_path: Path, serve: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    """A 404 with Confluent's 40401 (no such subject) is the registry saying the subject has no schema: the pin is
    refused as a problem; a 404 of another server (a wrong URL, a proxy's page) is an error naming the registry."""
    missing = serve(http_answer(b'{"error_code": 40401, "message": "Subject not found"}', status=b"404 Not Found"))
    code, _ = _gate(db, tmp_path, missing)
    captured = capsys.readouterr()
    assert code == 1 and "card_transactions-value" in captured.out + captured.err
    assert not captured.err.startswith("error: schema registry"), captured.err
    for body, kind in ((b"<html>Not Found</html>", b"text/html"), (b'{"error_code": 404}', b"application/json")):
        other = serve(http_answer(body, status=b"404 Not Found", content_type=kind))
        code, _ = _gate(db, tmp_path, other)
        err = capsys.readouterr().err
        assert code == 1 and err.startswith(f"error: schema registry http://127.0.0.1:{other}: HTTP 404 for "), err
        assert "not the registry's" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("url", ["http://a..b", f"http://{'x' * 300}", "http://\udcff"])
def test_gate_a_registry_host_the_resolver_cannot_encode_is_a_named_failure(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    """An empty or overlong label (the idna codec) or a byte that is not text passed the URL check and was a
    UnicodeError traceback (found by a CLI fuzzer)."""
    code = cli.main(["--db", db, "gate", str(tmp_path / "m.toml"), "--schema-registry", url])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: schema registry ") and " unreachable: " in err, err
    assert err.count("\n") == 1
