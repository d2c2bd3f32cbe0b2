"""Online/offline parity: was what the API served the value the training join reads for the same window?

For every value in the serving log (``sinks.serving_log``) served between ``since`` and ``until`` with
status ``present`` or ``stale`` (the statuses that carry a window), the offline value of the same
feature *version* for the same entity is read by the training join's own rule
(``serving.offline.historical``) with the label time set to the served value's feature timestamp
(its window end): the window that was served, as the offline table holds it now. Then, per feature
and version:

- ``checked``: logged values compared (a value logged twice, by an at-least-once landing, counts once);
- ``mismatched``: the offline value differs (a double compared exactly: both sides come from one
  computation, and JSON round-trips finite doubles exactly; NaN equals NaN, and a value logged as null
  equals a NaN or an infinity offline, since JSON spells neither and the log writes them as null);
- ``missing_offline``: the offline join has no value where one was served;
- ``mismatch_ratio`` and ``missing_ratio``: those over ``checked``;
- ``examples``: up to ``examples`` of each, with entity, feature timestamp, and both values.

``served`` counts every logged value per feature version by status (``stale`` among them: values
served past their freshness SLO); ``health()`` is what the deployment gate applies
(``python -m registry.cli gate --guardrails``).

A window revised by late events after it was served reads its revised value offline, and counts as a
mismatch: a model trained on that table sees a value that serving never gave. Values served as
``missing`` or ``expired`` carry no window and are only counted (``without_window``).

``python -m serving.offline.parity --since 1h`` prints the report as JSON; ``--every 10m`` repeats it;
``--fail-above R`` exits 3 when any feature's mismatch or missing ratio is above ``R``. Each run is
kept in the registry's database (``registry.quality``: the counts and ratios, not the examples;
``--no-store`` does not); ``--metrics-file F`` also writes it as Prometheus gauges
(``write_metrics``) for node_exporter's textfile collector, where alert rules can read it.
"""

from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the modules below load is the command's one line too, not a traceback
    from registry.core.interrupt import exit_on_ctrl_c

    exit_on_ctrl_c()

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from registry.core.arguments import ArgumentParser, number, whole
from registry.core.catalog import FeatureCatalog
from registry.core.errors import DatasetError, UnknownFeatureError
from registry.gate import ServedHealth
from serving.offline.command_io import command_failures
from serving.offline.historical import LabelTimes, PointInTimeJoin
from serving.offline.report_command import check_metrics_file, every_s, interruptible, print_report, since_ms, sleep
from sinks.iceberg.as_of import iso_us, read_point
from sinks.iceberg.reader import micros
from sinks.serving_log import read_logged

if TYPE_CHECKING:
    from pyiceberg.table import Table

WITH_WINDOW = ("present", "stale")


@dataclass
class FeatureParity:
    entity_type: str
    feature: str
    version: int
    checked: int = 0
    mismatched: int = 0
    missing_offline: int = 0
    mismatch_ratio: float = 0.0
    missing_ratio: float = 0.0
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ParityReport:
    since: str
    until: str
    features: list[FeatureParity]
    without_window: int
    unknown_versions: list[str]
    served: list[dict[str, Any]] = field(default_factory=list)  # per feature version: values logged by status

    def health(self) -> dict[tuple[str, str, int], ServedHealth]:
        """What the deployment gate applies (``registry.gate.Guardrails``), per (entity, name, version)."""
        compared = {(f.entity_type, f.feature, f.version): f for f in self.features}
        out = {}
        for entry in self.served:
            key = (entry["entity_type"], entry["feature"], entry["version"])
            parity = compared.get(key)
            out[key] = ServedHealth(
                served=sum(entry["statuses"].values()),
                stale=entry["statuses"].get("stale", 0),
                mismatch_ratio=parity.mismatch_ratio if parity else 0.0,
                missing_ratio=parity.missing_ratio if parity else 0.0,
            )
        return out

    def quality_rows(self) -> list[dict[str, Any]]:
        """One row per feature version logged or compared, in ``registry.quality.PARITY_COLUMNS``'s terms."""
        compared = {(f.entity_type, f.feature, f.version): f for f in self.features}
        health = self.health()
        out = []
        for key in sorted(compared.keys() | health.keys()):
            parity, served = compared.get(key), health.get(key)
            out.append(
                {
                    "entity_type": key[0],
                    "feature": key[1],
                    "version": key[2],
                    "checked": parity.checked if parity else 0,
                    "mismatched": parity.mismatched if parity else 0,
                    "missing_offline": parity.missing_offline if parity else 0,
                    "mismatch_ratio": parity.mismatch_ratio if parity else None,
                    "missing_ratio": parity.missing_ratio if parity else None,
                    "served": served.served if served else 0,
                    "stale": served.stale if served else 0,
                }
            )
        return out

    def worst(self) -> float:
        return max((max(f.mismatch_ratio, f.missing_ratio) for f in self.features), default=0.0)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)


