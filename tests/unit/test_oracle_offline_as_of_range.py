"""``as_of`` times whose UTC instant lies outside years 1-9999 (an aware time near either end, in a zone away from
UTC): README "Training sets" says a time before the table's first snapshot reads nothing, and every command
answers a bad argument with one ``error:`` line, exit 1; none of them may end in a traceback (OverflowError)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DatasetError
from serving.offline import historical, training
from serving.offline.historical import get_historical_features
from serving.offline.training import build_training_set, rebuild
from sinks.iceberg.writer import OfflineWriter, ensure_table
from sinks.records import FeatureRow

T_MS = 1_700_000_000_000 // 300_000 * 300_000
BEFORE_YEAR_ONE = datetime(1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=14)))  # 0000-12-31T10:00Z
PAST_YEAR_9999 = datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-14)))  # 10000-01-01T13:59Z


@pytest.fixture(scope="module")
def catalog(make_definition: Callable[..., FeatureDefinition]) -> FeatureCatalog:
    return FeatureCatalog([make_definition(name="cnt", window={"kind": "tumbling", "size": "5m"}, ttl="20m")])


@pytest.fixture
def folder(catalog: FeatureCatalog) -> Iterator[Path]:
    from pyiceberg.catalog.sql import SqlCatalog

    with tempfile.TemporaryDirectory() as name:
        path = Path(name)
        sql = SqlCatalog("feature_store", uri=f"sqlite:///{path}/cat.db", warehouse=f"file://{path}/wh")
        writer = OfflineWriter(ensure_table(sql, "fs"))
        writer.add(FeatureRow.of(catalog.get("user", "cnt"), "u", 3, T_MS - 300_000, T_MS, 1))
        writer.flush()
        yield path


def _table(folder: Path) -> Any:
    from pyiceberg.catalog.sql import SqlCatalog

    return ensure_table(
        SqlCatalog("feature_store", uri=f"sqlite:///{folder}/cat.db", warehouse=f"file://{folder}/wh"), "fs"
    )


LABELS = pa.table({"user_id": ["u", "u"], "event_timestamp": pa.array([T_MS, T_MS + 1], pa.timestamp("ms", tz="UTC"))})


def test_the_same_time_in_another_zone_reads_the_same(folder: Path, catalog: FeatureCatalog) -> None:
    """The control: an aware time means its instant, whatever its zone."""
    table = _table(folder)
    now = datetime.now(UTC) + timedelta(minutes=1)
    for zone in (UTC, timezone(timedelta(hours=-14)), timezone(timedelta(hours=14))):
        out = get_historical_features(
            table, catalog, LABELS, ["cnt"], entity_type="user", entity_column="user_id", as_of=now.astimezone(zone)
        )
        assert out.column("cnt").to_pylist() == [3, 3]


def test_a_time_before_year_one_reads_nothing_and_is_recorded(folder: Path, catalog: FeatureCatalog) -> None:
    table = _table(folder)
    kwargs: dict[str, Any] = {"entity_type": "user", "entity_column": "user_id", "as_of": BEFORE_YEAR_ONE}
    assert get_historical_features(table, catalog, LABELS, ["cnt"], **kwargs).column("cnt").to_pylist() == [None] * 2
    built = build_training_set(table, catalog, LABELS, ["cnt"], **kwargs)
    assert built.table.column("cnt").to_pylist() == [None, None]
    assert built.manifest.snapshot_id is None
    assert built.manifest.as_of is not None
    assert datetime.fromisoformat(built.manifest.as_of) == BEFORE_YEAR_ONE
    again = rebuild(table, catalog, built.manifest, LABELS)  # README: a rebuild is byte-identical
    assert again.table.equals(built.table)


def test_a_time_past_year_9999_is_a_dataset_error(folder: Path, catalog: FeatureCatalog) -> None:
    table = _table(folder)
    kwargs: dict[str, Any] = {"entity_type": "user", "entity_column": "user_id", "as_of": PAST_YEAR_9999}
    with pytest.raises(DatasetError, match="past the year 9999"):
        get_historical_features(table, catalog, LABELS, ["cnt"], **kwargs)
    with pytest.raises(DatasetError, match="past the year 9999"):
        build_training_set(table, catalog, LABELS, ["cnt"], **kwargs)


@pytest.mark.parametrize("command", ["historical", "training"])
@pytest.mark.parametrize(
    ("as_of", "code", "values"),
    [
        (BEFORE_YEAR_ONE.isoformat(), 0, [None, None]),
        (PAST_YEAR_9999.isoformat(), 1, None),
    ],
)
def test_the_clis_answer_such_times_without_a_traceback(
    command: str,
    as_of: str,
    code: int,
    values: list[Any] | None,
    folder: Path,
    catalog: FeatureCatalog,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    from registry.definition_store import DefinitionStore

    DefinitionStore(folder / "definitions.db").register(catalog.get("user", "cnt"))
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(folder / "definitions.db"))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{folder}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", f"file://{folder}/wh")
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    pq.write_table(LABELS, folder / "labels.parquet")
    out = folder / "out.parquet"
    args = ["--labels", str(folder / "labels.parquet"), "--out", str(out), "--entity-type", "user"]
    args += ["--entity-column", "user_id", "--features", "cnt", "--as-of", as_of]
    assert (historical.main(args) if command == "historical" else training.main(["build", *args])) == code
    err = capsys.readouterr().err.strip().splitlines()
    if values is None:
        assert len(err) == 1 and err[0].startswith("error: --as-of ") and "past the year 9999" in err[0], err
        assert not out.exists()
    else:
        assert pq.read_table(out).column("cnt").to_pylist() == values
