"""Data-quality statistics of the offline table and of the serving log, and drift against what a
training set was built from.

``hourly`` (source ``offline``): per feature version and hour of event time (the window end, floored
to the hour, UTC), over the rows visible at a read point with window ends in ``[since, until)``:
``count`` (rows), ``nulls``, ``zeros`` (rows whose value is 0, or false), ``null_rate`` and
``zero_rate`` (over ``count``), ``mean`` and ``stddev`` (population), the ``p01``, ``p50`` and ``p99``
quantiles (t-digest estimates), each of these over the finite values only (nulls, NaN and infinities left out of
every one of them: an hour without a finite value has them null; a NaN or an infinity still counts in ``count`` and
is neither a null nor a zero), and ``lag_p50_ms`` / ``lag_p99_ms``:
how long after its window closed a row was ingested (``ingested_at - window end``). A boolean counts
as 0/1; a string feature has counts and rates only (the numeric columns are null).

``served_hourly`` (source ``serving_log``): the same per feature version and hour of *serving* time,
over the values logged as served in ``[since, until)`` (each logged value once): a value served
``missing`` or ``expired`` counts as a null, and the lag is the served value's age
(``served_at - feature timestamp``, null where it had none). Versions the registry does not know
are left out.

``drift`` and ``served_drift``: per numeric feature version, the population stability index of the
values of ``[since, until)`` (offline: by window end; served: by serving time, nulls left out)
against the values the training set's manifest pins (its snapshot, rows ingested by its
``ingested_until``, every window end): ten bins cut at the reference's deciles (a value on a cut counted in
the bin above it; a cut several deciles share, a value the reference repeats, has a bin of its own; NaN left out,
infinities in the outer bins), any share below 0.0001 (an empty bin's) taken as 0.0001, ``PSI = sum((cur - ref) * ln(cur / ref))``. Zero means the same distribution; the usual
reading is below 0.1 stable, 0.1-0.25 moderate, above 0.25 shifted (the alert's and the gate's
threshold, each strictly above).

``python -m serving.offline.statistics --since 1d [--training-set ID]`` prints the report as JSON
(``hourly`` holds both sources' hours, ``drift`` both sources' scores, each entry naming its
``source``) and keeps it in the registry's database (``registry.quality``; ``--no-store`` does not):
an hour computed again replaces the stored one. ``--every 1h`` repeats it; ``--fail-above R`` exits 3
when a PSI is above ``R``; ``--metrics-file F`` also writes gauges for node_exporter's textfile
collector (``write_metrics``).
"""

from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the modules below load is the command's one line too, not a traceback
    from registry.core.interrupt import exit_on_ctrl_c

    exit_on_ctrl_c()

import argparse
import math
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from registry.core.arguments import ArgumentParser, text
from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DatasetError, DefinitionError, UnknownFeatureError
from registry.core.shown import error_line, shown
from registry.core.value_types import VALUE_COLUMNS
from registry.quality import SOURCES, QualityStore
from serving.offline.command_io import command_failures
from serving.offline.report_command import check_metrics_file, every_s, interruptible, print_report, since_ms, sleep
from sinks.iceberg.as_of import ReadPoint, iso_us, read_point
from sinks.iceberg.reader import _filter, micros, scan_at

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from registry.training_sets import Manifest

HOUR_US = 3_600_000_000
QUANTILES = (0.01, 0.5, 0.99)
PSI_BINS = 10
PSI_FLOOR = 1e-4


_KEYED = ("entity_id", "feature_name", "feature_version", "event_time", "ingested_at", "revision")


def _rows(
    table: Table, point: ReadPoint, entity_type: str, d: FeatureDefinition, lo_us: int | None, hi_us: int | None
) -> tuple[np.ndarray, pa.Array, np.ndarray]:
    """(window end µs, value, ingested at µs) of ``d``'s visible windows with ``lo_us <= end < hi_us``: of a window
    stored more than once (its revisions, a replay), the row a training set's join reads, the latest ingested,
    then the highest revision, then ``tie_key`` (``asof_join._winners_last``), so the hours and the drift's
    reference describe the values the model was trained on, not the superseded partial ones."""
    if point.snapshot_id is None:
        return np.empty(0, np.int64), pa.array([], pa.float64()), np.empty(0, np.int64)
    column = VALUE_COLUMNS[d.value_type]
    where = _filter(entity_type, [d], point, lo_us, None if hi_us is None else hi_us - 1)
    rows = scan_at(table, point, where, (*_KEYED, column))
    keep = pc.and_(pc.equal(rows.column("feature_name"), d.name), pc.equal(rows.column("feature_version"), d.version))
    if point.ingested_until_us is not None:
        ingested = pa.array(micros(rows.column("ingested_at")) <= point.ingested_until_us)
        keep = pc.and_(keep, ingested)
    rows = _winners(rows.filter(keep), column)
    return micros(rows.column("event_time")), rows.column(column).combine_chunks(), micros(rows.column("ingested_at"))


