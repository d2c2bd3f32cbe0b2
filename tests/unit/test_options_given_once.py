"""Every command: an option that takes one value, given twice, is a usage error naming it (exit 2), never the last
value silently kept (README "Set up on a fresh machine"). ``erasure --key user_id=u1 --key merchant_id=7`` erased
every pair whose merchant was 7 and left u1's; ``--as-of`` or ``--features`` given twice read the last one."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any

import pytest

from registry.core.arguments import ArgumentParser

CASES = [
    ("serving.offline.erasure", ["--entity-type", "user_merchant", "--key", "user_id=u1", "--key", "merchant_id=7"]),
    ("serving.offline.erasure", ["--entity-type", "user", "--entity-id", "u1", "--entity-id", "u2"]),
    ("serving.offline.historical", ["--as-of", "2026-01-01T00:00:00Z", "--as-of", "2026-02-01T00:00:00Z"]),
    ("serving.offline.historical", ["--features", "a", "--features", "b"]),
    ("serving.offline.training", ["build", "--as-of", "0", "--as-of", "1"]),
    ("serving.offline.training", ["rebuild", "--id", "a", "--id", "b"]),
    ("serving.offline.promotion", ["user", "f", "2", "--max-lag", "1m", "--max-lag", "2m"]),
    ("serving.offline.retention", ["--pin-days", "30", "--pin-days", "1"]),
    ("serving.offline.batch_scoring", ["--entity-type", "user", "--entity-type", "card"]),
    ("serving.offline.parity", ["--since", "1h", "--since", "2h"]),
    ("registry.cli", ["--db", "a.db", "--db", "b.db", "list"]),
    ("registry.access", ["grant", "--to", "c", "--owner", "a", "--owner", "b"]),
    ("jobs.produce", ["--topic", "a", "--topic", "b"]),
    ("jobs.feature_job", ["--group-id", "a", "--group-id", "b"]),
    ("jobs.backfill", ["user.a@2", "--since", "0", "--since", "1"]),
    ("sinks.archive", ["--topic", "a", "--topic", "b"]),
]


@pytest.mark.parametrize(("module", "argv"), CASES, ids=[f"{m}:{'/'.join(a[-3:])}" for m, a in CASES])
def test_an_option_given_twice_is_a_usage_error_naming_it(
    module: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    main: Callable[[list[str]], Any] = importlib.import_module(module).main
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    option = next(a for i, a in enumerate(argv) if a.startswith("--") and a in argv[i + 1 :])
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert said.endswith(f"error: argument {option}: given more than once: give it once"), said


def test_options_of_groups_and_sub_commands_are_given_once_flags_and_appends_as_argparse_has_them() -> None:
    parser = ArgumentParser(prog="p")
    parser.add_argument("--one")
    parser.add_argument("--flag", action="store_true")
    parser.add_argument("--many", action="append")
    parser.add_mutually_exclusive_group().add_argument("--grouped")
    sub = parser.add_subparsers(dest="command").add_parser("run")
    sub.add_argument("--inner", type=int)
    args = parser.parse_args(["--flag", "--flag", "--many", "a", "--many", "b", "--one", "x", "run", "--inner", "3"])
    assert (args.one, args.flag, args.many, args.inner) == ("x", True, ["a", "b"], 3)
    for argv in (
        ["--one", "x", "--one", "y"],
        ["--grouped", "x", "--grouped", "y"],
        ["run", "--inner", "1", "--inner", "2"],
    ):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
    assert isinstance(sub, ArgumentParser) and isinstance(parser, argparse.ArgumentParser)
