"""The archiver's append failing on the disk (full, read-only, a catalog it cannot write): the store unavailable,
naming the table (the command's one ``error:`` line), and neither the batch nor its offsets committed, so the next
run archives them again; as the serving log's landing answers. Before, the OSError ended the command in a
traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyiceberg.catalog.sql import SqlCatalog

import sinks.iceberg.writer as writer
from registry.core.errors import StoreUnavailableError
from sinks import archive
from sinks.archive_offsets import next_offsets
from tests.unit.test_audit_archive import _message


def test_an_append_the_disk_refuses_is_the_store_unavailable_and_commits_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = SqlCatalog("c", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri())
    table = archive.ensure_table(catalog, "ns", "events")
    archiver = archive.Archiver(None, table, "events")  # type: ignore[arg-type]

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "append_table", full)
    with pytest.raises(StoreUnavailableError, match=r"Iceberg append to ns\.\S+ failed: .*No space left on device"):
        archiver._append([_message(0, 0), _message(0, 1)], {0: 2})
    assert archiver.rows == 0 and next_offsets(table.refresh()) == {}
    monkeypatch.undo()
    archiver._append([_message(0, 0), _message(0, 1)], {0: 2})  # room again: the same batch is archived
    assert archiver.rows == 2 and next_offsets(table.refresh()) == {0: 2}
