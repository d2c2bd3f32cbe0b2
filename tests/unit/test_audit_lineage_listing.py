"""Audit of discovery from the command line (docs/design.md §9 "Lineage"; README: a command's error is one `error:`
line, exit 1): `registry.cli list` whose reader stops reading (`list | head -1`) ends as the training CLI's
`show` does, with one error line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from registry.core.catalog import load_folder
from registry.definition_store import DefinitionStore
from registry.plan import apply

_REPO = Path(__file__).resolve().parents[2]


def test_list_into_a_closed_pipe_is_one_error_line_not_a_traceback(tmp_path: Path) -> None:
    db = tmp_path / "definitions.db"
    apply(DefinitionStore(db), load_folder())
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written: every write is EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "registry.cli", "--db", str(db), "list"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            cwd=_REPO,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
