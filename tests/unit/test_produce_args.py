"""The demo producer's counts: refused by argparse (exit 2, naming the option) before any service is touched."""

from __future__ import annotations

import pytest

from jobs.events import synthetic_transactions
from jobs.produce import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--span-minutes", "0"], "argument --span-minutes: must be a whole number from 1 to 5256000, not '0'"),
        (["--users", "0"], "argument --users: must be a whole number from 1 to 1000000, not '0'"),
        (["--events", "-1"], "argument --events: must be a whole number from 0 to 10000000, not '-1'"),
        (["--span-minutes", "x"], "argument --span-minutes: must be a whole number from 1 to 5256000, not 'x'"),
        # Upper bounds: the users and events are built in memory first (10^20 users hung), and a span of
        # 10^8 minutes produced events before 1970 (dead-lettered as bad_timestamp).
        (["--users", "100000000000000000000"], "argument --users: must be a whole number from 1 to 1000000"),
        (["--events", "10000001"], "argument --events: must be a whole number from 0 to 10000000"),
        (["--span-minutes", "100000000"], "argument --span-minutes: must be a whole number from 1 to 5256000"),
    ],
)
def test_bad_counts_are_refused_naming_the_option(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_one_minute_of_events_ends_a_minute_before_now() -> None:
    """What ``--span-minutes 1`` asks of the generator (it crashed on an empty range before)."""
    now_ms = 1_800_000_000_000
    events = synthetic_transactions(7, users=3, events=500, start_ms=now_ms - 2 * 60_000, span_ms=60_000)
    times = [e["event_time"] for e in events]
    assert len(times) == 500 and now_ms - 2 * 60_000 <= min(times) and max(times) < now_ms - 60_000
