"""Request-time feature functions for the tests: importable by name, like a user's module."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


def count_plus_amount(columns: Mapping[str, pa.Array]) -> pa.Array:
    """``count + amount`` as a double (null if either is null)."""
    return pc.add(pc.cast(columns["count_5m"], pa.float64()), columns["amount"])


def sum_times_amount(columns: Mapping[str, pa.Array]) -> pa.Array:
    return pc.multiply(columns["sum_10m"], columns["amount"])


def label_of(columns: Mapping[str, pa.Array]) -> list[Any]:
    """A plain list of strings: ``merchant|channel``, null when the merchant is null."""
    return [
        None if m is None else f"{m}|{c}"
        for m, c in zip(columns["last_merchant"].to_pylist(), columns["channel"].to_pylist(), strict=True)
    ]


def fails(columns: Mapping[str, pa.Array]) -> pa.Array:
    raise ZeroDivisionError("boom")


def wrong_type(columns: Mapping[str, pa.Array]) -> list[str]:
    return ["not a number"] * len(columns["amount"])


def wrong_length(columns: Mapping[str, pa.Array]) -> list[float]:
    return [1.0]


def not_finite(columns: Mapping[str, pa.Array]) -> pa.Array:
    """amount / 0: inf (and nan for 0 / 0), which JSON cannot carry."""
    return pc.divide(columns["amount"], pa.scalar(0.0))


NOT_A_FUNCTION = 42


def too_big(columns: Mapping[str, pa.Array]) -> list[int]:
    """An integer past 64 bits, for a long feature."""
    return [2**70] * len(columns["amount"])


def amount_as_long(columns: Mapping[str, pa.Array]) -> pa.Array:
    return columns["amount"]


def max_plus_amount(columns: Mapping[str, pa.Array]) -> pa.Array:
    """``amount_max + amount`` (null if either is null)."""
    return pc.add(columns["amount_max"], columns["amount"])
