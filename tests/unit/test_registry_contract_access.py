"""`python -m registry.access` held to README.md ("Tokens, ownership and grants") and docs/design.md §9 "Governance"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registry import access
from registry.access_store import AccessStore
from registry.audit import AuditRecord


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "access.db"
    store = AccessStore(path)
    store.record([AuditRecord("p", "t", "read_features", "user/txn_count_1h@1", 200, "offline")])
    return path


@pytest.mark.parametrize("since", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_audit_since_outside_years_1_to_9999_in_utc_is_one_error_line(
    db: Path, capsys: pytest.CaptureFixture[str], since: str
) -> None:
    """A valid ISO 8601 time that leaves years 1-9999 once in UTC was an OverflowError traceback."""
    assert access.main(["--db", str(db), "audit", "--since", since]) == 1
    err = capsys.readouterr().err
    assert err == f"error: ISO 8601 time {since!r} is outside years 1-9999 once in UTC\n"


def _audit_since(db: Path, since: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    AccessStore(db).record([AuditRecord("q", "t", "read_features", "user/x@1", 200, at="2026-11-30T10:00:00.000000Z")])
    code = access.main(["--db", str(db), "audit", "--since", since])
    out, err = capsys.readouterr()
    return code, [json.loads(line)["principal"] for line in out.splitlines()], err


@pytest.mark.parametrize(
    "since", ["2026-11-30T10:00:00.0000009Z", "2026-11-30T10:00:00-00:00:00.5", " 2026-11-30T10:00:00Z"]
)
def test_audit_since_is_refused_where_python_would_read_another_instant(
    db: Path, capsys: pytest.CaptureFixture[str], since: str
) -> None:
    """Sub-microsecond digits and an offset's fraction were dropped (the record at 10:00:00 was shown for a time
    after it), and white space around a time was taken; every other command refuses them."""
    code, shown_for, err = _audit_since(db, since, capsys)
    assert (code, shown_for) == (1, []) and err.startswith("error: ") and len(err.splitlines()) == 1, err


def test_audit_since_in_digits_is_epoch_milliseconds_as_for_every_other_command(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``20261130`` was midnight of 2026-11-30 here and 1970-01-01T05:37:41.130Z in every other command."""
    for since, shown in (
        ("1796032800001", False),  # 2026-11-30T10:00:00.001Z: after the record
        ("1796032800000", True),  # at it: inclusive
        ("2026-11-30T10:00:00.000000000Z", True),  # zero digits past the microsecond
        ("20261130", True),
    ):
        code, shown_for, _ = _audit_since(db, since, capsys)
        assert (code, "q" in shown_for) == (0, shown), since


def test_create_token_with_an_empty_team_is_refused(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--team ""` issued a token acting for the principal's team (the empty value read as "not given")."""
    assert access.main(["--db", str(db), "create-token", "--principal", "svc", "--team", ""]) == 1
    assert capsys.readouterr().err == "error: team must be 1-256 printable characters, not ''\n"
    assert AccessStore(db).tokens() == []


def test_audit_feature_and_target_together_are_a_usage_error(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--feature` silently won over `--target`: the two are one filter, given once."""
    with pytest.raises(SystemExit) as exit_:
        access.main(["--db", str(db), "audit", "--feature", "user/txn_count_1h", "--target", "subject:s"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize("feature", ["user.txn_count_1h", "user/txn_count_1h@v1", "user/txn_count_1h@", "user"])
def test_audit_feature_not_entity_slash_name_is_a_usage_error(
    db: Path, capsys: pytest.CaptureFixture[str], feature: str
) -> None:
    """`--feature user.txn_count_1h` (the dot of `registry.cli`) printed nothing, as if nobody had read it."""
    with pytest.raises(SystemExit) as exit_:
        access.main(["--db", str(db), "audit", "--feature", feature])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert (
        f"argument --feature: must be entity/name or entity/name@version, like user/txn_count_1h@2, not {feature!r}"
        in err
    )


@pytest.mark.parametrize("feature", ["user/txn_count_1h", "user/txn_count_1h@1"])
def test_audit_feature_finds_the_records(db: Path, capsys: pytest.CaptureFixture[str], feature: str) -> None:
    assert access.main(["--db", str(db), "audit", "--feature", feature]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["target"] == "user/txn_count_1h@1"


@pytest.mark.parametrize(("owner", "grantee"), [("", "b"), ("a\nb", "b"), ("a", "x" * 257)])
def test_revoke_grant_checks_team_names_as_grant_does(
    db: Path, capsys: pytest.CaptureFixture[str], owner: str, grantee: str
) -> None:
    """`grant` refuses a team name that is not 1-256 printable characters; `revoke-grant` printed it raw
    ("error:  had granted nothing to b", or a line break inside the one error line)."""
    assert access.main(["--db", str(db), "revoke-grant", "--owner", owner, "--to", grantee]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "must be 1-256 printable characters" in err, err
