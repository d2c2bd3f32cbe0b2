"""Flink SQL for window aggregations, generated from feature definitions.

Features that share a source, entity key and window are computed by one query (one window
operator, one pass over the events); each feature is a column named after the feature. Windows and
their state live in Flink's own operators: Python window state measured three orders of magnitude
slower on this hardware (see docs/design.md).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from registry.core import entity_keys
from registry.core.definitions import SQL_DURATION_LIMIT, FeatureDefinition, Source, Window, check_streams
from registry.core.durations import to_millis
from registry.core.errors import DefinitionError, FeatureStoreError
from registry.core.value_types import SPECS, Value, ValueType, from_text
from schemas import field_type, load_schema
from udfs.decode import MAX_FUTURE_MS


def ident(name: str) -> str:
    """A Flink SQL identifier: in backticks, a backtick inside doubled. Definitions are validated
    against a strict grammar when registered (``registry.core.definitions``); this holds even if one was not."""
    return "`" + name.replace("`", "``") + "`"


def literal(text: str) -> str:
    """A Flink SQL string literal: in single quotes, a quote inside doubled."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class WindowGroup:
    source: Source
    window: Window
    entity: str
    features: tuple[FeatureDefinition, ...]


def window_groups(definitions: Iterable[FeatureDefinition]) -> list[WindowGroup]:
    """The job's window groups: one per stream (``FeatureDefinition.stream``), each with one source."""
    definitions = list(definitions)
    check_streams(definitions)
    grouped: dict[tuple[Source, Window, str], list[FeatureDefinition]] = defaultdict(list)
    for d in definitions:
        grouped[(d.source, d.window, d.entity)].append(d)
    return [
        WindowGroup(source=s, window=w, entity=e, features=tuple(sorted(fs, key=lambda d: d.name)))
        for (s, w, e), fs in sorted(grouped.items(), key=lambda kv: (kv[0][0].topic, kv[0][2], str(kv[0][1])))
    ]


def source_lateness(definitions: Iterable[FeatureDefinition]) -> dict[Source, timedelta]:
    """Allowed lateness per source. Lateness is decided once per event, at the source, so the
    features of one source must agree on it (run features with other lateness in another job)."""
    found: dict[Source, dict[timedelta, list[str]]] = defaultdict(lambda: defaultdict(list))
    for d in definitions:
        found[d.source][d.window.allowed_lateness].append(d.name)
    out = {}
    for source, by_lateness in found.items():
        if len(by_lateness) > 1:
            detail = "; ".join(f"{to_millis(k)} ms: {', '.join(v)}" for k, v in by_lateness.items())
            raise DefinitionError(f"features of topic {source.topic} disagree on allowed_lateness ({detail})")
        out[source] = next(iter(by_lateness))
    return out


_MAX_PRECISION = 3
"""Flink's planner takes a day-time interval's leading precision up to 3 digits only (``DAY_INTERVAL_TYPES
precision is not supported: 4``): ``'2000' SECOND(4)`` or ``'1441' MINUTE(4)`` failed the job at its start."""


def interval(value: timedelta) -> str:
    """A Flink SQL interval literal for a duration, exact to the millisecond: one unit when its count has at most
    3 digits, else days to seconds (``'1 00:00:00.001' DAY(3) TO SECOND(3)``), below 1,000 days."""
    ms = to_millis(value)
    for unit, unit_ms in (("DAY", 86_400_000), ("HOUR", 3_600_000), ("MINUTE", 60_000), ("SECOND", 1_000)):
        if ms % unit_ms == 0 and len(str(ms // unit_ms)) <= _MAX_PRECISION:
            n = ms // unit_ms
            return f"INTERVAL '{n}' {unit}({max(2, len(str(n)))})"
    seconds, millis = divmod(ms, 1_000)
    if ms >= 0 and len(str(seconds)) <= _MAX_PRECISION:
        return f"INTERVAL '{seconds}.{millis:03d}' SECOND({max(2, len(str(seconds)))}, 3)"
    days, rest = divmod(ms, 86_400_000)
    if not 0 <= ms < to_millis(SQL_DURATION_LIMIT):  # 10**_MAX_PRECISION days: what registration refuses too
        raise DefinitionError(f"a duration of {ms} ms is beyond what Flink SQL's intervals hold (1,000 days)")
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1_000)
    return f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}' DAY(3) TO SECOND(3)"


