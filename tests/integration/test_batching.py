"""Window results reach the writer in batches made in the JVM (``jobs.batching``, ``jobs/java/batch``).

A real Flink pipeline (the mini-cluster, no other service) feeds ``BatchWindowResults`` a changelog with
retractions; the batches it emits are held to a brute-force replay of that changelog: every new value, none
of the retractions, each in its bucket (the same ``crc32 % buckets`` as Python's ``zlib``), in arrival order,
never more than ``max_rows`` per batch, columns of the right type with nulls kept, bounds in epoch ms.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jobs.java_build import flink_dist, java_jar

pytestmark = pytest.mark.integration  # the live stack

BUCKETS = 3
MAX_ROWS = 4
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

# (entity_id, event ms, n, x, name, flag): ids with non-ASCII text, a null x (its sum stays null at first)
EVENTS: list[tuple[str, int, int, float | None, str, bool]] = [
    (entity, T0_MS + 1_000 * i + 7, i, None if i % 7 == 3 else i * 0.5, f"n{i:02d}", i % 3 == 0)
    for i, entity in enumerate(["zoë", "用户-1", "u0", "u1", "zoë", "u0", "u2", "u3", "用户-1", "u0", "u4", "zoë"] * 2)
]


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
def jar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The operator's jar, built and on the gateway's class path (each environment also ships it to its job)."""
    from pyflink.util.java_utils import add_jars_to_context_class_loader

    built = java_jar("batch", tmp_path_factory.mktemp("jars"), [flink_dist()])
    add_jars_to_context_class_loader([built.resolve().as_uri()])
    return built


def _environments(
    jar: Path, checkpoint_interval_ms: int | None = None, watermark_interval_ms: int | None = None
) -> tuple[Any, Any]:
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    config = Configuration()
    config.set_string("pipeline.jars", jar.resolve().as_uri())
    if checkpoint_interval_ms is not None:
        config.set_string("execution.checkpointing.interval", f"{checkpoint_interval_ms} ms")
    if watermark_interval_ms is not None:
        config.set_string("pipeline.auto-watermark-interval", f"{watermark_interval_ms} ms")
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(1)
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("table.local-time-zone", "UTC")
    return env, t_env


@pytest.fixture(scope="module")
def collected(jar: Path) -> list[tuple[int, list[tuple[Any, ...]]]]:
    from jobs.batching import batches

    _, t_env = _environments(jar)
    from pyflink.table import DataTypes

    schema = DataTypes.ROW(
        [
            DataTypes.FIELD(name, kind)
            for name, kind in (
                ("entity_id", DataTypes.STRING()),
                ("ms", DataTypes.BIGINT()),
                ("n", DataTypes.BIGINT()),
                ("x", DataTypes.DOUBLE()),
                ("name", DataTypes.STRING()),
                ("flag", DataTypes.BOOLEAN()),
            )
        ]
    )
    # From Python elements, in their order (a SQL VALUES of expressions is planned as a union of one-row
    # sources, whose order is not kept).
    events = t_env.from_elements(EVENTS, schema)
    events = t_env.sql_query(f"SELECT entity_id, TO_TIMESTAMP_LTZ(ms, 3) AS ts, n, x, name, flag FROM {events}")
    t_env.create_temporary_view("events", events)
    # A non-windowed aggregate: each event after an entity's first retracts its previous result (-U, +U).
    result = t_env.sql_query(
        "SELECT entity_id, CAST(MIN(ts) AS TIMESTAMP(3)) AS window_start, CAST(MAX(ts) AS TIMESTAMP(3)) AS window_end,"
        " COUNT(*) AS revision, SUM(n) AS n, SUM(x) AS x, MAX(name) AS name, MAX(CAST(flag AS INT)) = 1 AS flag"
        " FROM events GROUP BY entity_id"
    )
    # No watermark before the end and no timer within the run: batches are cut by MAX_ROWS alone.
    stream = batches(
        t_env.to_changelog_stream(result),
        ["long", "double", "string", "boolean"],
        BUCKETS,
        max_rows=MAX_ROWS,
        max_delay_ms=3_600_000,
    )
    out = []
    bucket_of = {key: b for b, key in enumerate(_bucket_keys(BUCKETS))}
    with stream.execute_and_collect() as results:
        for key, columns in results:
            if columns[0]:  # a marker (no results) before the final watermark: test_markers_*
                out.append((bucket_of[key], _rows(columns)))
    return out


