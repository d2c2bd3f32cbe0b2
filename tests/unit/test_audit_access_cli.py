"""Audit of ``python -m registry.access`` against docs/design.md "Governance" and the README: the token lifecycle
(printed once, listed without secrets, revoked by id or by token, a revoked token refused), grants, error lines
and exit codes, and that a refused name creates no store."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from registry import access
from registry.access import Access
from registry.access_store import AccessStore
from registry.core.errors import UnauthenticatedError


def _run(capsys: pytest.CaptureFixture[str], db: Path, *argv: str) -> tuple[int, str, str]:
    code = access.main(["--db", str(db), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_token_lifecycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"
    code, out, _ = _run(capsys, db, "create-token", "--principal", "scorer", "--team", "ml-team")
    token = out.strip()
    assert code == 0 and re.fullmatch(r"fs_[^_]+_\S+", token)
    token_id, secret = token.split("_", 2)[1:]
    code, out2, _ = _run(capsys, db, "create-token", "--principal", "svc", "--admin")
    other = out2.strip()
    code, listed, _ = _run(capsys, db, "list-tokens")
    rows = [json.loads(line) for line in listed.splitlines()]
    assert code == 0 and [(r["principal"], r["team"], r["admin"]) for r in rows] == [
        ("scorer", "ml-team", False),
        ("svc", "svc", True),
    ]
    assert secret not in listed and other.split("_", 2)[2] not in listed
    checker = Access(AccessStore(db), enabled=True, refresh_s=0)
    assert checker.authenticate(token).team == "ml-team"
    # by id, then again (nothing live): one error line, exit 1
    assert _run(capsys, db, "revoke-token", token_id)[:2] == (0, f"revoked {token_id}\n")
    with pytest.raises(UnauthenticatedError):
        checker.authenticate(token)
    code, _, err = _run(capsys, db, "revoke-token", f"fs_{token_id}")
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1
    # by the whole token
    assert _run(capsys, db, "revoke-token", other)[0] == 0
    with pytest.raises(UnauthenticatedError):
        checker.authenticate(other)
    code, listed, _ = _run(capsys, db, "list-tokens")
    assert all(json.loads(line)["revoked_at"] for line in listed.splitlines())


def test_grants_decide_who_reads_above_internal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"
    token = (_run(capsys, db, "create-token", "--principal", "scorer", "--team", "ml-team")[1]).strip()
    checker = Access(AccessStore(db), enabled=True, refresh_s=0)
    caller = checker.authenticate(token)
    assert checker.may_read(caller, "ml-team") and not checker.may_read(caller, "fraud-team")
    assert _run(capsys, db, "grant", "--owner", "fraud-team", "--to", "ml-team")[0] == 0
    assert _run(capsys, db, "grant", "--owner", "fraud-team", "--to", "ml-team")[0] == 0  # again: still one grant
    assert _run(capsys, db, "list-grants")[1] == '{"owner_team": "fraud-team", "grantee_team": "ml-team"}\n'
    assert checker.may_read(caller, "fraud-team")
    assert _run(capsys, db, "revoke-grant", "--owner", "fraud-team", "--to", "ml-team")[0] == 0
    assert not checker.may_read(caller, "fraud-team")
    code, _, err = _run(capsys, db, "revoke-grant", "--owner", "fraud-team", "--to", "ml-team")
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1


def test_names_at_their_limits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"
    assert _run(capsys, db, "grant", "--owner", "x" * 256, "--to", "équipe ml")[0] == 0
    assert _run(capsys, db, "create-token", "--principal", "p", "--team", "t" * 256)[0] == 0
    for argv in (
        ["grant", "--owner", "x" * 257, "--to", "b"],
        ["create-token", "--principal", "p", "--team", "t" * 257],
        ["grant", "--owner", "a", "--to", "a\nb"],
    ):
        code, _, err = _run(capsys, db, *argv)
        assert code == 1 and err.startswith("error: ") and "1-256 printable characters" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["create-token", "--principal", "p", "--team", ""],
        ["create-token", "--principal", ""],
        ["create-token", "--principal", "p", "--team", "t" * 257],
        ["grant", "--owner", "", "--to", "b"],
        ["grant", "--owner", "a", "--to", "a\tb"],
    ],
)
def test_a_refused_name_creates_no_store(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    """create-token and grant create the store; a name they refuse created an empty one all the same."""
    db = tmp_path / "r.db"
    code, _, err = _run(capsys, db, *argv)
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1
    assert not db.exists()


@pytest.mark.parametrize("command", [["list-tokens"], ["list-grants"], ["revoke-token", "abc"], ["audit"]])
def test_other_commands_refuse_a_missing_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    db = tmp_path / "r.db"
    code, _, err = _run(capsys, db, *command)
    assert code == 1 and err.startswith(f"error: --db {db}") and not db.exists()


@pytest.mark.parametrize(
    "argv", [["create-token", "--principal", "scorer", "--team", "ml-team"], ["grant", "--owner", "a", "--to", "b"]]
)
def test_the_configured_store_is_created_with_its_folders_an_explicit_one_needs_its_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    """As ``registry.cli apply``: a fresh FS_STATE_DIR has no ``registry/`` folder, and create-token refused it."""
    monkeypatch.delenv("FS_DEFINITIONS_DB", raising=False)
    monkeypatch.setenv("FS_STATE_DIR", str(tmp_path / "state"))
    assert access.main(argv) == 0
    assert (tmp_path / "state" / "registry" / "definitions.db").is_file()
    capsys.readouterr()
    elsewhere = tmp_path / "missing" / "r.db"
    code, _, err = _run(capsys, elsewhere, *argv)
    assert (code, err) == (1, f"error: --db {elsewhere}: folder {elsewhere.parent} does not exist\n")
    assert not elsewhere.parent.exists()


def test_a_token_nobody_received_is_revoked(tmp_path: Path) -> None:
    """create-token into a pipe whose reader is gone: exit 1, one error line, and the token it made is revoked (its
    secret was printed nowhere, so a live one could only clutter the list)."""
    db = tmp_path / "r.db"
    read_end, write_end = os.pipe()
    os.close(read_end)  # closed before the command starts: its write fails, whatever the timing
    try:
        done = subprocess.run(
            [sys.executable, "-m", "registry.access", "--db", str(db), "create-token", "--principal", "scorer"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],
        )
    finally:
        os.close(write_end)
    assert done.returncode == 1
    assert done.stderr.startswith("error: the new token could not be written out, so it was revoked")
    assert done.stderr.count("\n") == 1
    rows = AccessStore(db).tokens()
    assert [r["principal"] for r in rows] == ["scorer"] and rows[0]["revoked_at"]
