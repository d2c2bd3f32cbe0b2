"""Every command ends with one bounded line (``registry.core.shown.error_line``): whatever its message holds (an
exception's text from a library or the system, a value not named through ``shown``), a line feed, a carriage
return or an escape sequence cannot forge a second ``error:`` line or recolour a terminal, and a 100 KB value is
not a 100 KB line."""

from __future__ import annotations

import io
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from registry.core.shown import LINE_LIMIT, error_line, printed_line, shown

FORGED = "a\nerror: forged\r\x1b[31m\x00\udcff\u2028"


def _one_trusted_line(err: str) -> None:
    assert err.count("\n") == 1 and err.endswith("\n") and err.startswith("error: "), repr(err)
    assert err[:-1].isprintable() and "\x1b" not in err and "\r" not in err, repr(err)


def test_error_line_writes_a_printable_message_as_it_is_and_escapes_the_rest() -> None:
    assert error_line("--db d.db: no definition store there") == "error: --db d.db: no definition store there"
    assert error_line(ValueError("C:\\x 'q' é")) == "error: C:\\x 'q' é"  # printable: not a character changed
    line = error_line(OSError(FORGED))
    assert line == "error: a\\nerror: forged\\r\\x1b[31m\\x00\\udcff\\u2028", line
    assert line.isprintable() and len(line.splitlines()) == 1
    assert error_line(f"--db {shown(FORGED)}: gone") == f"error: --db {FORGED!r}: gone"  # a shown value stays as shown


def test_error_line_is_bounded_and_says_the_length() -> None:
    line = error_line("x" * 100_000)
    assert line == "error: " + "x" * LINE_LIMIT + "...(100000 characters)"
    escaped = printed_line("\x1b" * 100_000)
    assert escaped.isprintable() and len(escaped) < LINE_LIMIT + 30 and escaped.endswith("...(100000 characters)")


def test_shown_quoted_is_repr_bounded() -> None:
    assert shown("a,,b", quoted=True) == "'a,,b'" and shown("  ", quoted=True) == "'  '"
    assert shown("\n", quoted=True) == "'\\n'"
    assert shown("y" * 5_000, quoted=True) == repr("y" * 1_000) + "...(5000 characters)"


def test_a_commands_last_line_is_one_line_whatever_the_exception_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`print(error_line(exc))`: the follower's FS_DEFINITIONS_DB was named as given in the exception's text."""
    from jobs.follow import main

    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "x\x1b[31m\nerror: forged.db"))
    assert main(["--state-dir", str(tmp_path / "follow")]) == 1
    _one_trusted_line(capsys.readouterr().err)


def test_a_malformed_setting_ends_a_command_with_one_bounded_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`settings_for_command`'s SystemExit: a 100 KB setting made a 100 KB line, a line feed a second one."""
    from registry.core.settings import settings_for_command

    monkeypatch.setenv("FS_AUTH", "o" * 100_000)
    with pytest.raises(SystemExit) as exited:
        settings_for_command()
    said = str(exited.value.code)
    assert said.startswith("error: FS_AUTH must be 'on' or 'off'") and len(said) < LINE_LIMIT + 50, len(said)
    monkeypatch.delenv("FS_AUTH")
    loop = tmp_path / "loop\x1b[31m\nerror: forged"
    os.symlink(loop, loop)  # a symlink loop: the folder cannot be resolved
    monkeypatch.setenv("FS_STATE_DIR", str(loop))
    with pytest.raises(SystemExit) as exited:
        settings_for_command()
    _one_trusted_line(f"{exited.value.code}\n")


def test_the_stacks_settings_end_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m infra`'s settings (infra/settings.py): FS_STATE_DIR was written as given."""
    from infra.settings import StackSettings

    loop = tmp_path / "loop\x1b[31m\nerror: forged"
    os.symlink(loop, loop)
    monkeypatch.setenv("FS_STATE_DIR", str(loop))
    with pytest.raises(SystemExit) as exited:
        StackSettings.from_env()
    _one_trusted_line(f"{exited.value.code}\n")


def test_each_of_the_followers_error_lines_is_one_line() -> None:
    """The follower's `[follow] error: ...` lines (several over a run, README) each stay one line: an exception's
    text holding a line feed forged a second one."""
    from jobs.follow import Follower

    out = io.StringIO()
    Follower._say(SimpleNamespace(_out=out), f"error: cannot read the definition store: {FORGED}")  # type: ignore[arg-type]
    said = out.getvalue()
    assert said.count("\n") == 1 and said.startswith("[follow] error: cannot read") and said[:-1].isprintable()
