"""The job's generated SQL against the docs' boundaries (design §5.1-§5.3), evaluated by Flink itself.

A batch table environment (no Kafka, as ``test_sql.py``) evaluates each generated expression, with the source's
``CURRENT_WATERMARK`` and ``CURRENT_TIMESTAMP`` replaced by columns, and each window query, and a brute-force
model written from the docs says what every row must come out as:

- late is ``ts <= watermark``, too late ``ts <= watermark - allowed_lateness`` (exactly there is too late);
- a record more than 1 h ahead of the wall clock does not move the watermark, exactly 1 h ahead does;
- windows are ``[start, end)``, aligned to epoch multiples of their step; an event at ``end`` is the next one's.

Few Flink jobs (one per check, CPU-heavy on a small machine), each over every case at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.sql import aggregate_sql, interval, source_ddl, source_select, window_groups
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DefinitionError
from udfs.decode import MAX_FUTURE_MS

MakeDef = Callable[..., FeatureDefinition]

# Durations a definition may hold (whole ms, any unit): some counts have 4+ digits in every unit.
DURATIONS_MS = [
    0,
    1,
    250,
    1_500,
    59_999,
    90_000,
    999_999,
    1_000_001,  # 1000.001 s
    2_000_000,  # 2000 s: '2000' SECOND(4) was refused by Flink's planner
    86_460_000,  # 1441 min
    86_400_001,
    3_600_000_000,  # 1000 h
    100 * 86_400_000,
    999 * 86_400_000 + 86_399_999,
]


@pytest.fixture(scope="module")
def t_env() -> Any:
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    env.get_config().set("parallelism.default", "1")
    env.get_config().set("table.local-time-zone", "UTC")  # as the job pins it
    return env


def rows(t_env: Any, sql: str) -> list[tuple[Any, ...]]:
    with t_env.sql_query(sql).execute().collect() as results:
        return [tuple(r) for r in results]


def ms_of(text: str) -> int:
    """Epoch ms of Flink's ``CAST(<timestamp> AS STRING)`` in the UTC session zone."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_every_interval_is_its_duration_to_the_millisecond(t_env: Any) -> None:
    base = 40_000_000_000_000
    columns = ", ".join(
        f"CAST(TO_TIMESTAMP_LTZ({base}, 3) - {interval(timedelta(milliseconds=ms))} AS STRING)" for ms in DURATIONS_MS
    )
    (got,) = rows(t_env, f"SELECT {columns}")
    assert [base - ms_of(text) for text in got] == DURATIONS_MS


def _too_late_cases(lateness_ms: int) -> Iterator[tuple[int, int]]:
    wm = 1_700_000_000_000
    for ts in (wm - lateness_ms - 1, wm - lateness_ms, wm - lateness_ms + 1, wm - 1, wm, wm + 1):
        yield ts, wm


def test_late_and_too_late_boundaries(t_env: Any) -> None:
    """design §5.3: late = ``ts <= watermark``; too late = ``ts <= watermark - allowed_lateness``, a record
    exactly at that boundary being too late."""
    selects = []
    expected = []
    for lateness_ms in (0, 1, 1_500, 60_000, 2_000_000, 86_400_001):
        cases = list(_too_late_cases(lateness_ms))
        sql = source_select("src", timedelta(milliseconds=lateness_ms))
        sql = sql.replace("CURRENT_WATERMARK(kafka_ts)", "wm").replace("FROM `src`", "FROM " + values_ts(cases))
        selects.append(f"SELECT {lateness_ms}, CAST(kafka_ts AS STRING), too_late, late FROM ({sql})")
        expected += [(lateness_ms, ts, ts <= wm - lateness_ms, ts <= wm) for ts, wm in cases]
    got = rows(t_env, "SELECT * FROM (" + " UNION ALL ".join(selects) + ")")
    got = [(lateness, ms_of(ts), too_late, late) for lateness, ts, too_late, late in got]
    assert sorted(got) == sorted(expected)