def _rows(columns: Any) -> list[tuple[Any, ...]]:
    """A batch's results as rows (entity_id, start, end, revision, the features' values): ``reach`` left out."""
    entity_ids, starts, ends, revisions, _reach, *values = columns
    return list(zip(entity_ids, starts, ends, revisions, *values, strict=True))


def _bucket_keys(buckets: int) -> list[int]:
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    default = jvm.org.apache.flink.runtime.state.KeyGroupRangeAssignment.computeDefaultMaxParallelism(buckets)
    return list(jvm.featurestore.job.BatchWindowResults.bucketKeys(buckets, default))


@pytest.mark.parametrize("buckets", [1, 2, 3, 4, 8])
def test_each_buckets_key_falls_in_its_own_writer_subtask(collected: object, buckets: int) -> None:
    """Keyed by the bucket number, buckets 0 and 1 could both land on one subtask (key groups, not keys, are
    spread over subtasks) and leave the other writer idle: each bucket's key is chosen inside its subtask's range."""
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    assignment = jvm.org.apache.flink.runtime.state.KeyGroupRangeAssignment
    keys = _bucket_keys(buckets)
    for bucket, key in enumerate(keys):
        row = jvm.org.apache.flink.types.Row(1)
        row.setField(0, key)
        assert (
            assignment.assignKeyToParallelOperator(row, assignment.computeDefaultMaxParallelism(buckets), buckets)
            == bucket
        )


def test_the_writer_max_parallelism_is_the_configured_one_else_flinks_default(jar: Path) -> None:
    """The job sets it on the writer and passes it to the batching operator: both sides agree after a restore."""
    from pyflink.java_gateway import get_gateway

    from jobs.batching import writer_max_parallelism

    env, _ = _environments(jar)
    default = get_gateway().jvm.org.apache.flink.runtime.state.KeyGroupRangeAssignment.computeDefaultMaxParallelism(3)
    assert writer_max_parallelism(env, 3) == default == 128
    env.set_max_parallelism(4096)
    assert writer_max_parallelism(env, 3) == 4096


@pytest.mark.parametrize("max_parallelism", [7, 4096])
def test_bucket_keys_follow_an_explicit_max_parallelism(collected: object, max_parallelism: int) -> None:
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    assignment = jvm.org.apache.flink.runtime.state.KeyGroupRangeAssignment
    keys = list(jvm.featurestore.job.BatchWindowResults.bucketKeys(3, max_parallelism))
    for bucket, key in enumerate(keys):
        row = jvm.org.apache.flink.types.Row(1)
        row.setField(0, key)
        assert assignment.assignKeyToParallelOperator(row, max_parallelism, 3) == bucket


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


def _uncut_batches(
    t_env: Any, ddl: str, query: str, *, markers: bool = False, buckets: int = 1, max_delay_ms: int = 3_600_000
) -> list[Any]:
    """The batches (columns) of ``query`` over the table ``ddl`` makes: by default no timer within the run and no
    row limit, so only watermarks, checkpoint barriers and the input's end can cut a batch. ``markers``: the empty
    batches too, each as ``(bucket, columns)``."""
    from jobs.batching import batches

    t_env.execute_sql(ddl)
    changelog = t_env.to_changelog_stream(t_env.sql_query(query))
    stream = batches(changelog, ["long"], buckets, max_rows=1_000_000, max_delay_ms=max_delay_ms)
    bucket_of = {key: b for b, key in enumerate(_bucket_keys(buckets))}
    with stream.execute_and_collect() as results:
        if markers:
            return [(bucket_of[key], columns) for key, columns in results]
        return [columns for _, columns in results if columns[0]]


