"""Parity compares exactly, "NaN equals NaN" (docs/design.md §9): the serving log is JSON, which spells no NaN
or infinity (the API's log writes them as ``null``), so a non-finite double served and stored alike was counted
as a mismatch on every value."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pyiceberg.catalog.sql import SqlCatalog

from registry.core.catalog import FeatureCatalog
from serving.offline.parity import ParityReport, parity_report
from sinks.iceberg.writer import OfflineWriter, ensure_table
from sinks.records import FeatureRow
from sinks.serving_log import Batch, ensure_log_table
from tests.unit.test_parity import END, MIN, SERVED, _record


def _report(
    tmp_path: Path,
    shipped_catalog: FeatureCatalog,
    stored: Mapping[str, float | None],
    served: Mapping[str, float | None],
) -> ParityReport:
    """Parity of ``txn_amount_sum_1h`` with ``stored`` (entity -> value) in the offline table and ``served`` in the
    log, each at one window."""
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri())
    offline = ensure_table(catalog, "ns")
    total = shipped_catalog.get("user", "txn_amount_sum_1h")
    writer = OfflineWriter(offline)
    for entity, value in stored.items():
        writer.add(FeatureRow.of(total, entity, value, END - 60 * MIN, END))
    writer.flush()
    log = ensure_log_table(catalog, "ns")
    batch = Batch.empty()
    for offset, (entity, value) in enumerate(served.items()):
        batch.add(_record(entity, ["txn_amount_sum_1h"], [1], [value], [END], ["present"]), "t", 0, offset)
    log.append(batch.to_arrow())
    return parity_report(
        log, catalog.load_table("ns.offline_feature_values"), shipped_catalog, SERVED * 1000, SERVED * 1000 + 1
    )


def test_a_non_finite_double_logged_as_null_matches_it_offline(tmp_path: Path, shipped_catalog: FeatureCatalog) -> None:
    stored = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "one": 1.0, "none": None}
    served = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "one": None, "none": float("nan")}
    report = _report(tmp_path, shipped_catalog, stored, served)
    (parity,) = report.features
    assert (parity.checked, parity.mismatched, parity.missing_offline) == (5, 1, 0)
    # A null served where the table holds 1.0 still differs; a NaN served (logged null) where it holds null is the
    # same null either way.
    assert [(e["entity_id"], e["online"], e["offline"]) for e in parity.examples] == [("one", None, 1.0)]


def test_a_log_row_that_is_not_json_is_compared_not_a_traceback(
    tmp_path: Path, shipped_catalog: FeatureCatalog
) -> None:
    """The loader keeps valid JSON only; a row written to the log table otherwise, with `NaN` or `1e400`, stopped
    parity (and the gate's guardrails) with orjson's traceback. Read as Python's JSON reads them (NaN, infinity)
    they compare as any value; text that is no JSON at all is compared as the text, a mismatch."""
    import pyarrow as pa

    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri())
    offline = ensure_table(catalog, "ns")
    total = shipped_catalog.get("user", "txn_amount_sum_1h")
    writer = OfflineWriter(offline)
    for entity, value in {"nan": float("nan"), "inf": float("inf"), "text": 1.0}.items():
        writer.add(FeatureRow.of(total, entity, value, END - 60 * MIN, END))
    writer.flush()
    log = ensure_log_table(catalog, "ns")
    batch = Batch.empty()
    for offset, entity in enumerate(("nan", "inf", "text")):
        batch.add(_record(entity, ["txn_amount_sum_1h"], [1], [1.0], [END], ["present"]), "t", 0, offset)
    rows = batch.to_arrow()
    at = rows.schema.get_field_index("value_json")
    log.append(rows.set_column(at, rows.schema.field(at), pa.array(["NaN", "1e400", "no json"], pa.string())))
    report = parity_report(
        log, catalog.load_table("ns.offline_feature_values"), shipped_catalog, SERVED * 1000, SERVED * 1000 + 1
    )
    (parity,) = report.features
    assert (parity.checked, parity.mismatched, parity.missing_offline) == (3, 1, 0)
    assert [(e["entity_id"], e["online"], e["offline"]) for e in parity.examples] == [("text", "no json", 1.0)]


def test_minus_zero_is_not_zero_and_examples_name_non_finite_values(
    tmp_path: Path, shipped_catalog: FeatureCatalog
) -> None:
    """ "Exact comparison": 0.0 served where the table holds -0.0 was a match. And an example of a mismatch
    against an infinity or a NaN showed it as null (orjson writes them so), which reads as no offline value."""
    import orjson

    stored = {"minus": -0.0, "plus": 0.0, "same": -0.0, "inf": float("inf"), "nan": float("nan")}
    served = {"minus": 0.0, "plus": -0.0, "same": -0.0, "inf": 5.0, "nan": 5.0}
    report = _report(tmp_path, shipped_catalog, stored, served)
    (parity,) = report.features
    assert (parity.checked, parity.mismatched, parity.missing_offline) == (5, 4, 0)
    examples = orjson.loads(report.to_json())["features"][0]["examples"]
    assert sorted((e["entity_id"], e["online"], e["offline"]) for e in examples) == [
        ("inf", 5.0, "Infinity"),
        ("minus", 0.0, -0.0),
        ("nan", 5.0, "NaN"),
        ("plus", -0.0, 0.0),
    ]
