"""Command options past their limits or given what they do not take: a chunk larger than pyarrow counts, a file
that is no definition store given to the migration, a manifest that cannot be read (one named error each)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from serving.offline.command_io import open_labels
from sinks.cassandra import migrate
from tests.unit.conftest import NOT_A_STORE, not_a_store


def test_a_chunk_larger_than_pyarrow_counts_reads_every_label(tmp_path: Path) -> None:
    # --chunk-rows is "a whole number of 1 or more" (README): 2**70 read all rows, not OverflowError's traceback.
    path = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"user_id": ["a", "b"]}), path)
    _, batches = open_labels(path, 2**70)
    assert sum(b.num_rows for b in batches) == 2


@pytest.mark.parametrize("kind", NOT_A_STORE)
def test_migrate_refuses_a_file_that_is_no_definition_store_and_leaves_it_as_it_was(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = not_a_store(tmp_path / "x.db", kind)
    before = db.read_bytes()
    assert migrate.main(["--definitions-db", str(db)]) == 1  # before Cassandra is reached
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --definitions-db {db}: ")
    assert db.read_bytes() == before


@pytest.mark.parametrize("where", ["missing", "folder"])
def test_rebuild_names_a_manifest_it_cannot_read(where: str, tmp_path: Path) -> None:
    from registry.core.errors import DatasetError
    from serving.offline.training import _read_manifest

    path = tmp_path / "m.json"
    if where == "folder":
        path.mkdir()
    with pytest.raises(DatasetError, match=rf"^--manifest {path}: not a readable file: "):
        _read_manifest(path)