_TICKS = (
    "CREATE TEMPORARY TABLE {name} (n BIGINT, ts AS TO_TIMESTAMP_LTZ(n * 100, 3), WATERMARK FOR ts AS ts)"
    " WITH ('connector' = 'datagen', 'rows-per-second' = '40', 'fields.n.kind' = 'sequence',"
    " 'fields.n.start' = '0', 'fields.n.end' = '159')"
)


def test_markers_tell_a_bucket_without_results_of_each_new_reach(jar: Path) -> None:
    """Every entity in bucket 1 (``crc32('a') % 2``): bucket 0 gets only markers, one with each watermark that
    follows a new result, and every element of either bucket carries the latest window end of any result the
    operator has had (the reach the writer bounds its progress by, design §5.5); none before the first result."""
    from jobs.batching import NO_REACH

    assert zlib.crc32(b"a") % 2 == 1
    _, t_env = _environments(jar)
    elements = _uncut_batches(
        t_env,
        _TICKS.format(name="ticks_one_entity"),
        "SELECT 'a' AS entity_id, TUMBLE_START(ts, INTERVAL '1' SECOND) AS ws, TUMBLE_END(ts, INTERVAL '1' SECOND)"
        " AS we, COUNT(*) AS revision, SUM(n) AS total FROM ticks_one_entity GROUP BY TUMBLE(ts, INTERVAL '1' SECOND)",
        markers=True,
        buckets=2,
        max_delay_ms=50,  # also the least time between two markers to a bucket (watermarks come every 200 ms)
    )
    # A watermark's elements go out bucket by bucket, each with the reach of every result the operator has had, so
    # a marker may name a window end its own round's results carry to the other bucket just after it.
    reach = NO_REACH
    carried_all = [columns[4] for _, columns in elements]
    ends_all = {end for _, columns in elements for end in columns[2]}
    for bucket, (entity_ids, _starts, ends, _revisions, carried, _total) in elements:
        reach = max([reach, *ends])
        assert carried >= reach
        assert carried == NO_REACH or carried in ends_all
        assert bucket == 1 or not entity_ids
    assert carried_all == sorted(carried_all)
    assert reach == carried_all[-1] == 16_000  # the last window, [15 s, 16 s)
    to_zero = [columns for bucket, columns in elements if bucket == 0]
    assert len(to_zero) >= 3, len(to_zero)  # several reaches, each told to bucket 0 once
    assert NO_REACH not in [columns[4] for columns in to_zero]  # no marker before the first result
    assert len({columns[4] for columns in to_zero}) == len(to_zero)  # one marker per new reach
    assert to_zero[-1][4] == 16_000  # the last watermark's marker carries the latest reach
    assert [columns[4] for columns in to_zero] == sorted(columns[4] for columns in to_zero)


def test_markers_to_a_bucket_are_at_most_one_per_max_delay(jar: Path) -> None:
    """A window closing with nearly every watermark (a watermark every millisecond or so, windows of 1 ms, as a
    replay closes them): a bucket without results gets a marker at most once per ``max_delay_ms`` (each held-back
    one with the timer), not one per new reach, and still one with the final watermark."""
    import time

    _, t_env = _environments(jar, watermark_interval_ms=1)
    started = time.monotonic()
    elements = _uncut_batches(
        t_env,
        "CREATE TEMPORARY TABLE fast_ticks (n BIGINT, ts AS TO_TIMESTAMP_LTZ(n, 3), WATERMARK FOR ts AS ts)"
        " WITH ('connector' = 'datagen', 'rows-per-second' = '2000', 'fields.n.kind' = 'sequence',"
        " 'fields.n.start' = '0', 'fields.n.end' = '3999')",
        "SELECT 'a' AS entity_id, TUMBLE_START(ts, INTERVAL '0.001' SECOND) AS ws, TUMBLE_END(ts, INTERVAL '0.001'"
        " SECOND) AS we, COUNT(*) AS revision, SUM(n) AS total FROM fast_ticks"
        " GROUP BY TUMBLE(ts, INTERVAL '0.001' SECOND)",
        markers=True,
        buckets=2,
        max_delay_ms=100,
    )
    run_s = time.monotonic() - started
    to_one = [columns for bucket, columns in elements if bucket == 1]
    assert len({end for columns in to_one for end in columns[2]}) == 4_000  # 4,000 windows: as many new reaches
    to_zero = [columns for bucket, columns in elements if bucket == 0]
    assert all(not columns[0] for columns in to_zero)
    assert 3 <= len(to_zero) <= run_s * 10 + 2, (len(to_zero), run_s)  # one per 100 ms of the whole run at most
    assert to_zero[-1][4] == 4_000  # the final watermark's marker, never held back, with the last window's end


