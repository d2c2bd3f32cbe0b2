"""Audit (H3) of the definition-folder workflow through ``python -m registry.cli``: ``plan`` and ``apply`` of one
folder refuse it alike, and a folder ``apply`` refuses changes nothing (docs/design.md §4: "applied in one
transaction: all of it or nothing") -- not even by creating the store it would have registered into."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry import cli

_HEAD = """[defaults]
entity = "user"
owner = "risk-team"
value_type = "long"
freshness_slo = "10m"
ttl = "2h"

[defaults.source]
topic = "card_transactions"
event_schema = "card_transaction"
subject = "card_transactions-value"
entity_key = "user_id"
timestamp_field = "event_time"

[defaults.window]
kind = "sliding"
size = "1h"
slide = "5m"
"""

_COUNT = """
[[feature]]
name = "txn_count_1h"
version = 1
description = "{description}"
aggregation = {{ function = "count" }}
"""


def _folder(root: Path, files: dict[str, str]) -> Path:
    folder = root / "defs"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


_REFUSED = {
    # one version defined twice differently, in two files
    "defined twice": {
        "a.toml": _HEAD + _COUNT.format(description="a"),
        "b.toml": _HEAD + _COUNT.format(description="b"),
    },
    # a definition out of its bounds
    "out of bounds": {"a.toml": _HEAD + _COUNT.format(description="a").replace("version = 1", "version = 0")},
}


@pytest.mark.parametrize("files", _REFUSED.values(), ids=_REFUSED.keys())
def test_a_refused_first_apply_creates_no_store(
    tmp_path: Path, files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "definitions.db"
    folder = _folder(tmp_path, files)

    assert cli.main(["--db", str(db), "apply", str(folder)]) == 1

    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["defs"]  # no store, no journal: nothing to `list`
    assert cli.main(["--db", str(db), "list"]) == 1
    assert "no definition store there" in capsys.readouterr().err


def _foreign(path: Path) -> None:
    import sqlite3

    with sqlite3.connect(path) as db:  # another program's database (or the registry's file holding tokens only)
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        db.execute("INSERT INTO notes (text) VALUES ('kept')")
    db.close()


@pytest.mark.parametrize("existing", ["empty", "foreign"])
def test_a_refused_apply_onto_a_file_holding_no_store_leaves_it_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], existing: str
) -> None:
    """The file was opened as a store before the folder was read: its tables added, WAL switched on, and a refused
    folder then left an empty store there (`list`, which refused the file, then succeeded). Applied whole to a fresh
    store first, the folder refused leaves the file byte for byte; accepted, it is applied to the file."""
    db = tmp_path / "definitions.db"
    if existing == "empty":
        db.write_bytes(b"")
    else:
        _foreign(db)
    before = db.read_bytes()
    folder = _folder(tmp_path, _REFUSED["defined twice"])
    assert cli.main(["--db", str(db), "apply", str(folder)]) == 1
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["definitions.db", "defs"]  # no journal, no WAL
    assert cli.main(["--db", str(db), "list"]) == 1
    capsys.readouterr()
    good = tmp_path / "good"
    good.mkdir()
    (good / "a.toml").write_text(_HEAD + _COUNT.format(description="a"))
    assert cli.main(["--db", str(db), "apply", str(good)]) == 0
    assert "created          user.txn_count_1h v1 (active v1)" in capsys.readouterr().out
    if existing == "foreign":
        import sqlite3

        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT text FROM notes").fetchall() == [("kept",)]  # the file's own data stays
        conn.close()


def test_a_first_apply_of_a_valid_folder_still_creates_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "definitions.db"
    folder = _folder(tmp_path, {"a.toml": _HEAD + _COUNT.format(description="a")})

    assert cli.main(["--db", str(db), "apply", str(folder)]) == 0
    assert "created          user.txn_count_1h v1 (active v1)" in capsys.readouterr().out
    assert cli.main(["--db", str(db), "plan", str(folder)]) == 0
    assert capsys.readouterr().out == "no changes\n"


def test_plan_and_apply_refuse_a_folder_with_the_same_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder with a bad request feature in one file and a bad feature in another: both commands name the same
    problem (before, ``plan`` read the features first and ``apply`` the request features first)."""
    db = tmp_path / "definitions.db"
    assert cli.main(["--db", str(db), "apply", str(_seed(tmp_path))]) == 0
    capsys.readouterr()
    bad_request = '\n[[request_feature]]\nname = "r"\nversion = 0\nvalue_type = "double"\nfunction = "udfs.request:amount_vs_mean_1h"\n'
    folder = _folder(
        tmp_path,
        {
            "a.toml": _HEAD + bad_request,
            "b.toml": _HEAD + _COUNT.format(description="a").replace("version = 1", "version = 0"),
        },
    )

    assert cli.main(["--db", str(db), "plan", str(folder)]) == 1
    planned = capsys.readouterr().err
    assert cli.main(["--db", str(db), "apply", str(folder)]) == 1
    applied = capsys.readouterr().err
    assert planned == applied, (planned, applied)


