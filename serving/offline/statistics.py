"""Data-quality statistics of the offline table, and drift against what a training set was built from.

``hourly``: per feature version and hour of event time (the window end, floored to the hour, UTC), over
the rows visible at a read point with window ends in ``[since, until)``: ``count`` (rows),
``nulls``, ``zeros`` (rows whose value is 0, or false), ``null_rate`` and ``zero_rate`` (over
``count``), ``mean`` and ``stddev`` (population, over non-null values), and the ``p01``, ``p50`` and
``p99`` quantiles (t-digest estimates). A boolean counts as 0/1; a string feature has counts and
rates only (the numeric columns are null).

``drift``: per numeric feature version, the population stability index of the values with window
ends in ``[since, until)`` now, against the values the training set's manifest pins (its snapshot,
rows ingested by its ``ingested_until``, every window end): ten bins at the reference's deciles,
empty bins given a share of 0.0001, ``PSI = sum((cur - ref) * ln(cur / ref))``. Zero means the same
distribution; the usual reading is below 0.1 stable, 0.1-0.25 moderate, above 0.25 shifted.

``python -m serving.offline.statistics --since 1d [--training-set ID]`` prints both as JSON;
``--metrics-file F`` also writes gauges for node_exporter's textfile collector (``write_metrics``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from registry.core.definitions import FeatureDefinition
from registry.core.errors import DatasetError
from registry.core.value_types import VALUE_COLUMNS
from sinks.iceberg.reader import ReadPoint, _filter, iso_us, micros

if TYPE_CHECKING:
    from pyiceberg.table import Table

HOUR_US = 3_600_000_000
QUANTILES = (0.01, 0.5, 0.99)
PSI_BINS = 10
PSI_FLOOR = 1e-4


def _rows(
    table: Table, point: ReadPoint, entity_type: str, d: FeatureDefinition, lo_us: int | None, hi_us: int | None
) -> tuple[np.ndarray, pa.Array]:
    """(window end µs, value) of every visible row of ``d`` with ``lo_us <= end < hi_us``."""
    if point.snapshot_id is None:
        return np.empty(0, np.int64), pa.array([], pa.float64())
    column = VALUE_COLUMNS[d.value_type]
    rows = table.scan(
        row_filter=_filter(entity_type, [d], point, lo_us, None if hi_us is None else hi_us - 1),
        selected_fields=("feature_name", "feature_version", "event_time", "ingested_at", column),
        snapshot_id=point.snapshot_id,
    ).to_arrow()
    keep = pc.and_(pc.equal(rows.column("feature_name"), d.name), pc.equal(rows.column("feature_version"), d.version))
    if point.ingested_until_us is not None:
        ingested = pa.array(micros(rows.column("ingested_at")) <= point.ingested_until_us)
        keep = pc.and_(keep, ingested)
    rows = rows.filter(keep)
    return micros(rows.column("event_time")), rows.column(column).combine_chunks()


def _numeric(values: pa.Array) -> pa.Array | None:
    if pa.types.is_boolean(values.type):
        return values.cast(pa.int8()).cast(pa.float64())
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        return values.cast(pa.float64())
    return None


def hourly(
    table: Table,
    point: ReadPoint,
    entity_type: str,
    definitions: Sequence[FeatureDefinition],
    since_us: int,
    until_us: int,
) -> list[dict[str, Any]]:
    """One entry per feature version and hour with rows, in feature then hour order."""
    if until_us <= since_us:
        raise DatasetError("statistics: `until` must be after `since`")
    out: list[dict[str, Any]] = []
    for d in definitions:
        ends, values = _rows(table, point, entity_type, d, since_us, until_us)
        if not len(ends):
            continue
        numeric = _numeric(values)
        hours = ends // HOUR_US * HOUR_US
        is_zero = (pc.equal(numeric, 0.0) if numeric is not None else pa.array(np.zeros(len(ends), bool))).fill_null(
            False
        )
        frame = pa.table(
            {
                "hour": pa.array(hours),
                "value": numeric if numeric is not None else pa.nulls(len(ends), pa.float64()),
                "is_null": values.is_null(),
                "is_zero": is_zero,
            }
        )
        grouped = frame.group_by("hour").aggregate(
            [
                ("is_null", "count"),
                ("is_null", "sum"),
                ("is_zero", "sum"),
                ("value", "mean"),
                ("value", "stddev"),
                ("value", "tdigest", pc.TDigestOptions(q=list(QUANTILES))),
            ]
        )
        for g in sorted(grouped.to_pylist(), key=lambda g: g["hour"]):
            count = int(g["is_null_count"])
            quantiles = g["value_tdigest"] if numeric is not None else [None] * len(QUANTILES)
            quantiles = [None if q is None or np.isnan(q) else float(q) for q in quantiles]
            out.append(
                {
                    "entity_type": entity_type,
                    "feature": d.name,
                    "version": d.version,
                    "hour": iso_us(int(g["hour"])),
                    "count": count,
                    "nulls": int(g["is_null_sum"]),
                    "zeros": int(g["is_zero_sum"]),
                    "null_rate": int(g["is_null_sum"]) / count,
                    "zero_rate": int(g["is_zero_sum"]) / count,
                    "mean": g["value_mean"] if numeric is not None else None,
                    "stddev": g["value_stddev"] if numeric is not None else None,
                    **{f"p{round(q * 100):02d}": v for q, v in zip(QUANTILES, quantiles, strict=True)},
                }
            )
    return out


def psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float | None:
    """The population stability index of ``current`` against ``reference`` (finite values); None if either is empty."""
    reference = reference[np.isfinite(reference)]
    current = current[np.isfinite(current)]
    if not len(reference) or not len(current):
        return None
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))

    def shares(values: np.ndarray) -> np.ndarray:
        counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
        return np.maximum(counts / len(values), PSI_FLOOR)

    ref, cur = shares(reference), shares(current)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def drift(
    table: Table,
    reference_point: ReadPoint,
    point: ReadPoint,
    entity_type: str,
    definitions: Sequence[FeatureDefinition],
    since_us: int,
    until_us: int,
) -> list[dict[str, Any]]:
    """Per numeric feature version: PSI of ``[since, until)`` at ``point`` against everything at ``reference_point``."""
    out = []
    for d in definitions:
        _, before = _rows(table, reference_point, entity_type, d, None, None)
        _, now = _rows(table, point, entity_type, d, since_us, until_us)
        ref, cur = _numeric(before), _numeric(now)
        if ref is None or cur is None:
            continue
        score = psi(ref.fill_null(np.nan).to_numpy(), cur.fill_null(np.nan).to_numpy())
        out.append(
            {
                "entity_type": entity_type,
                "feature": d.name,
                "version": d.version,
                "psi": score,
                "reference_values": len(ref) - ref.null_count,
                "current_values": len(cur) - cur.null_count,
            }
        )
    return out


def write_metrics(hours: Sequence[dict[str, Any]], drifts: Sequence[dict[str, Any]], path: Path) -> None:
    """Gauges per entity type, feature and version, written atomically: ``fs_feature_null_rate`` and
    ``fs_feature_zero_rate`` of each feature's latest hour in the report, and ``fs_feature_psi`` (with
    the training set's id) where drift was computed."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()
    labels = ["entity_type", "feature", "version"]
    null_rate = Gauge("fs_feature_null_rate", "Null share of the latest hour's values", labels, registry=registry)
    zero_rate = Gauge("fs_feature_zero_rate", "Zero share of the latest hour's values", labels, registry=registry)
    score = Gauge(
        "fs_feature_psi", "PSI against a training set's snapshot", [*labels, "training_set"], registry=registry
    )
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for h in hours:  # in hour order per feature: the last one stays
        latest[(h["entity_type"], h["feature"], str(h["version"]))] = h
    for key, h in latest.items():
        null_rate.labels(*key).set(h["null_rate"])
        zero_rate.labels(*key).set(h["zero_rate"])
    for d in drifts:
        if d["psi"] is not None:
            score.labels(d["entity_type"], d["feature"], str(d["version"]), d.get("training_set", "")).set(d["psi"])
    write_to_textfile(str(path), registry)


