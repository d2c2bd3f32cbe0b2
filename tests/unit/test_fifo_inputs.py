"""An input path that is a FIFO (or a folder) where a file is expected is refused at once with one line naming it:
reading a FIFO blocks for as long as nothing writes to it, and `registry.cli plan`/`apply`/`gate` and
`serving.offline.historical --labels` hung on one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from registry.core.catalog import load_folder
from registry.core.errors import DatasetError, DefinitionError
from registry.gate import load_model
from serving.offline.command_io import open_labels


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "defs" / "a.toml"
    path.parent.mkdir()
    os.mkfifo(path)
    return path


def test_a_definitions_folder_holding_a_fifo_is_refused(fifo: Path) -> None:
    with pytest.raises(DefinitionError, match=r"a\.toml: cannot read definitions: not a regular file \(a FIFO"):
        load_folder(fifo.parent)


def test_a_model_file_that_is_a_fifo_or_a_folder_is_refused(fifo: Path) -> None:
    with pytest.raises(DefinitionError, match=r"a\.toml: not a valid model file: not a regular file \(a FIFO"):
        load_model(fifo)
    with pytest.raises(DefinitionError, match="not a valid model file: a folder, not a file"):
        load_model(fifo.parent)


def test_labels_that_are_a_fifo_are_refused(fifo: Path) -> None:
    with pytest.raises(DatasetError, match="not a readable Parquet file: not a regular file"):
        open_labels(fifo, 1000)