def values_ts(cases: list[tuple[int, int]]) -> str:
    body = ", ".join(f"(X'00', TO_TIMESTAMP_LTZ({ts}, 3), 0, TO_TIMESTAMP_LTZ({wm}, 3))" for ts, wm in cases)
    return f"(VALUES {body}) AS v(payload, kafka_ts, kafka_partition, wm)"


def test_a_record_more_than_an_hour_ahead_does_not_move_the_watermark(t_env: Any, make_definition: MakeDef) -> None:
    """design §5.3: "A record more than an hour ahead of the wall clock ... does not move the watermark"; the
    decoder accepts exactly 1 h ahead, so that one moves it. The watermark is then ts - max_out_of_orderness."""
    now = 1_700_000_000_000
    cases = []
    for order_ms in (0, 5_000, 2_000_000):
        source = make_definition(**{"source.max_out_of_orderness": f"{order_ms}ms"}).source
        ddl = source_ddl("t", source, timedelta(0), bootstrap="b:1", group_id="g", bounded=True)
        expression = re.search(r"WATERMARK FOR kafka_ts AS (.*)\n\) WITH", ddl, re.S)
        assert expression is not None
        sql = expression.group(1).replace("CURRENT_TIMESTAMP", "now_ts")
        for ahead in (0, MAX_FUTURE_MS - 1, MAX_FUTURE_MS, MAX_FUTURE_MS + 1, 10 * MAX_FUTURE_MS):
            cases.append((order_ms, now + ahead, sql))
    selects = [
        f"SELECT {order_ms}, {ts}, CAST({sql} AS STRING) FROM (VALUES (TO_TIMESTAMP_LTZ({ts}, 3), "
        f"TO_TIMESTAMP_LTZ({now}, 3))) AS v(kafka_ts, now_ts)"
        for order_ms, ts, sql in cases
    ]
    got = {(o, ts): ms_of(wm) for o, ts, wm in rows(t_env, " UNION ALL ".join(selects))}
    want = {(o, ts): (ts if ts <= now + MAX_FUTURE_MS else 0) - o for o, ts, _ in cases}
    assert got == want


def window_model(kind: str, size: int, slide: int, events: list[tuple[str, int]]) -> set[tuple[str, int, int, int]]:
    """design §5.1-§5.2: windows ``[start, end)`` aligned to epoch multiples of the step; (entity, start, end,
    count) for every window holding an event. A session (design §5.3): each event opens ``[t, t + gap)`` and
    windows merge as Flink merges them, touching ones included: two events exactly ``gap`` apart are one session.
    """
    if kind == "session":
        sessions: list[tuple[str, int, int, int]] = []
        for entity in sorted({e for e, _ in events}):
            for ts in sorted(t for e, t in events if e == entity):
                if sessions and sessions[-1][0] == entity and ts <= sessions[-1][2]:
                    _, start, end, n = sessions[-1]
                    sessions[-1] = (entity, start, max(end, ts + size), n + 1)
                else:
                    sessions.append((entity, ts, ts + size, 1))
        return set(sessions)
    step = slide if kind == "sliding" else size
    counts: dict[tuple[str, int, int], int] = {}
    for entity, ts in events:
        start = ts - ts % step
        while start > ts - size:
            counts[(entity, start, start + size)] = counts.get((entity, start, start + size), 0) + 1
            start -= step
    return {(e, s, end, n) for (e, s, end), n in counts.items()}


WINDOWS = [
    ({"kind": "sliding", "size": "1h", "slide": "5m"}, 3_600_000, 300_000),
    ({"kind": "tumbling", "size": "2000s"}, 2_000_000, 2_000_000),
    ({"kind": "sliding", "size": "3000ms", "slide": "1500ms"}, 3_000, 1_500),
    ({"kind": "session", "gap": "5m"}, 300_000, 300_000),  # the gap as size and slide
]


