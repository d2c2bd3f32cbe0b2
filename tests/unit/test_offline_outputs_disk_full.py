"""Offline outputs on a disk that fails the write (full, read-only): one ``error:`` line naming where the output was
to go (not the hidden file it is written as first, nor no file at all), nothing cut short under a final name, and
an error of the data being read (a table's file gone) still its own. `training build --copy-labels-to` copied the
labels straight onto their final name: a full disk left a truncated copy there."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from registry.core.errors import DatasetError
from serving.offline import command_io
from tests.unit.test_offline_commands_damaged_table import COMMANDS, _stored

SCHEMA = pa.schema([("x", pa.int64())])


def _full(source: object, target: object) -> None:
    Path(str(target)).write_bytes(b"PAR1 cut")  # part of it written, then the disk is full
    raise OSError(28, "No space left on device")


def test_a_labels_copy_the_disk_cuts_short_leaves_nothing_under_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stored(tmp_path, monkeypatch)
    kept = tmp_path / "kept"
    main, argv = COMMANDS["training_build"]
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv] + ["--copy-labels-to", str(kept)]
    real_copy = shutil.copyfile
    monkeypatch.setattr(command_io.shutil, "copyfile", _full)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: --copy-labels-to {kept}: cannot copy ") and err.count("\n") == 1, err
    assert "No space left on device" in err
    assert list(kept.iterdir()) == [] and not (tmp_path / "t.parquet").exists()
    monkeypatch.setattr(command_io.shutil, "copyfile", real_copy)
    assert main(argv) == 0, capsys.readouterr().err  # room again
    (copy,) = kept.iterdir()
    assert copy.name.endswith(".labels.parquet") and pq.read_table(copy).num_rows == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".featurestore-")]


def test_a_write_the_disk_refuses_names_the_output_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(self: object, *args: object, **kwargs: object) -> None:
        raise OSError(28, "Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", refused)
    batches = [pa.record_batch([pa.array([1, 2])], schema=SCHEMA)]
    with pytest.raises(DatasetError, match=f"cannot write the output file in {tmp_path}: .*No space left on device"):
        command_io.write_parquet(batches, SCHEMA, tmp_path / "out.parquet")
    assert list(tmp_path.iterdir()) == []


def test_an_error_of_what_is_read_is_its_own(tmp_path: Path) -> None:
    def gone() -> Iterator[pa.RecordBatch]:
        yield pa.record_batch([pa.array([1])], schema=SCHEMA)
        raise FileNotFoundError(2, "No such file or directory", "/warehouse/data/00000.parquet")

    with pytest.raises(FileNotFoundError, match=r"00000\.parquet"):
        command_io.write_parquet(gone(), SCHEMA, tmp_path / "out.parquet")
    assert list(tmp_path.iterdir()) == []


def test_training_build_names_the_output_folder_when_the_disk_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stored(tmp_path, monkeypatch)
    monkeypatch.setattr(
        pq.ParquetWriter, "write_table", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device"))
    )
    main, argv = COMMANDS["training_build"]
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err == f"error: cannot write the output file in {tmp_path}: No space left on device\n", err
    assert not (tmp_path / "t.parquet").exists()  # nothing under --out


def test_a_read_only_output_folder_is_named_with_the_systems_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a read-only file system the clean-up's unlink of the hidden file (not there) fails too (EROFS): that error
    replaced the one naming the folder, and Arrow's message named the hidden file."""

    def read_only(self: object, where: object, *args: object, **kwargs: object) -> None:
        raise OSError(30, f"Failed to open local file '{where}'. Detail: [errno 30] Read-only file system")

    def unlink(self: Path, missing_ok: bool = False) -> None:
        raise OSError(30, "Read-only file system", str(self))

    monkeypatch.setattr(pq.ParquetWriter, "__init__", read_only)
    monkeypatch.setattr(Path, "unlink", unlink)
    batches = [pa.record_batch([pa.array([1])], schema=SCHEMA)]
    with pytest.raises(DatasetError) as caught:
        command_io.write_parquet(batches, SCHEMA, tmp_path / "out.parquet")
    assert str(caught.value) == f"cannot write the output file in {tmp_path}: Read-only file system"
