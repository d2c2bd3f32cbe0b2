"""Text as Java writes and reads it: Jackson's compact JSON, Java's doubles and ints, for texts a client may compare.

Avro Java (which Confluent's registry runs) writes a schema, and quotes JSON in its error messages, with
Jackson: compact (no spaces after ``:`` and ``,``), non-ASCII characters as they are, control characters as
``\\u001F``, doubles as Java's ``Double.toString`` (``1.0E10``; NaN as ``"NaN"``). It reads a float or double
field's string default with ``Double.parseDouble``; Confluent reads a version or an id with ``Integer.parseInt``.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

# What Java's Double.parseDouble reads (FloatingDecimal): optional sign, NaN, Infinity, a decimal with an
# optional exponent, or a hexadecimal float (exponent required), each with an optional f/F/d/D suffix.
_JAVA_DOUBLE = re.compile(
    r"[+-]?(NaN|Infinity|((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|0[xX]([0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)"
    r"[pP][+-]?\d+)[fFdD]?)"
)


def java_double(text: str) -> float | None:
    """``Double.parseDouble(text)`` as Avro Java applies it to a float or double field's string default,
    None where Java throws NumberFormatException."""
    stripped = text.strip(
        " \t\n\r\x0b\x0c\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f"
    )
    if not _JAVA_DOUBLE.fullmatch(stripped):
        return None
    body = stripped.rstrip("fFdD") if not stripped.endswith(("NaN", "Infinity")) else stripped
    sign = -1.0 if body.startswith("-") else 1.0
    unsigned = body.lstrip("+-")
    if unsigned == "NaN":
        return float("nan")
    if unsigned == "Infinity":
        return sign * float("inf")
    if unsigned[:2] in ("0x", "0X"):
        mantissa, exponent = unsigned[2:].lower().split("p")
        whole, _, frac = mantissa.partition(".")
        value = int(whole or "0", 16) + (int(frac, 16) / 16 ** len(frac) if frac else 0.0)
        return sign * value * 2.0 ** int(exponent)
    return sign * float(unsigned)


_JAVA_INT = re.compile(r"[+-]?\d+")  # what Java's Integer.parseInt reads (Unicode decimal digits), range aside
_INT_RANGE = (-(2**31), 2**31 - 1)


def java_int(text: str) -> int | None:
    """Java's ``Integer.parseInt(text)`` (and ``Integer.valueOf``, with which Jersey reads an ``int`` parameter): an
    optional sign and decimal digits in the int range, nothing around them (no blank, no ``_`` as ``1_0``, which
    Python's ``int`` reads as 10); None where Java throws NumberFormatException."""
    if not _JAVA_INT.fullmatch(text):
        return None
    try:
        number = int(text)
    except ValueError:  # more digits than Python converts
        return None
    return number if _INT_RANGE[0] <= number <= _INT_RANGE[1] else None


_CONTROL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u00([0-9a-f]{2})")  # an escape, not an escaped backslash


def double_text(value: float) -> str:
    """How Jackson writes a double (Java's ``Double.toString``): ``1.0E10``, ``1.0E-5``, ``0.001``, ``"NaN"``."""
    if math.isnan(value):
        return '"NaN"'
    if math.isinf(value):
        return '"Infinity"' if value > 0 else '"-Infinity"'
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    _, digits, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    shown = "".join(map(str, digits))
    point = len(shown) + int(exponent)  # the decimal point sits after this many digits
    if 1e-3 <= abs(value) < 1e7:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{shown}"
        whole, fraction = shown[:point].ljust(point, "0"), shown[point:]
        return f"{sign}{whole}.{fraction or '0'}"
    return f"{sign}{shown[0]}.{shown[1:] or '0'}E{point - 1}"


def dumps(value: Any) -> str:
    """Compact JSON as Jackson writes it: doubles as Java does, control characters as ``\\u001F``."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    if isinstance(value, float):
        return double_text(value)
    if isinstance(value, str):
        return _CONTROL_ESCAPE.sub(
            lambda m: f"{m.group(1)}\\u00{m.group(2).upper()}", json.dumps(value, ensure_ascii=False)
        )
    return json.dumps(value, ensure_ascii=False)
