"""Audit of the training-set CLI's lineage commands (README "Training sets, batch scoring, promotion"): `show` and
`link-model` on a FS_DEFINITIONS_DB that holds no definition store answer one `error:` line naming it, exit 1,
and create nothing there, as `build` and `rebuild` do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from serving.offline import training


def _folder(tmp_path: Path) -> Path:
    return tmp_path


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "no" / "such" / "definitions.db"


def _not_sqlite(tmp_path: Path) -> Path:
    (tmp_path / "garbage.db").write_bytes(b"not a database, not even close" * 10)
    return tmp_path / "garbage.db"


def _empty(tmp_path: Path) -> Path:
    (tmp_path / "empty.db").touch()
    return tmp_path / "empty.db"


@pytest.mark.parametrize(
    "where", [_folder, _missing, _not_sqlite, _empty], ids=["folder", "missing", "not-sqlite", "empty"]
)
@pytest.mark.parametrize(
    "argv",
    [
        ["show", "--id", "0123456789abcdef"],
        ["show", "--model", "fraud"],
        ["link-model", "--id", "0123456789abcdef", "--model", "fraud", "--model-version", "7"],
    ],
    ids=["show-id", "show-model", "link-model"],
)
def test_lineage_commands_refuse_a_path_with_no_definition_store_and_create_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    where: Callable[[Path], Path],
    argv: list[str],
) -> None:
    """A folder or a file that is not SQLite was a traceback; a missing path was created (folders and a new
    SQLite file) and `show --model` answered nothing, exit 0; an empty file was turned into a database."""
    db = where(tmp_path)
    before = sorted((p.relative_to(tmp_path), p.stat().st_size) for p in tmp_path.rglob("*"))
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    assert training.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: FS_DEFINITIONS_DB={db}") and err.count("\n") == 1, err
    assert sorted((p.relative_to(tmp_path), p.stat().st_size) for p in tmp_path.rglob("*")) == before
