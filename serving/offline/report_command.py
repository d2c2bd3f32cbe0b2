"""What the offline report commands (``serving.offline.statistics``, ``.parity``, ``.plots``) share on the command
line: their ``--since`` and ``--metrics-file`` checks, printing a report, ``--every``'s sleep and Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from registry.core.shown import reader_gone, shown


def since_ms(raw: str) -> int:
    """An argparse type for ``--since`` (statistics, parity, plots), in ms: a positive duration reaching back
    no further than 1970-01-01, as the gate's; anything else is a usage error."""
    from registry.core.durations import EPOCH, parse_duration, to_millis

    try:
        span = parse_duration(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if span <= timedelta(0) or span > datetime.now(UTC) - EPOCH:
        raise argparse.ArgumentTypeError(f"must be a positive duration reaching back no further than 1970, not {raw!r}")
    return to_millis(span)


def every_s(raw: str) -> float:
    """An argparse type for ``--every`` (statistics, parity), in seconds: a positive duration; anything else
    (``0s``, text that is no duration, one past Python's longest) is a usage error."""
    from registry.core.durations import parse_duration, to_millis

    try:
        span = parse_duration(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if span <= timedelta(0):
        raise argparse.ArgumentTypeError(f"must be a positive duration, not {raw!r}")
    return to_millis(span) / 1000


def check_metrics_file(parser: argparse.ArgumentParser, path: Path) -> None:
    """``--metrics-file`` (statistics, parity) before anything is read: a usage error (exit 2) for a folder,
    a file in a folder that does not exist, an existing file that is not a regular one (a device, a FIFO: the write's
    rename would replace it), a path that is not UTF-8, or a path the system refuses (a name too long)."""
    try:
        if path.is_dir():
            parser.error(f"argument --metrics-file: {shown(path)} is a directory")
        if not path.parent.is_dir():
            parser.error(f"argument --metrics-file: folder {shown(path.parent)} does not exist")
        if path.exists() and not path.is_file():  # the write's rename would replace a device or a FIFO
            parser.error(f"argument --metrics-file: {shown(path)} is not a regular file (a device, FIFO or socket)")
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        parser.error(f"argument --metrics-file: {shown(path)} is not a UTF-8 path")
    except OSError as exc:
        parser.error(f"argument --metrics-file: {exc}")


def print_report(text: str) -> bool:
    """``text`` and a newline on stdout, flushed (statistics, parity); False, with one ``error:`` line on stderr, if
    the reader stopped reading (``| head -1``, a closed pipe), as ``registry.cli`` answers it: it was a
    BrokenPipeError traceback. Stdout then goes to /dev/null, so the interpreter's last flush raises nothing."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError as exc:
        reader_gone(exc)
        return False
    return True


def sleep(seconds: float) -> None:
    """``time.sleep`` for any duration ``--every`` takes (one call holds at most about 292 years)."""
    while seconds > 0:
        step = min(seconds, 86_400.0)
        time.sleep(step)
        seconds -= step


def interruptible(run: Callable[[list[str] | None], int], argv: list[str] | None) -> int:
    """``run(argv)`` (statistics, parity) under ``registry.core.interrupt.run_command``: a Ctrl-C ends it with one
    line, ``interrupted (Ctrl-C)``, and exit status 130 (``--every`` repeats until stopped, and stopping it so was a
    KeyboardInterrupt traceback); a SIGTERM with 143 after its clean-up."""
    from registry.core.interrupt import run_command

    return run_command(run, argv)
