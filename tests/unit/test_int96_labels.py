"""Label files whose times are INT96 (Spark's and Hive's legacy Parquet timestamp): Arrow reads them as nanoseconds,
which wrap past 1677-09-21..2262-04-11 without a word, so a label at 9999-12-31 (a common far-future sentinel) was
joined as 1816, and the output's label column held the wrapped time (audit)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from registry.core.errors import DatasetError
from serving.offline.command_io import open_labels


def _int96(path: Path, times: list[datetime | None]) -> Path:
    labels = pa.table({"who": ["e"] * len(times), "ts": pa.array(times, pa.timestamp("us", "UTC"))})
    pq.write_table(labels, path, use_deprecated_int96_timestamps=True)
    assert pq.ParquetFile(path).schema.column(1).physical_type == "INT96"
    return path


def _read(path: Path, chunk_rows: int) -> list[datetime | None]:
    _, batches = open_labels(path, chunk_rows)
    return [t for batch in batches for t in batch.column("ts").to_pylist()]


@pytest.mark.parametrize("chunk_rows", [1, 2, 100])
def test_int96_times_arrow_reads_exactly_pass_through(tmp_path: Path, chunk_rows: int) -> None:
    times = [
        datetime(2024, 3, 31, 1, 59, 59, 999_999, tzinfo=UTC),
        None,
        datetime(1969, 1, 1, tzinfo=UTC),  # before 1970 on a whole day
        datetime(1700, 6, 1, tzinfo=UTC),
        datetime(2262, 4, 11, tzinfo=UTC),
    ]
    read = _read(_int96(tmp_path / "l.parquet", times), chunk_rows)
    assert [None if t is None else t.replace(tzinfo=UTC) for t in read] == times


@pytest.mark.parametrize(
    ("wrong", "at"),
    [
        (datetime(9999, 12, 31, tzinfo=UTC), 2),  # read as 1816-03-29 before
        (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=(2**64 - 54 * 60 * 10**9) // 1000 + 1), 2),
        (datetime(1, 1, 1, tzinfo=UTC), 2),
        (datetime(1969, 12, 31, 23, 6, tzinfo=UTC), 2),  # Arrow's microsecond read is wrong here: refused too
    ],
)
def test_an_int96_time_arrow_cannot_read_exactly_is_refused_naming_its_row(
    tmp_path: Path, wrong: datetime, at: int
) -> None:
    path = _int96(tmp_path / "l.parquet", [datetime(2024, 1, 1, tzinfo=UTC), None, wrong])
    for chunk_rows in (1, 100):
        with pytest.raises(DatasetError, match=rf"column 'ts' is an INT96 timestamp .* whose row {at} Arrow's reads"):
            _read(path, chunk_rows)


def test_int96_columns_are_checked_by_position_when_names_repeat(tmp_path: Path) -> None:
    """A pass-through column name given twice: the check paired columns by name, and Arrow refused the repeated one
    (``KeyError``: a traceback, not an error line)."""
    ok, far = datetime(2024, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)
    for second, refused in ((ok, False), (far, True)):
        columns = [pa.array([ok], pa.timestamp("us", "UTC")), pa.array([second], pa.timestamp("us", "UTC"))]
        path = tmp_path / f"{refused}.parquet"
        pq.write_table(pa.table(columns, names=["ts", "ts"]), path, use_deprecated_int96_timestamps=True)
        _, batches = open_labels(path, 10)
        if refused:
            with pytest.raises(DatasetError, match=r"column 'ts' is an INT96 timestamp .* whose row 0"):
                list(batches)
        else:
            assert [b.num_rows for b in batches] == [1]