def _winners(rows: pa.Table, column: str) -> pa.Table:
    """One row per (entity, window end): the one the join reads; the rows keep their order."""
    from serving.offline.asof_join import _winners_last

    if rows.num_rows < 2:
        return rows
    entity = pc.dictionary_encode(rows.column("entity_id").combine_chunks()).indices.to_numpy(zero_copy_only=False)
    ends = micros(rows.column("event_time"))
    _, key = np.unique(np.column_stack((entity.astype(np.int64), ends)), axis=0, return_inverse=True)
    key = key.reshape(-1)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    revision = rows.column("revision").combine_chunks().fill_null(0).to_numpy(zero_copy_only=False)
    values = rows.column(column).combine_chunks()
    _winners_last(order, sorted_key, micros(rows.column("ingested_at")), revision, values)
    last = np.flatnonzero(np.r_[sorted_key[1:] != sorted_key[:-1], True])
    return rows.take(pa.array(np.sort(order[last])))


def _numeric(values: pa.Array) -> pa.Array | None:
    if pa.types.is_boolean(values.type):
        return values.cast(pa.int8()).cast(pa.float64())
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        # Unchecked: a long beyond 2^53 has no exact double and is rounded to the nearest one (a checked cast
        # refuses it, and one such value failed the whole report).
        return values.cast(pa.float64(), safe=False)
    return None


def _moment(g: dict[str, Any], name: str) -> float | None:
    """An hour's mean or stddev; of the values divided by 2^1000 where they summed or squared past the largest double."""
    return g[f"value_{name}"] if math.isfinite(g[f"value_{name}"] or 0.0) else g[f"scaled_{name}"] * 2.0**1000


def _summaries(
    source: str,
    entity_type: str,
    d: FeatureDefinition,
    hours_us: np.ndarray,
    values: pa.Array,
    lags_ms: pa.Array,
) -> list[dict[str, Any]]:
    """The hourly entries of one feature version's values (``values[i]`` in hour ``hours_us[i]``)."""
    numeric = _numeric(values)
    n = len(hours_us)
    is_zero = (pc.equal(numeric, 0.0) if numeric is not None else pa.array(np.zeros(n, bool))).fill_null(False)
    # Moments and quantiles of the finite values only: NaN and infinities count in `count`, neither null nor zero.
    finite = pa.nulls(n, pa.float64()) if numeric is None else pc.if_else(pc.is_finite(numeric), numeric, None)
    frame = pa.table(
        {
            "hour": pa.array(hours_us),
            "value": finite,
            "scaled": pc.divide(finite, 2.0**1000),  # the moments where the plain ones overflow (`_moment`)
            "is_null": values.is_null(),
            "is_zero": is_zero,
            "lag": lags_ms,
        }
    )
    grouped = frame.group_by("hour").aggregate(
        [
            ("is_null", "count"),
            ("is_null", "sum"),
            ("is_zero", "sum"),
            *((column, moment) for column in ("value", "scaled") for moment in ("mean", "stddev")),
            ("value", "tdigest", pc.TDigestOptions(q=list(QUANTILES))),
            ("lag", "tdigest", pc.TDigestOptions(q=[0.5, 0.99])),
        ]
    )
    out = []
    for g in sorted(grouped.to_pylist(), key=lambda g: g["hour"]):
        count = int(g["is_null_count"])
        quantiles = g["value_tdigest"] if numeric is not None else [None] * len(QUANTILES)
        lags = [None if q is None or np.isnan(q) else float(q) for q in g["lag_tdigest"]]
        out.append(
            {
                "source": source,
                "entity_type": entity_type,
                "feature": d.name,
                "version": d.version,
                "hour": iso_us(int(g["hour"])),
                "count": count,
                "nulls": int(g["is_null_sum"]),
                "zeros": int(g["is_zero_sum"]),
                "null_rate": int(g["is_null_sum"]) / count,
                "zero_rate": int(g["is_zero_sum"]) / count,
                "mean": _moment(g, "mean") if numeric is not None else None,
                "stddev": _moment(g, "stddev") if numeric is not None else None,
                **{
                    f"p{round(q * 100):02d}": None if v is None or np.isnan(v) else float(v)
                    for q, v in zip(QUANTILES, quantiles, strict=True)
                },
                "lag_p50_ms": lags[0] if lags else None,
                "lag_p99_ms": lags[1] if lags else None,
            }
        )
    return out