def _logged_value(text: str | None) -> Any:
    """A logged ``value_json`` as a value. The loader keeps valid JSON only; a row written to the table otherwise
    may hold ``NaN`` or ``1e400`` (read as Python's JSON reads them: NaN, infinity) or text that is no JSON at all
    (compared as the text, a mismatch), not a traceback that stops the whole report."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            return json.loads(text)
        except ValueError:
            return text


def _same(online: Any, offline: Any) -> bool:
    if isinstance(online, float) and isinstance(offline, float) and math.isnan(online) and math.isnan(offline):
        return True
    if online is None and isinstance(offline, float) and not math.isfinite(offline):
        return True  # JSON spells no NaN or infinity: the log holds such a served double as null
    if isinstance(online, bool) or isinstance(offline, bool):
        return online is offline
    if isinstance(online, float) and isinstance(offline, float):  # -0.0 is not 0.0: exact, the sign included
        return online == offline and math.copysign(1.0, online) == math.copysign(1.0, offline)
    return bool(online == offline)


def _example_value(value: Any) -> Any:
    """A value as an example shows it: a NaN or an infinity as the text JSON has no number for (``"NaN"``,
    ``"Infinity"``, ``"-Infinity"``), not as null, which reads as no value at all."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    return value


def parity_report(
    log: Table,
    offline: Table,
    catalog: FeatureCatalog,
    since_us: int,
    until_us: int,
    *,
    examples: int = 5,
) -> ParityReport:
    """The report for values served in ``[since_us, until_us)`` (epoch µs), against the offline table now."""
    if until_us <= since_us:
        raise DatasetError("parity: `until` must be after `since`")
    rows = read_logged(log, since_us, until_us)
    by_status: dict[tuple[str, str, int], dict[str, int]] = {}
    if rows.num_rows:
        counts = rows.group_by(
            ["entity_type", "feature_name", "feature_version", "status"], use_threads=False
        ).aggregate([("status", "count")])
        for c in counts.to_pylist():
            key = (c["entity_type"], c["feature_name"], c["feature_version"])
            by_status.setdefault(key, {})[c["status"]] = c["status_count"]
    statuses = rows.column("status")
    has_window = pc.and_(pc.is_in(statuses, pa.array(WITH_WINDOW)), pc.is_valid(rows.column("feature_time")))
    without_window = rows.num_rows - pc.sum(has_window.cast(pa.int64())).as_py() if rows.num_rows else 0
    rows = rows.filter(has_window) if rows.num_rows else rows
    point = read_point(offline, None)
    out: list[FeatureParity] = []
    unknown: list[str] = []
    keyed = rows.append_column("_row", pa.array(np.arange(rows.num_rows)))
    groups = keyed.group_by(["entity_type", "feature_name", "feature_version"], use_threads=False).aggregate(
        [("_row", "list")]
    )
    for group in sorted(groups.to_pylist(), key=lambda g: (g["entity_type"], g["feature_name"], g["feature_version"])):
        entity_type, name, version = group["entity_type"], group["feature_name"], group["feature_version"]
        mine = rows.take(pa.array(group["_row_list"], pa.int64()))
        try:
            definition = catalog.get(entity_type, name, version)
        except UnknownFeatureError:
            unknown.append(f"{entity_type}.{name}@v{version}")
            continue
        times_us = micros(mine.column("feature_time"))
        entities = mine.column("entity_id").combine_chunks()
        (values,) = PointInTimeJoin(offline, [definition], entity_type, point).join(
            entities, LabelTimes(times_us, times_us)
        )
        report = FeatureParity(entity_type, name, version, checked=mine.num_rows)
        served = [_logged_value(v) for v in mine.column("value_json").to_pylist()]
        stored = values.to_pylist()
        ids = entities.to_pylist()
        shown = {"mismatch": 0, "missing_offline": 0}
        for i, (online, held) in enumerate(zip(served, stored, strict=True)):
            if held is None and online is not None:
                report.missing_offline += 1
                kind = "missing_offline"
            elif not _same(online, held):
                report.mismatched += 1
                kind = "mismatch"
            else:
                continue
            if shown[kind] < examples:  # up to `examples` of each kind: a run of one kind hides no other
                shown[kind] += 1
                report.examples.append(
                    {
                        "kind": kind,
                        "entity_id": ids[i],
                        "feature_timestamp": iso_us(int(times_us[i])),
                        "online": _example_value(online),
                        "offline": _example_value(held),
                    }
                )
        report.mismatch_ratio = report.mismatched / report.checked
        report.missing_ratio = report.missing_offline / report.checked
        out.append(report)
    counted = [
        {"entity_type": e, "feature": n, "version": v, "statuses": dict(sorted(c.items()))}
        for (e, n, v), c in sorted(by_status.items())
    ]
    return ParityReport(iso_us(since_us), iso_us(until_us), out, int(without_window), unknown, counted)


