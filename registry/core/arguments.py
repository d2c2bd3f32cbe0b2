"""Argparse types for the commands' numbers: one wording for every command.

argparse names the option and exits 2 with the message, e.g.
``argument --chunk-rows: must be a whole number of 1 or more, not '0'``. Both bounds are included.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

from registry.core.shown import printed_line, shown

_WHOLE = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _bound(x: float) -> str:
    return str(int(x)) if isinstance(x, int) else f"{x:g}"  # 2147483647, not 2.14748e+09


def _span(low: float, high: float) -> str:
    return f"from {_bound(low)} to {_bound(high)}" if math.isfinite(high) else f"of {_bound(low)} or more"


def whole(low: int, high: float = math.inf) -> Callable[[str], int]:
    """A whole number in ``[low, high]``: ASCII digits with an optional sign (``7.0``, ``1_000``, ``٥`` refused)."""

    def parse(raw: str) -> int:
        from registry.core.settings import whole_number  # as the host check: no settings model at import

        value = whole_number(raw) if _WHOLE.fullmatch(raw) is not None else None
        if value is None or not low <= value <= high:
            said = repr(raw) if len(raw) <= 24 else f"{raw[:12]!r}...({len(raw)} characters)"
            raise argparse.ArgumentTypeError(f"must be a whole number {_span(low, high)}, not {said}")
        return value

    return parse


def number(low: float, high: float) -> Callable[[str], float]:
    """A number in ``[low, high]`` written as a decimal number, optionally with an exponent, in ASCII (``0.5``,
    ``.5``, ``1e-3``): not NaN, not infinite (even when ``high`` is); ``1_0``, `` 0.5 `` and ``٥`` refused."""

    def parse(raw: str) -> float:
        try:
            if _DECIMAL.fullmatch(raw) is None:
                raise ValueError(raw)
            value = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a number {_span(low, high)}, not {shown(raw, quoted=True)}"
            ) from None
        # The bounds compared with the number as written, not as rounded to a float: 3600.0000000000001 is past 3,600
        # though its float is 3600.0.
        exact = Decimal(raw)
        within = Decimal(repr(low)) <= exact and (math.isinf(high) or exact <= Decimal(repr(high)))
        if not (math.isfinite(value) and within):
            raise argparse.ArgumentTypeError(f"must be a number {_span(low, high)}, not {shown(raw, quoted=True)}")
        return value

    return parse


def duration(raw: str) -> timedelta:
    """A duration as definitions write one (``registry.core.durations``: a whole number and ``ms``, ``s``, ``m``,
    ``h`` or ``d``; ``0s`` included)."""
    from registry.core.durations import parse_duration

    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_duration(raw: str) -> timedelta:
    """``duration`` above 0 (``0s`` is a usage error: a retention of 0, for one, deletes everything held)."""
    span = duration(raw)
    if span <= timedelta(0):
        raise argparse.ArgumentTypeError(f"must be above 0, not {raw!r}")
    return span


def instant(raw: str) -> str:
    """A point in time (``registry.core.durations.instant_ms``: epoch milliseconds in ASCII digits, or ISO-8601
    with a zone, in whole milliseconds); the text itself, checked."""
    from registry.core.durations import instant_ms

    try:
        instant_ms(raw)
    except ValueError as exc:
        if raw.isascii() and raw.isdigit() and len(raw.lstrip("0")) > 15:  # past 9999 (int() takes 4300 digits)
            raise argparse.ArgumentTypeError(
                f"{shown(raw, quoted=True)} epoch milliseconds is past the year 9999"
            ) from None
        raise argparse.ArgumentTypeError(str(exc)) from None
    return raw


def host(raw: str) -> str:
    """One host name or IPv4 address (as ``FS_HOST``: not empty, no white space, ``:``, ``/`` or ``,``)."""
    from registry.core.errors import SettingsError
    from registry.core.settings import check_host

    try:
        return check_host("address", raw)
    except SettingsError:
        raise argparse.ArgumentTypeError(
            f"must be one host name or IPv4 address, not {shown(raw, quoted=True)}"
        ) from None


def kafka_topic(raw: str) -> str:
    """A Kafka topic name (``registry.core.definitions.topic_name``: 1-249 of A-Z a-z 0-9 . _ -, not ``.`` or ``..``):
    anything else reached the Kafka client, whose refusal was a traceback for a byte that is not text or a name past
    its length."""
    from registry.core.definitions import topic_name

    try:
        return topic_name(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def text(raw: str) -> str:
    """A name or id given as an argument: Unicode text. Bytes that are not UTF-8 reach Python as lone surrogates,
    which no store can hold (SQLite refused them with a traceback)."""
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"must be UTF-8 text, not {shown(raw, quoted=True)}") from None
    return raw


def group_id(raw: str) -> str:
    """A Kafka consumer group id: UTF-8 text, not empty nor white space only, without control characters. An empty
    one aborted the process inside librdkafka (an assertion, SIGABRT, no error line)."""
    text(raw)
    if not raw.strip() or not raw.isprintable():
        raise argparse.ArgumentTypeError(
            f"must be a consumer group's name: not empty nor white space only, no control characters; not "
            f"{shown(raw, quoted=True)}"
        )
    return raw


def feature_names(raw: str) -> str:
    """``--features``: feature names (``name`` or ``name@vN``) separated by commas, none of them empty (``a,,b``, a
    trailing comma and an empty value were looked up as a feature named ""); that they exist is the catalog's to say."""
    if not all(part.strip() for part in raw.split(",")):
        raise argparse.ArgumentTypeError(
            f"must be feature names separated by commas, none empty, not {shown(raw, quoted=True)}"
        )
    return raw