def hourly(
    table: Table,
    point: ReadPoint,
    entity_type: str,
    definitions: Sequence[FeatureDefinition],
    since_us: int,
    until_us: int,
) -> list[dict[str, Any]]:
    """One entry per feature version and hour with rows, in feature then hour order (source ``offline``)."""
    if until_us <= since_us:
        raise DatasetError("statistics: `until` must be after `since`")
    out: list[dict[str, Any]] = []
    for d in definitions:
        ends, values, ingested = _rows(table, point, entity_type, d, since_us, until_us)
        if len(ends):
            lags = pa.array((ingested - ends) / 1000.0)
            out.extend(_summaries("offline", entity_type, d, ends // HOUR_US * HOUR_US, values, lags))
    return out


_JSON_NUMBER = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$"


def served_values(text: pa.Array, value_type: str, status: pa.Array | None = None) -> pa.Array:
    """The logged ``value_json`` of one feature as its value type (JSON ``null``, no value, and a value not of
    the type, which only something other than the API can have logged, are null; a string feature's values stay
    JSON text, which is all its statistics need). With ``status``, a value served ``missing`` or ``expired`` is a
    null whatever was logged beside it (the API logs null there; a log written otherwise counted it as a value)."""
    text = pc.if_else(pc.equal(text, "null"), pa.scalar(None, pa.string()), text)
    if status is not None:
        gone = pc.is_in(status, pa.array(["missing", "expired"]))
        text = pc.if_else(pc.fill_null(gone, False), pa.scalar(None, pa.string()), text)
    if value_type in ("long", "double"):
        number = pc.match_substring_regex(text, _JSON_NUMBER)
        return pc.if_else(number, text, pa.scalar(None, pa.string())).cast(pa.float64())
    if value_type == "boolean":
        flag = pc.is_in(text, pa.array(["true", "false"]))
        return pc.if_else(flag, pc.equal(text, "true"), pa.scalar(None, pa.bool_()))
    # a string: JSON text of a string (the loader keeps only valid JSON), not a number, boolean, array or object
    return pc.if_else(pc.starts_with(text, '"'), text, pa.scalar(None, pa.string()))


def _served(log: Table, since_us: int, until_us: int) -> Iterator[tuple[tuple[str, str, int], pa.Table]]:
    """The serving log's rows of ``[since, until)`` (each logged value once) per (entity type, feature, version)."""
    from sinks.serving_log import read_logged

    rows = read_logged(log, since_us, until_us)
    if not rows.num_rows:
        return
    keyed = rows.append_column("_row", pa.array(np.arange(rows.num_rows)))
    groups = keyed.group_by(["entity_type", "feature_name", "feature_version"], use_threads=False).aggregate(
        [("_row", "list")]
    )
    for g in sorted(groups.to_pylist(), key=lambda g: (g["entity_type"], g["feature_name"], g["feature_version"])):
        key = (g["entity_type"], g["feature_name"], int(g["feature_version"]))
        yield key, rows.take(pa.array(g["_row_list"], pa.int64()))


def served_hourly(
    log: Table,
    catalog: FeatureCatalog,
    since_us: int,
    until_us: int,
    *,
    entity_type: str | None = None,
    only: Sequence[FeatureDefinition] | None = None,
) -> list[dict[str, Any]]:
    """What ``hourly`` says of the offline table, of the values served in ``[since, until)`` (source ``serving_log``):
    hours of serving time, every logged value counted (``missing`` and ``expired`` ones as nulls), and the lag is
    serving time minus the served value's feature timestamp. ``entity_type``: that type's features only (any version the
    catalog holds: a feature service may serve an inactive one); ``only``: those versions only (a training set's)."""
    if until_us <= since_us:
        raise DatasetError("statistics: `until` must be after `since`")
    wanted = None if only is None else {d.key for d in only}
    out: list[dict[str, Any]] = []
    for key, rows in _served(log, since_us, until_us):
        entity, name, version = key
        if (entity_type is not None and entity != entity_type) or (wanted is not None and key not in wanted):
            continue
        try:
            d = catalog.get(entity, name, version)
        except UnknownFeatureError:
            continue  # parity reports unknown versions; statistics of values with no type mean nothing
        served = micros(rows.column("served_at"))
        times = rows.column("feature_time").combine_chunks()
        lags = pc.divide(pc.subtract(pa.array(served), times.cast(pa.int64())).cast(pa.float64()), 1000.0)
        values = served_values(
            rows.column("value_json").combine_chunks(), d.value_type, rows.column("status").combine_chunks()
        )
        out.extend(_summaries("serving_log", entity, d, served // HOUR_US * HOUR_US, values, lags))
    return out


def psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float | None:
    """The population stability index of ``current`` against ``reference`` (NaN left out, infinities kept: they
    fall in the outer bins); None if either is empty. The cuts are the finite reference values' interior
    quantiles ``k / bins``; a value on a cut counts in the bin above it, except on a cut that several quantiles
    share (a value the reference repeats), which has a bin of its own: a count that was mostly 0 and is now 100,
    or a flag that flipped, is drift, not a score of 0."""
    reference = reference[~np.isnan(reference)]
    current = current[~np.isnan(current)]
    if not len(reference) or not len(current):
        return None
    finite = reference[np.isfinite(reference)]
    cuts = np.quantile(finite, np.arange(1, bins) / bins) if len(finite) else np.array([], dtype=np.float64)
    edges, repeats = np.unique(cuts, return_counts=True)
    own_bin = np.cumsum(repeats > 1) - 1 + len(edges) + 1  # the extra bin of each shared cut

    def shares(values: np.ndarray) -> np.ndarray:
        index = np.searchsorted(edges, values, side="right")
        if len(edges):
            at = np.minimum(np.searchsorted(edges, values, side="left"), len(edges) - 1)
            index = np.where((edges[at] == values) & (repeats[at] > 1), own_bin[at], index)
        counts = np.bincount(index, minlength=len(edges) + 1 + int(np.sum(repeats > 1)))
        return np.maximum(counts / len(values), PSI_FLOOR)

    ref, cur = shares(reference), shares(current)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _psi_entry(
    source: str, entity_type: str, d: FeatureDefinition, before: pa.Array, now: pa.Array
) -> dict[str, Any] | None:
    ref, cur = _numeric(before), _numeric(now)
    if ref is None or cur is None:
        return None
    before, now = ref.fill_null(np.nan).to_numpy(), cur.fill_null(np.nan).to_numpy()
    return {
        "source": source,
        "entity_type": entity_type,
        "feature": d.name,
        "version": d.version,
        "psi": psi(before, now),
        # the values the score compared: nulls and NaN left out, as ``psi`` leaves them out
        "reference_values": int(np.count_nonzero(~np.isnan(before))),
        "current_values": int(np.count_nonzero(~np.isnan(now))),
    }


References = dict[tuple[str, int], pa.Array]
"""A feature version's values at a training set's snapshot, read once for both drifts (``report``)."""


def _reference(
    table: Table, point: ReadPoint, entity_type: str, d: FeatureDefinition, cache: References | None
) -> pa.Array:
    key = (d.name, d.version)
    if cache is not None and key in cache:
        return cache[key]
    _, values, _ = _rows(table, point, entity_type, d, None, None)
    if cache is not None:
        cache[key] = values
    return values


def drift(
    table: Table,
    reference_point: ReadPoint,
    point: ReadPoint,
    entity_type: str,
    definitions: Sequence[FeatureDefinition],
    since_us: int,
    until_us: int,
    *,
    cache: References | None = None,
) -> list[dict[str, Any]]:
    """Per numeric feature version: PSI of ``[since, until)`` at ``point`` against everything at ``reference_point``."""
    out = []
    for d in definitions:
        before = _reference(table, reference_point, entity_type, d, cache)
        _, now, _ = _rows(table, point, entity_type, d, since_us, until_us)
        entry = _psi_entry("offline", entity_type, d, before, now)
        if entry is not None:
            out.append(entry)
    return out


def served_drift(
    table: Table,
    reference_point: ReadPoint,
    log: Table,
    entity_type: str,
    definitions: Sequence[FeatureDefinition],
    since_us: int,
    until_us: int,
    *,
    cache: References | None = None,
) -> list[dict[str, Any]]:
    """Per numeric feature version: PSI of the values served in ``[since, until)`` (nulls left out)
    against everything the offline table held at ``reference_point``."""
    wanted = {(entity_type, d.name, d.version): d for d in definitions}
    out = []
    for key, rows in _served(log, since_us, until_us):
        d = wanted.get(key)
        if d is None:
            continue
        before = _reference(table, reference_point, entity_type, d, cache)
        now = served_values(
            rows.column("value_json").combine_chunks(), d.value_type, rows.column("status").combine_chunks()
        )
        entry = _psi_entry("serving_log", entity_type, d, before, now)
        if entry is not None:
            out.append(entry)
    return out


def write_metrics(hours: Sequence[dict[str, Any]], drifts: Sequence[dict[str, Any]], path: Path) -> None:
    """Gauges per entity type, feature, version and source (``offline`` or ``serving_log``), written
    atomically: ``fs_feature_null_rate`` and ``fs_feature_zero_rate`` of each feature's latest hour in
    the report, and ``fs_feature_psi`` (with the training set's id) where drift was computed."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()
    labels = ["entity_type", "feature", "version", "source"]
    null_rate = Gauge("fs_feature_null_rate", "Null share of the latest hour's values", labels, registry=registry)
    zero_rate = Gauge("fs_feature_zero_rate", "Zero share of the latest hour's values", labels, registry=registry)
    score = Gauge(
        "fs_feature_psi", "PSI against a training set's snapshot", [*labels, "training_set"], registry=registry
    )

    def key(entry: dict[str, Any]) -> tuple[str, str, str, str]:
        return (entry["entity_type"], entry["feature"], str(entry["version"]), entry.get("source", "offline"))

    latest: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for h in hours:  # in hour order per feature: the last one stays
        latest[key(h)] = h
    for labelled, h in latest.items():
        null_rate.labels(*labelled).set(h["null_rate"])
        zero_rate.labels(*labelled).set(h["zero_rate"])
    for d in drifts:
        if d["psi"] is not None:
            score.labels(*key(d), d.get("training_set", "")).set(d["psi"])
    write_to_textfile(str(path), registry)


def report(
    table: Table,
    log: Table,
    catalog: FeatureCatalog,
    manifest: Manifest | None,
    entity_type: str,
    since_us: int,
    until_us: int,
) -> dict[str, Any]:
    """Hourly statistics of the offline table and of the serving log, of the same features (every version of the
    entity type's, or the training set's), and with a training set, both drifts against its snapshot."""
    from serving.offline.training import manifest_point, pinned_definitions

    point = read_point(table, None)
    out: dict[str, Any] = {"since": iso_us(since_us), "until": iso_us(until_us)}
    if manifest is not None:
        entity_type = manifest.entity_type
        # Statistics and drift cover stored features (a request-time feature's values depend on request data).
        definitions = [
            d for d in pinned_definitions(catalog, manifest, requests=False) if isinstance(d, FeatureDefinition)
        ]
        reference = manifest_point(table, manifest)
        out["training_set"] = manifest.id
        cache: References = {}
        offline = drift(table, reference, point, entity_type, definitions, since_us, until_us, cache=cache)
        served = served_drift(table, reference, log, entity_type, definitions, since_us, until_us, cache=cache)
        out["drift"] = [{**entry, "training_set": manifest.id} for entry in (*offline, *served)]
    else:
        if entity_type not in catalog.entity_types():  # a misspelt type is an error, not an empty report
            known = ", ".join(sorted(catalog.entity_types())) or "none"
            raise DefinitionError(f"entity type {entity_type!r} has no registered features (registered: {known})")
        definitions = [d for d in catalog if d.entity == entity_type]  # every version, as the served hours
    out["hourly"] = [
        *hourly(table, point, entity_type, definitions, since_us, until_us),
        # The same features as the offline hours: the training set's, or every version of the entity type's.
        *served_hourly(
            log, catalog, since_us, until_us, entity_type=entity_type, only=definitions if manifest else None
        ),
    ]
    return out


def store(quality: QualityStore, result: dict[str, Any], computed_at: datetime) -> None:
    """Keep a report's entries (``registry.quality``): hours replaced, drift scores added."""
    since, until = (datetime.fromisoformat(result[k]) for k in ("since", "until"))
    for source in SOURCES:
        quality.put_hourly(source, [h for h in result["hourly"] if h["source"] == source], computed_at, since=since)
        drifts = [d for d in result.get("drift", []) if d["source"] == source]
        quality.put_drift(source, drifts, since, until, computed_at)


def main(argv: list[str] | None = None) -> int:
    return interruptible(_main, argv)


def _main(argv: list[str] | None) -> int:
    from registry.core.arguments import number
    from registry.core.settings import settings_for_command
    from registry.definition_store import DefinitionStore
    from registry.training_sets import TrainingSetStore
    from sinks.factory import connect_iceberg
    from sinks.iceberg.writer import load_table
    from sinks.serving_log import ensure_log_table

    parser = ArgumentParser(
        prog="python -m serving.offline.statistics",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--since",
        type=since_ms,
        default="1d",
        help="window ends (and serving times) from this long ago until now (a positive duration)",
    )
    parser.add_argument(
        "--entity-type", type=text, default="user", help="the entity type whose features are measured (default user)"
    )
    parser.add_argument(
        "--training-set", type=text, help="a training set id: drift of its features against its snapshot"
    )
    parser.add_argument("--every", type=every_s, help="repeat at this interval (a positive duration) until stopped")
    parser.add_argument("--no-store", action="store_true", help="print only; do not keep the results")
    parser.add_argument(
        "--fail-above",
        type=number(0.0, math.inf),
        help="exit 3 if a drift score (PSI) is above this: a finite number of 0 or more (needs --training-set)",
    )
    parser.add_argument(
        "--metrics-file",
        type=Path,
        help="also write the latest hour's rates and the drift as Prometheus gauges (textfile format)",
    )
    args = parser.parse_args(argv)
    # As parity's: checked before anything is read or computed.
    if args.fail_above is not None and args.training_set is None:
        parser.error("argument --fail-above: needs --training-set (drift is measured against a training set)")
    if args.metrics_file is not None:
        check_metrics_file(parser, args.metrics_file)
    since: int = args.since  # ms
    every: float | None = args.every  # s
    settings = settings_for_command()
    while True:
        try:
            db = settings.definitions_db  # read only: a missing or foreign file is refused, never made a registry
            catalog = DefinitionStore.existing(db, name=f"FS_DEFINITIONS_DB={shown(db)}").catalog()
            iceberg = connect_iceberg(settings)
            table = load_table(iceberg, settings.iceberg_namespace)
            # the registry and the offline table first: a run that cannot report creates nothing (as parity's)
            log = ensure_log_table(iceberg, settings.iceberg_namespace)
            manifest = None
            if args.training_set is not None:  # an empty id is an unknown one, not "no training set"
                manifest = TrainingSetStore(settings.definitions_db).get(args.training_set).manifest
            now_us = time.time_ns() // 1000
            result = report(table, log, catalog, manifest, args.entity_type, now_us - since * 1000, now_us)
            if not args.no_store:
                store(QualityStore(settings.definitions_db), result, datetime.fromisoformat(iso_us(now_us)))
        except command_failures() as exc:  # OSError: a table's file gone or unreadable
            print(error_line(exc), file=sys.stderr)
            return 1
        if not print_report(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()):
            return 1
        if args.metrics_file is not None:
            try:
                write_metrics(result["hourly"], result.get("drift", []), args.metrics_file)
            except OSError as exc:  # a folder made read-only, a full disk: one line, not a traceback
                print(error_line(f"--metrics-file {shown(args.metrics_file)}: {exc}"), file=sys.stderr)
                return 1
        worst = max((d["psi"] for d in result.get("drift", []) if d["psi"] is not None), default=None)
        if args.fail_above is not None and worst is not None and worst > args.fail_above:
            return 3
        if every is None:
            return 0
        sleep(every)


if __name__ == "__main__":
    sys.exit(main())