def test_window_membership_at_exact_boundaries(make_definition: MakeDef, tmp_path: Path) -> None:
    """Events at a window's start, its last millisecond and its end, per entity, through the generated window
    queries in a streaming environment (the job's: Flink's batch mode loses events of sliding windows, e.g. the
    second of two events 2 h apart in a 1 h/5 min HOP), from a bounded file in time order (none late) whose end closes every window."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    env.get_config().set("parallelism.default", "1")
    env.get_config().set("table.local-time-zone", "UTC")
    selects, want = [], set()
    for n, (window, size_ms, slide_ms) in enumerate(WINDOWS):
        definition = make_definition(name="n", window=window, aggregation={"function": "count"})
        (group,) = window_groups([definition])
        key = group.source.key_fields[0]
        base = 1_700_000_000_000 - 1_700_000_000_000 % size_ms  # a window start: an epoch multiple of the size
        offsets = (-1, 0, 1, slide_ms - 1, slide_ms, slide_ms + 1, size_ms - 1, size_ms, 2 * size_ms - 1, 5 * size_ms)
        events = sorted(((f"u{i % 3}", base + offset) for i, offset in enumerate(offsets)), key=lambda e: e[1])
        (tmp_path / f"{n}.csv").write_text("".join(f"{e},{ts}\n" for e, ts in events))
        env.execute_sql(
            f"CREATE TEMPORARY TABLE ev{n} (`{key}` STRING, t BIGINT, rowtime AS TO_TIMESTAMP_LTZ(t, 3), "
            f"WATERMARK FOR rowtime AS rowtime - {interval(timedelta(milliseconds=1))}) "  # none late, as a batch run
            f"WITH ('connector' = 'filesystem', 'path' = '{tmp_path / f'{n}.csv'}', 'format' = 'csv')"
        )
        query = aggregate_sql(group, f"ev{n}")
        selects.append(
            f"SELECT {n}, entity_id, CAST(window_start AS STRING), CAST(window_end AS STRING), revision FROM ({query})"
        )
        want |= {(n, *row) for row in window_model(window["kind"], size_ms, slide_ms, events)}
    got = rows(env, " UNION ALL ".join(selects))
    assert {(n, e, ms_of(s), ms_of(end), c) for n, e, s, end, c in got} == want


def test_an_event_without_its_optional_single_key_is_in_no_window(
    make_definition: MakeDef, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """design §5.8: "an event with any key field null belongs to no entity of the type and is left out of its
    windows". A single key field the reader schema makes optional passes the decoder as null (only required
    fields must be there); it made a window of a null entity id, which the writer got as the id ``None``."""
    import jobs.sql
    from schemas import load_schema

    schema = load_schema("card_transaction")
    schema["fields"] = [{**f, "type": ["null", "string"]} if f["name"] == "user_id" else f for f in schema["fields"]]
    monkeypatch.setattr(jobs.sql, "load_schema", lambda name: schema)
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    env.get_config().set("parallelism.default", "1")
    env.get_config().set("table.local-time-zone", "UTC")
    (group,) = window_groups([make_definition(name="n", window=WINDOWS[1][0], aggregation={"function": "count"})])
    (tmp_path / "e.csv").write_text("u1,1700000000000\nNULL,1700000000001\nu1,1700000000002\nNULL,1700000000003\n")
    env.execute_sql(
        "CREATE TEMPORARY TABLE ev (user_id STRING, t BIGINT, rowtime AS TO_TIMESTAMP_LTZ(t, 3), "
        "WATERMARK FOR rowtime AS rowtime) WITH ('connector' = 'filesystem', "
        f"'path' = '{tmp_path / 'e.csv'}', 'format' = 'csv', 'csv.null-literal' = 'NULL')"
    )
    got = rows(env, f"SELECT entity_id, revision FROM ({aggregate_sql(group, 'ev')})")
    assert got == [("u1", 2)]


def test_two_versions_of_one_name_in_a_window_group_are_two_columns(make_definition: MakeDef, tmp_path: Path) -> None:
    """``jobs.backfill user.n@2 user.n@3`` (two candidate versions of one name, on one window: one group) made two
    columns of one name, which Flink refuses ("Column 'n' is ambiguous", a Java trace as the backfill's error)."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    env.get_config().set("parallelism.default", "1")
    env.get_config().set("table.local-time-zone", "UTC")
    window = WINDOWS[1][0]
    versions = [
        make_definition(name="n", version=v, ttl=ttl, window=window, aggregation={"function": "count"})
        for v, ttl in ((2, "1h"), (3, "2h"))
    ]
    other = make_definition(name="m", window=window, aggregation={"function": "count"})
    (group,) = window_groups([*versions, other])
    assert [(d.name, d.version) for d in group.features] == [("m", 1), ("n", 2), ("n", 3)]
    (tmp_path / "e.csv").write_text("u1,1700000000000\nu1,1700000000001\nu2,1700000000002\n")
    env.execute_sql(
        "CREATE TEMPORARY TABLE ev (user_id STRING, t BIGINT, rowtime AS TO_TIMESTAMP_LTZ(t, 3), "
        f"WATERMARK FOR rowtime AS rowtime) WITH ('connector' = 'filesystem', 'path' = '{tmp_path / 'e.csv'}', "
        "'format' = 'csv')"
    )
    query = aggregate_sql(group, "ev")
    got = rows(env, f"SELECT * FROM ({query})")
    assert sorted((row[0], *row[4:]) for row in got) == [("u1", 2, 2, 2), ("u2", 1, 1, 1)]


_UNIT_MS = {"DAY": 86_400_000, "HOUR": 3_600_000, "MINUTE": 60_000, "SECOND": 1_000}


def _literal_ms(literal: str) -> int:
    """What a Flink interval literal of ``interval``'s forms is worth, and that its leading precision is one
    Flink's planner takes (at most 3 digits: ``DAY_INTERVAL_TYPES precision is not supported: 4``)."""
    one = re.fullmatch(r"INTERVAL '(\d+)(?:\.(\d{3}))?' (DAY|HOUR|MINUTE|SECOND)\((\d)(?:, 3)?\)", literal)
    if one:
        whole, millis, unit, precision = one.groups()
        assert len(whole) <= int(precision) <= 3
        return int(whole) * _UNIT_MS[unit] + int(millis or 0)
    span = re.fullmatch(r"INTERVAL '(\d+) (\d\d):(\d\d):(\d\d)\.(\d{3})' DAY\(3\) TO SECOND\(3\)", literal)
    assert span, literal
    d, h, m, s, ms = (int(g) for g in span.groups())
    assert len(str(d)) <= 3 and h < 24 and m < 60 and s < 60
    return d * 86_400_000 + h * 3_600_000 + m * 60_000 + s * 1_000 + ms


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.integers(0, 1000 * 86_400_000 - 1), st.sampled_from(DURATIONS_MS)))
def test_interval_literals_are_exact_and_of_a_precision_flink_takes(ms: int) -> None:
    assert _literal_ms(interval(timedelta(milliseconds=ms))) == ms


