"""README walkthrough (audit G1): every command the README's shell blocks show names a module, a
subcommand and options that exist, and every ``make X  # = ...`` line is what the Makefile runs."""

from __future__ import annotations

import functools
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
MAKEFILE = (REPO / "Makefile").read_text(encoding="utf-8")


def _shell_lines() -> list[str]:
    """The logical lines of the README's ```bash blocks (backslash continuations joined)."""
    lines: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip():
                lines.append(line.strip())
    return lines


def _split_comment(line: str) -> tuple[str, str]:
    """A line's command and its trailing comment (a `#` after white space, or the whole line)."""
    match = re.search(r"(^|\s)#", line)
    return (line[: match.start()].strip(), line[match.end() :]) if match else (line, "")


def _commands() -> list[tuple[str, list[str]]]:
    """(module or script, the words after it) of every `python -m X ...` / `python path.py ...` command,
    including those a `make` comment spells out after `=`."""
    found: list[tuple[str, list[str]]] = []
    for line in _shell_lines():
        command, comment = _split_comment(line)
        texts = [command]
        if command.startswith("make ") and comment.strip().startswith("="):
            texts.append(comment.strip()[1:])
        for text in texts:
            match = re.search(r"python3?\s+(-m\s+)?(\S+)(.*)", text)
            if match is None:
                continue
            words = shlex.split(match.group(3).replace("[", " ").replace("]", " ").replace("|", " "))
            found.append((match.group(2), words))
    return found


@functools.cache
def _help(target: str, sub: str | None = None) -> str:
    argv = [sys.executable, target] if target.endswith(".py") else [sys.executable, "-m", target]
    argv += [sub, "--help"] if sub else ["--help"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(argv[1:])} exited {done.returncode}: {done.stderr[-500:]}"
    return done.stdout


def _subcommand(target: str, words: list[str]) -> str | None:
    choices = re.search(r"\{([a-z,-]+)\}", _help(target))
    if choices and words and words[0] in choices.group(1).split(","):
        return words[0]
    return None


COMMANDS = _commands()


def test_the_readme_shows_commands() -> None:
    assert len(COMMANDS) >= 30  # the parser found the blocks


@pytest.mark.parametrize("target", sorted({t for t, _ in COMMANDS}))
def test_every_module_or_script_exists(target: str) -> None:
    if target.endswith(".py"):
        assert (REPO / target).is_file(), target
    else:
        assert importlib.util.find_spec(target) is not None, target


@pytest.mark.parametrize(("target", "words"), COMMANDS, ids=[f"{t} {' '.join(w)}"[:80] for t, w in COMMANDS])
def test_every_option_shown_is_accepted(target: str, words: list[str]) -> None:
    sub = _subcommand(target, words)
    text = _help(target, sub)
    for option in (w.split("=")[0] for w in words if w.startswith("--")):
        assert re.search(rf"(^|[\s\[]){re.escape(option)}\b", text, flags=re.M), (
            f"README: `{target} {sub or ''} {option}` is not in its --help"
        )


def test_make_lines_match_the_makefile() -> None:
    """`make X  # = cmd [optional ...]`: the recipe of X runs cmd (the bracketed options are extras)."""
    checked = 0
    for line in _shell_lines():
        command, comment = _split_comment(line)
        if not (command.startswith("make ") and comment.strip().startswith("=")):
            continue
        target = command.split()[1]
        expected = comment.strip()[1:].split("[")[0].strip().replace(".venv/bin/python", "$(PY)")
        recipe = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", MAKEFILE, flags=re.M)
        assert recipe is not None, f"README names `make {target}`, which the Makefile does not define"
        assert expected in recipe.group(1), (
            f"make {target}: README says {expected!r}, Makefile runs {recipe.group(1)!r}"
        )
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("target", sorted({*re.findall(r"`make ([a-z-]+)`", README), "demo", "test"}))
def test_every_make_target_named_exists(target: str) -> None:
    assert re.search(rf"^{re.escape(target)}:", MAKEFILE, flags=re.M), f"make {target}"