def source_ddl(table: str, source: Source, lateness: timedelta, *, bootstrap: str, group_id: str, bounded: bool) -> str:
    """A Kafka table of raw record values with event time = the Kafka timestamp.

    Watermarks are made in the source, per partition and on every record (``on-event``), so
    whether a record is late is decided by the records before it, not by processing-time timing.
    ``too_late`` is computed here, in the source's SQL, before the decoder: the decision depends
    only on the records before it, wherever the decoder runs.
    """
    startup = (
        "'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'"
        if bounded
        else ("'scan.startup.mode' = 'group-offsets', 'properties.auto.offset.reset' = 'earliest'")
    )
    future = timedelta(milliseconds=MAX_FUTURE_MS)
    return (
        f"CREATE TEMPORARY TABLE {ident(table)} (\n"
        "  payload BYTES,\n"
        "  kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',\n"
        # The partition, for the decode operator's progress per partition across a restore (DecodeOperator).
        "  kafka_partition INT METADATA FROM 'partition' VIRTUAL,\n"
        # A record further ahead than MAX_FUTURE_MS (dead-lettered by the decoder) must not move the
        # watermark: it would make every on-time record after it too late. The watermark only grows,
        # so such a record contributes the epoch, i.e. nothing.
        f"  WATERMARK FOR kafka_ts AS CASE WHEN kafka_ts > CURRENT_TIMESTAMP + {interval(future)}\n"
        f"    THEN TO_TIMESTAMP_LTZ(0, 3) ELSE kafka_ts END - {interval(source.max_out_of_orderness)}\n"
        ") WITH (\n"
        f"  'connector' = 'kafka', 'topic' = {literal(source.topic)}, 'properties.bootstrap.servers' = {literal(bootstrap)},\n"
        f"  'properties.group.id' = {literal(group_id)}, {startup}, 'format' = 'raw',\n"
        "  'scan.watermark.emit.strategy' = 'on-event',\n"
        f"  'scan.watermark.idle-timeout' = '{to_millis(source.idle_timeout)} ms'\n"
        ")"
    )


def source_select(table: str, lateness: timedelta) -> str:
    """Raw records with their time, whether they arrived too late, whether they are late at all, and their
    Kafka partition (``payload, kafka_ts, too_late, late, kafka_partition``).

    Late is Flink's own meaning: at or behind the watermark (a watermark ``w`` says no record with a
    timestamp ``<= w`` is still to come). Too late is at or behind ``watermark - allowed_lateness``;
    exactly there Flink's window operator already treats a window as gone (it drops a record once
    ``window end - 1 + lateness <= watermark``, and a record in a window's last millisecond has
    ``timestamp = end - 1``). So every record this lets through is accepted by every window holding
    it, and every record a window would drop is dead-lettered here, as long as the windows' watermark is no
    higher than this source subtask's. Not so at parallelism 2 or more after a source subtask was idle (all its
    partitions silent for ``idle_timeout``): Flink leaves it out of the windows' watermark until it catches up,
    so a record behind the other subtasks can pass here that its windows would drop; the lateness gate behind
    the decoder (``jobs.decoder.decode``) dead-letters it instead (design §5.3, §10.5).
    """
    wm = "CURRENT_WATERMARK(kafka_ts)"
    too_late = f"{wm} IS NOT NULL AND kafka_ts <= {wm} - {interval(lateness)}"
    late = f"{wm} IS NOT NULL AND kafka_ts <= {wm}"
    return f"SELECT payload, kafka_ts, {too_late} AS too_late, {late} AS late, kafka_partition FROM {ident(table)}"


