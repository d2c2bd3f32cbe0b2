"""Commands that read the offline table and the serving log answer one ``error:`` line, never a traceback, when a
table's data file is gone (design §6: every command's last line; §9: a store the gate cannot use is one line)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from registry import cli
from registry.core.catalog import load_folder
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.plan import apply
from serving.offline import parity, statistics
from sinks.factory import connect_iceberg
from sinks.iceberg.as_of import iso_us
from sinks.iceberg.writer import OfflineWriter, ensure_table
from sinks.records import FeatureRow
from sinks.serving_log import Batch, ensure_log_table

HOUR_MS = 3_600_000


@pytest.fixture
def broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry, an offline row and a logged read of it within the last hour, then the offline data files
    removed (an operator's clean-up, a lost disk): the catalog still lists them."""
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "d.db"
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/c.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "w").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "ns")
    store = DefinitionStore(db)
    apply(store, load_folder())
    definition = store.catalog().get("user", "txn_count_1h")
    iceberg = connect_iceberg(Settings.from_env())
    writer = OfflineWriter(ensure_table(iceberg, "ns"))
    end_ms = time.time_ns() // 1_000_000 // 300_000 * 300_000 - 600_000
    writer.add(FeatureRow.of(definition, "u1", 5, end_ms - HOUR_MS, end_ms))
    writer.flush()
    batch = Batch.empty()
    record = {
        "served_at": end_ms + 60_000,
        "entity_type": "user",
        "entity_id": "u1",
        "names": ["txn_count_1h"],
        "versions": [definition.version],
        "values": [5],
        "feature_timestamps": [iso_us(end_ms * 1000)],
        "statuses": ["present"],
    }
    batch.add(orjson.dumps(record), "t", 0, 0)
    ensure_log_table(iceberg, "ns").append(batch.to_arrow())
    gone = list((tmp_path / "w").rglob("offline_feature_values/data/**/*.parquet"))
    assert gone
    for path in gone:
        path.unlink()
    model = tmp_path / "m.toml"
    model.write_text('model = "fraud"\n[[features]]\nentity = "user"\nname = "txn_count_1h"\nversion = 1\n')
    return tmp_path


@pytest.mark.parametrize(
    ("main", "argv"),
    [
        (parity.main, ["--since", "1d", "--no-store"]),
        (statistics.main, ["--since", "1d", "--no-store"]),
        (cli.main, ["gate", "m.toml", "--no-schema-check", "--guardrails"]),
    ],
    ids=["parity", "statistics", "gate"],
)
def test_an_offline_data_file_gone_is_one_error_line(
    main: Callable[[list[str]], int], argv: list[str], broken: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each was a 50-60 line traceback ending in ``FileNotFoundError``."""
    argv = ["--db", str(broken / "d.db"), *argv] if main is cli.main else argv
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "offline_feature_values" in err and ".parquet" in err
