"""Flink SQL for window aggregations, generated from feature definitions.

Features that share a source, entity key and window are computed by one query (one window
operator, one pass over the events); each feature is a column named after the feature. Windows and
their state live in Flink's own operators: Python window state measured three orders of magnitude
slower on this hardware (see docs/design.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from registry.definitions import FeatureDefinition, Source, Window
from registry.durations import to_millis
from registry.errors import DefinitionError

_SQL_TYPES = {"long": "BIGINT", "double": "DOUBLE", "string": "STRING", "boolean": "BOOLEAN"}


@dataclass(frozen=True)
class WindowGroup:
    source: Source
    window: Window
    entity: str
    features: tuple[FeatureDefinition, ...]


def window_groups(definitions: Iterable[FeatureDefinition]) -> list[WindowGroup]:
    grouped: dict[tuple[Source, Window, str], list[FeatureDefinition]] = defaultdict(list)
    for d in definitions:
        grouped[(d.source, d.window, d.entity)].append(d)
    return [
        WindowGroup(source=s, window=w, entity=e, features=tuple(sorted(fs, key=lambda d: d.name)))
        for (s, w, e), fs in sorted(grouped.items(), key=lambda kv: (kv[0][0].topic, kv[0][2], str(kv[0][1])))
    ]


def interval(value: timedelta) -> str:
    """A Flink SQL interval literal for a duration."""
    ms = to_millis(value)
    for unit, unit_ms in (("DAY", 86_400_000), ("HOUR", 3_600_000), ("MINUTE", 60_000), ("SECOND", 1_000)):
        if ms % unit_ms == 0:
            n = ms // unit_ms
            return f"INTERVAL '{n}' {unit}({max(2, len(str(n)))})"
    return f"INTERVAL '{ms / 1000:.3f}' SECOND({max(2, len(str(ms // 1000)))}, 3)"


def _aggregate(d: FeatureDefinition) -> str:
    agg, target = d.aggregation.function, f"`{d.aggregation.field}`"
    sql_type = _SQL_TYPES[d.value_type]
    expr = {
        "count": "COUNT(*)",
        "sum": f"SUM(CAST({target} AS {sql_type}))",
        "mean": f"AVG(CAST({target} AS DOUBLE))",
        "min": f"MIN({target})",
        "max": f"MAX({target})",
        "last": f"LAST_VALUE({target})",
        "count_distinct": f"COUNT(DISTINCT {target})",
    }[agg]
    return f"CAST({expr} AS {sql_type}) AS `{d.name}`"


def window_tvf(group: WindowGroup, view: str, time_column: str) -> str:
    w = group.window
    if w.kind == "sliding":
        assert w.slide is not None and w.size is not None
        return f"HOP(TABLE {view}, DESCRIPTOR({time_column}), {interval(w.slide)}, {interval(w.size)})"
    if w.kind == "tumbling":
        assert w.size is not None
        return f"TUMBLE(TABLE {view}, DESCRIPTOR({time_column}), {interval(w.size)})"
    assert w.gap is not None
    key = f"`{group.source.entity_key}`"
    return f"SESSION(TABLE {view} PARTITION BY {key}, DESCRIPTOR({time_column}), {interval(w.gap)})"


def aggregate_sql(group: WindowGroup, view: str, time_column: str = "rowtime") -> str:
    """One row per (entity, window): entity_id, window_start, window_end, then one column per feature."""
    if group.window.allowed_lateness:
        names = ", ".join(d.name for d in group.features)
        raise DefinitionError(
            f"{names}: allowed_lateness is not supported by the stream job yet (late rows would be dropped); "
            "set it to 0 or wait for late-data support"
        )
    key = f"`{group.source.entity_key}`"
    aggregates = ",\n  ".join(_aggregate(d) for d in group.features)
    return (
        f"SELECT CAST({key} AS STRING) AS entity_id, window_start, window_end,\n  {aggregates}\n"
        f"FROM TABLE({window_tvf(group, view, time_column)})\n"
        f"GROUP BY {key}, window_start, window_end"
    )
