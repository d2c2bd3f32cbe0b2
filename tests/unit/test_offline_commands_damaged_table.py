"""An offline command reading a table whose metadata file or manifest list was cut short (a crash of another
writer's disk, a copy interrupted): one ``error:`` line and exit 1, as retention and erasure answer
(``sinks.iceberg.maintenance.unreadable_table_errors``). `training build`, `historical` and `batch_scoring` ended
in a traceback (EOFError from the manifest list, pydantic's ValidationError from the metadata file)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from registry.core.catalog import FeatureCatalog, load_folder
from registry.definition_store import DefinitionStore
from registry.plan import apply
from serving.offline import batch_scoring, historical, promotion, training
from sinks.iceberg.writer import OfflineWriter, ensure_table
from sinks.records import WindowResults

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, epoch ms
HOUR = 3_600_000
FEATURE = ["--entity-type", "user", "--entity-column", "user_id", "--features", "txn_count_1h"]

COMMANDS: dict[str, tuple[Callable[[list[str]], int], list[str]]] = {
    "training_build": (
        training.main,
        ["build", "--labels", "{tmp}/labels.parquet", "--out", "{tmp}/t.parquet", *FEATURE],
    ),
    "historical": (
        historical.main,
        ["--labels", "{tmp}/labels.parquet", "--out", "{tmp}/h.parquet", *FEATURE],
    ),
    "batch_scoring": (
        batch_scoring.main,
        ["--entity-type", "user", "--features", "txn_count_1h", "--as-of", str(T0 + HOUR), "--out", "{tmp}/v.parquet"],
    ),
    "promotion_check": (promotion.main, ["user", "txn_count_1h", "1", "--check"]),
}


def _stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry and an offline table holding one value, the commands pointed at them; the table's folder."""
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "definitions.db"))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    apply(DefinitionStore(tmp_path / "definitions.db"), load_folder())
    table = ensure_table(
        SqlCatalog("feature_store", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=(tmp_path / "wh").as_uri()), "fs"
    )
    count = FeatureCatalog.from_folder().get("user", "txn_count_1h")
    ends = np.array([T0], dtype=np.int64)
    writer = OfflineWriter(table)
    writer.add_results(WindowResults((count,), ["u1"], ends - HOUR, ends, np.array([1], dtype=np.int64), [[1]]))
    writer.flush()
    pq.write_table(
        pa.table({"user_id": ["u1"], "event_timestamp": pa.array([T0 + 1], pa.timestamp("ms", "UTC"))}),
        tmp_path / "labels.parquet",
    )
    return tmp_path / "wh" / "fs.db" / "offline_feature_values"


def _cut(path: Path, keep: float) -> None:
    """``path`` cut to ``keep`` of its bytes (a whole number: that many bytes)."""
    size = path.stat().st_size
    with path.open("r+b") as file:
        file.truncate(int(keep) if keep >= 1 else int(size * keep))


# Where an Avro file is cut decides what pyiceberg's decoder meets first: EOFError (at 100 bytes),
# UnicodeDecodeError (a tenth, a half), ValueError "Expected sync bytes" (one byte short): each one line.
CUTS = [("manifest_list", 100), ("manifest_list", 0.1), ("manifest_list", 0.5), ("manifest_list", -1)]
CUTS += [("manifest", 0.1), ("manifest", 0.5), ("manifest", -1), ("metadata", 100)]


@pytest.mark.parametrize(("damaged", "keep"), CUTS)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_table_file_cut_short_is_one_error_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    damaged: str,
    keep: float,
) -> None:
    folder = _stored(tmp_path, monkeypatch)
    victims = {
        "manifest_list": (folder / "metadata").glob("snap-*.avro"),
        "manifest": (p for p in (folder / "metadata").glob("*.avro") if not p.name.startswith("snap-")),
        "metadata": [max((folder / "metadata").glob("*.metadata.json"))],
    }
    (victim,) = victims[damaged]
    _cut(victim, victim.stat().st_size - 1 if keep == -1 else keep)
    main, argv = COMMANDS[command]
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "does not exist" not in err, err  # the table is there: its file is what is named
    if damaged != "metadata":
        assert "cannot be read (cut short or damaged)" in err and victim.name in err, err


def test_a_manifest_list_with_a_damaged_schema_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A changed byte in the schema the manifest list carries: pyiceberg's ``TypeError: Unknown type: boolxan``
    reached the command as a traceback."""
    folder = _stored(tmp_path, monkeypatch)
    (victim,) = (folder / "metadata").glob("snap-*.avro")
    data = victim.read_bytes()
    assert b'"boolean"' in data
    victim.write_bytes(data.replace(b'"boolean"', b'"boolxan"', 1))
    main, argv = COMMANDS["training_build"]
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be read (cut short or damaged): TypeError" in err, err
