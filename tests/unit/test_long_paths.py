"""A path longer than the system takes (ENAMETOOLONG from the first `stat`) is one `error:` line, exit 1, not a
traceback: `jobs.feature_job --events`, `sinks.cassandra.migrate --definitions-db`, `jobs.follow --state-dir` and
`registry.cli` with such an `FS_DEFINITIONS_DB`."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs import follow
from jobs.events_table import read_raw
from registry import cli
from registry.core.errors import EventsTableError
from sinks.cassandra import migrate

LONG = "x" * 300  # a name past NAME_MAX (255)


def test_an_events_table_path_too_long_is_named() -> None:
    with pytest.raises(EventsTableError, match=f"events table '{LONG}': File name too long"):
        read_raw(LONG, ["user_id"], lambda: None)


def test_a_definition_store_path_too_long_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert migrate.main(["--definitions-db", str(tmp_path / LONG)]) == 1
    assert capsys.readouterr().err.endswith(": File name too long\n")
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / LONG))
    assert cli.main(["list"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith(": File name too long\n")


def test_a_state_dir_too_long_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry.definition_store import DefinitionStore

    DefinitionStore(tmp_path / "d.db")  # a store to follow: the state directory is what is refused
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "d.db"))
    assert follow.main(["--state-dir", str(tmp_path / LONG)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read it (File name too long)" in err
