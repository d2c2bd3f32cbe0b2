"""`python -m registry.access audit` held to docs/design.md §9 "Audit": it "prints them newest first". With more
matching records than `--limit` (default 1000) it printed the newest ones and stopped without a word, so a
busy feature's trail looked complete; now a note on stderr says older records match too (exit 0)."""

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
    AccessStore(path).record(
        [
            AuditRecord("p", "t", "read_features", "user/f@1", 200, "c", at=f"2026-11-30T10:00:0{i}.000000+00:00")
            for i in range(3)
        ]
    )
    return path


@pytest.mark.parametrize(("limit", "shown", "noted"), [("2", 2, True), ("3", 3, False), ("4", 3, False)])
def test_audit_says_when_older_records_were_left_out(
    db: Path, capsys: pytest.CaptureFixture[str], limit: str, shown: int, noted: bool
) -> None:
    assert access.main(["--db", str(db), "audit", "--feature", "user/f", "--limit", limit]) == 0
    out, err = capsys.readouterr()
    ats = [json.loads(line)["at"] for line in out.splitlines()]
    assert ats == [f"2026-11-30T10:00:0{i}.000000+00:00" for i in (2, 1, 0)][:shown]  # newest first
    assert err == (
        f"note: the newest {limit} records shown, older ones match too (--limit to show more, --since to narrow)\n"
        if noted
        else ""
    )


@pytest.mark.parametrize("value", ["1_0", " 30", "30 ", "٣٠", "Infinity", "1e999"])
def test_retention_pin_days_is_written_as_the_commands_other_numbers(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """`--pin-days 1_0` pinned for 10 days (Python's float() reads it); the commands' numbers refuse `1_0`,
    surrounding spaces and non-ASCII digits as usage errors (README "Defaults"), and `inf` is the way to
    say every manifest pins."""
    from serving.offline import retention

    with pytest.raises(SystemExit) as exited:
        retention.main(["--dry-run", f"--pin-days={value}"])
    assert exited.value.code == 2
    assert (
        f"argument --pin-days: must be a number of days (like 30, 0.5 or inf), not {value!r}" in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("value", "days"), [("30", 30.0), ("0.5", 0.5), ("1e3", 1000.0), ("inf", float("inf")), ("0", 0.0)]
)
def test_retention_pin_days_takes_numbers_and_inf(value: str, days: float) -> None:
    from serving.offline.retention import _pin_days

    assert _pin_days(value) == days


NO_TOKEN = "no API token: set FS_TOKEN to a token of `python -m registry.access create-token` (FS_AUTH is on)"


@pytest.mark.parametrize("command", ["retention", "erasure"])
def test_an_offline_command_without_a_token_says_to_set_fs_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """An offline command told its user to "send `Authorization: Bearer <token>`", a header it has no way to send."""
    from serving.offline import erasure, retention

    AccessStore(tmp_path / "definitions.db")
    monkeypatch.setenv("FS_AUTH", "on")
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "definitions.db"))
    monkeypatch.delenv("FS_TOKEN", raising=False)
    main, args = (
        (retention.main, ["--dry-run"])
        if command == "retention"
        else (erasure.main, ["--entity-type", "user", "--entity-id", "u1"])
    )
    assert main(args) == 1
    assert capsys.readouterr().err == f"error: {NO_TOKEN}\n"


def test_guarded_offline_reads_without_a_token_say_to_set_fs_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry.access import guard_catalog
    from registry.core.catalog import FeatureCatalog
    from registry.core.errors import UnauthenticatedError
    from registry.core.settings import Settings

    AccessStore(tmp_path / "definitions.db")
    monkeypatch.setenv("FS_AUTH", "on")
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "definitions.db"))
    monkeypatch.delenv("FS_TOKEN", raising=False)
    settings = Settings.from_env()
    with pytest.raises(UnauthenticatedError) as raised:
        guard_catalog(FeatureCatalog([]), settings, action="training_set")
    assert str(raised.value) == NO_TOKEN
