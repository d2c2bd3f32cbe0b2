"""The offline commands that read the registry (batch scoring, promotion, parity, plots) with ``FS_DEFINITIONS_DB``
pointing where there is no definition store (a typo, an unset state folder): one ``error:`` line naming it, exit 1,
and nothing created there, as ``registry.cli`` refuses a store that is not there for its reads and moves (README,
"Serving log and parity"); they made an empty store (and its folders) and then answered "unknown feature(s)", or
a parity run with nothing to compare. Parity on a catalog without the offline table leaves the catalog as it was
(it created the serving log's table before finding the offline one missing)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from jobs import backfill
from serving.offline import batch_scoring, historical, parity, plots, promotion, retention, statistics, training
from sinks.iceberg.writer import ensure_table

COMMANDS: dict[str, tuple[Callable[[list[str]], int], list[str]]] = {
    "batch_scoring": (
        batch_scoring.main,
        ["--entity-type", "user", "--features", "txn_count_1h", "--as-of", "1", "--out", "{tmp}/v.parquet"],
    ),
    "promotion_check": (promotion.main, ["user", "txn_count_1h", "1", "--check"]),
    "promotion": (promotion.main, ["user", "txn_count_1h", "1"]),
    "parity": (parity.main, ["--since", "1h", "--no-store"]),
    "plots": (plots.main, ["--since", "1h", "--out", "{tmp}/plots"]),
    "training_build": (
        training.main,
        [
            "build",
            "--labels",
            "{tmp}/labels.parquet",
            "--out",
            "{tmp}/t.parquet",
            "--entity-type",
            "user",
            "--entity-column",
            "user_id",
            "--features",
            "txn_count_1h",
        ],
    ),
    "training_rebuild": (training.main, ["rebuild", "--id", "x", "--out", "{tmp}/t.parquet"]),
    "historical": (
        historical.main,
        [
            "--labels",
            "{tmp}/labels.parquet",
            "--out",
            "{tmp}/h.parquet",
            "--entity-type",
            "user",
            "--entity-column",
            "user_id",
            "--features",
            "txn_count_1h",
        ],
    ),
    "backfill": (backfill.main, ["user.txn_count_1h@2"]),
}


def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db: Path) -> None:
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_definition_store_that_is_not_there_is_named_and_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    db = tmp_path / "typo" / "definitions.db"
    _env(monkeypatch, tmp_path, db)
    catalog = SqlCatalog("feature_store", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=(tmp_path / "wh").as_uri())
    ensure_table(catalog, "fs")
    pq.write_table(
        pa.table({"user_id": ["u1"], "event_timestamp": pa.array([0], pa.timestamp("ms", "UTC"))}),
        tmp_path / "labels.parquet",
    )
    main, argv = COMMANDS[command]
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 1
    err = capsys.readouterr().err
    assert not (tmp_path / "typo").exists(), "a store was created where none was"
    assert err.count("\n") == 1, err
    if command == "plots":  # a read of stored results: nothing stored, nothing created
        assert err.startswith("error: nothing stored"), err
    else:
        assert err.startswith(f"error: FS_DEFINITIONS_DB={db}: no definition store there"), err


@pytest.mark.parametrize("command", sorted({*COMMANDS, "statistics", "retention"} - {"plots"}))
def test_on_a_fresh_state_the_missing_registry_is_named_before_the_catalog_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """No registry and no catalog yet (a fresh FS_STATE_DIR, a typo): the registry is what is named, and the
    Iceberg catalog is not opened, so neither its file nor its warehouse is made (the offline table's absence was
    named first, after the catalog's files had been created)."""
    db = tmp_path / "typo" / "definitions.db"
    _env(monkeypatch, tmp_path, db)
    pq.write_table(
        pa.table({"user_id": ["u1"], "event_timestamp": pa.array([0], pa.timestamp("ms", "UTC"))}),
        tmp_path / "labels.parquet",
    )
    main, argv = {
        **COMMANDS,
        "statistics": (statistics.main, ["--since", "1h", "--no-store"]),
        "retention": (retention.main, ["--dry-run"]),
    }[command]
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "FS_DEFINITIONS_DB" in err, err
    assert not (tmp_path / "typo").exists(), "a store was created where none was"
    assert not (tmp_path / "cat.db").exists() and not (tmp_path / "wh").exists(), "the catalog was opened"


def test_parity_without_the_offline_table_creates_no_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from registry.definition_store import DefinitionStore

    _env(monkeypatch, tmp_path, tmp_path / "definitions.db")
    DefinitionStore(tmp_path / "definitions.db")  # the registry there: the offline table is what is missing
    catalog = SqlCatalog("feature_store", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=(tmp_path / "wh").as_uri())
    assert parity.main(["--since", "1h", "--no-store"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: offline table fs.offline_feature_values does not exist") and err.count("\n") == 1
    assert catalog.list_tables("fs") == [] if ("fs",) in catalog.list_namespaces() else True


class _Slept(Exception):
    pass


def test_parity_every_takes_any_duration_it_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--every 999999999d`` was accepted, printed one report, then ended in ``OverflowError`` (one
    ``time.sleep`` call holds at most about 292 years): it waits instead, as any positive duration does."""
    from registry.definition_store import DefinitionStore

    _env(monkeypatch, tmp_path, tmp_path / "definitions.db")
    DefinitionStore(tmp_path / "definitions.db")
    ensure_table(
        SqlCatalog("feature_store", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=(tmp_path / "wh").as_uri()), "fs"
    )
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        if seconds * 1e9 >= 2**63:  # what the platform's time.sleep refuses
            raise OverflowError("timestamp out of range for platform time_t")
        slept.append(seconds)
        if len(slept) == 3:
            raise _Slept

    monkeypatch.setattr(parity.time, "sleep", sleep)
    with pytest.raises(_Slept):
        parity.main(["--since", "1h", "--no-store", "--every", "999999999d"])
    assert capsys.readouterr().out.count('"since"') == 1  # one report, then waiting
