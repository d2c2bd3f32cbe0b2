"""A table of events whose column cannot hold its field (design §5.6): one ``error:`` line naming the table as
well as the field, as a missing column's does (it named the field alone)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.events_table import read_events
from registry.core.errors import EventsTableError
from tests.unit.test_events_table import NOW_MS, SOURCE, _events


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ({"amount": pa.array(["1.0"] * 2)}, "event field 'amount': a column of string cannot hold double"),
        ({"amount": pa.array([2**53 + 1, 0], pa.int64())}, "event field 'amount': Integer value 9007199254740993"),
        ({"event_time": pa.array([1.5, 2.5])}, "timestamp field 'event_time' is double"),
        ({"user_id": pa.array([1, 2])}, "event field 'user_id': a column of int64 cannot hold string"),
    ],
)
def test_a_column_that_cannot_hold_its_field_names_the_table(
    tmp_path: Path, override: dict[str, pa.Array], said: str
) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(_events(2, **override), path)
    with pytest.raises(EventsTableError) as caught:
        read_events(str(path), SOURCE, lambda: None, now_ms=NOW_MS)
    assert str(caught.value).startswith(f"events table {str(path)!r}: {said}")


def test_a_double_holds_integers_exactly_up_to_two_to_the_53(tmp_path: Path) -> None:
    """ "integer columns whose values a double holds exactly (within ±2^53, checked value by value)"."""
    path = tmp_path / "events.parquet"
    pq.write_table(_events(2, amount=pa.array([2**53, -(2**53)], pa.int64())), path)
    events = read_events(str(path), SOURCE, lambda: None, now_ms=NOW_MS)
    assert events.valid.column("amount").to_pylist() == [float(2**53), float(-(2**53))]


def test_a_timestamp_in_seconds_past_int64_milliseconds_stays_on_its_side_of_1970() -> None:
    """Seconds were multiplied by 1,000 in int64 and wrapped: 9.3e15 s (far future) became negative, refused as
    `bad_timestamp` instead of `future_timestamp` (a table handed over in Arrow; Parquet has no seconds unit)."""
    from jobs.events_table import _epoch_ms

    seconds = pa.chunked_array([pa.array([9_300_000_000_000_000, -9_300_000_000_000_000, 5], pa.timestamp("s"))])
    ms = _epoch_ms(seconds, "event_time").to_pylist()
    assert ms[0] > NOW_MS + 10**12 and ms[1] < 0 and ms[2] == 5_000
