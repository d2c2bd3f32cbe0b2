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