def dedup_sql(view: str, source: Source, columns: list[str]) -> str:
    """Keep the first arrival of each event id per entity (a resend counts once), and every event without one (an
    optional id field); append-only, rowtime kept.

    Per entity (every field of the source's entity key, then the id): copies of one id under two entities reached
    this operator through two subtasks of the keyed steps before it, so which came first was a race and a replay of
    one topic could count the other copy (another value for the same feature version). An id reused by another
    entity is that entity's event; a resend of one entity's event arrives by one path, in its partition's order."""
    assert source.event_id_field is not None
    cols = ", ".join(ident(c) for c in columns)
    partition = ", ".join(ident(f) for f in (*source.key_fields, source.event_id_field))
    if not _nullable(source, source.event_id_field):
        return (
            f"SELECT {cols}, rowtime FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {partition} "
            f"ORDER BY proctime ASC) AS __rn FROM {ident(view)}) WHERE __rn = 1"
        )
    # An event without its (optional) id is no resend of another: one partition of nulls dropped all but the first.
    id_field = ident(source.event_id_field)
    return (
        f"SELECT {cols}, rowtime FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {partition} "
        f"ORDER BY proctime ASC) AS __rn FROM {ident(view)} WHERE {id_field} IS NOT NULL) WHERE __rn = 1\n"
        f"UNION ALL SELECT {cols}, rowtime FROM {ident(view)} WHERE {id_field} IS NULL"
    )


LAST_SEPARATOR = "|"
_LAST_PAD = 20
_DOUBLE_MAX = "1.7976931348623157E308"  # the largest finite double


def _aggregate(d: FeatureDefinition, alias: str | None = None) -> str:
    """``d``'s aggregate as a SELECT column named ``alias`` (default: the feature's name)."""
    alias = d.name if alias is None else alias
    target = ident(d.aggregation.field) if d.aggregation.field is not None else ""
    sql_type = SPECS[d.value_type].flink_sql
    agg = d.aggregation.function
    if agg == "last":
        # The value of the latest event by event time: the max of "<zero-padded event ms>|<value>".
        # An Avro float is written as a double: printed as itself ("0.1") it was read back as another double than the
        # float's own (0.10000000149011612, what min, max and sum give). Other fields as themselves: events of one
        # time are then ordered by the same text whatever the feature's type ("10000000" > "10", not "10.0" > "1.0E7").
        ts = ident(d.source.timestamp_field)
        value = (
            f"CAST({target} AS DOUBLE)"
            if sql_type == "DOUBLE" and _field_kind(d.source, d.aggregation.field) == "float"
            else target
        )
        return (
            f"MAX(CONCAT(LPAD(CAST({ts} AS STRING), {_LAST_PAD}, '0'), '{LAST_SEPARATOR}', CAST({value} AS STRING)))"
            f" AS {ident(alias)}"
        )
    expr = {
        "count": "COUNT(*)",
        "sum": f"SUM(CAST({target} AS {sql_type}))",
        "mean": f"AVG(CAST({target} AS DOUBLE))",
        "min": f"MIN({target})",
        "max": f"MAX({target})",
        "count_distinct": f"COUNT(DISTINCT {target})",
    }[agg]
    if agg == "count_distinct" and _field_kind(d.source, d.aggregation.field) in ("float", "double"):
        # -0.0 and 0.0 are one number (Flink's DISTINCT tells them apart by their bits)
        expr = f"COUNT(DISTINCT CASE WHEN {target} = 0 THEN CAST(0 AS DOUBLE) ELSE CAST({target} AS DOUBLE) END)"
    if sql_type == "DOUBLE" and agg in ("sum", "mean"):
        # Finite inputs can add up past the largest double: an infinity, which JSON cannot spell (serving would
        # send null where training reads inf). Such a value is null in both stores.
        expr = f"CASE WHEN ABS({expr}) <= {_DOUBLE_MAX} THEN {expr} END"
    return f"CAST({expr} AS {sql_type}) AS {ident(alias)}"


