"""A value someone gave (a name, an id, a path, a request's path) as an error message or a log line names it.

A message is one line a reader can trust: a value holding a line break, a carriage return, an escape sequence
(``\\x1b[31m``), NUL or another character that is not printable (a lone surrogate from bytes that are not UTF-8
included) is quoted as Python's ``repr`` writes it, so it cannot end the line, forge a second one or recolour a
terminal; a printable value is written as it is. Past ``limit`` characters only its start is shown, followed by
``...(N characters)``: a 100 KB value is not a 100 KB line.
"""

from __future__ import annotations

LIMIT = 1_000


def shown(value: object, limit: int = LIMIT) -> str:
    """``value`` (its ``str``) as a message names it: as written when every character is printable, else quoted
    (``repr``); cut to its first ``limit`` characters, its length said, when longer."""
    text = str(value)
    start = text[:limit]
    out = start if start.isprintable() else repr(start)
    return out if len(text) <= limit else f"{out}...({len(text)} characters)"
