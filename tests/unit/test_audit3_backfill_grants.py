"""A backfill's features are checked together (docs/design.md §9 "Governance": "A command's features are checked
together ...: a feature read directly and as a request-time feature's input is one read (one audit record), and the
refusal names every feature without a grant"): a backfill of several versions was checked one version at a time, so
its refusal named only the first version without a grant, and a version named twice was audited twice."""

from __future__ import annotations

import sqlite3
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jobs import backfill
from registry.access_store import AccessStore
from registry.core.catalog import load_folder
from registry.definition_store import DefinitionStore
from registry.plan import apply


@pytest.fixture
def restricted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two features with a restricted version 2 each (owned by risk-team), auth on, a token of another team."""
    db = tmp_path / "d.db"
    store = DefinitionStore(db)
    apply(store, load_folder())
    for name in ("txn_count_1h", "txn_amount_sum_1h"):
        v1 = store.catalog().get("user", name)
        store.register(v1.model_copy(update={"version": 2, "ttl": timedelta(hours=5), "sensitivity": "restricted"}))
    monkeypatch.setenv("FS_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    monkeypatch.setenv("FS_AUTH", "on")
    monkeypatch.setenv("FS_TOKEN", AccessStore(db).issue("scorer", "ml-team"))

    def no_job(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a refused backfill must start no job")

    monkeypatch.setattr(subprocess, "Popen", no_job)
    return db


def _audited(db: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute("SELECT target, outcome FROM audit_log WHERE action = 'backfill' ORDER BY target"))


def test_the_refusal_names_every_version_without_a_grant(restricted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert backfill.main(["user.txn_count_1h@2,user.txn_amount_sum_1h@2"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert "user/txn_count_1h@2" in err and "user/txn_amount_sum_1h@2" in err, err
    assert _audited(restricted) == [("user/txn_amount_sum_1h@2", 403), ("user/txn_count_1h@2", 403)]


def test_a_version_named_twice_is_one_read(
    restricted: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FS_TOKEN", AccessStore(restricted).issue("analyst", "risk-team"))  # the owning team
    # the active version (v1) stops it after the check, before any job
    assert backfill.main(["user.txn_count_1h@2,user.txn_count_1h@v2,user.txn_count_1h@1"]) == 1
    assert "is the active version" in capsys.readouterr().err
    assert _audited(restricted) == [("user/txn_count_1h@2", 200)]