def decode_last(text: str | None, value_type: ValueType) -> Value | None:
    """The value part of a ``last`` aggregate, in its type."""
    if text is None:
        return None
    return from_text(text.split(LAST_SEPARATOR, 1)[1], value_type)


def _group_window(group: WindowGroup, time_column: str) -> tuple[str, str, str]:
    w = group.window
    if w.kind == "sliding":
        assert w.slide is not None and w.size is not None
        args = f"{time_column}, {interval(w.slide)}, {interval(w.size)}"
        return f"HOP({args})", f"HOP_START({args})", f"HOP_END({args})"
    if w.kind == "tumbling":
        assert w.size is not None
        args = f"{time_column}, {interval(w.size)}"
        return f"TUMBLE({args})", f"TUMBLE_START({args})", f"TUMBLE_END({args})"
    assert w.gap is not None
    args = f"{time_column}, {interval(w.gap)}"
    return f"SESSION({args})", f"SESSION_START({args})", f"SESSION_END({args})"


def _field_kind(source: Source, field: str | None) -> str | None:
    """The Avro type of ``field`` in the source's reader schema (an optional field's own), None if unknown."""
    try:
        fields = {f["name"]: f for f in load_schema(source.event_schema)["fields"]}
        return field_type(fields[field]) if field is not None and field in fields else None
    except (OSError, ValueError, KeyError, TypeError, FeatureStoreError):
        return None  # no usable reader schema: the job refuses the definition before it gets here


def _nullable(source: Source, field: str) -> bool:
    """Whether the source's reader schema lets ``field`` be null (a union with null): the decoder passes a null
    there (only required fields must be present)."""
    try:
        types = {f["name"]: f["type"] for f in load_schema(source.event_schema)["fields"]}
    except (OSError, ValueError, KeyError, TypeError):
        return False  # no usable reader schema: the job refuses the definition before it gets here
    kind = types.get(field)
    return isinstance(kind, list) and "null" in kind


_KEY_COLUMNS = frozenset({"entity_id", "window_start", "window_end", "revision"})  # aggregate_sql's first columns


def aggregate_sql(group: WindowGroup, view: str, time_column: str = "rowtime") -> str:
    """One row per (entity, window) and per update of it: entity_id, window_start, window_end,
    ``revision`` (events in the window: grows with every late update), then one column per feature.

    A composite key's ``entity_id`` is its fields encoded by ``registry.core.entity_keys``; an event
    with any of them null belongs to no entity of the type and is left out, as is an event whose single key
    field, optional in the reader schema, is null (it made a window of a null entity id).

    Legacy group windows, because they alone re-fire on late events (``table.exec.emit.late-fire.*``).
    """
    fields = group.source.key_fields
    may_be_null = [f for f in fields if len(fields) > 1 or _nullable(group.source, f)]
    window, start, end = _group_window(group, time_column)
    # A column per feature, read by position: named by the feature, by name and version where a backfill computes
    # two versions of one name in the group or the name is one of the columns before them (two columns of one name:
    # Flink's "Column ... is ambiguous", in a ranged run's filter on window_start and window_end).
    names = Counter(d.name for d in group.features)
    aggregates = ",\n  ".join(
        _aggregate(d, d.name if names[d.name] == 1 and d.name not in _KEY_COLUMNS else f"{d.name}@v{d.version}")
        for d in group.features
    )
    return (
        f"SELECT {entity_keys.encode_sql(fields, ident)} AS entity_id, {start} AS window_start, {end} AS window_end,\n"
        f"  COUNT(*) AS revision,\n  {aggregates}\n"
        f"FROM {ident(view)}\n"
        + (f"WHERE {' AND '.join(f'{ident(f)} IS NOT NULL' for f in may_be_null)}\n" if may_be_null else "")
        + f"GROUP BY {', '.join(ident(f) for f in fields)}, {window}"
    )
