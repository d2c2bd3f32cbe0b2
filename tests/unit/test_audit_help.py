"""Audit G5: the commands' --help as their contract, for the shared argument types (registry.core.arguments).

A count option is "ASCII digits with an optional sign, both bounds included; a value outside the bounds is a usage
error, exit 2, naming the option" in one wording (README, registry.core.arguments); a time option is "ISO-8601 with
a zone or epoch milliseconds in ASCII digits" and one past the year 9999 is refused as such.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

import pytest

from registry.core.arguments import instant, whole

_HUGE = "1" * 5000  # more digits than int() converts (4300 by default)


def _usage_error(type_: Callable[[str], object], raw: str, capsys: pytest.CaptureFixture[str]) -> str:
    parser = argparse.ArgumentParser(prog="cmd")
    parser.add_argument("--n", type=type_)
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["--n", raw])
    assert exited.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_whole_refuses_more_digits_than_int_takes_in_its_own_words(capsys: pytest.CaptureFixture[str]) -> None:
    # Before: int() raised ValueError and argparse said "invalid parse value".
    line = _usage_error(whole(1), _HUGE, capsys)
    assert line.startswith("cmd: error: argument --n: must be a whole number of 1 or more, not '111")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^must be a whole number from 0 to 10, not '\+111"):
        whole(0, 10)("+" + _HUGE)


def test_whole_takes_a_value_padded_with_zeros_past_the_digit_limit() -> None:
    assert whole(0, 10)("0" * 5000 + "7") == 7
    assert whole(-5, 5)("-" + "0" * 5000 + "5") == -5
    assert whole(0, 10)("0" * 5000) == 0


def test_instant_refuses_more_digits_than_int_takes_as_past_9999(capsys: pytest.CaptureFixture[str]) -> None:
    # Before: the message was int()'s "Exceeds the limit (4300 digits) for integer string conversion ...".
    line = _usage_error(instant, _HUGE, capsys)
    assert line.startswith("cmd: error: argument --n: '111") and line.endswith(
        "epoch milliseconds is past the year 9999"
    )


def test_instant_keeps_its_other_answers() -> None:
    assert instant("1704067200000") == "1704067200000"
    assert instant("0" * 20 + "1") == "0" * 20 + "1"
    with pytest.raises(argparse.ArgumentTypeError, match=r"is past the year 9999"):
        instant("9" * 16)
    with pytest.raises(argparse.ArgumentTypeError, match=r"needs a time zone"):
        instant("2024-01-01T00:00:00")


@pytest.mark.parametrize(
    "module",
    [
        "serving.offline.historical",
        "serving.offline.batch_scoring",
        "serving.offline.training",
        "serving.offline.statistics",
        "serving.offline.parity",
        "serving.offline.promotion",
        "serving.offline.retention",
        "serving.offline.erasure",
        "serving.offline.plots",
        "jobs.backfill",
        "jobs.produce",
        "sinks.archive",
        "sinks.serving_log",
    ],
)
def test_every_command_answers_help(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        importlib.import_module(module).main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m {module}")


@pytest.mark.parametrize("raw", ["", " ", "\t"])
def test_an_empty_events_location_is_a_usage_error_not_the_current_folder(
    raw: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobs import backfill, feature_job

    for main in (backfill.main, feature_job.main):
        with pytest.raises(SystemExit) as ended:
            main(["--events", raw])
        assert ended.value.code == 2
        assert "argument --events: must be a Parquet file or folder" in capsys.readouterr().err


@pytest.mark.parametrize("raw", ["1_0", "7.0", "\u0667", ""])
def test_a_seed_is_a_whole_number_as_every_number_option(raw: str, capsys: pytest.CaptureFixture[str]) -> None:
    from jobs import produce

    with pytest.raises(SystemExit) as ended:
        produce.main(["--seed", raw])
    assert ended.value.code == 2
    assert "argument --seed: must be a whole number" in capsys.readouterr().err