def main(argv: list[str] | None = None) -> int:
    from registry.core.durations import parse_duration, to_millis
    from registry.core.errors import FeatureStoreError
    from registry.core.settings import Settings
    from registry.definition_store import DefinitionStore
    from registry.training_sets import TrainingSetStore
    from serving.offline.training import manifest_point, pinned_definitions
    from sinks.factory import connect_iceberg
    from sinks.iceberg.layout import TABLE
    from sinks.iceberg.reader import read_point

    parser = argparse.ArgumentParser(
        prog="python -m serving.offline.statistics",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--since", default="1d", help="window ends from this long ago until now (a duration)")
    parser.add_argument("--entity-type", default="user")
    parser.add_argument("--training-set", help="a training set id: drift of its features against its snapshot")
    parser.add_argument(
        "--metrics-file",
        type=Path,
        help="also write the latest hour's rates and the drift as Prometheus gauges (textfile format)",
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    try:
        since_ms = to_millis(parse_duration(args.since))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        table = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}")
        catalog = DefinitionStore(settings.definitions_db).catalog()
        now_us = time.time_ns() // 1000
        point = read_point(table, None)
        report: dict[str, Any] = {"since": iso_us(now_us - since_ms * 1000), "until": iso_us(now_us)}
        if args.training_set:
            manifest = TrainingSetStore(settings.definitions_db).get(args.training_set).manifest
            definitions = pinned_definitions(catalog, manifest)
            report["training_set"] = manifest.id
            report["drift"] = [
                {**entry, "training_set": manifest.id}
                for entry in drift(
                    table,
                    manifest_point(table, manifest),
                    point,
                    manifest.entity_type,
                    definitions,
                    now_us - since_ms * 1000,
                    now_us,
                )
            ]
        else:
            definitions = [d for d in catalog.active() if d.entity == args.entity_type]
        report["hourly"] = hourly(table, point, args.entity_type, definitions, now_us - since_ms * 1000, now_us)
    except FeatureStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    if args.metrics_file is not None:
        write_metrics(report.get("hourly", []), report.get("drift", []), args.metrics_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
