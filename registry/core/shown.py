"""A value someone gave (a name, an id, a path, a request's path) as an error message or a log line names it, and a
command's error line as it is printed.

A message is one line a reader can trust: a value holding a line break, a carriage return, an escape sequence
(``\\x1b[31m``), NUL or another character that is not printable (a lone surrogate from bytes that are not UTF-8
included) is quoted as Python's ``repr`` writes it, so it cannot end the line, forge a second one or recolour a
terminal; a printable value is written as it is. Past ``limit`` characters only its start is shown, followed by
``...(N characters)``: a 100 KB value is not a 100 KB line.

``error_line`` is the last word of every command: whatever its message holds (an exception's text from a library
or the system, which may span lines, or a value not named through ``shown``), it is printed as one line of at most
``LINE_LIMIT`` characters and its length said.
"""

from __future__ import annotations

import codecs
import io
import os
import sys
from collections.abc import Callable

LIMIT = 1_000
LINE_LIMIT = 4_000  # a whole line: several values at their own 1,000 and the words around them


def shown(value: object, limit: int = LIMIT, *, quoted: bool = False) -> str:
    """``value`` (its ``str``) as a message names it: as written when every character is printable, else quoted
    (``repr``); cut to its first ``limit`` characters, its length said, when longer. ``quoted``: always as ``repr``
    writes it (a message that quotes its values, or a value whose blanks matter)."""
    text = str(value)
    start = text[:limit]
    out = start if start.isprintable() and not quoted else repr(start)
    return out if len(text) <= limit else f"{out}...({len(text)} characters)"


def printed_line(message: object, limit: int = LINE_LIMIT) -> str:
    """``message`` (its ``str``) as one printed line: as written when every character is printable; else each
    character that is not (a line feed, a carriage return, an escape, NUL, a lone surrogate) written as ``repr``
    writes it (``\\n``, ``\\x1b``), the rest as it is; cut to ``limit`` characters, its length said, when longer."""
    text = str(message)
    out = text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return out if len(out) <= limit else f"{out[:limit]}...({len(text)} characters)"


def error_line(message: object) -> str:
    """``error: <message>``, the line a command ends with (its ``message``: an exception or a sentence) through
    ``printed_line``: ``print(error_line(exc), file=sys.stderr)``."""
    return f"error: {printed_line(message)}"


def reader_gone(exc: BrokenPipeError, message: str | None = None) -> None:
    """A command's reader stopped reading (``| head -1``, a closed pipe): one ``error:`` line on stderr (``message``,
    else the exception's), and stdout sent to /dev/null, so what is left unwritten goes nowhere and the
    interpreter's last flush raises nothing (it was a BrokenPipeError traceback)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    print(error_line(exc if message is None else message), file=sys.stderr)


def flushed(command: Callable[[list[str] | None], int], argv: list[str] | None) -> int:
    """``command(argv)``'s exit code, its output flushed before it returns: a reader that stopped reading
    (``list | head -1``) is one ``error:`` line, exit 1 (``reader_gone``), where the interpreter's last flush could
    only make it a BrokenPipeError traceback. On a stdout that is not UTF-8 (``PYTHONIOENCODING=ascii``) a character
    it cannot encode is written as a backslash escape, as Python writes stderr: it ended the command in a traceback
    after its work was done (a training set built and recorded, then ``UnicodeEncodeError`` and exit 1)."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    if codecs.lookup(encoding).name != "utf-8" and isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        code = command(argv)
        sys.stdout.flush()
    except BrokenPipeError as exc:
        reader_gone(exc)
        return 1
    return code
