"""Window results reach the writer in batches made in the JVM (``jobs.batching``, ``jobs/java/batch``).

A real Flink pipeline (the mini-cluster, no other service) feeds ``BatchWindowResults`` a changelog with
retractions; the batches it emits are held to a brute-force replay of that changelog: every new value, none
of the retractions, each in its bucket (the same ``crc32 % buckets`` as Python's ``zlib``), in arrival order,
never more than ``max_rows`` per batch, columns of the right type with nulls kept, bounds in epoch ms.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from typing import Any

import pytest

from jobs.java_build import flink_dist, java_jar

BUCKETS = 3
MAX_ROWS = 4
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

# (entity_id, event ms, n, x, name, flag): ids with non-ASCII text, a null x (its sum stays null at first)
EVENTS: list[tuple[str, int, int, float | None, str, bool]] = [
    (entity, T0_MS + 1_000 * i + 7, i, None if i % 7 == 3 else i * 0.5, f"n{i:02d}", i % 3 == 0)
    for i, entity in enumerate(["zoë", "用户-1", "u0", "u1", "zoë", "u0", "u2", "u3", "用户-1", "u0", "u4", "zoë"] * 2)
]


def _sql_value(value: Any) -> str:
    if value is None:
        return "CAST(NULL AS DOUBLE)"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def _expected() -> list[tuple[Any, ...]]:
    """The query's changelog without its retractions: one result per event, the running aggregates of its
    entity (window start = first event, end = last, revision = events so far)."""
    seen: dict[str, list[tuple[str, int, int, float | None, str, bool]]] = {}
    out = []
    for event in EVENTS:
        rows = seen.setdefault(event[0], [])
        rows.append(event)
        xs = [r[3] for r in rows if r[3] is not None]
        out.append(
            (
                event[0],
                min(r[1] for r in rows),
                max(r[1] for r in rows),
                len(rows),
                sum(r[2] for r in rows),
                sum(xs) if xs else None,
                max(r[4] for r in rows),
                any(r[5] for r in rows),
            )
        )
    return out


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[int, list[tuple[Any, ...]]]]:
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    from jobs.batching import batches

    jar = java_jar("batch", tmp_path_factory.mktemp("jars"), [flink_dist()])
    config = Configuration()
    config.set_string("pipeline.jars", jar.resolve().as_uri())
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(1)
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("table.local-time-zone", "UTC")
    rows = ", ".join(
        f"({_sql_value(e)}, TO_TIMESTAMP_LTZ({ms}, 3), CAST({n} AS BIGINT), {_sql_value(x)}, {_sql_value(name)},"
        f" {_sql_value(flag)})"
        for e, ms, n, x, name, flag in EVENTS
    )
    events = t_env.sql_query(f"SELECT * FROM (VALUES {rows}) AS t(entity_id, ts, n, x, name, flag)")
    t_env.create_temporary_view("events", events)
    # A non-windowed aggregate: each event after an entity's first retracts its previous result (-U, +U).
    result = t_env.sql_query(
        "SELECT entity_id, CAST(MIN(ts) AS TIMESTAMP(3)) AS window_start, CAST(MAX(ts) AS TIMESTAMP(3)) AS window_end,"
        " COUNT(*) AS revision, SUM(n) AS n, SUM(x) AS x, MAX(name) AS name, MAX(CAST(flag AS INT)) = 1 AS flag"
        " FROM events GROUP BY entity_id"
    )
    stream = batches(
        t_env.to_changelog_stream(result), ["long", "double", "string", "boolean"], BUCKETS, max_rows=MAX_ROWS
    )
    out = []
    with stream.execute_and_collect() as results:
        for bucket, columns in results:
            out.append((bucket, list(zip(*columns, strict=True))))
    return out


def test_each_new_value_once_in_its_bucket_in_order(collected: list[tuple[int, list[tuple[Any, ...]]]]) -> None:
    expected = _expected()
    assert len(expected) == len(EVENTS)
    for bucket in range(BUCKETS):
        got = [tuple(r) for b, rows in collected if b == bucket for r in rows]
        want = [r for r in expected if zlib.crc32(r[0].encode()) % BUCKETS == bucket]
        assert got == want, f"bucket {bucket}"
    assert {b for b, _ in collected} == set(range(BUCKETS))  # the ids above reach every bucket


def test_no_batch_holds_more_than_max_rows(collected: list[tuple[int, list[tuple[Any, ...]]]]) -> None:
    assert all(1 <= len(rows) <= MAX_ROWS for _, rows in collected)
    assert any(len(rows) == MAX_ROWS for _, rows in collected)


def test_columns_keep_their_types_and_nulls(collected: list[tuple[int, list[tuple[Any, ...]]]]) -> None:
    rows = [r for _, batch in collected for r in batch]
    assert all(type(r[i]) is int for r in rows for i in (1, 2, 3, 4))
    assert all(r[5] is None or type(r[5]) is float for r in rows)
    assert any(r[5] is None for r in rows)
    assert all(type(r[6]) is str and type(r[7]) is bool for r in rows)
    first = min(r[1] for r in rows)
    assert datetime.fromtimestamp(first / 1000, UTC) == datetime(2026, 1, 1, 0, 0, 0, 7000, UTC)


def test_a_bad_column_type_is_refused_when_the_job_is_built() -> None:
    from pyflink.java_gateway import get_gateway

    with pytest.raises(Exception, match="long, double, string or boolean, not decimal"):
        get_gateway().jvm.featurestore.job.BatchWindowResults(2, "long,decimal", 10, 100)
