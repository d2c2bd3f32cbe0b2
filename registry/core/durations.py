"""Durations written the way people write them in definition files: ``500ms``, ``30s``, ``5m``, ``1h``, ``7d``."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
# ASCII digits then the unit, nothing around them: "٥m" is not 5 minutes, and " 5m", "5 m" and "5m\n" are refused.
_PATTERN = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_MAX_DIGITS = 20  # past any timedelta (999,999,999 days is 17 digits of ms): out of range, not parsed


def parse_duration(value: object) -> timedelta:
    """Parse ``"5m"``-style text (or check a timedelta); raise ValueError naming the input.

    A duration is a whole number of milliseconds, 0 or more, whichever way it is given: a negative timedelta or one
    with a fraction of a millisecond is refused (``format_duration`` would write ``timedelta(microseconds=500)``
    as ``0ms``), not rounded."""
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise ValueError(f"duration {_spell(value)} is negative (a duration is 0 or more whole milliseconds)")
        if value % timedelta(milliseconds=1):
            raise ValueError(
                f"duration {_spell(value)} has a fraction of a millisecond (a duration is whole milliseconds)"
            )
        return value
    if not isinstance(value, str):
        raise ValueError(f"duration must be text like '5m' or '1h', got {value!r}")
    match = _PATTERN.fullmatch(value)
    if not match:
        raise ValueError(f"duration {value!r} is not a whole number followed by ms, s, m, h or d")
    digits = match.group(1).lstrip("0") or "0"  # "0005m" is 5m
    try:
        if len(digits) > _MAX_DIGITS:  # int() itself refuses more than 4,300 digits, with advice about sys
            raise OverflowError
        return timedelta(milliseconds=int(digits) * _UNITS_MS[match.group(2)])
    except OverflowError:
        raise ValueError(f"duration {value[:40]!r}{'...' if len(value) > 40 else ''} is out of range") from None


def _spell(value: timedelta) -> str:
    """Any timedelta in words an error can quote: ``-5ms``, ``-1d``, ``0.500ms`` (``format_duration`` spells
    whole non-negative milliseconds only)."""
    micros = value // timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    ms, rest = divmod(abs(micros), 1000)
    return f"{sign}{ms}.{rest:03d}ms" if rest else sign + format_duration(timedelta(milliseconds=ms))


def format_duration(value: timedelta) -> str:
    """The shortest exact ``"5m"``-style spelling of a duration."""
    ms = to_millis(value)
    for unit in ("d", "h", "m", "s"):
        if ms and ms % _UNITS_MS[unit] == 0:
            return f"{ms // _UNITS_MS[unit]}{unit}"
    return f"{ms}ms"


def to_millis(value: timedelta) -> int:
    """Whole milliseconds, in integer arithmetic (exact at any range a timedelta holds)."""
    return value // timedelta(milliseconds=1)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    # documented as written (an OpenAPI document, a JSON schema): not ISO 8601's "P1D", which is refused
    WithJsonSchema(
        {"type": "string", "pattern": f"^{_PATTERN.pattern}$", "examples": ["500ms", "30s", "5m", "1h", "7d"]}
    ),
]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FRACTION = re.compile(r"[.,](\d{7,})")  # in an ISO-8601 time only the seconds' fraction follows "." or ","


def finer_than_microseconds(text: str) -> bool:
    """Whether the ISO-8601 time ``text`` has a fraction of a second past its 6th digit that is not zero:
    ``datetime.fromisoformat`` drops those digits, so such a time would be read as an earlier one."""
    match = _FRACTION.search(text)
    return match is not None and match.group(1)[6:].strip("0") != ""


_OFFSET_FRACTION = re.compile(r"[+-]\d\d:?\d\d:?\d\d[.,](\d+)$")


def offset_finer_than_seconds(text: str) -> bool:
    """Whether the ISO-8601 time ``text`` has a UTC offset with a fraction of a second that is not zero
    (``+00:00:00.5``): Python 3.11's ``datetime.fromisoformat`` drops it, so such a time would be read at
    another offset (``+00:00``)."""
    match = _OFFSET_FRACTION.search(text)
    return match is not None and match.group(1).strip("0") != ""


_EXTENDED_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?![0-9])")


def extended_date(text: str) -> bool:
    """Whether the time ``text`` begins with its date as ``YYYY-MM-DD``. Python also reads ISO's basic form, so
    epoch milliseconds with anything after them (``1796032800000Z``, ``1796032800000.5``) were the year 1796."""
    return _EXTENDED_DATE.match(text) is not None


def parse_instant(text: str) -> datetime:
    """A point in time as a command line gives it: epoch milliseconds (digits), or ISO-8601 with a zone
    (``Z`` or an offset); an aware datetime. ValueError naming the input otherwise (the caller adds the flag)."""
    if text.isascii() and text.isdigit():
        digits = text.lstrip("0") or "0"  # leading zeros past Python's 4,300-digit int limit mean nothing
        if len(digits) > 30:
            raise ValueError(f"{text[:40]!r}... epoch milliseconds is past the year 9999")
        try:
            return EPOCH + timedelta(milliseconds=int(digits))
        except OverflowError:
            raise ValueError(f"{text!r} epoch milliseconds is past the year 9999") from None
    try:
        if not extended_date(text):
            raise ValueError
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO-8601 time nor epoch milliseconds (e.g. 2024-05-01T00:00:00Z, 1714521600000)"
        ) from None
    if finer_than_microseconds(text):
        raise ValueError(f"{text!r}: a fraction of a microsecond is not a time this reads (give whole milliseconds)")
    if offset_finer_than_seconds(text):
        raise ValueError(f"{text!r}: give a UTC offset to the second at most")
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} needs a time zone (e.g. 2024-05-01T00:00:00Z)")
    return parsed


def instant_ms(text: str) -> int:
    """``parse_instant`` in epoch milliseconds; ValueError for a time with a fraction of a millisecond (event
    times and window bounds are whole milliseconds: no rounding to guess)."""
    ms, rest = divmod(parse_instant(text) - EPOCH, timedelta(milliseconds=1))
    if rest:
        raise ValueError(f"{text!r}: give a whole millisecond (event times are epoch milliseconds)")
    return int(ms)


def calendar_date(value: object) -> object:
    """A date as TOML writes one, or its ``YYYY-MM-DD`` text (JSON): not a number (pydantic took 0 as 1970-01-01)
    nor a date-time (whose day depends on its offset), nor the other forms ``date.fromisoformat`` reads."""
    if type(value) is date:
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    shown = value.isoformat() if isinstance(value, date) else repr(value)  # a TOML date-time as TOML writes it
    raise ValueError(f"must be a date, YYYY-MM-DD, not {shown}")
