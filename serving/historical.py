"""Point-in-time correct training sets from the offline (Iceberg) table.

For every label row, in input order, exactly one output row: each feature's value is that of the
latest window ending at or before the row's timestamp, resolved by the same rule serving uses
(``registry.timeline``): a later closed window with no row means an empty window, and a stored
row older than the TTL is expired. "Closed" offline means closed by the label time *and* reached by
the data: the latest window end stored for the feature bounds it, as stream progress does online. Ties on a window end (a window recomputed and re-ingested)
resolve to the latest ingestion. The join is vectorized (``pandas.merge_asof``), never row by row.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from registry.catalog import FeatureCatalog
from registry.definitions import FeatureDefinition
from registry.durations import to_millis
from registry.errors import DefinitionError
from registry.timeline import empty_value, step_ms
from sinks.online_layout import VALUE_COLUMNS

if TYPE_CHECKING:
    from pyiceberg.table import Table

_PER_MS = {"s": 0.001, "ms": 1, "us": 1_000, "ns": 1_000_000}


def _millis(ts: pa.ChunkedArray) -> np.ndarray:
    """Epoch milliseconds, floored (a label at 12:00:00.999 sees windows ending by 12:00:00.999)."""
    raw = ts.cast(pa.int64()).to_numpy()
    unit = ts.type.unit
    return raw * 1000 if unit == "s" else raw // int(_PER_MS[unit])


_ARROW_TYPES = {"long": pa.int64(), "double": pa.float64(), "string": pa.string(), "boolean": pa.bool_()}


def _label_millis(labels: pa.Table, column: str) -> np.ndarray:
    if column not in labels.column_names:
        raise DefinitionError(f"label frame has no {column!r} column (columns: {labels.column_names})")
    ts = labels.column(column)
    if not pa.types.is_timestamp(ts.type):
        raise DefinitionError(f"label column {column!r} must be a timestamp, not {ts.type}")
    if ts.null_count:
        raise DefinitionError(f"label column {column!r} has {ts.null_count} null timestamps")
    return _millis(ts)  # a naive timestamp is taken as UTC


def _feature_filter(entity_type: str, definitions: list[FeatureDefinition]):  # type: ignore[no-untyped-def]
    from pyiceberg.expressions import And, EqualTo, In

    names = sorted({d.name for d in definitions})
    return And(
        EqualTo("entity_type", entity_type),
        In("feature_name", names) if len(names) > 1 else EqualTo("feature_name", names[0]),
    )


def _scan(table: Table, entity_type: str, definitions: list[FeatureDefinition], max_ms: int,
          snapshot_id: int | None) -> tuple[pd.DataFrame, pa.Table]:  # fmt: skip
    """Rows that can answer a label at or before ``max_ms``: keys in pandas, values left in Arrow."""
    from pyiceberg.expressions import And, LessThanOrEqual

    row_filter = And(
        _feature_filter(entity_type, definitions),
        LessThanOrEqual("event_time", pd.Timestamp(max_ms, unit="ms", tz="UTC").isoformat()),
    )
    columns = ("entity_id", "feature_name", "feature_version", "event_time", "ingested_at", *VALUE_COLUMNS.values())
    arrow = table.scan(row_filter=row_filter, selected_fields=columns, snapshot_id=snapshot_id).to_arrow()
    frame = pd.DataFrame({
        "entity_id": arrow.column("entity_id").to_numpy(zero_copy_only=False),
        "feature_name": arrow.column("feature_name").to_numpy(zero_copy_only=False),
        "feature_version": arrow.column("feature_version").to_numpy(zero_copy_only=False),
        "event_ms": _millis(arrow.column("event_time")),
        "ingested_ms": _millis(arrow.column("ingested_at")),
        "__idx": np.arange(arrow.num_rows),
    })  # fmt: skip
    return frame, arrow


def _reach(table: Table, entity_type: str, definitions: list[FeatureDefinition],
           snapshot_id: int | None) -> dict[tuple[str, int], int]:  # fmt: skip
    """The latest window end stored per feature version: how far the offline data reaches.

    Read over the whole history (one column), so that one label's answer never depends on which
    other labels share the request.
    """
    arrow = table.scan(
        row_filter=_feature_filter(entity_type, definitions),
        selected_fields=("feature_name", "feature_version", "event_time"),
        snapshot_id=snapshot_id,
    ).to_arrow()
    if arrow.num_rows == 0:
        return {}
    grouped = arrow.group_by(["feature_name", "feature_version"]).aggregate([("event_time", "max")])
    ends = _millis(grouped.column("event_time_max"))
    names = grouped.column("feature_name").to_pylist()
    versions = grouped.column("feature_version").to_pylist()
    return {(n, v): int(e) for n, v, e in zip(names, versions, ends, strict=True)}


def _join_feature(labels: pd.DataFrame, rows: pd.DataFrame, values: pa.Table, d: FeatureDefinition,
                  reach_ms: int | None) -> pa.Array:  # fmt: skip
    """The feature's value for every label row (labels sorted by ts_ms), as an Arrow array in that order."""
    mine = rows[(rows["feature_name"] == d.name) & (rows["feature_version"] == d.version)]
    mine = mine.sort_values(["event_ms", "ingested_ms"], kind="stable")
    mine = mine.drop_duplicates(subset=["entity_id", "event_ms"], keep="last")[["entity_id", "event_ms", "__idx"]]
    joined = pd.merge_asof(
        labels[["ts_ms", "__entity"]],
        mine.rename(columns={"entity_id": "__entity"}),
        left_on="ts_ms",
        right_on="event_ms",
        by="__entity",
        direction="backward",
        allow_exact_matches=True,
    )
    ts = joined["ts_ms"].to_numpy()
    end = joined["event_ms"].to_numpy(dtype="float64")  # NaN where no window ended yet
    matched = ~np.isnan(end)
    expired = matched & (ts - end > to_millis(d.ttl))
    keep = matched & ~expired
    # Values stay in Arrow (a long through float64 would lose exactness above 2**53): take by row index.
    index = pa.array(joined["__idx"].to_numpy(dtype="float64"), mask=~keep).cast(pa.int64(), safe=False)
    column = values.column(VALUE_COLUMNS[d.value_type]).combine_chunks()
    result = column.take(index)
    step = step_ms(d)
    if step is not None and reach_ms is not None:
        # "Closed" offline: by the label time, and reached by the data (as stream progress online).
        closed = np.minimum(ts, reach_ms)
        empty = keep & (end < (closed // step) * step)
        if empty.any():
            result = pc.if_else(pa.array(empty), pa.scalar(empty_value(d), type=column.type), result)
    return result.cast(_ARROW_TYPES[d.value_type])


def get_historical_features(
    table: Table,
    catalog: FeatureCatalog,
    labels: pa.Table,
    features: list[str],
    *,
    entity_type: str,
    entity_column: str,
    timestamp_column: str = "event_timestamp",
    snapshot_id: int | None = None,
) -> pa.Table:
    """Label columns (all, in input order) plus one column per feature, point-in-time correct."""
    definitions = catalog.resolve(entity_type, features)
    if entity_column not in labels.column_names:
        raise DefinitionError(f"label frame has no entity column {entity_column!r}")
    clash = [d.name for d in definitions if d.name in labels.column_names]
    if clash:
        raise DefinitionError(f"label frame already has column(s) named like features: {clash}")
    ts_ms = _label_millis(labels, timestamp_column)
    if labels.num_rows == 0:
        return _with_columns(labels, definitions, {})
    frame = pd.DataFrame({
        "__row": np.arange(labels.num_rows),
        "__entity": labels.column(entity_column).cast(pa.string()).to_numpy(zero_copy_only=False),
        "ts_ms": ts_ms,
    }).sort_values(["ts_ms", "__row"], kind="stable")  # fmt: skip
    rows, values = _scan(table, entity_type, definitions, int(ts_ms.max()), snapshot_id)
    reach = _reach(table, entity_type, definitions, snapshot_id)
    order = np.argsort(frame["__row"].to_numpy())  # from ts-sorted positions back to input order
    columns = {
        d.name: _join_feature(frame, rows, values, d, reach.get((d.name, d.version))).take(pa.array(order))
        for d in definitions
    }
    return _with_columns(labels, definitions, columns)


def _with_columns(labels: pa.Table, definitions: list[FeatureDefinition], columns: dict[str, pa.Array]) -> pa.Table:
    out = labels
    for d in definitions:
        out = out.append_column(d.name, columns.get(d.name, pa.array([], type=_ARROW_TYPES[d.value_type])))
    return out


def main(argv: list[str] | None = None) -> int:
    from registry.definition_store import DefinitionStore
    from registry.settings import Settings
    from sinks.factory import connect_iceberg
    from sinks.offline_layout import TABLE

    parser = argparse.ArgumentParser(prog="python -m serving.historical", description=__doc__)
    parser.add_argument("--labels", required=True, help="Parquet: entity column, event_timestamp, anything else")
    parser.add_argument("--out", required=True)
    parser.add_argument("--entity-type", required=True)
    parser.add_argument("--entity-column", required=True)
    parser.add_argument("--features", required=True, help="comma-separated names")
    parser.add_argument("--snapshot-id", type=int)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    table = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}")
    result = get_historical_features(
        table, DefinitionStore(settings.definitions_db).catalog(), pq.read_table(args.labels),
        args.features.split(","), entity_type=args.entity_type, entity_column=args.entity_column,
        snapshot_id=args.snapshot_id,
    )  # fmt: skip
    pq.write_table(result, args.out)
    print(f"wrote {result.num_rows} rows to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
