"""Commands that read the offline table answer one ``error:`` line, never a traceback, before it exists."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from registry.definition_store import DefinitionStore
from serving.offline import promotion, statistics, training


@pytest.mark.parametrize(
    ("main", "argv"),
    [
        (promotion.main, ["user", "count_5m", "1", "--check"]),
        (promotion.main, ["user", "count_5m", "1"]),
        (statistics.main, ["--no-store"]),
        (
            training.main,
            [
                "build",
                "--labels",
                "labels.parquet",
                "--out",
                "out.parquet",
                "--entity-type",
                "user",
                "--entity-column",
                "user_id",
                "--features",
                "count_5m",
            ],
        ),
    ],
)
def test_no_offline_table_is_one_error_line(
    main: Callable[[list[str]], int],
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "definitions.db"))
    DefinitionStore(tmp_path / "definitions.db")  # the registry is there; the offline table is not
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert (
        err
        == "error: offline table fs.offline_feature_values does not exist: the job's client creates it before the job starts\n"
    )