def location(raw: str) -> str:
    """``--events``: a location (a path, ``iceberg:<namespace>.<table>``, ``archive``); an empty one, or one of white
    space only, would have been read as the current folder."""
    if not raw.strip():
        raise argparse.ArgumentTypeError(
            f"must be a Parquet file or folder, iceberg:<namespace>.<table> or archive, not {shown(raw, quoted=True)}"
        )
    return raw


def folder(raw: str) -> Path:
    """A folder option (``--state-dir``): an empty one, or one of white space only, was the current folder."""
    if not raw.strip():
        raise argparse.ArgumentTypeError(f"must be a folder path, not {shown(raw, quoted=True)}")
    return Path(raw)


def refs(raw: str) -> str:
    """A comma-separated list of ``entity.name@version`` references, none of them empty (resolved later)."""
    if not all(part.strip() for part in raw.split(",")):
        raise argparse.ArgumentTypeError(
            f"must be entity.name@version references separated by commas, not {shown(raw, quoted=True)}"
        )
    return raw


class Once(argparse.Action):
    """An option that may be given once: a second value is a usage error naming it, never the first one dropped
    (``--versions a@2 --versions b@3`` computed ``b@3`` alone)."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        if getattr(namespace, f"_given_{self.dest}", False):
            parser.error(f"argument {option}: given more than once: give it once")
        setattr(namespace, f"_given_{self.dest}", True)
        setattr(namespace, self.dest, values)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser where an option storing one value may be given once (``Once``): a second value is a usage
    error naming it (exit 2), never silently the one kept. ``erasure --key user_id=u1 --key merchant_id=7`` erased
    every entity whose ``merchant_id`` was 7; ``--as-of`` or ``--features`` given twice read the last. Flags and
    options that collect (``action="append"``) are as argparse has them. Its sub-commands' parsers are of this class
    too, and so are its groups' options (they share its registry of actions)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", None, Once)
        self.register("action", "store", Once)

    def error(self, message: str) -> NoReturn:
        """A usage error (exit 2) on one line of at most 4,000 characters (``printed_line``), as a command's last
        line is: argparse wrote a message naming a long value in full."""
        super().error(printed_line(message))
