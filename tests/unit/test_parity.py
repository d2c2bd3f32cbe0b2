"""Parity (``serving.offline.parity``) over a local Iceberg offline table and a hand-made serving log:
matches, mismatches, values missing offline, values without a window, repeats of a landed batch,
unknown versions, and the label-time rule (the served window, not a later one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from registry.core.catalog import FeatureCatalog
from serving.offline.parity import parity_report
from sinks.iceberg.writer import OfflineWriter, ensure_table
from sinks.records import FeatureRow
from sinks.serving_log import Batch, ensure_log_table

MIN = 60_000
END = 1_700_000_100_000  # a 5-minute window end (ms)
SERVED = END + 90_000


def _iso(ms: int) -> str:
    from serving.online.vectors import format_ms

    return format_ms(ms)


def _record(
    entity: str, names: list[str], versions: list[int], values: list[Any], ends: list[int | None], statuses: list[str]
) -> bytes:
    return orjson.dumps(
        {
            "request_id": "r",
            "served_at": SERVED,
            "caller": None,
            "feature_service": None,
            "model_name": None,
            "model_version": None,
            "entity_type": "user",
            "entity_id": entity,
            "names": names,
            "versions": versions,
            "values": values,
            "feature_timestamps": [None if e is None else _iso(e) for e in ends],
            "statuses": statuses,
        }
    )


@pytest.fixture
def tables(tmp_path: Path, shipped_catalog: FeatureCatalog) -> tuple[Any, Any]:
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri())
    offline = ensure_table(catalog, "ns")
    count, total = shipped_catalog.get("user", "txn_count_1h"), shipped_catalog.get("user", "txn_amount_sum_1h")
    writer = OfflineWriter(offline)
    for entity, n, amount in (("a", 3, 7.25), ("b", 5, 0.1 + 0.2), ("c", 1, 1.0)):
        writer.add(FeatureRow.of(count, entity, n, END - 60 * MIN, END))
        writer.add(FeatureRow.of(total, entity, amount, END - 60 * MIN, END))
    writer.add(FeatureRow.of(count, "a", 4, END - 55 * MIN, END + 5 * MIN))  # a later window: not the served one
    writer.flush()
    return catalog.load_table("ns.offline_feature_values"), ensure_log_table(catalog, "ns")


def test_report_counts_each_case_once(tables: tuple[Any, Any], shipped_catalog: FeatureCatalog) -> None:
    offline, log = tables
    names, versions = ["txn_count_1h", "txn_amount_sum_1h"], [1, 1]
    batch = Batch.empty()
    batch.add(_record("a", names, versions, [3, 7.25], [END, END], ["present", "stale"]), "t", 0, 1)  # both match
    batch.add(
        _record("b", names, versions, [6, 0.1 + 0.2], [END, END], ["present", "present"]), "t", 0, 2
    )  # count differs
    batch.add(_record("z", names, versions, [2, 1.5], [END, END], ["present", "present"]), "t", 0, 3)  # no offline row
    batch.add(_record("c", names, versions, [None, None], [None, None], ["missing", "expired"]), "t", 0, 4)
    batch.add(_record("c", ["txn_count_1h"], [9], [1], [END], ["present"]), "t", 0, 5)  # an unknown version
    log.append(batch.to_arrow())
    log.append(batch.to_arrow())  # the same batch landed twice (at least once): counted once
    report = parity_report(log, offline, shipped_catalog, SERVED * 1000, SERVED * 1000 + 1)
    by_name = {f.feature: f for f in report.features}
    assert set(by_name) == {"txn_count_1h", "txn_amount_sum_1h"}
    count, total = by_name["txn_count_1h"], by_name["txn_amount_sum_1h"]
    assert (count.checked, count.mismatched, count.missing_offline) == (3, 1, 1)
    assert (total.checked, total.mismatched, total.missing_offline) == (3, 0, 1)  # 0.1 + 0.2 exact both ways
    assert count.mismatch_ratio == pytest.approx(1 / 3) and count.missing_ratio == pytest.approx(1 / 3)
    assert {(e["kind"], e["entity_id"], e["online"], e["offline"]) for e in count.examples} == {
        ("mismatch", "b", 6, 5),
        ("missing_offline", "z", 2, None),
    }
    assert report.without_window == 2
    assert report.unknown_versions == ["user.txn_count_1h@v9"]
    assert report.worst() == pytest.approx(1 / 3)


def test_the_served_window_is_compared_not_a_later_one(
    tables: tuple[Any, Any], shipped_catalog: FeatureCatalog
) -> None:
    offline, log = tables
    batch = Batch.empty()
    batch.add(_record("a", ["txn_count_1h"], [1], [3], [END], ["present"]), "t", 0, 1)
    batch.add(_record("a", ["txn_count_1h"], [1], [4], [END + 5 * MIN], ["present"]), "t", 0, 2)
    log.append(batch.to_arrow())
    (count,) = parity_report(log, offline, shipped_catalog, SERVED * 1000, SERVED * 1000 + 1).features
    assert (count.checked, count.mismatched, count.missing_offline) == (2, 0, 0)


def test_only_values_served_in_the_range_are_read(tables: tuple[Any, Any], shipped_catalog: FeatureCatalog) -> None:
    offline, log = tables
    batch = Batch.empty()
    batch.add(_record("b", ["txn_count_1h"], [1], [6], [END], ["present"]), "t", 0, 1)
    log.append(batch.to_arrow())
    assert parity_report(log, offline, shipped_catalog, SERVED * 1000 + 1, SERVED * 1000 + 2).features == []
    (count,) = parity_report(log, offline, shipped_catalog, SERVED * 1000, SERVED * 1000 + 1).features
    assert count.mismatched == 1


def test_cli_prints_the_report_and_fails_above_the_ratio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], shipped_catalog: FeatureCatalog
) -> None:
    import time

    from registry.core.settings import Settings
    from registry.definition_store import DefinitionStore
    from serving.offline import parity
    from sinks.factory import connect_iceberg

    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/c.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "w").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "ns")
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "d.db"))
    store = DefinitionStore(tmp_path / "d.db")
    for d in shipped_catalog:
        store.register(d)
    iceberg = connect_iceberg(Settings.from_env())
    offline, log = ensure_table(iceberg, "ns"), ensure_log_table(iceberg, "ns")
    writer = OfflineWriter(offline)
    writer.add(FeatureRow.of(shipped_catalog.get("user", "txn_count_1h"), "a", 3, END - 60 * MIN, END))
    writer.flush()
    now_ms = time.time_ns() // 1_000_000
    batch = Batch.empty()
    record = orjson.loads(_record("a", ["txn_count_1h"], [1], [4], [END], ["present"]))
    batch.add(orjson.dumps({**record, "served_at": now_ms - 60_000}), "t", 0, 1)
    log.append(batch.to_arrow())

    assert parity.main(["--since", "1h"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    ((count,),) = [[f for f in report["features"] if f["feature"] == "txn_count_1h"]]
    assert (count["checked"], count["mismatched"]) == (1, 1)
    assert parity.main(["--since", "1h", "--fail-above", "0.5"]) == 3
    capsys.readouterr()
    assert parity.main(["--since", "30s"]) == 0  # served before the span: nothing compared
    assert orjson.loads(capsys.readouterr().out)["features"] == []
    with pytest.raises(SystemExit) as refused:  # argparse's usage error
        parity.main(["--since", "an hour"])
    assert refused.value.code == 2
    assert "argument --since: duration 'an hour'" in capsys.readouterr().err


def test_the_report_as_prometheus_gauges(
    tables: tuple[Any, Any], shipped_catalog: FeatureCatalog, tmp_path: Path
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from serving.offline.parity import write_metrics

    offline, log = tables
    batch = Batch.empty()
    batch.add(_record("a", ["txn_count_1h"], [1], [3], [END], ["stale"]), "t", 0, 1)
    batch.add(_record("b", ["txn_count_1h"], [1], [6], [END], ["present"]), "t", 0, 2)
    batch.add(_record("c", ["txn_count_1h"], [1], [None], [None], ["missing"]), "t", 0, 3)
    log.append(batch.to_arrow())
    report = parity_report(log, offline, shipped_catalog, SERVED * 1000, SERVED * 1000 + 1)
    path = tmp_path / "parity.prom"
    write_metrics(report, path, SERVED * 1000)
    samples = {
        (s.name, s.labels.get("feature")): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }
    assert samples[("fs_parity_mismatch_ratio", "txn_count_1h")] == 0.5
    assert samples[("fs_parity_missing_ratio", "txn_count_1h")] == 0.0
    assert samples[("fs_parity_checked", "txn_count_1h")] == 2
    assert samples[("fs_served_stale_share", "txn_count_1h")] == pytest.approx(1 / 3)
    assert samples[("fs_parity_last_run_timestamp_seconds", None)] == SERVED / 1000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--every", "0s"], "argument --every: must be a positive duration, not '0s'"),
        (["--every", "soon"], "argument --every: duration 'soon' is not"),
        (["--fail-above", "-1"], "argument --fail-above: must be a number from 0 to 1"),
        (["--fail-above", "nan"], "argument --fail-above: must be a number from 0 to 1"),
        (["--metrics-file", "{tmp}/no/such/p.prom"], "argument --metrics-file: folder {tmp}/no/such does not exist"),
    ],
)
def test_cli_refuses_options_that_make_no_sense_before_any_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    from serving.offline import parity

    argv = [a.format(tmp=tmp_path) for a in argv]
    try:
        code = parity.main(["--no-store", *argv])
    except SystemExit as exc:  # argparse
        code = exc.code  # type: ignore[assignment]
    assert code == 2
    captured = capsys.readouterr()
    assert message.format(tmp=tmp_path) in captured.err and captured.out == ""
    assert captured.err.startswith("usage: python -m serving.offline.parity")  # argparse's usage error, as statistics'
