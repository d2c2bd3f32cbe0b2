"""Ctrl-C as a command's one line (``interrupted (Ctrl-C)``, exit 130) from its first moment to its last.

A command's ``try``/``except KeyboardInterrupt`` covers only its ``main``: a Ctrl-C while its modules were still
being imported (half a second for the offline tools) was a traceback, and one after its report, while the
interpreter shut down, ended the process silently. ``exit_on_ctrl_c`` covers those moments; ``main`` puts
Python's own handler back while it runs (``serving.offline.report_command.interruptible``), so its clean-up
still runs on a ``KeyboardInterrupt``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from types import FrameType

INTERRUPTED = "interrupted (Ctrl-C)"


def _exit_130(signum: int, frame: FrameType | None) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader gone, a stream closed at shutdown
            stream.flush()
    with contextlib.suppress(OSError):
        os.write(2, f"{INTERRUPTED}\n".encode())
    os._exit(130)


def exit_on_ctrl_c() -> None:
    """From now on a Ctrl-C (SIGINT) prints the one line and ends the process with 130 at once."""
    signal.signal(signal.SIGINT, _exit_130)


def raise_on_ctrl_c() -> None:
    """Python's own handling back: a Ctrl-C raises ``KeyboardInterrupt`` where the program is."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
