"""``python -m serving.offline.statistics`` on a misspelt ``--entity-type``: one ``error:`` line naming it, exit 1.
Before, it printed (and stored) an empty offline report, exit 0: a typo looked like a feature set with no data."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyiceberg.catalog.sql import SqlCatalog

from registry.core.catalog import load_folder
from registry.definition_store import DefinitionStore
from registry.plan import apply
from serving.offline import statistics
from sinks.iceberg.writer import ensure_table


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
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


def test_an_unknown_entity_type_is_one_error_line(environment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert statistics.main(["--entity-type", "usr", "--no-store"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: entity type 'usr' has no registered features (registered: ")
    assert "user" in captured.err and captured.err.count("\n") == 1


def test_a_known_entity_type_reports(environment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert statistics.main(["--entity-type", "user", "--no-store"]) == 0
    assert '"hourly"' in capsys.readouterr().out


@pytest.mark.parametrize("command", [["serving.offline.statistics"], ["serving.offline.parity", "--since", "1h"]])
def test_a_report_into_a_closed_pipe_is_one_error_line_not_a_traceback(environment: Path, command: list[str]) -> None:
    """``statistics ... | head -1`` (or parity's) on a report longer than the pipe holds: a BrokenPipeError traceback,
    exit 1, where ``registry.cli list`` answers one ``error:`` line. The reader here is gone before anything is
    written."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [sys.executable, "-m", *command, "--no-store"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
            timeout=120,
            check=False,
        )
    finally:
        os.close(write)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "Broken pipe" in done.stderr


@pytest.mark.parametrize("command", [["serving.offline.statistics"], ["serving.offline.parity", "--since", "1h"]])
def test_ctrl_c_stops_every_with_one_line_and_exit_130(environment: Path, command: list[str]) -> None:
    """``--every`` repeats until stopped; Ctrl-C, the way to stop it, was a KeyboardInterrupt traceback (exit -2)."""
    import signal
    import subprocess
    import sys
    import time

    running = subprocess.Popen(
        [sys.executable, "-m", *command, "--no-store", "--every", "1h"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a shell's & ignores SIGINT
    )
    try:
        assert running.stdout is not None
        assert running.stdout.readline().startswith("{")  # the first report is out: it waits for the next
        time.sleep(0.5)
        running.send_signal(signal.SIGINT)
        _, err = running.communicate(timeout=60)
    finally:
        if running.poll() is None:
            running.kill()
            running.wait()
    assert running.returncode == 130, err
    assert err == "interrupted (Ctrl-C)\n", err
