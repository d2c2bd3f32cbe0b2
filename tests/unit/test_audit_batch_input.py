"""Audit of batch inputs (design §5.6, §5.7 "Ranges", README ``jobs.backfill --events``): a directory of Parquet
files is one table whose every file is held to the column rules, and a backfill reads the table its caller names."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs import backfill
from jobs.events_table import read_events
from registry.core.catalog import load_folder
from registry.core.definitions import Window
from registry.core.errors import EventsTableError
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.plan import apply
from tests.unit.test_events_table import NOW_MS, SOURCE, _events


def _folder(tmp_path: Path, **files: pa.Table) -> str:
    folder = tmp_path / "events"
    folder.mkdir()
    for name, table in files.items():
        pq.write_table(table, folder / f"{name}.parquet")
    return str(folder)


def test_each_file_of_a_directory_is_read_by_its_own_column_types(tmp_path: Path) -> None:
    """Epoch ms in one file, a timestamp in microseconds in the other; integer amounts, then fractional ones. The
    dataset cast every file to the first one's types: the microseconds were taken for milliseconds (dead-lettered
    as ``future_timestamp``, or silently put in 1970), and 2.5 failed as 'not readable as Parquet'."""
    first = _events(4).slice(0, 2).set_column(3, "amount", pa.array([1, 2], pa.int64()))
    us = [(NOW_MS - 500) * 1000 + 999, (NOW_MS - 400) * 1000]
    second = (
        _events(4)
        .slice(2)
        .set_column(3, "amount", pa.array([2.5, 3.5]))
        .set_column(5, "event_time", pa.array(us, pa.timestamp("us", tz="UTC")))
    )
    for order in ("ab", "ba"):  # whichever file the dataset would have taken its schema from
        files = dict(zip(order, (first, second), strict=True))
        folder = tmp_path / order
        folder.mkdir()
        events = read_events(_folder(folder, **files), SOURCE, lambda: None, now_ms=NOW_MS)
        assert events.reasons() == {}
        assert events.valid.select(["transaction_id", "amount", "event_time"]).to_pylist() == [
            {"transaction_id": "t0", "amount": 1.0, "event_time": NOW_MS - 4000},
            {"transaction_id": "t1", "amount": 2.0, "event_time": NOW_MS - 3000},
            {"transaction_id": "t2", "amount": 2.5, "event_time": NOW_MS - 500},  # floored to the millisecond
            {"transaction_id": "t3", "amount": 3.5, "event_time": NOW_MS - 400},
        ]


@pytest.mark.parametrize(
    ("column", "values", "said"),
    [
        ("amount", pa.array(["1.0", "2.0"]), "event field 'amount': a column of string cannot hold double"),
        ("user_id", pa.array([1, 2]), "event field 'user_id': a column of int64 cannot hold string"),
        (
            "transaction_id",
            pa.array([True, False]),
            "event field 'transaction_id': a column of bool cannot hold string",
        ),
    ],
)
def test_a_file_of_a_directory_whose_column_cannot_hold_its_field_stops_the_run(
    tmp_path: Path, column: str, values: pa.Array, said: str
) -> None:
    """Such a column in the second file was cast to the first file's type ("1.0" became 1.0, True "true")."""
    second = _events(2).set_column(_events(2).schema.get_field_index(column), column, values)
    folder = _folder(tmp_path, a=_events(2), b=second)
    with pytest.raises(EventsTableError) as caught:
        read_events(folder, SOURCE, lambda: None, now_ms=NOW_MS)
    assert str(caught.value) == f"events table {folder!r}, file 'b.parquet': {said}"


@pytest.mark.parametrize("missing_in", ["a", "b"])
def test_a_file_of_a_directory_without_a_field_s_column_stops_the_run(tmp_path: Path, missing_in: str) -> None:
    """The first file's columns were taken for the table's: a later file without one had its rows rejected as
    ``missing_field`` (an optional field's silently null), while the same file first stopped the run."""
    files = {"a": _events(2), "b": _events(2)}
    files[missing_in] = files[missing_in].drop_columns(["currency"])
    folder = _folder(tmp_path, **files)
    with pytest.raises(EventsTableError) as caught:
        read_events(folder, SOURCE, lambda: None, now_ms=NOW_MS)
    assert str(caught.value) == (
        f"events table {folder!r}, file '{missing_in}.parquet': no column for event field(s) currency"
    )


