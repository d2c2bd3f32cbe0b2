"""Paths, settings and arguments a command names in its errors go through ``registry.core.shown``: one holding a line
feed or an escape is quoted as ``repr`` writes it (not only escaped by the last line's ``error_line``: a reader sees
where the name begins and ends), and an argument echoed back is cut past 1,000 characters."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from registry.core.catalog import load_folder
from registry.definition_store import DefinitionStore
from registry.plan import apply

HOSTILE = "x\x1b[31m\nerror: forged"


def _store(tmp_path: Path) -> Path:
    db = tmp_path / "d.db"
    apply(DefinitionStore(db), load_folder())
    return db


def _quoted_on_one_line(err: str, value: object) -> None:
    assert repr(str(value)) in err, err
    assert err.rstrip("\n").count("\n") == 0 and "\x1b" not in err, repr(err)


def test_the_followers_plan_and_state_dir_are_quoted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobs.follow import load_plan, main
    from registry.core.errors import FeatureStoreError

    state = tmp_path / HOSTILE
    state.mkdir()
    (state / "plan.json").write_text("{}")
    with pytest.raises(FeatureStoreError) as raised:
        load_plan(state)
    assert str(raised.value).startswith(f"{str(state / 'plan.json')!r} is not a follower's plan")
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(_store(tmp_path)))
    taken = tmp_path / f"file{HOSTILE}"
    taken.write_text("")  # a file where the state folder would be
    assert main(["--state-dir", str(taken)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: --state-dir {str(taken)!r}: cannot use it"), err
    _quoted_on_one_line(err, taken)


@pytest.mark.parametrize("command", ["follow", "batch_scoring", "feature_job"])
def test_the_definition_store_a_command_reads_is_quoted(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``DefinitionStore.existing(db, name=f"FS_DEFINITIONS_DB={db}")`` named the path as given."""
    from registry.core.errors import FeatureStoreError

    db = tmp_path / f"absent{HOSTILE}.db"
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    with pytest.raises(FeatureStoreError) as raised:
        if command == "follow":
            from jobs.follow import Follower
            from registry.core.settings import Settings

            Follower(Settings.from_env(), tmp_path, group_id="g", parallelism=1, metrics_port=0, bind_host="127.0.0.1")
        elif command == "batch_scoring":
            from serving.offline.batch_scoring import _definitions

            _definitions(db)
        else:
            from jobs.feature_job import main

            main([])
    assert str(raised.value).startswith(f"FS_DEFINITIONS_DB={str(db)!r}: "), raised.value


def test_plots_quotes_its_out_folder_and_statistics_its_metrics_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse's own usage error (a usage line, then one `error:` line) names the path quoted."""
    from serving.offline import plots, statistics

    out = tmp_path / f"out{HOSTILE}"
    out.write_text("")
    with pytest.raises(SystemExit):
        plots.main(["--out", str(out)])
    err = capsys.readouterr().err
    assert f"error: argument --out: {str(out)!r} is not a folder" in err, err
    folder = tmp_path / f"m{HOSTILE}"
    folder.mkdir()
    with pytest.raises(SystemExit):
        statistics.check_metrics_file(argparse.ArgumentParser(prog="p"), folder)
    assert f"error: argument --metrics-file: {str(folder)!r} is a directory" in capsys.readouterr().err


def test_migrate_quotes_its_definitions_db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sinks.cassandra.migrate import main

    db = tmp_path / f"absent{HOSTILE}.db"
    assert main(["--definitions-db", str(db)]) == 1
    err = capsys.readouterr().err
    assert err == f"error: --definitions-db {str(db)!r}: no definition store there\n", err


@pytest.mark.parametrize("stack", [False, True])
def test_fs_state_dir_is_quoted(stack: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loop = tmp_path / f"loop{HOSTILE}"
    os.symlink(loop, loop)  # cannot be resolved
    monkeypatch.setenv("FS_STATE_DIR", str(loop))
    with pytest.raises(SystemExit) as exited:
        if stack:
            from infra.settings import StackSettings

            StackSettings.from_env()
        else:
            from registry.core.settings import settings_for_command

            settings_for_command()
    assert str(exited.value.code).startswith(f"error: FS_STATE_DIR={str(loop)!r} is not a folder"), exited.value.code


def test_an_argument_echoed_back_is_cut() -> None:
    from registry.core.arguments import feature_names, location, text

    for parse, raw in ((feature_names, "a,," + "x" * 100_000), (location, " " * 100_000), (text, "\udcff" * 100_000)):
        with pytest.raises(argparse.ArgumentTypeError) as raised:
            parse(raw)
        said = str(raised.value)
        assert said.endswith(f"...({len(raw)} characters)"), said[-100:]
        assert len(said) < (7_100 if parse is text else 1_200)  # 1,000 characters as repr writes them
    with pytest.raises(argparse.ArgumentTypeError, match=r"none empty, not 'a,,b'$"):
        feature_names("a,,b")  # a short one as before, quoted


def test_activate_all_cuts_a_long_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from registry import cli

    ref = "r" * 100_000
    assert cli.main(["--db", str(_store(tmp_path)), "activate-all", ref]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {'r' * 1_000!r}...(100000 characters) is not a versioned feature reference like " + (
        "user.txn_count_1h@2\n"
    ), err[-200:]
