"""The command-line tools' documented contract (README, docs/design.md), each claim as written there."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from registry import cli
from registry.core.catalog import load_folder
from registry.definition_store import DefinitionStore
from registry.plan import apply
from tests.unit.conftest import answer_server, http_answer

MODEL = 'model = "fraud"\n[[features]]\nentity = "user"\nname = "txn_count_1h"\nversion = 1\n'


@pytest.fixture
def serve() -> Iterator[Callable[[bytes], int]]:
    with ExitStack() as servers:
        yield lambda answer: servers.enter_context(answer_server(answer))


def _gate_with_registry(tmp_path: Path, port: int) -> int:
    db = tmp_path / "d.db"
    apply(DefinitionStore(db), load_folder())
    (tmp_path / "m.toml").write_text(MODEL)
    return cli.main(
        ["--db", str(db), "gate", str(tmp_path / "m.toml"), "--schema-registry", f"http://127.0.0.1:{port}"]
    )


@pytest.mark.parametrize(
    "answer",
    [
        http_answer(b'{"error_code": 40401, "message": "Subject not found"}', status=b"404 Not Found"),
        # the latest schema lacks a field the reader needs (no default): the reader cannot read it
        http_answer(
            json.dumps(
                {
                    "schema": json.dumps(
                        {"type": "record", "name": "card_transaction", "fields": [{"name": "x", "type": "int"}]}
                    )
                }
            ).encode()
        ),
    ],
    ids=["no-schema", "unreadable"],
)
def test_gate_a_schema_refusal_names_the_pin_with_its_version(
    tmp_path: Path, serve: Callable[[bytes], int], capsys: pytest.CaptureFixture[str], answer: bytes
) -> None:
    """design §9 (the deployment gate): each refusal is one line on stderr, ``REFUSED: <entity>.<name>@v<N>:
    <reason>``, the schema's refusals included (they named ``user.txn_count_1h`` without the pinned version)."""
    code = _gate_with_registry(tmp_path, serve(answer))
    err = capsys.readouterr().err
    assert code == 1, err
    lines = err.splitlines()
    assert lines and all(line.startswith("REFUSED: user.txn_count_1h@v1: ") for line in lines), err


@pytest.fixture
def offline_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry and an empty offline table of this test's own (no service is reached)."""
    from pyiceberg.catalog.sql import SqlCatalog

    from sinks.iceberg.writer import ensure_table

    db = tmp_path / "definitions.db"
    apply(DefinitionStore(db), load_folder())
    ensure_table(
        SqlCatalog("feature_store", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=(tmp_path / "wh").as_uri()), "fs"
    )
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    return db


def _into_closed_pipe(
    monkeypatch: pytest.MonkeyPatch, main: Callable[[list[str]], int], argv: list[str]
) -> tuple[int, str]:
    """``main(argv)`` with stdout a pipe whose reader is gone (``| head -1`` after its line): exit code, stderr."""
    import io
    import os
    import sys

    read, write = os.pipe()
    os.close(read)
    out = os.fdopen(write, "w")
    err = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    try:
        code = main(argv)
    finally:
        monkeypatch.undo()
    try:  # what the command left unwritten: in a real process, the interpreter's last flush, a traceback
        out.close()
    except BrokenPipeError:
        err.write("Traceback (at exit): BrokenPipeError\n")
    return code, err.getvalue()


def _one_error_line(code: int, err: str) -> None:
    assert code == 1, err
    assert "Traceback" not in err and err.startswith("error: ") and err.count("\n") == 1, err
    assert "Broken pipe" in err, err


def test_retention_report_into_a_closed_pipe_is_one_error_line(
    offline_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``retention --dry-run | head -1``: its JSON report into a pipe whose reader is gone was a BrokenPipeError
    traceback; it is one ``error:`` line, exit 1, as parity's and statistics' reports (README)."""
    from serving.offline import retention

    _one_error_line(*_into_closed_pipe(monkeypatch, retention.main, ["--dry-run"]))


def test_promotion_check_into_a_closed_pipe_is_one_error_line(
    offline_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``promotion ... --check | head -1``: one ``error:`` line, exit 1 (it was a traceback)."""
    from serving.offline import promotion

    _one_error_line(*_into_closed_pipe(monkeypatch, promotion.main, ["user", "txn_count_1h", "1", "--check"]))


def test_erasure_report_into_a_closed_pipe_is_one_error_line(
    offline_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``erasure ... | head -1``: the entity erased, its report into a closed pipe is one ``error:`` line, exit 1
    (it was a traceback). The stores are stand-ins: only the command's printing is judged."""
    import sinks.factory
    from serving.offline import erasure

    class _Cluster:
        def shutdown(self) -> None:
            pass

    report = erasure.ErasureReport(
        entity_type="user", entity_id="u1", erased_at="2026-01-01T00:00:00Z", requested_by="cli"
    )
    monkeypatch.setattr(sinks.factory, "connect_existing_keyspace", lambda settings, **_: (_Cluster(), object()))
    monkeypatch.setattr(erasure, "erase", lambda *args, **kwargs: report)
    _one_error_line(*_into_closed_pipe(monkeypatch, erasure.main, ["--entity-type", "user", "--entity-id", "u1"]))


def test_plots_paths_into_a_closed_pipe_are_one_error_line(
    offline_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``plots ... | head -1``: the PNGs written, their paths into a closed pipe are one ``error:`` line, exit 1
    (it was a traceback). The drawing is a stand-in: only the command's printing is judged."""
    from serving.offline import plots

    monkeypatch.setattr(plots, "tables_of", lambda db: set(plots.TABLES))
    monkeypatch.setattr(plots, "render_all", lambda *args, **kwargs: [tmp_path / "user.txn_count_1h.v1.png"])
    _one_error_line(*_into_closed_pipe(monkeypatch, plots.main, ["--out", str(tmp_path / "plots")]))


@pytest.mark.parametrize("command", [["list-tokens"], ["list-grants"]])
def test_registry_access_listing_into_a_closed_pipe_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """``registry.access list-tokens | head -1``: one ``error:`` line, exit 1, as ``registry.cli list`` answers it
    (it was a BrokenPipeError traceback)."""
    from registry import access

    db = str(tmp_path / "d.db")
    assert access.main(["--db", db, "create-token", "--principal", "risk-team"]) == 0
    assert access.main(["--db", db, "grant", "--owner", "risk-team", "--to", "team-b"]) == 0
    _one_error_line(*_into_closed_pipe(monkeypatch, access.main, ["--db", db, *command]))


def test_infra_status_whose_stdout_reader_is_gone_ends_with_one_error_line(tmp_path: Path) -> None:
    """``python -m infra status | true`` ended in a BrokenPipeError traceback (found by a CLI fuzzer; so did
    ``sinks.cassandra.migrate``, whose entry point is wrapped the same way); as every other command, one ``error:``
    line, exit 1."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)
    env = {**os.environ, "FS_STATE_DIR": str(tmp_path / "state")}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "infra", "status"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=60,
        )
    finally:
        os.close(write)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert "Broken pipe" in done.stderr, done.stderr