def test_a_directory_with_no_parquet_file_is_named(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    with pytest.raises(EventsTableError) as caught:
        read_events(folder, SOURCE, lambda: None, now_ms=NOW_MS)
    assert str(caught.value) == f"events table {folder!r}: no Parquet file in the directory"


def test_an_empty_file_is_an_empty_table(tmp_path: Path) -> None:
    from jobs.events_table import arrow_schema

    folder = _folder(tmp_path, a=arrow_schema(SOURCE).empty_table(), b=_events(2))
    events = read_events(folder, SOURCE, lambda: None, now_ms=NOW_MS)
    assert events.valid.column("transaction_id").to_pylist() == ["t0", "t1"]


def _with_version_2(tmp_path: Path) -> Path:
    db = tmp_path / "definitions.db"
    store = DefinitionStore(db)
    apply(store, load_folder())
    v1 = store.catalog().get("user", "txn_count_1h")
    store.register(v1.model_copy(update={"version": 2, "window": Window(kind="tumbling", size=timedelta(minutes=30))}))
    return db


def test_a_backfill_reads_the_table_at_a_path_relative_to_where_it_is_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The job runs in the repository: ``--events events.parquet`` was looked for there, not where the user ran
    the backfill ('no such file or directory' for a file beside them). The table here lacks a column, so the job
    stops reading it, before Flink: proof it found the file."""
    db = _with_version_2(tmp_path)
    pq.write_table(_events(2).drop_columns(["currency"]), tmp_path / "events.parquet")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "wh").as_uri())
    assert backfill.main(["user.txn_count_1h@2", "--events", "events.parquet"]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(
        f"error: backfill job failed (exit 1): events table {str(tmp_path / 'events.parquet')!r}: no column "
        "for event field(s) currency; active versions untouched"
    ), last


def test_a_backfill_s_job_uses_its_definitions_database_found_from_the_caller_s_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative ``FS_DEFINITIONS_DB`` was opened by the job from the repository (a new, empty database there)."""
    _with_version_2(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FS_DEFINITIONS_DB", "definitions.db")
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", "sqlite:///cat.db")  # relative too: the job must use the same
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "wh").as_uri())
    seen: dict[str, Any] = {}
    real = subprocess.Popen

    def fake_job(cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        seen.update(cmd=cmd, env=kwargs.get("env"), cwd=kwargs.get("cwd"))
        return real([sys.executable, "-c", "pass"], **kwargs)

    monkeypatch.setattr(backfill.subprocess, "Popen", fake_job)
    monkeypatch.setattr(backfill, "_committed_rows", lambda settings, since: 0)
    backfill.run(Settings.from_env(), ["user.txn_count_1h@2"], events="iceberg:raw.events", progress_every_s=0.1)
    assert seen["env"]["FS_DEFINITIONS_DB"] == str(tmp_path / "definitions.db")
    assert seen["env"]["FS_ICEBERG_CATALOG_URI"] == f"sqlite:///{tmp_path / 'cat.db'}"
    assert seen["cmd"][seen["cmd"].index("--events") + 1] == "iceberg:raw.events"  # not a path: as given


def test_a_version_named_twice_is_backfilled_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``user.txn_count_1h@2,user.txn_count_1h@v2`` went to the job as two features of one window group, whose SQL
    Flink refuses ("Column 'txn_count_1h' is ambiguous", a Java trace as the backfill's error)."""
    db = _with_version_2(tmp_path)
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "wh").as_uri())
    seen: dict[str, Any] = {}
    real = subprocess.Popen

    def fake_job(cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        seen.update(cmd=cmd)
        return real([sys.executable, "-c", "pass"], **kwargs)

    monkeypatch.setattr(backfill.subprocess, "Popen", fake_job)
    monkeypatch.setattr(backfill, "_committed_rows", lambda settings, since: 0)
    assert backfill.main(["user.txn_count_1h@2,user.txn_count_1h@v2", "user.txn_count_1h@2"]) == 0
    assert seen["cmd"][seen["cmd"].index("--versions") + 1] == "user.txn_count_1h@2"


def test_files_a_directory_does_not_read_are_named_not_left_out_silently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Names starting with ``_`` or ``.`` (Spark's and Hive's markers) are not read, as pyarrow's datasets skip them:
    two valid files were left out of a run that said nothing of them."""
    folder = _folder(tmp_path, a=_events(2))
    pq.write_table(_events(3), Path(folder) / "_b.parquet")
    (Path(folder) / ".hidden").mkdir()
    pq.write_table(_events(3), Path(folder) / ".hidden" / "c.parquet")
    (Path(folder) / "_SUCCESS").write_bytes(b"")
    events = read_events(folder, SOURCE, lambda: None, now_ms=NOW_MS)
    assert events.valid.num_rows == 2
    err = capsys.readouterr().err
    assert err == (
        f"[events] events table {folder!r}: not read: '.hidden/c.parquet', '_SUCCESS', '_b.parquet' (a file or folder "
        "whose name starts with '_' or '.' is a marker or hidden, as Spark and Hive write them)\n"
    )


def test_a_directory_whose_parquet_files_are_all_marked_says_so(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    pq.write_table(_events(3), Path(folder) / "_b.parquet")
    with pytest.raises(EventsTableError) as caught:
        read_events(folder, SOURCE, lambda: None, now_ms=NOW_MS)
    assert str(caught.value) == (
        f"events table {folder!r}: no Parquet file in the directory (not read: '_b.parquet'; a file or folder whose "
        "name starts with '_' or '.' is a marker or hidden, as Spark and Hive write them)"
    )


def test_two_runs_in_one_second_keep_each_their_rejected_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shipped_catalog: Any
) -> None:
    """The default file was named by the second alone: a second run in the same second overwrote the first's."""
    import time

    from jobs.batch_input import read_events_input

    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.25)
    settings = Settings(definitions_db=tmp_path / "defs" / "d.db")
    definitions = [shipped_catalog.get("user", "txn_count_1h")]
    for tag in ("first", "second"):
        events = _events(1, transaction_id=pa.array([tag]), event_time=pa.array([None], pa.int64()))  # rejected
        pq.write_table(events, tmp_path / f"{tag}.parquet")
        read_events_input(settings, str(tmp_path / f"{tag}.parquet"), definitions, None)
    written = sorted((tmp_path / "defs").glob("batch-rejected-1800000000-*.parquet"))
    kept = sorted(pq.read_table(p).column("transaction_id")[0].as_py() for p in written)
    assert kept == ["first", "second"]
