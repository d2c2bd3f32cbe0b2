"""The commands' number options: one argparse type each for whole numbers and numbers, bounds included."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from jobs import feature_job
from registry import access
from registry.core.arguments import number, whole
from serving.offline import batch_scoring, historical, parity
from sinks import archive


@pytest.mark.parametrize("raw", ["1", "5", "+5"])
def test_whole_in_bounds(raw: str) -> None:
    assert whole(1, 5)(raw) == int(raw)


@pytest.mark.parametrize("raw", ["0", "6", "7.0", "1_000", "\u0665", " 3", "3\n", "", "x", "-"])
def test_whole_refuses(raw: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be a whole number from 1 to 5, not "):
        whole(1, 5)(raw)


def test_whole_without_an_upper_bound() -> None:
    assert whole(0)("123456789012345678901234567890") == 123456789012345678901234567890
    with pytest.raises(argparse.ArgumentTypeError, match=r"^must be a whole number of 0 or more, not '-1'$"):
        whole(0)("-1")


@pytest.mark.parametrize(
    ("raw", "value"), [("0", 0.0), ("1", 1.0), ("0.5", 0.5), ("1e-3", 0.001), (".5", 0.5), ("1.", 1.0), ("+1E-1", 0.1)]
)
def test_number_in_bounds(raw: str, value: float) -> None:
    assert number(0.0, 1.0)(raw) == value


@pytest.mark.parametrize(
    "raw", ["-0.001", "1.0001", "nan", "inf", "-inf", "x", "", "0_5", " 0.5 ", "0.5\n", "\u0665", ".", "1e", "0x1"]
)
def test_number_refuses(raw: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be a number from 0 to 1, not "):
        number(0.0, 1.0)(raw)


def test_number_refuses_infinity_even_without_an_upper_bound() -> None:
    assert number(0.0, math.inf)("1e300") == 1e300
    with pytest.raises(argparse.ArgumentTypeError, match=r"^must be a number of 0 or more, not 'inf'$"):
        number(0.0, math.inf)("inf")


@pytest.mark.parametrize(
    ("main", "argv", "message"),
    [
        (
            historical.main,
            [
                "--labels",
                "l.parquet",
                "--out",
                "o.parquet",
                "--entity-type",
                "user",
                "--entity-column",
                "u",
                "--features",
                "a",
                "--chunk-rows",
                "0",
            ],
            "argument --chunk-rows: must be a whole number of 1 or more, not '0'",
        ),
        (
            batch_scoring.main,
            ["--entity-type", "user", "--features", "a", "--out", "o.parquet", "--chunk-rows", "-3"],
            "argument --chunk-rows: must be a whole number of 1 or more, not '-3'",
        ),
        (access.main, ["audit", "--limit", "0"], "argument --limit: must be a whole number of 1 or more, not '0'"),
        (parity.main, ["--examples", "-1"], "argument --examples: must be a whole number of 0 or more, not '-1'"),
        (archive.main, ["--batch-rows", "0"], "argument --batch-rows: must be a whole number of 1 or more, not '0'"),
        (
            feature_job.main,
            ["--parallelism", "0"],
            "argument --parallelism: must be a whole number of 1 or more, not '0'",
        ),
    ],
)
def test_commands_refuse_out_of_range_counts(
    main: Callable[[list[str]], int],
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("raw", "taken"),
    [
        ("0.01", True),
        ("3600", True),
        ("36e2", True),
        ("0.009999999999999999999", False),  # its float is 0.01: the bound is compared with the number as written
        ("3600.0000000000001", False),  # its float is 3600.0
        ("0.0099", False),
        ("3600.0001", False),
    ],
)
def test_a_number_is_held_to_its_bounds_as_written_not_as_rounded(raw: str, taken: bool) -> None:
    """``jobs.follow --poll-interval-s`` (0.01 to 3,600): values just past a bound were taken, their floats rounding
    onto it."""
    import argparse

    from registry.core.arguments import number

    parse = number(0.01, 3600)
    if taken:
        assert parse(raw) == float(raw)
    else:
        with pytest.raises(argparse.ArgumentTypeError, match=r"must be a number from 0\.01 to 3600"):
            parse(raw)
