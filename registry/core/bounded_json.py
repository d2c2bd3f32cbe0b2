"""JSON from outside, nested at most ``MAX_NESTING`` levels, its strings Unicode text: deeper input, and a string
(or member name) holding an unpaired surrogate escape (``"\\ud800"``), are refused, never a crash.

Python's parser raises ``RecursionError`` (not ``ValueError``) near 1,000 levels, and the code that
walks a parsed Avro schema recurses per level too; a request nested deeper than any real schema is
refused here with a ``ValueError`` that callers turn into their own "invalid input" answer. JSON's escapes can
spell half of a UTF-16 pair alone; Python keeps it as a lone surrogate, which no UTF-8 store, log or answer can
encode (the schema registry answered such a body with a bare 500).
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_NESTING = 256  # arrays and objects inside one another; an Avro type nests about two per level


class NestingError(ValueError):
    """Valid JSON, nested deeper than ``MAX_NESTING``."""


class NotTextError(ValueError):
    """Valid JSON with a string or member name that holds an unpaired surrogate: not Unicode text."""


_SURROGATE = re.compile("[\ud800-\udfff]")


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
            if isinstance(item, dict):
                stack.extend((name, depth) for name in item)
        elif isinstance(item, str) and (found := _SURROGATE.search(item)) is not None:
            raise NotTextError(
                f"a JSON string with an unpaired surrogate (\\u{ord(found.group()):04x}): not Unicode text"
            )
    return value
