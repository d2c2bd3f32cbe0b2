"""Audit of the training CLI's lineage lookups (docs/design.md §9 "Lineage"; README "Training sets"): `--id` is a
training set's id whatever text it is, an empty one included: a set not recorded is one `error:` line, exit 1, as for
any other id (`show --id ''` listed the links of no model and exited 0; `rebuild --id ''` was an AttributeError
traceback; `show --id '' --model-version 7` ignored the version)."""

from __future__ import annotations

from typing import Any

import pytest

from registry.core.catalog import FeatureCatalog
from tests.unit.test_training_sets import Row, built, catalog
from tests.unit.test_training_sets_cli import _cli_environment

__all__ = ["built", "catalog"]  # the fixtures, used by name


def test_show_of_an_empty_id_says_no_such_training_set(
    tmp_path: Any,
    built: tuple[Any, list[Row], list[tuple[str, int]]],
    catalog: FeatureCatalog,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from serving.offline import training

    _cli_environment(built, catalog, tmp_path, monkeypatch)
    capsys.readouterr()
    assert training.main(["show", "--id", ""]) == 1
    out = capsys.readouterr()
    assert out.out == "" and out.err == "error: no training set '' is recorded\n"


def test_rebuild_of_an_empty_id_is_one_error_line(
    tmp_path: Any,
    built: tuple[Any, list[Row], list[tuple[str, int]]],
    catalog: FeatureCatalog,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from serving.offline import training

    _cli_environment(built, catalog, tmp_path, monkeypatch)
    capsys.readouterr()
    assert training.main(["rebuild", "--id", "", "--out", str(tmp_path / "again.parquet")]) == 1
    assert capsys.readouterr().err == "error: no training set '' is recorded\n"
    assert not (tmp_path / "again.parquet").exists()


def test_show_of_an_empty_id_refuses_a_model_version_it_would_ignore(capsys: pytest.CaptureFixture[str]) -> None:
    from serving.offline import training

    with pytest.raises(SystemExit) as exited:
        training.main(["show", "--id", "", "--model-version", "7"])
    assert exited.value.code == 2 and "--model-version goes with --model" in capsys.readouterr().err
