"""Backfill and promotion refusals (design §6 "a backfill or logic fix is a new version ... enforced by
`jobs.backfill` refusing the active version"; README: `--since` before `--until`; promotion: "a refused or failed
promotion (unknown version, a backfill that stopped short) leaves the active version as it was"): refused before any
job starts, one `error:` line, the serving pointer unmoved."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jobs import backfill
from registry.core.catalog import load_folder
from registry.core.errors import UnknownFeatureError
from registry.definition_store import DefinitionStore
from registry.plan import apply
from serving.offline import promotion


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DefinitionStore:
    store = DefinitionStore(tmp_path / "d.db")
    apply(store, load_folder())
    v1 = store.catalog().get("user", "txn_count_1h")
    store.register(v1.model_copy(update={"version": 2, "ttl": timedelta(hours=5)}))
    monkeypatch.setenv("FS_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "d.db"))

    def no_job(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a refused backfill must start no job")

    monkeypatch.setattr(subprocess, "Popen", no_job)
    return store


@pytest.mark.parametrize(
    "refs",
    ["user.txn_count_1h@1", "user.txn_count_1h@v1", "user.txn_count_1h@2,user.txn_count_1h@1"],
)
def test_the_active_version_is_refused_in_any_spelling_and_list(
    store: DefinitionStore, capsys: pytest.CaptureFixture[str], refs: str
) -> None:
    assert backfill.main([refs]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "is the active version: backfill into a new version" in err
    assert len(err.strip().splitlines()) == 1
    assert store.catalog().get("user", "txn_count_1h").version == 1


def test_an_unknown_version_is_refused_before_a_job(store: DefinitionStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert backfill.main(["user.txn_count_1h@9"]) == 1
    assert capsys.readouterr().err == "error: unknown feature(s) for entity type 'user': txn_count_1h@v9\n"


@pytest.mark.parametrize(
    ("since", "until"),
    [("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"), ("1767225600001", "1767225600000")],
)
def test_an_empty_or_reversed_range_is_a_usage_error(
    store: DefinitionStore, capsys: pytest.CaptureFixture[str], since: str, until: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        backfill.main(["user.txn_count_1h@2", "--events", "x.parquet", "--since", since, "--until", until])
    assert exited.value.code == 2
    assert "--since must be before --until" in capsys.readouterr().err


def test_promoting_an_unknown_version_leaves_the_active_one(store: DefinitionStore) -> None:
    with pytest.raises(UnknownFeatureError):
        promotion.promote(store, None, "user", "txn_count_1h", 9)  # type: ignore[arg-type]
    assert store.catalog().get("user", "txn_count_1h").version == 1
