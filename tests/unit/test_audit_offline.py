"""The point-in-time join at the edges of its label input, as README ("Training sets, batch scoring,
promotion") and docs/design.md §5.1 state them: labels in seconds or milliseconds convert exactly (a label
far past year 9999 is in every row's future, never wrapped around onto one); a label time before 0001-01-01
gets nulls, whatever its value; an entity column must hold ids, or the join is a ``DefinitionError``; and the
join CLI answers an error in one ``error:`` line, exit 1, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DefinitionError
from registry.definition_store import DefinitionStore
from serving.offline.historical import get_historical_features
from tests.unit.test_training_sets import INGEST0, MIN, T0, Row, append, iceberg_table, stored_definitions

END_MS = T0 + 5 * MIN  # the one stored window end of these tests: count_5m (tumbling 5m, ttl 20m) = 1 there


@pytest.fixture(scope="module")
def catalog(make_definition: Callable[..., FeatureDefinition]) -> FeatureCatalog:
    return FeatureCatalog(stored_definitions(make_definition))


@pytest.fixture
def table(tmp_path: Path, catalog: FeatureCatalog) -> Any:
    table = iceberg_table(tmp_path)
    append(table, [Row(catalog.get("user", "count_5m"), "e0", 1, END_MS, INGEST0)])
    return table


def _count_5m(table: Any, catalog: FeatureCatalog, times: pa.Array, ids: pa.Array | None = None) -> list[Any]:
    labels = pa.table({"who": ids if ids is not None else pa.array(["e0"] * len(times)), "event_timestamp": times})
    result = get_historical_features(
        table, catalog, labels, ["count_5m"], entity_type="user", entity_column="who", chunk_rows=2
    )
    return list(result.column("count_5m").to_pylist())


@pytest.mark.parametrize(
    ("unit", "at", "wrapped"),
    [
        ("ms", END_MS, END_MS + 2**61),  # x 1000 = the window end's µs + 2**64: int64 µs wrapped onto it
        ("s", END_MS // 1000, END_MS // 1000 + 2**58),  # x 1e6, likewise
    ],
)
def test_a_label_far_past_year_9999_in_seconds_or_milliseconds_is_not_wrapped_onto_stored_data(
    table: Any, catalog: FeatureCatalog, unit: str, at: int, wrapped: int
) -> None:
    """Such a label is millions of years after the only row, far past its 20-minute TTL: null. Converted to
    µs in int64 it wrapped around to exactly the window end and read the row's value."""
    times = pa.array([at, wrapped, -wrapped], pa.timestamp(unit, tz="UTC"))
    assert _count_5m(table, catalog, times) == [1, None, None]


@pytest.mark.parametrize(
    ("unit", "value"),
    [("us", -(2**63)), ("us", -(2**63) + 1), ("us", 2**63 - 1), ("ms", -(2**63)), ("s", 2**63 - 1)],
)
def test_a_label_at_the_ends_of_int64_gets_nulls_not_an_overflow(
    table: Any, catalog: FeatureCatalog, unit: str, value: int
) -> None:
    """ "A label time before 0001-01-01 gets nulls" (README): one near int64's minimum ended in ``OverflowError``
    (the chunk's read band reached below int64) instead; the other labels of its chunk are answered as ever."""
    at_end = {"us": END_MS * 1000, "ms": END_MS, "s": END_MS // 1000}[unit]
    times = pa.array([value, at_end, value], pa.timestamp(unit, tz="UTC"))
    assert _count_5m(table, catalog, times) == [None, 1, None]


def test_an_entity_column_of_bytes_that_are_not_utf8_is_a_definition_error(table: Any, catalog: FeatureCatalog) -> None:
    """Bytes that spell an id (UTF-8) are joined like any id; others ended in Arrow's ``ArrowInvalid`` from
    deep in the join (a traceback from the CLI), not the documented ``DefinitionError``."""
    times = pa.array([END_MS, END_MS], pa.timestamp("ms", tz="UTC"))
    assert _count_5m(table, catalog, times, pa.array([b"e0", b"e1"], pa.binary())) == [1, None]
    with pytest.raises(DefinitionError, match="label column 'who' must hold entity ids"):
        _count_5m(table, catalog, times, pa.array([b"e0", b"\xff"], pa.binary()))


def _cli(tmp_path: Path, catalog: FeatureCatalog, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "cli"
    append(iceberg_table(folder, "feature_store"), [Row(catalog.get("user", "count_5m"), "e0", 1, END_MS, INGEST0)])
    store = DefinitionStore(folder / "definitions.db")
    for d in sorted(catalog, key=lambda d: d.key):
        store.register(d)
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(folder / "definitions.db"))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{folder}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (folder / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")


@pytest.mark.parametrize("case", ["bytes-not-utf8", "out-name-too-long"])
def test_the_join_cli_answers_bad_ids_and_an_unwritable_out_in_one_error_line(
    tmp_path: Path,
    catalog: FeatureCatalog,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    """``python -m serving.offline.historical``: both ended in a traceback (``ArrowInvalid``; an ``OSError``
    from writing ``--out``), where the training CLI already answered one line."""
    from serving.offline import historical

    _cli(tmp_path, catalog, monkeypatch)
    labels = tmp_path / "labels.parquet"
    ids = pa.array([b"\xff" if case == "bytes-not-utf8" else b"e0"], pa.binary())
    pq.write_table(pa.table({"who": ids, "event_timestamp": pa.array([END_MS], pa.timestamp("ms", tz="UTC"))}), labels)
    out = tmp_path / ("o.parquet" if case == "bytes-not-utf8" else "x" * 256)  # 250 is written since 2026-12-07
    argv = ["--labels", str(labels), "--out", str(out), "--entity-type", "user", "--entity-column", "who"]
    capsys.readouterr()
    assert historical.main([*argv, "--features", "count_5m"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    if case == "bytes-not-utf8":
        assert "must hold entity ids" in err[0]
    else:
        assert "a file name of 256 bytes, longer than the 255 its file system takes" in err[0], err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or p.name == out.name]


@pytest.mark.parametrize("features", ["", "count_5m,", "count_5m,,count_5m@v1", " "])
@pytest.mark.parametrize("command", ["historical", "batch_scoring", "training"])
def test_an_empty_feature_name_is_a_usage_error(
    command: str, features: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: looked up as a feature named "" (``unknown feature(s) for entity type 'user': ``, exit 1)."""
    from serving.offline import batch_scoring, historical, training

    join = ["--labels", str(tmp_path / "l.parquet"), "--out", str(tmp_path / "o.parquet")]
    join += ["--entity-type", "user", "--entity-column", "user_id"]
    argv = {
        "historical": join,
        "training": ["build", *join],
        "batch_scoring": ["--entity-type", "user", "--out", str(tmp_path / "o.parquet")],
    }[command]
    main = {"historical": historical.main, "training": training.main, "batch_scoring": batch_scoring.main}[command]
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--features", features])
    assert exited.value.code == 2
    assert "--features: must be feature names separated by commas, none empty" in capsys.readouterr().err