def _seed(tmp_path: Path) -> Path:
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "a.toml").write_text(_HEAD + _COUNT.format(description="a"))
    return seed


def test_a_refused_first_apply_to_the_configured_store_creates_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(state / "registry" / "definitions.db"))
    folder = _folder(tmp_path, _REFUSED["defined twice"])

    assert cli.main(["apply", str(folder)]) == 1
    assert not state.exists()
    capsys.readouterr()
    (folder / "b.toml").unlink()
    assert cli.main(["apply", str(folder)]) == 0
    assert (state / "registry" / "definitions.db").is_file()


def test_a_store_made_meanwhile_is_kept_and_the_folder_applied_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another `apply` that creates the store while this one works on a new one wins the place; this folder is then
    applied to that store, never over it."""
    db = tmp_path / "definitions.db"
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.toml").write_text(_HEAD + _COUNT.format(description="a").replace("txn_count_1h", "other_count"))
    folder = _folder(tmp_path, {"a.toml": _HEAD + _COUNT.format(description="a")})
    real_link = cli.os.link

    refused: list[BaseException] = []

    def racing(src: Path, dst: Path) -> None:
        monkeypatch.setattr(cli.os, "link", real_link)
        assert cli.main(["--db", str(db), "apply", str(other)]) == 0  # the other apply lands first
        try:
            real_link(src, dst)
        except OSError as exc:
            refused.append(exc)
            raise

    monkeypatch.setattr(cli.os, "link", racing)
    assert cli.main(["--db", str(db), "apply", str(folder)]) == 0
    assert [type(e) for e in refused] == [FileExistsError]  # the place was taken: never linked over it
    monkeypatch.undo()
    capsys.readouterr()
    assert cli.main(["--db", str(db), "list"]) == 0
    listed = capsys.readouterr().out
    assert "user.other_count  active v1" in listed and "user.txn_count_1h  active v1" in listed, listed
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staged copy left


def test_a_first_apply_makes_the_store_as_readable_as_a_file_made_in_place(tmp_path: Path) -> None:
    """The staged copy is made with mkstemp (0600); linked in as it was, the store was unreadable to the API, the job
    and retention running as other users. It takes the mode a file made in place would have (0666 less the umask)."""
    import os

    db = tmp_path / "definitions.db"
    folder = _folder(tmp_path, {"a.toml": _HEAD + _COUNT.format(description="a")})
    umask = os.umask(0o022)
    try:
        assert cli.main(["--db", str(db), "apply", str(folder)]) == 0
    finally:
        os.umask(umask)
    assert db.stat().st_mode & 0o777 == 0o644


def test_apply_leaves_a_spec_stored_before_a_field_existed_unchanged_as_plan_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`plan` compared the models and said `no changes`; `apply` compared the stored JSON text, which lacks keys a
    field added later dumps (`event_id_field`, `sensitivity`), and recorded a `metadata_updated` change, moving the
    change sequence every process reloads on."""
    import json
    import sqlite3

    db = tmp_path / "definitions.db"
    folder = _folder(tmp_path, {"a.toml": _HEAD + _COUNT.format(description="a")})
    assert cli.main(["--db", str(db), "apply", str(folder)]) == 0
    with sqlite3.connect(db) as conn:
        (spec,) = conn.execute("SELECT spec FROM feature_versions").fetchone()
        legacy = json.loads(spec)
        legacy["source"].pop("event_id_field")
        legacy.pop("sensitivity")
        conn.execute("UPDATE feature_versions SET spec = ?", (json.dumps(legacy),))
        changes = conn.execute("SELECT count(*) FROM changes").fetchone()
    conn.close()
    capsys.readouterr()
    assert cli.main(["--db", str(db), "plan", str(folder)]) == 0
    assert capsys.readouterr().out == "no changes\n"
    assert cli.main(["--db", str(db), "apply", str(folder)]) == 0
    assert "unchanged        user.txn_count_1h v1 (active v1)" in capsys.readouterr().out
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM changes").fetchone() == changes
    conn.close()
