"""Audit of the data-quality commands (docs/design.md §9, README "Serving log and parity"): bad input is one
``error:`` line or a usage error, never a traceback, and nothing is created by a run that cannot report.

- Statistics of a long feature holding a value beyond 2^53 (a sum of cents, an id) failed the whole report with
  Arrow's ``Integer value ... not in range`` (a checked int64 -> double cast): now it is summarised.
- ``statistics --every`` past about 292 years printed one report, then ended in ``OverflowError`` (parity's was
  fixed before): it waits, as any positive duration it accepts does.
- ``--metrics-file`` with a name the system refuses (statistics, parity) and ``plots --out`` likewise were a
  traceback; a gauges file that cannot be written after the report was a traceback: now a usage error (exit 2)
  before anything is read, and one ``error:`` line (exit 1) after.
- ``statistics --training-set ''`` was silently a report without drift (and ``--fail-above`` never failed): an
  empty id is an unknown training set.
- ``statistics`` with no definition store at ``FS_DEFINITIONS_DB`` created the serving log's table first.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from registry.core.catalog import load_folder
from registry.definition_store import DefinitionStore
from registry.plan import apply
from serving.offline import parity, plots, statistics
from serving.offline.statistics import drift, hourly
from sinks.iceberg.as_of import read_point
from sinks.iceberg.writer import OfflineWriter, ensure_table
from sinks.records import FeatureRow
from tests.unit.conftest import NOT_A_STORE, build_definition, not_a_store

H = 3_600_000  # ms
T0 = 1_700_000_000_000 // H * H
TOO_LONG = "a" * 300  # past NAME_MAX (255)


def _catalog(tmp_path: Path) -> SqlCatalog:
    return SqlCatalog("feature_store", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=(tmp_path / "wh").as_uri())


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "definitions.db"
    apply(DefinitionStore(db), load_folder())
    ensure_table(_catalog(tmp_path), "fs")
    monkeypatch.setenv("FS_AUTH", "off")
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    return db


def test_a_long_beyond_2_to_the_53_is_summarised_not_a_failure(tmp_path: Path) -> None:
    total = build_definition(name="cents", value_type="long", aggregation={"function": "sum", "field": "amount"})
    table = ensure_table(_catalog(tmp_path), "ns")
    writer = OfflineWriter(table)
    values = [2**53 + 1, 5, -(2**62)]
    for i, value in enumerate(values):
        writer.add(FeatureRow.of(total, f"u{i}", value, T0 - H, T0))
    writer.flush()
    point = read_point(table, None)
    (hour,) = hourly(table, point, "user", [total], T0 * 1000, (T0 + H) * 1000)
    assert (hour["count"], hour["nulls"], hour["zeros"]) == (3, 0, 0)
    assert hour["mean"] == pytest.approx(float(np.mean([float(v) for v in values])))
    (score,) = drift(table, point, point, "user", [total], T0 * 1000, (T0 + H) * 1000)
    assert score["psi"] == pytest.approx(0.0) and score["current_values"] == 3


class _Slept(Exception):
    pass


def test_statistics_every_takes_any_duration_it_accepts(
    environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    slept: list[float] = []
    real_sleep = statistics.time.sleep
    tested = threading.current_thread()

    def sleep(seconds: float) -> None:
        if threading.current_thread() is not tested:  # time.sleep is patched for every thread of the process
            real_sleep(seconds)
            return
        if seconds * 1e9 >= 2**63:  # what the platform's time.sleep refuses
            raise OverflowError("timestamp out of range for platform time_t")
        slept.append(seconds)
        if len(slept) >= 3:
            raise _Slept

    monkeypatch.setattr(statistics.time, "sleep", sleep)
    with pytest.raises(_Slept):
        statistics.main(["--no-store", "--every", "999999999d"])
    assert capsys.readouterr().out.count('"since"') == 1  # one report, then waiting


@pytest.mark.parametrize("command", ["statistics", "parity"])
def test_a_metrics_file_the_system_refuses_is_a_usage_error(
    environment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    main = {"statistics": statistics.main, "parity": parity.main}[command]
    with pytest.raises(SystemExit) as caught:
        main(["--no-store", "--metrics-file", str(tmp_path / f"{TOO_LONG}.prom")])
    assert caught.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "argument --metrics-file: " in captured.err
    assert "Traceback" not in captured.err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc: a folder no file can be made in")
@pytest.mark.parametrize("command", ["statistics", "parity"])
def test_a_metrics_file_that_cannot_be_written_is_one_error_line(
    environment: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    main = {"statistics": statistics.main, "parity": parity.main}[command]
    assert main(["--no-store", "--metrics-file", "/proc/fs_audit.prom"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --metrics-file /proc/fs_audit.prom: ") and err.count("\n") == 1, err


def test_plots_out_the_system_refuses_is_a_usage_error(
    environment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        plots.main(["--out", str(tmp_path / TOO_LONG)])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "argument --out: " in err and "Traceback" not in err


def test_an_empty_training_set_id_is_an_unknown_one(environment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert statistics.main(["--no-store", "--training-set", "", "--fail-above", "0"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and "''" in captured.err and captured.err.count("\n") == 1


def test_statistics_without_a_definition_store_creates_no_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "typo" / "definitions.db"
    catalog: Any = _catalog(tmp_path)
    ensure_table(catalog, "fs")
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    assert statistics.main(["--no-store"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: FS_DEFINITIONS_DB={db}: no definition store there") and err.count("\n") == 1
    assert catalog.list_tables("fs") == [("fs", "offline_feature_values")]
    assert not (tmp_path / "typo").exists()


def test_promotion_by_a_former_name_judges_and_moves_the_feature_that_carries_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A former name resolves to the feature that carries it (design §4): ``--check`` by the alias said "ready"
    (it looked the reach up under the alias: "no rows" on both sides) while v2 trailed by an hour, and the
    promotion then failed as an unknown feature."""
    from serving.offline import promotion

    monkeypatch.setenv("FS_AUTH", "off")
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "d.db"))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    store = DefinitionStore(tmp_path / "d.db")
    v1 = build_definition(name="n", aliases=["old_n"])
    v2 = build_definition(name="n", version=2, aliases=["old_n"], ttl="5h")
    store.register(v1)
    store.activate("user", "n", 1)
    store.register(v2)
    writer = OfflineWriter(ensure_table(_catalog(tmp_path), "fs"))
    writer.add(FeatureRow.of(v1, "u", 1, T0 - H, T0))
    writer.add(FeatureRow.of(v2, "u", 1, T0 - 2 * H, T0 - H))  # an hour behind; one step (5m) allowed
    writer.flush()
    assert promotion.main(["user", "old_n", "2", "--check"]) == 2
    assert "v2 trails v1 by 3600000ms" in capsys.readouterr().out
    assert promotion.main(["user", "old_n", "2"]) == 1
    assert store.catalog().get("user", "n").version == 1
    assert promotion.main(["user", "old_n", "2", "--max-lag", "1h"]) == 0
    assert store.catalog().get("user", "n").version == 2


