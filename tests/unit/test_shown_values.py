"""A value someone gave, named in an error message or a log line, cannot break the line, forge a second one, recolour
a terminal or make the line as long as itself (``registry.core.shown``): quoted as ``repr`` writes it when it holds a
character that is not printable, cut past 1,000 characters with its length said."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from starlette.requests import Request

from registry import cli
from registry.core.catalog import load_folder
from registry.core.errors import UnknownFeatureError
from registry.core.shown import shown
from registry.definition_store import DefinitionStore
from registry.plan import apply

FORGED = "a\nerror: forged\r\x1b[31m\x00\udcff"
SENT = FORGED.replace("\n", "").replace("\r", "")  # as a request's path holds it (a URL has no line break)


def test_a_value_is_written_as_it_is_quoted_when_unprintable_and_cut_when_long() -> None:
    assert shown("user.txn_count_1h") == "user.txn_count_1h"
    assert shown(FORGED) == repr(FORGED) and shown(FORGED).isprintable()
    long = shown("x" * 100_000)
    assert long == "x" * 1_000 + "...(100000 characters)"
    assert shown("\n" * 100_000).endswith("...(100000 characters)") and len(shown("\n" * 100_000)) < 2_100


def test_an_unknown_features_name_is_quoted_and_bounded() -> None:
    """The names were joined as given: an escape sequence reached the terminal of `registry.cli activate`, a line
    feed forged a second `error:` line, and a 100 KB name made a 100 KB message."""
    message = str(UnknownFeatureError("user", ["txn_count_1h", FORGED]))
    assert message == f"unknown feature(s) for entity type 'user': {FORGED!r}, txn_count_1h"
    assert len(str(UnknownFeatureError("user", ["n" * 100_000]))) < 1_100


def test_registry_cli_says_a_hostile_name_and_db_path_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = DefinitionStore(tmp_path / "d.db")
    apply(store, load_folder())
    assert cli.main(["--db", str(tmp_path / "d.db"), "activate", "user", "\x1b[31mred\nerror: forged", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "'\\x1b[31mred\\nerror: forged@v1'" in err, err
    db = str(tmp_path / "x\nerror: forged.db")
    assert cli.main(["--db", db, "list"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: --db {db!r}: "), err


def _request(path: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""})


def test_a_bugs_log_line_quotes_the_path_it_was_asked(caplog: pytest.LogCaptureFixture) -> None:
    """The path is decoded (%1B an escape, %00 NUL; Starlette's URL drops line feeds): the feature API's and the
    schema registry's bug lines wrote it as sent, so a client's path could recolour or blank a log reader's terminal
    after any 500."""
    from registry.schema_registry.api import _on_bug
    from serving.online.app import api_error

    with caplog.at_level(logging.ERROR):
        api_error(_request("/v1/features/" + FORGED), TypeError("bug"))
        asyncio.run(_on_bug(_request("/subjects/" + FORGED), TypeError("bug")))
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2 and all(line.isprintable() for line in lines), lines
    assert repr("/v1/features/" + SENT) in lines[0] and repr("/subjects/" + SENT) in lines[1]


def test_an_offline_commands_hostile_path_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--labels` and `--out` were written as given: a line feed in the name forged an `error:` line."""
    from serving.offline import historical

    store = DefinitionStore(tmp_path / "d.db")
    apply(store, load_folder())
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "d.db"))
    common = ["--entity-type", "user", "--entity-column", "user_id", "--features", "user.txn_count_1h"]
    for labels, out in (
        (tmp_path / "a\nerror: forged.parquet", tmp_path / "o.parquet"),
        (tmp_path / "l.parquet", tmp_path / "nowhere" / "b\nerror: forged"),
    ):
        assert historical.main(["--labels", str(labels), "--out", str(out), *common]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and "\\nerror: forged" in err, err
