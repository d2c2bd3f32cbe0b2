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