def write_metrics(report: ParityReport, path: Path, now_us: int) -> None:
    """The report as gauges, written atomically (``fs_parity_*`` per entity type, feature and version).

    ``fs_parity_mismatch_ratio`` and ``fs_parity_missing_ratio`` (absent for a feature with no value
    to compare), ``fs_parity_checked``, ``fs_served_stale_share`` (values served stale over values
    logged), and ``fs_parity_last_run_timestamp_seconds``.
    """
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()
    labels = ["entity_type", "feature", "version"]
    mismatch = Gauge(
        "fs_parity_mismatch_ratio", "Served values the offline table disagrees with", labels, registry=registry
    )
    missing = Gauge("fs_parity_missing_ratio", "Served values the offline table lacks", labels, registry=registry)
    checked = Gauge("fs_parity_checked", "Served values compared with the offline table", labels, registry=registry)
    stale = Gauge("fs_served_stale_share", "Logged values served stale", labels, registry=registry)
    last = Gauge("fs_parity_last_run_timestamp_seconds", "When the parity report was made", registry=registry)
    for f in report.features:
        key = (f.entity_type, f.feature, str(f.version))
        mismatch.labels(*key).set(f.mismatch_ratio)
        missing.labels(*key).set(f.missing_ratio)
        checked.labels(*key).set(f.checked)
    for (entity_type, name, version), health in report.health().items():
        if health.served:
            stale.labels(entity_type, name, str(version)).set(health.stale / health.served)
    last.set(now_us / 1e6)
    write_to_textfile(str(path), registry)


def main(argv: list[str] | None = None) -> int:
    return interruptible(_main, argv)


def _main(argv: list[str] | None) -> int:
    from registry.core.settings import settings_for_command
    from registry.core.shown import error_line, shown
    from registry.definition_store import DefinitionStore
    from registry.quality import QualityStore
    from sinks.factory import connect_iceberg
    from sinks.iceberg.writer import load_table
    from sinks.serving_log import ensure_log_table

    parser = ArgumentParser(
        prog="python -m serving.offline.parity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--since",
        type=since_ms,
        default="1h",
        help="how far back from now: a positive duration such as 15m, 1h, 2d (default 1h)",
    )
    parser.add_argument("--every", type=every_s, help="repeat at this interval (a positive duration) until stopped")
    parser.add_argument(
        "--fail-above", type=number(0.0, 1.0), help="exit 3 if a mismatch or missing ratio is above this (0 to 1)"
    )
    parser.add_argument(
        "--examples", type=whole(0), default=5, help="mismatches and missing values shown per feature (default 5)"
    )
    parser.add_argument("--no-store", action="store_true", help="print only; do not keep the report")
    parser.add_argument(
        "--metrics-file",
        type=Path,
        help="also write the report as Prometheus gauges to this file (node_exporter's textfile format)",
    )
    args = parser.parse_args(argv)
    if args.metrics_file is not None:  # checked before the report is computed, not after it was printed
        check_metrics_file(parser, args.metrics_file)
    settings = settings_for_command()
    span_ms: int = args.since
    every: float | None = args.every  # s
    while True:
        try:
            # the registry, then the offline table, first: a run that cannot compare creates nothing (no catalog
            # file for a missing registry, not the log's table)
            db = settings.definitions_db
            catalog = DefinitionStore.existing(db, name=f"FS_DEFINITIONS_DB={shown(db)}").catalog()
            iceberg = connect_iceberg(settings)
            offline = load_table(iceberg, settings.iceberg_namespace)
            log = ensure_log_table(iceberg, settings.iceberg_namespace)
            now_us = time.time_ns() // 1000
            report = parity_report(log, offline, catalog, now_us - span_ms * 1000, now_us, examples=args.examples)
            if not args.no_store:
                since, until, now = (
                    datetime.fromisoformat(iso_us(t)) for t in (now_us - span_ms * 1000, now_us, now_us)
                )
                QualityStore(settings.definitions_db).put_parity(report.quality_rows(), since, until, now)
        except command_failures() as exc:  # OSError: a table's file gone or unreadable
            print(error_line(exc), file=sys.stderr)
            return 1
        if not print_report(report.to_json().decode()):
            return 1
        if args.metrics_file is not None:
            try:
                write_metrics(report, args.metrics_file, now_us)
            except OSError as exc:  # a folder made read-only, a full disk: one line, not a traceback
                print(error_line(f"--metrics-file {shown(args.metrics_file)}: {exc}"), file=sys.stderr)
                return 1
        if args.fail_above is not None and report.worst() > args.fail_above:
            return 3
        if every is None:
            return 0
        sleep(every)


if __name__ == "__main__":
    sys.exit(main())
