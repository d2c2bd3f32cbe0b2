"""A command that only reads the definition store refuses a path that is not one, and creates nothing there
(README: `plan`, `list`, `gate`, `activate` and `activate-all` "refuse a definition store that does not exist (run
`python -m registry.cli apply` first, which creates it)"). Before, an empty file or another program's SQLite
database named by ``--db`` (or ``FS_DEFINITIONS_DB`` for statistics) was given the registry's tables and a WAL
journal, and the command went on over an empty catalog."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from registry import cli
from registry.access_store import AccessStore
from registry.core.catalog import load_folder
from registry.core.errors import DefinitionError
from registry.definition_store import DefinitionStore
from registry.plan import apply


def _empty(folder: Path) -> Path:
    path = folder / "empty.sqlite"
    path.touch()
    return path


def _foreign(folder: Path) -> Path:
    path = folder / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE iceberg_tables (x TEXT)")
    conn.commit()
    conn.close()
    return path


def _text(folder: Path) -> Path:
    path = folder / "notes.txt"
    path.write_text("not a database\n")
    return path


def _access_only(folder: Path) -> Path:
    path = folder / "tokens.db"
    AccessStore(path)  # the registry's file as `registry.access create-token` leaves it: no definitions yet
    return path


def _foreign_feature_versions(folder: Path) -> Path:
    """Another program's table named like the registry's: it was opened as a store (tables added, WAL switched on),
    then the read failed with a traceback ("no such column: spec")."""
    path = folder / "other_features.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE feature_versions (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO feature_versions VALUES (1, 'x')")
    conn.commit()
    conn.close()
    return path


_NOT_STORES: dict[str, Callable[[Path], Path]] = {
    "empty file": _empty,
    "another program's SQLite": _foreign,
    "another program's feature_versions table": _foreign_feature_versions,
    "a text file": _text,
    "tokens only": _access_only,
}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("make", _NOT_STORES.values(), ids=list(_NOT_STORES))
def test_existing_refuses_what_is_not_a_definition_store_and_changes_nothing(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    path = make(tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(DefinitionError, match=r"^--db .*: not a (usable )?definition store") as refused:
        DefinitionStore.existing(path, name=f"--db {path}")
    assert "\n" not in str(refused.value)
    assert _snapshot(tmp_path) == before  # no table, no WAL switch, no -wal/-shm file left


def test_existing_refuses_a_missing_file_or_a_folder_without_creating_one(tmp_path: Path) -> None:
    for path in (tmp_path / "none.db", tmp_path):
        with pytest.raises(DefinitionError, match=r"no definition store there; run `python -m registry\.cli apply`"):
            DefinitionStore.existing(path)
    assert list(tmp_path.iterdir()) == []


def test_existing_opens_a_registry(tmp_path: Path) -> None:
    apply(DefinitionStore(tmp_path / "d.db"), load_folder())
    assert {d.name for d in DefinitionStore.existing(tmp_path / "d.db").catalog().active()} >= {"txn_count_1h"}


@pytest.mark.parametrize("make", [_empty, _foreign], ids=["empty file", "another program's SQLite"])
@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["plan"],
        ["gate", "model.toml", "--no-schema-check"],
        ["activate", "user", "txn_count_1h", "1"],
        ["activate-all", "user.txn_count_1h@1"],
    ],
    ids=["list", "plan", "gate", "activate", "activate-all"],
)
def test_a_reading_command_refuses_a_file_that_is_not_a_registry(
    tmp_path: Path, make: Callable[[Path], Path], command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = make(tmp_path)
    before = _snapshot(tmp_path)
    assert cli.main(["--db", str(path), *command]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: --db {path}: not a definition store") and err.count("\n") == 1, err
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("make", [_empty, _foreign], ids=["empty file", "another program's SQLite"])
def test_statistics_refuses_a_definitions_db_that_is_not_a_registry(
    tmp_path: Path, make: Callable[[Path], Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pyiceberg.catalog.sql import SqlCatalog

    from serving.offline import statistics
    from sinks.iceberg.writer import ensure_table

    db_folder = tmp_path / "registry"
    db_folder.mkdir()
    path = make(db_folder)
    ensure_table(
        SqlCatalog("feature_store", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=(tmp_path / "wh").as_uri()), "fs"
    )
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(path))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    before = _snapshot(db_folder)
    assert statistics.main(["--since", "1h"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: FS_DEFINITIONS_DB={path}: not a definition store") and err.count("\n") == 1, err
    assert _snapshot(db_folder) == before