def test_an_interval_flink_cannot_hold_is_refused_by_name() -> None:
    with pytest.raises(DefinitionError, match="1,000 days"):
        interval(timedelta(days=1000))


def _dedup_setting(make_definition: MakeDef, monkeypatch: pytest.MonkeyPatch, *, optional_id: bool) -> tuple[Any, Any]:
    """A streaming table environment at parallelism 1 in UTC, and a count keyed by ``user_id`` whose source has
    ``transaction_id`` as its event id (optional in the reader schema when ``optional_id``)."""
    import jobs.sql
    from schemas import load_schema

    if optional_id:
        schema = load_schema("card_transaction")
        schema["fields"] = [
            {**f, "type": ["null", "string"]} if f["name"] == "transaction_id" else f for f in schema["fields"]
        ]
        monkeypatch.setattr(jobs.sql, "load_schema", lambda name: schema)
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    env.get_config().set("parallelism.default", "1")
    env.get_config().set("table.local-time-zone", "UTC")
    definition = make_definition(
        name="n", window=WINDOWS[1][0], aggregation={"function": "count"}, **{"source.event_id_field": "transaction_id"}
    )
    return env, definition


def test_events_without_an_optional_event_id_are_not_resends_of_each_other(
    make_definition: MakeDef, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """design §5.3: "the first arrival of each id counts and resends are ignored"; nothing is dropped silently.
    An event id field the reader schema makes optional passes the decoder as null, and ``ROW_NUMBER() OVER
    (PARTITION BY id)`` put every null-id event in one partition: all but the first were dropped, silently."""
    import jobs.sql

    env, definition = _dedup_setting(make_definition, monkeypatch, optional_id=True)
    source = definition.source
    t0 = 1_700_000_000_000
    events = [("t1", t0), ("t1", t0 + 1), ("NULL", t0 + 2), ("NULL", t0 + 3), ("t2", t0 + 4)]
    (tmp_path / "e.csv").write_text("".join(f"{i},u1,{t}\n" for i, t in events))
    env.execute_sql(
        "CREATE TEMPORARY TABLE ev (transaction_id STRING, user_id STRING, t BIGINT, "
        "rowtime AS TO_TIMESTAMP_LTZ(t, 3), proctime AS PROCTIME(), WATERMARK FOR rowtime AS rowtime) "
        f"WITH ('connector' = 'filesystem', 'path' = '{tmp_path / 'e.csv'}', 'format' = 'csv', "
        "'csv.null-literal' = 'NULL')"
    )
    query = jobs.sql.dedup_sql("ev", source, ["transaction_id", "user_id", "t"])
    got = sorted(rows(env, f"SELECT transaction_id, t FROM ({query})"), key=lambda r: r[1])
    assert got == [("t1", t0), (None, t0 + 2), (None, t0 + 3), ("t2", t0 + 4)]
    # The windows read it as the job does (its rowtime still a time attribute): 4 events in the window.
    env.create_temporary_view("dd", env.sql_query(query))
    (group,) = window_groups([definition])
    assert rows(env, f"SELECT entity_id, revision FROM ({aggregate_sql(group, 'dd')})") == [("u1", 4)]


@pytest.mark.parametrize("optional_id", [False, True], ids=["required id", "optional id"])
def test_an_event_id_is_deduplicated_per_entity(
    make_definition: MakeDef, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, optional_id: bool
) -> None:
    """design §5.3: the first arrival of an id per entity counts. ``PARTITION BY id`` alone dropped one of two
    entities' copies of an id, whichever reached the operator second: at parallelism 2 they came through two
    subtasks, so a replay of the same topic could count the other one (a training/serving value that changed)."""
    import jobs.sql

    env, definition = _dedup_setting(make_definition, monkeypatch, optional_id=optional_id)
    t0 = 1_700_000_000_000
    events = [("t", "u1", t0), ("t", "u2", t0 + 1), ("t", "u1", t0 + 2), ("s", "u1", t0 + 3), ("t", "u2", t0 + 4)]
    (tmp_path / "e.csv").write_text("".join(f"{i},{u},{t}\n" for i, u, t in events))
    env.execute_sql(
        "CREATE TEMPORARY TABLE ev (transaction_id STRING, user_id STRING, t BIGINT, "
        "rowtime AS TO_TIMESTAMP_LTZ(t, 3), proctime AS PROCTIME(), WATERMARK FOR rowtime AS rowtime) "
        f"WITH ('connector' = 'filesystem', 'path' = '{tmp_path / 'e.csv'}', 'format' = 'csv')"
    )
    query = jobs.sql.dedup_sql("ev", definition.source, ["transaction_id", "user_id", "t"])
    got = sorted(rows(env, f"SELECT transaction_id, user_id, t FROM ({query})"), key=lambda r: r[2])
    assert got == [("t", "u1", t0), ("t", "u2", t0 + 1), ("s", "u1", t0 + 3)]


def test_the_sql_interval_limit_is_the_registration_limit() -> None:
    """Registration refuses durations of ``SQL_DURATION_LIMIT`` or more because the job's intervals cannot hold
    them: one limit, so an accepted definition never fails at the job's start."""
    from registry.core.definitions import SQL_DURATION_LIMIT

    assert interval(SQL_DURATION_LIMIT - timedelta(milliseconds=1)).endswith("DAY(3) TO SECOND(3)")
    with pytest.raises(DefinitionError, match="1,000 days"):
        interval(SQL_DURATION_LIMIT)
