"""Audit of a table of events' value conversions and locations (design §5.6, parity §5.5).

A ``float`` field is an Avro float: 32 bits on the wire, a FLOAT row field in the stream job, ``float32`` in a batch
run. So an integer column feeds it only where a float holds the value exactly (±2^24, not a double's ±2^53), and a
double column is rounded to the nearest float, as the stream decoder reads the value a producer wrote. A directory
whose files are none of them Parquet has no Parquet file; a non-Parquet file beside Parquet ones is named as its file.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import jobs.events_table
from jobs.events_table import read_events
from registry.core.definitions import Source
from registry.core.errors import DecodeError, EventsTableError
from schemas.wire import frame
from tests.unit.test_events_table import NOW_MS, SOURCE, _events
from udfs.decode import EventDecoder

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Reading",
    "fields": [
        {"name": "reading_id", "type": "string"},
        {"name": "user_id", "type": "string"},
        {"name": "score", "type": "float"},
        {"name": "event_time", "type": "long"},
    ],
}
FLOATS = Source(
    topic="readings",
    event_schema="reading",
    subject="readings-value",
    entity_key="user_id",
    timestamp_field="event_time",
    event_id_field="reading_id",
)


@pytest.fixture
def float_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs.events_table, "load_schema", lambda name: SCHEMA)


def _table(tmp_path: Path, score: pa.Array) -> str:
    n = len(score)
    table = pa.table(
        {
            "reading_id": [f"r{i}" for i in range(n)],
            "user_id": ["u1"] * n,
            "score": score,
            "event_time": pa.array([NOW_MS - 1000 + i for i in range(n)], pa.int64()),
        }
    )
    path = tmp_path / "readings.parquet"
    pq.write_table(table, path)
    return str(path)


def _stream_value(value: float) -> tuple[str | None, Any]:
    """What the stream gets for a producer's ``value`` in the float field: the record through Avro's writer and
    ``EventDecoder`` (the decoders' reference): ``(None, value)`` or ``(reason, None)``."""
    parsed = fastavro.parse_schema(SCHEMA)
    body = io.BytesIO()
    record = {"reading_id": "r0", "user_id": "u1", "score": value, "event_time": NOW_MS - 1000}
    fastavro.schemaless_writer(body, parsed, record)
    decoder = EventDecoder(lambda _: json.dumps(SCHEMA), SCHEMA, timestamp_field="event_time", clock_ms=lambda: NOW_MS)
    try:
        return None, decoder.decode(frame(1, body.getvalue()))["score"]
    except DecodeError as exc:
        return exc.reason, None


@pytest.mark.usefixtures("float_schema")
def test_a_float_field_takes_the_integers_a_float_holds_exactly_within_2_to_the_24(tmp_path: Path) -> None:
    """±2^24 are read exactly; 2^24 + 1 (which the stream would have rounded to 2^24) stops the run naming the field,
    as does 2^53, which a double holds but a float does not."""
    events = read_events(_table(tmp_path, pa.array([2**24, -(2**24)], pa.int64())), FLOATS, lambda: None, now_ms=NOW_MS)
    assert events.valid.column("score").to_pylist() == [float(2**24), float(-(2**24))]
    for value in (2**24 + 1, -(2**24) - 1, 2**53):
        with pytest.raises(EventsTableError, match=r"event field 'score'.*not in range"):
            read_events(_table(tmp_path, pa.array([1, value], pa.int64())), FLOATS, lambda: None, now_ms=NOW_MS)


@pytest.mark.usefixtures("float_schema")
@pytest.mark.parametrize("value", [0.1, 1 / 3, 3.4028235677973366e38, 1e-46, 1e39, -1e39])
def test_a_float_field_from_doubles_is_what_the_stream_decodes(tmp_path: Path, value: float) -> None:
    """A double column's value rounded to the nearest float, as the decoder reads a producer's: 0.1 is
    0.10000000149011612 both ways, and a value past a float's range is an infinity, ``non_finite`` both ways."""
    events = read_events(_table(tmp_path, pa.array([value])), FLOATS, lambda: None, now_ms=NOW_MS)
    reasons = events.rejected.column("reason").to_pylist()
    batch = (reasons[0], None) if reasons else (None, events.valid.column("score").to_pylist()[0])
    assert batch == _stream_value(value)


def test_a_directory_with_files_but_none_of_them_parquet_has_no_parquet_file(tmp_path: Path) -> None:
    """It said 'not readable as Parquet' about the directory; design §5.6: a directory with no Parquet file."""
    folder = tmp_path / "events"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a table")
    with pytest.raises(EventsTableError) as caught:
        read_events(str(folder), SOURCE, lambda: None, now_ms=NOW_MS)
    message = str(caught.value)
    assert message.startswith(f"events table {str(folder)!r}: no Parquet file in the directory")
    assert "'notes.txt'" in message


def test_a_file_that_is_not_parquet_beside_parquet_ones_stops_the_run_named_as_its_file(tmp_path: Path) -> None:
    """Not left out silently, and named as every file of a directory is (`events table 'DIR', file 'F': ...`);
    the dataset's discovery read it first and named only the directory."""
    folder = tmp_path / "events"
    folder.mkdir()
    pq.write_table(_events(2), folder / "a.parquet")
    (folder / "README.md").write_text("about these events")
    with pytest.raises(EventsTableError) as caught:
        read_events(str(folder), SOURCE, lambda: None, now_ms=NOW_MS)
    assert str(caught.value).startswith(f"events table {str(folder)!r}, file 'README.md': not readable as Parquet")


def test_a_single_file_that_is_not_parquet_is_named(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    path.write_text("nope")
    with pytest.raises(EventsTableError, match=r"^events table '.*events\.parquet': not readable as Parquet"):
        read_events(str(path), SOURCE, lambda: None, now_ms=NOW_MS)
