"""Faults in the middle of retention and erasure (docs/design.md §9): a catalog refusing a commit, a file
that cannot be deleted, a data file gone. Each run loses nothing it was not asked to delete, says what
happened in one ``error:`` line (exit 1, no traceback), and a rerun once the fault is gone completes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc

from registry.core.errors import StoreUnavailableError
from registry.definition_store import DefinitionStore
from serving.offline import retention
from serving.offline.erasure import erase_table
from tests.unit.conftest import build_definition
from tests.unit.test_oracle_lifecycle_retention import DAY_US, _append, _on_disk, _rows
from tests.unit.test_training_sets import iceberg_table

SHORT = build_definition(name="short_count", offline_retention="1d")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Any, list[Any]]]:
    """A catalog and definitions as the CLI finds them: rows 2 days old (past SHORT's 1 d) and fresh ones,
    in two appends."""
    monkeypatch.setenv("FS_AUTH", "off")
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "definitions.db"))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/t/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "t" / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    DefinitionStore(tmp_path / "definitions.db").register(SHORT)
    table = iceberg_table(tmp_path / "t", "feature_store")
    now_us = int(time.time() * 1_000_000)
    old = [("short_count", 1, e, now_us - 2 * DAY_US) for e in ("u1", "u2")]
    new = [("short_count", 1, e, now_us - DAY_US // 2) for e in ("u1", "u2")]
    _append(table, old)
    _append(table.refresh(), new)
    yield tmp_path / "t", table.refresh(), new


def _fail_commit(monkeypatch: pytest.MonkeyPatch, which: int) -> None:
    """The catalog refuses its ``which``-th commit as a read-only SQLite database does."""
    from pyiceberg.catalog.sql import SqlCatalog

    real = SqlCatalog.commit_table
    calls = {"n": 0}

    def commit_table(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == which:
            raise sqlalchemy.exc.OperationalError("UPDATE iceberg_tables", {}, Exception("readonly database"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SqlCatalog, "commit_table", commit_table)


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def test_a_refused_delete_loses_nothing_and_a_rerun_completes(
    env: tuple[Path, Any, list[Any]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, table, new = env
    before, snapshots = _rows(table), [s.snapshot_id for s in table.snapshots()]
    with monkeypatch.context() as m:
        _fail_commit(m, 1)
        assert retention.main(["--orphans-older-than", "0s"]) == 1
    err = _one_error_line(capsys)
    assert "could not delete rows of fs.offline_feature_values" in err and "nothing was deleted" in err
    table = table.refresh()
    assert _rows(table) == before and [s.snapshot_id for s in table.snapshots()] == snapshots
    assert retention.main(["--orphans-older-than", "0s"]) == 0
    table = table.refresh()
    assert sorted(_rows(table).elements()) == sorted(new) and len(table.snapshots()) == 1
    assert not {r for r in _on_disk(folder) if r not in new}


def test_a_refused_expiry_says_so_and_a_rerun_expires(
    env: tuple[Path, Any, list[Any]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, table, new = env
    with monkeypatch.context() as m:
        _fail_commit(m, 2)  # the delete commits, the expiry does not
        assert retention.main(["--orphans-older-than", "0s"]) == 1
    err = _one_error_line(capsys)
    assert "could not expire snapshots" in err and "no snapshot was expired" in err
    table = table.refresh()
    assert sorted(_rows(table).elements()) == sorted(new) and len(table.snapshots()) > 1
    assert retention.main(["--orphans-older-than", "0s"]) == 0
    table = table.refresh()
    assert len(table.snapshots()) == 1 and not {r for r in _on_disk(folder) if r not in new}


def test_files_that_cannot_be_deleted_are_named_and_a_rerun_removes_them(
    env: tuple[Path, Any, list[Any]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pyiceberg.io.pyarrow import PyArrowFileIO

    folder, table, new = env

    def refuse(self: Any, location: str) -> None:
        raise PermissionError(13, "Permission denied", location)

    with monkeypatch.context() as m:
        m.setattr(PyArrowFileIO, "delete", refuse)
        assert retention.main(["--orphans-older-than", "1d"]) == 1
    err = _one_error_line(capsys)
    assert "could not be deleted" in err and "PermissionError" in err
    table = table.refresh()
    assert sorted(_rows(table).elements()) == sorted(new) and len(table.snapshots()) == 1
    assert retention.main(["--orphans-older-than", "0s"]) == 0
    assert not {r for r in _on_disk(folder) if r not in new}


def test_a_missing_data_file_is_one_error_line_and_changes_nothing(
    env: tuple[Path, Any, list[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, table, _ = env
    paths = table.inspect.files().column("file_path").to_pylist()
    path = min(paths, key=lambda p: p.split("event_day=")[1])  # the old rows' day: the run must read it
    Path(path.removeprefix("file://")).unlink()
    metadata = table.metadata_location
    assert retention.main([]) == 1
    assert Path(path.removeprefix("file://")).name in _one_error_line(capsys)
    assert table.refresh().metadata_location == metadata


def test_an_erasure_whose_commit_is_refused_loses_nothing_and_a_rerun_erases(
    env: tuple[Path, Any, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, table, _ = env
    before = _rows(table)
    with monkeypatch.context() as m:
        _fail_commit(m, 1)
        with pytest.raises(StoreUnavailableError, match="nothing was deleted"):
            erase_table(table, "user", "u1")
    table = table.refresh()
    assert _rows(table) == before
    table, erased, _ = erase_table(table, "user", "u1")
    assert erased.rows_removed == 2
    assert all(e != "u1" for _, _, e, _ in _rows(table)) and all(e != "u1" for _, _, e, _ in _on_disk(folder))


@pytest.mark.parametrize("failing", [1, 2])
def test_an_erasure_record_that_cannot_be_written_is_one_error_saying_what_was_erased(
    env: tuple[Path, Any, list[Any]], monkeypatch: pytest.MonkeyPatch, failing: int
) -> None:
    """Step 1 first: a registry that refuses the record erases nothing; one refusing the final report leaves
    the stores erased and the step-1 record (which the writers follow) in place, and says so."""
    import sqlite3
    from datetime import UTC, datetime

    from registry.core.catalog import FeatureCatalog
    from registry.erasures import ErasureStore
    from registry.training_sets import TrainingSetStore
    from serving.offline.erasure import erase
    from tests.unit.test_oracle_lifecycle_erasure import StubSession

    folder, table, _ = env
    before = _rows(table)
    erasures = ErasureStore(folder / "r.db")
    real, calls = ErasureStore.record, {"n": 0}

    def record(self: Any, *args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == failing:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        real(self, *args)

    monkeypatch.setattr(ErasureStore, "record", record)
    with pytest.raises(StoreUnavailableError) as raised:
        erase(
            "user", "u1", session=StubSession(), keyspace="fs", offline=table, serving_log=None,  # type: ignore[arg-type]
            catalog=FeatureCatalog([SHORT]), erasures=erasures, training_sets=TrainingSetStore(folder / "r.db"),
            kafka_bootstrap=None, serving_log_topic="fs_serving_log", settle_s=0, now=datetime.now(UTC),
        )  # fmt: skip
    assert "\n" not in str(raised.value)
    left = _rows(table.refresh())
    if failing == 1:
        assert "nothing was erased" in str(raised.value) and left == before
        assert erasures.get("user", "u1") is None
    else:
        assert "the report could not be recorded" in str(raised.value)
        assert all(e != "u1" for _, _, e, _ in left) and erasures.get("user", "u1") is not None


def test_orphan_files_that_cannot_be_deleted_do_not_stop_the_others(
    env: tuple[Path, Any, list[Any]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """After the rows and snapshots are done: every orphan but the refused one goes, the refusal is one line,
    and a rerun deletes the rest."""
    from sinks.iceberg import maintenance

    folder, _, _ = env
    orphans = [folder / "wh" / "fs.db" / "offline_feature_values" / "data" / f"orphan-{i}.parquet" for i in range(3)]
    for path in orphans:
        path.write_bytes(b"x")
    real = maintenance._filesystem

    class Refusing:
        """The table's filesystem, refusing to delete one orphan."""

        def __init__(self, filesystem: Any) -> None:
            self.get_file_info = filesystem.get_file_info
            self._delete = filesystem.delete_file

        def delete_file(self, path: str) -> None:
            if path.endswith("orphan-0.parquet"):
                raise PermissionError(13, "Permission denied", path)
            self._delete(path)

    def refusing(uri: str) -> tuple[Any, str]:
        filesystem, root = real(uri)
        return Refusing(filesystem), root

    with monkeypatch.context() as m:
        m.setattr(maintenance, "_filesystem", refusing)
        assert retention.main(["--orphans-older-than", "0s"]) == 1
    err = _one_error_line(capsys)
    assert "1 could not be deleted" in err and "orphan-0.parquet" in err
    assert [p.exists() for p in orphans] == [True, False, False]
    assert retention.main(["--orphans-older-than", "0s"]) == 0
    assert not any(p.exists() for p in orphans)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--entity-type", "user", "--key", "user_id=x"], "'user' has no composite key"),
        (["--entity-type", "user", "--entity-id", ""], "give an entity type and an entity id"),
    ],
)
def test_an_erasure_refused_by_its_arguments_says_why_before_reaching_any_store(
    env: tuple[Path, Any, list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    """README: ``--key`` on a single-key type is refused (exit 1); with the online store down it said only
    that Cassandra was unavailable."""
    from serving.offline import erasure

    monkeypatch.setenv("FS_CASSANDRA_HOSTS", "127.0.0.1")
    monkeypatch.setenv("FS_CASSANDRA_PORT", "1")  # nothing listens: reaching it is an error of its own
    assert erasure.main(args) == 1
    assert message in _one_error_line(capsys)


@pytest.mark.parametrize("cut", ["manifest_list", "metadata"])
def test_a_table_file_cut_short_is_one_error_line(
    env: tuple[Path, Any, list[Any]], capsys: pytest.CaptureFixture[str], cut: str
) -> None:
    """A truncated manifest list (EOFError) or metadata file (pyiceberg's ValidationError) ended retention with a
    traceback; like a missing file, it is one `error:` line, exit 1."""
    _, table, _ = env
    snapshot = table.current_snapshot()
    assert snapshot is not None
    path = Path((snapshot.manifest_list if cut == "manifest_list" else table.metadata_location).removeprefix("file://"))
    path.write_bytes(path.read_bytes()[:40])
    assert retention.main(["--orphans-older-than", "0s"]) == 1
    _one_error_line(capsys)
