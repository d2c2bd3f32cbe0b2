"""The default catalog of a state folder whose path holds ``?`` or ``%``: SQLAlchemy ends a URI's path at ``?``
and decodes ``%xx``, so the bare path put the catalog of ``st?x`` in a file ``st`` beside it, one that ``st?y``
shared (a command on an empty state folder read another's offline table), and ``st%41b`` opened ``stAb``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from registry.core.settings import Settings, absolute, sqlite_uri
from sinks.factory import connect_iceberg


@pytest.mark.parametrize("name", ["st?x", "st%41b", "st #1?a=b&c", "é%3F"])
def test_the_catalog_of_a_state_folder_is_inside_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    state = tmp_path / name
    monkeypatch.setenv("FS_STATE_DIR", str(state))
    monkeypatch.delenv("FS_ICEBERG_CATALOG_URI", raising=False)
    monkeypatch.delenv("FS_ICEBERG_WAREHOUSE", raising=False)
    connect_iceberg(Settings.from_env()).create_namespace("ns")
    assert (state / "iceberg" / "catalog.db").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_two_state_folders_that_differ_after_a_question_mark_share_no_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FS_ICEBERG_CATALOG_URI", raising=False)
    monkeypatch.delenv("FS_ICEBERG_WAREHOUSE", raising=False)
    monkeypatch.setenv("FS_STATE_DIR", str(tmp_path / "st?x"))
    connect_iceberg(Settings.from_env()).create_namespace("only_in_x")
    monkeypatch.setenv("FS_STATE_DIR", str(tmp_path / "st?y"))
    assert connect_iceberg(Settings.from_env()).list_namespaces() == []


def test_a_relative_catalog_is_made_absolute_under_a_folder_with_a_question_mark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "w?d%41"
    here.mkdir()
    monkeypatch.chdir(here)
    settings = absolute(Settings(iceberg_catalog_uri="sqlite:///c.db", iceberg_warehouse=str(here / "wh")))
    assert settings.iceberg_catalog_uri == sqlite_uri(here / "c.db")
    connect_iceberg(settings).create_namespace("ns")
    assert (here / "c.db").is_file() and os.listdir(tmp_path) == ["w?d%41"]
