"""JSON from outside, nested at most ``MAX_NESTING`` levels: deeper input is refused, never a crash.

Python's parser raises ``RecursionError`` (not ``ValueError``) near 1,000 levels, and the code that
walks a parsed Avro schema recurses per level too; a request nested deeper than any real schema is
refused here with a ``ValueError`` that callers turn into their own "invalid input" answer.
"""

from __future__ import annotations

import json
from typing import Any

MAX_NESTING = 256  # arrays and objects inside one another; an Avro type nests about two per level


class NestingError(ValueError):
    """Valid JSON, nested deeper than ``MAX_NESTING``."""


def loads(text: str | bytes) -> Any:
    """``json.loads``, raising ValueError for invalid JSON or JSON nested more than ``MAX_NESTING`` levels."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise NestingError(f"JSON nested more than {MAX_NESTING} levels") from None
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_NESTING:
                raise NestingError(f"JSON nested more than {MAX_NESTING} levels")
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return value
