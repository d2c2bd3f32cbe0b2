"""README: Ctrl-C stops parity or statistics with one line, ``interrupted (Ctrl-C)``, exit 130. That held only while
``main`` ran: during the half second of imports before it, a KeyboardInterrupt traceback; after its report, while
the interpreter shut down, the process died of the signal with nothing said."""

from __future__ import annotations

import ast
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry.core.interrupt import INTERRUPTED

REPO = Path(__file__).resolve().parents[2]


def signalled_after_ready(script: str, stop: signal.Signals = signal.SIGINT) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    time.sleep(0.2)
    proc.send_signal(stop)
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def cleaning_up(runner: str, module: str) -> str:
    """A script whose main prints ``ready``, sleeps, and prints ``cleaned up`` in its ``finally``, run by ``runner``
    (``module``'s): what a signal must unwind through."""
    return (
        "import sys, time\n"
        f"from {module} import {runner}\n"
        "def run(*argv):\n"
        "    try:\n"
        "        print('ready', flush=True)\n"
        "        time.sleep(30)\n"
        "    finally:\n"
        "        print('cleaned up', flush=True)\n"
        "    return 0\n"
        f"sys.exit({runner}(run{', None' if runner != 'run_main' else ''}))\n"
    )


def test_a_ctrl_c_before_main_is_the_one_line_and_130() -> None:
    done = signalled_after_ready(
        "from registry.core.interrupt import exit_on_ctrl_c\n"
        "exit_on_ctrl_c()\n"
        "print('ready', flush=True)\n"
        "import time\n"
        "time.sleep(30)  # as the imports of a command's modules\n"
    )
    assert (done.returncode, done.stderr) == (130, f"{INTERRUPTED}\n")


def test_a_ctrl_c_after_the_report_is_the_one_line_and_130() -> None:
    done = signalled_after_ready(
        "import sys\n"
        "from serving.offline.report_command import interruptible\n"
        "def run(argv):\n"
        "    print('report', file=sys.stderr, flush=True)\n"
        "    return 0\n"
        "assert interruptible(run, None) == 0\n"
        "print('ready', flush=True)\n"
        "import time\n"
        "time.sleep(30)  # as the interpreter's shutdown\n"
    )
    assert (done.returncode, done.stderr) == (130, f"report\n{INTERRUPTED}\n")


def test_inside_main_a_ctrl_c_is_still_a_keyboard_interrupt_for_its_clean_up() -> None:
    done = signalled_after_ready(cleaning_up("interruptible", "serving.offline.report_command"))
    assert (done.returncode, done.stdout, done.stderr) == (130, "cleaned up\n", f"{INTERRUPTED}\n")


COMMANDS = [
    "serving/offline/parity.py",
    "serving/offline/statistics.py",
    "serving/offline/historical.py",
    "serving/offline/training.py",
    "serving/offline/batch_scoring.py",
    "serving/offline/retention.py",
    "serving/offline/erasure.py",
    "serving/offline/promotion.py",
    "serving/offline/plots.py",
    "jobs/produce.py",
    "jobs/backfill.py",
    "jobs/feature_job.py",
]


def test_a_sigterm_unwinds_through_the_clean_up_and_exits_143() -> None:
    """A SIGTERM (``timeout``, a stopped CI job) ended an export on the spot: its hidden temporary file stayed beside
    ``--out``, and erasure and retention left no audit record. Under ``run_command`` it unwinds as SystemExit(143)."""
    done = signalled_after_ready(cleaning_up("run_command", "registry.core.interrupt"), signal.SIGTERM)
    assert (done.returncode, done.stdout, done.stderr) == (143, "cleaned up\n", "")


def test_a_sigterm_landing_in_a_weakref_callback_still_unwinds_and_exits_143() -> None:
    """A SIGTERM whose ``SystemExit`` is raised inside a finalizer or weakref callback (py4j's run at any moment in a
    stream job) is "ignored" by Python: the process went on, and a follower's job outlived the follower it was to end
    with (its one SIGTERM, ``PR_SET_PDEATHSIG``, lost). It is sent again once the callback is over."""
    script = (
        "import os, signal, sys, time, weakref\n"
        "from registry.core.interrupt import run_command\n"
        "class Held: pass\n"
        "def callback(_):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)  # the signal arrives while the callback runs\n"
        "    time.sleep(0.2)\n"
        "def run(*argv):\n"
        "    try:\n"
        "        held = Held(); ref = weakref.ref(held, callback); del held\n"
        "        time.sleep(20)  # before: slept on, and ended 0\n"
        "    finally:\n"
        "        print('cleaned up', flush=True)\n"
        "    return 0\n"
        "sys.exit(run_command(run, None))\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (143, "cleaned up\n", "")  # no line, as any SIGTERM
    assert time.monotonic() - started < 10


def test_a_swallowed_sigterm_exits_143_even_when_main_returns_before_it_is_sent_again() -> None:
    script = (
        "import os, signal, sys, time, weakref\n"
        "from registry.core.interrupt import run_command\n"
        "class Held: pass\n"
        "def callback(_):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(0.2)\n"
        "def run(*argv):\n"
        "    held = Held(); ref = weakref.ref(held, callback); del held\n"
        "    return 0  # at once, within the 50 ms\n"
        "sys.exit(run_command(run, None))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (143, "")


@pytest.mark.parametrize("path", COMMANDS)
def test_the_commands_run_under_run_command(path: str) -> None:
    """Each command's ``__main__`` runs its ``main`` under ``registry.core.interrupt.run_command`` (Ctrl-C: one line
    and 130; SIGTERM: its clean-up, then 143)."""
    tree = ast.parse((REPO / path).read_text())
    last = tree.body[-1]
    assert isinstance(last, ast.If) and ast.unparse(last.test) == "__name__ == '__main__'"
    assert "sys.exit(run_command(" in ast.unparse(last) or "interruptible" in (REPO / path).read_text()


@pytest.mark.parametrize("path", COMMANDS)
def test_the_commands_take_ctrl_c_over_before_their_first_import(path: str) -> None:
    """The guard must come before any import that takes time: only ``from __future__`` may precede it."""
    tree = ast.parse((REPO / path).read_text())
    body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    assert isinstance(body[0], ast.ImportFrom) and body[0].module == "__future__"
    guard = body[1]
    assert isinstance(guard, ast.If) and ast.unparse(guard.test) == "__name__ == '__main__'"
    assert "exit_on_ctrl_c()" in ast.unparse(guard)
