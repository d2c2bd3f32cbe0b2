"""A command whose stdout cannot encode what it prints (``PYTHONIOENCODING=ascii``): the characters are written as
backslash escapes and the command's exit status is its own. `registry.cli list` of a definition owned by "équipe"
and `training link-model --model modèle` ended in ``UnicodeEncodeError`` and exit 1 after their work was done."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry.core.shown import flushed
from registry.definition_store import DefinitionStore
from tests.unit.conftest import build_definition


def test_flushed_writes_what_an_ascii_stdout_cannot_encode_as_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="ascii")
    monkeypatch.setattr(sys, "stdout", stdout)

    def command(argv: list[str] | None) -> int:
        print("model modèle 𝄞")
        return 0

    assert flushed(command, None) == 0
    assert raw.getvalue() == b"model mod\\xe8le \\U0001d11e\n"


def test_registry_list_on_an_ascii_stdout_exits_0(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    DefinitionStore(db).register(build_definition(owner="équipe-risque"))
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    run = subprocess.run(
        [sys.executable, "-m", "registry.cli", "--db", str(db), "list"], capture_output=True, env=env, timeout=120
    )
    assert run.returncode == 0, run.stderr.decode()
    assert b"owner \\xe9quipe-risque" in run.stdout, run.stdout