@pytest.mark.parametrize("kind", ["empty", "other-program", "a registry with nothing stored"])
def test_plots_store_nothing_in_a_file_without_quality_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """README: with no definition store there, "plots then reports nothing stored". An empty file or another
    program's SQLite database got the quality tables written into it (an empty file grew to 32 KiB)."""
    db = tmp_path / "some.db"
    if kind in NOT_A_STORE:
        not_a_store(db, kind)
    else:
        apply(DefinitionStore(db), load_folder())
    before = db.read_bytes()
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    assert plots.main(["--since", "1d", "--out", str(tmp_path / "plots")]) == 1
    assert capsys.readouterr().err.startswith("error: nothing stored in the last 1d")
    assert db.read_bytes() == before
    assert not (tmp_path / "plots").exists()


def test_a_logged_value_not_of_the_feature_type_is_a_null_not_a_failed_report(tmp_path: Path) -> None:
    """The serving log's sink lands any JSON value (only the record's shape is checked): a string or an object
    logged for a long feature by something other than the API failed the whole statistics report (Arrow:
    ``Failed to parse string ... as a scalar of type double``). It counts as a null, as a served null does."""
    import orjson

    from registry.core.catalog import FeatureCatalog
    from serving.offline.statistics import served_hourly
    from serving.online.vectors import format_ms
    from sinks.serving_log import Batch, ensure_log_table

    log = ensure_log_table(_catalog(tmp_path), "ns")
    count = build_definition(name="n", value_type="long")
    flag = build_definition(name="flag", value_type="boolean", aggregation={"function": "last", "field": "is_fraud"})
    batch = Batch.empty()
    for offset, values in enumerate([["abc", 1], [{"x": 1}, "true"], [3, True], [0, False]]):
        record = {
            "served_at": T0 + 1,
            "entity_type": "user",
            "entity_id": f"u{offset}",
            "names": ["n", "flag"],
            "versions": [1, 1],
            "values": values,
            "feature_timestamps": [format_ms(T0)] * 2,
            "statuses": ["present"] * 2,
        }
        batch.add(orjson.dumps(record), "t", 0, offset)
    log.append(batch.to_arrow())
    by = {h["feature"]: h for h in served_hourly(log, FeatureCatalog([count, flag]), T0 * 1000, (T0 + H) * 1000)}
    assert (by["n"]["count"], by["n"]["nulls"], by["n"]["zeros"], by["n"]["mean"]) == (4, 2, 1, 1.5)
    assert (by["flag"]["count"], by["flag"]["nulls"], by["flag"]["zeros"], by["flag"]["mean"]) == (4, 2, 1, 0.5)
