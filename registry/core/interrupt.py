"""Ctrl-C as a command's one line (``interrupted (Ctrl-C)``, exit 130) from its first moment to its last, and
SIGTERM as an unwinding exit (143) that runs the command's clean-up.

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
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

_A = TypeVar("_A")

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


def _exit_143(signum: int, frame: FrameType | None) -> None:
    sys.exit(128 + signum)  # SystemExit where the main thread is: ``finally`` blocks and ``atexit`` run on the way out


def unwind_on_sigterm() -> Any:
    """From now on a SIGTERM raises ``SystemExit(143)`` where the main thread is, so clean-up runs on the way out
    (the default handler ended the process on the spot); the handler it replaced.

    Raised inside a finalizer or a weakref callback (py4j's, which run at any moment in a stream job), the exit is
    "ignored" by Python and the process went on: a job outlived its follower. Such a SIGTERM is sent again once the
    finalizer is over (``_again_if_swallowed``)."""
    global _next_hook
    if sys.unraisablehook is not _again_if_swallowed:
        _next_hook = sys.unraisablehook
        sys.unraisablehook = _again_if_swallowed
    return signal.signal(signal.SIGTERM, _exit_143)


_next_hook: Callable[[Any], object] = sys.unraisablehook
_swallowed: list[bool] = []  # a SIGTERM's exit Python swallowed: ``run_command`` exits 143 whatever ``main`` returns


def _again_if_swallowed(unraisable: Any) -> None:
    """``sys.unraisablehook``: a SIGTERM's ``SystemExit`` that Python could not raise is sent again 50 ms later, from a
    thread of its own, while SIGTERM still unwinds (and not printed: the exit is on its way); anything else as before."""
    exc = unraisable.exc_value
    if (
        isinstance(exc, SystemExit)
        and exc.code == 128 + signal.SIGTERM
        and signal.getsignal(signal.SIGTERM) is _exit_143
    ):
        _swallowed.append(True)
        again = threading.Timer(0.05, _send_again)
        again.daemon = True
        again.start()
        return
    _next_hook(unraisable)


def _send_again() -> None:
    if signal.getsignal(signal.SIGTERM) is _exit_143:  # not once ``run_command`` has returned (143)
        os.kill(os.getpid(), signal.SIGTERM)


def run_command(main: Callable[[_A], int], argv: _A) -> int:
    """``main(argv)`` as a command's whole run (its ``__main__``): a Ctrl-C ends it with the one line and 130, after
    its clean-up ran (``KeyboardInterrupt`` where it was), and a SIGTERM (``timeout``, a stopped CI job, ``kill``)
    with exit status 143, unwinding the same way (``SystemExit``), so a temporary output is removed, an audit record
    of the interrupted run written, where a default SIGTERM ended the process on the spot. After ``main``, while the
    interpreter shuts down, a Ctrl-C is the one line and 130 at once."""
    raise_on_ctrl_c()
    previous = unwind_on_sigterm()
    _swallowed.clear()
    try:
        code = main(argv)
        return 128 + signal.SIGTERM if _swallowed else code  # ended within 50 ms of a swallowed SIGTERM: still 143
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr, flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        exit_on_ctrl_c()