def test_results_leave_with_the_watermark_that_released_them(jar: Path) -> None:
    """Windows closed by successive watermarks leave in successive batches, each window whole, in order (with no
    timer and no row limit within the run, only a watermark can cut a batch before the input ends)."""
    _, t_env = _environments(jar)
    # 160 events, 100 ms of event time apart, at 40 a second: 4 s of wall time, periodic watermarks every 200 ms.
    batched = _uncut_batches(
        t_env,
        _TICKS.format(name="ticks"),
        "SELECT CONCAT('e', CAST(MOD(n, 3) AS STRING)) AS entity_id, TUMBLE_START(ts, INTERVAL '1' SECOND) AS ws,"
        " TUMBLE_END(ts, INTERVAL '1' SECOND) AS we, COUNT(*) AS revision, SUM(n) AS total FROM ticks"
        " GROUP BY MOD(n, 3), TUMBLE(ts, INTERVAL '1' SECOND)",
    )
    ends = [sorted(set(columns[2])) for columns in batched]
    # Each window once, in order, and whole in one batch.
    assert [end for batch in ends for end in batch] == [1_000 * (i + 1) for i in range(16)]
    assert len(ends) >= 3, ends  # several watermarks released windows: not one batch at the end


def test_results_leave_before_each_checkpoint_barrier(jar: Path) -> None:
    """With no watermark before the end, no timer within the run and no row limit, only checkpoint barriers can
    cut a batch before the input ends: what waits leaves before each barrier, so no checkpoint holds a result
    in this operator (which has no state to keep it in)."""
    _, t_env = _environments(jar, checkpoint_interval_ms=200)
    # 240 events at 40 a second: 6 s of wall time, a checkpoint every 200 ms; no watermark (no event time).
    batched = _uncut_batches(
        t_env,
        "CREATE TEMPORARY TABLE counted (n BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '40',"
        " 'fields.n.kind' = 'sequence', 'fields.n.start' = '0', 'fields.n.end' = '239')",
        "SELECT CONCAT('e', CAST(MOD(n, 3) AS STRING)) AS entity_id, CAST(MIN(TO_TIMESTAMP_LTZ(n, 3)) AS"
        " TIMESTAMP(3)) AS ws, CAST(MAX(TO_TIMESTAMP_LTZ(n, 3)) AS TIMESTAMP(3)) AS we, COUNT(*) AS revision,"
        " SUM(n) AS total FROM counted GROUP BY MOD(n, 3)",
    )
    sizes = [len(columns[0]) for columns in batched]
    assert sum(sizes) == 240  # every new value once (the retractions dropped)
    assert len(sizes) >= 3, sizes  # several barriers cut the batches: not one batch at the end


def test_a_bad_column_type_is_refused_when_the_job_is_built(jar: Path) -> None:
    from pyflink.java_gateway import get_gateway

    with pytest.raises(Exception, match="long, double, string or boolean, not decimal"):
        get_gateway().jvm.featurestore.job.BatchWindowResults(2, "long,decimal", 10, 100)
