"""The C++ driver's reader (``sinks.cassandra.native_reader``, the feature API's default) answers exactly
as the Python driver's (``sinks.cassandra.reader``) on the real Cassandra: every value type, no value,
an entity without cells, a batch, stream progress. Its failures under a hung, dead and restarted store
are tested through both readers in ``test_serving_online.py`` and through the API process in
``test_faults.py``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.settings import Settings
from sinks.cassandra.native_reader import NativeOnlineReader
from sinks.cassandra.reader import OnlineReader
from sinks.cassandra.writer import OnlineWriter
from sinks.factory import connect_cassandra
from sinks.records import FeatureRow
from tests.conftest import isolated, string_feature

pytestmark = pytest.mark.integration

MIN = 60_000


@pytest.fixture(scope="module")
def stored(it_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Any]]:
    settings = isolated(it_settings, "native", tmp_path_factory.mktemp("native"))
    shipped = FeatureCatalog.from_folder()
    count, total = shipped.get("user", "txn_count_1h"), shipped.get("user", "txn_amount_sum_1h")
    last = string_feature("native_last_merchant")
    flag = last.model_copy(update={"name": "native_flag", "value_type": "boolean"})
    end = time.time_ns() // 1_000_000 // (5 * MIN) * 5 * MIN
    cluster, session = connect_cassandra(settings)
    from cassandra.query import tuple_factory

    session.row_factory = tuple_factory
    writer = OnlineWriter(session, settings.cassandra_keyspace)
    for e in range(40):
        eid = f"n{e:03d}|\u00e9"
        writer.add(FeatureRow.of(count, eid, -e if e % 7 else None, end - 60 * MIN, end, e))
        writer.add(FeatureRow.of(total, eid, e * 0.25 - 3 if e % 5 else None, end - 60 * MIN, end))
        writer.add(FeatureRow.of(last, eid, f"m{e}\u00fc" if e % 3 else "", end - 65 * MIN, end - 5 * MIN))
        writer.add(FeatureRow.of(flag, eid, e % 2 == 0 if e % 4 else None, end - 60 * MIN, end))
    writer.flush()
    try:
        yield settings, session
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
        cluster.shutdown()


@pytest.mark.parametrize(("partitions", "speculative_delay_ms"), [(1, 0), (7, 0), (25, 0), (1, 1), (25, 1)])
def test_the_native_reader_answers_as_the_python_one(
    stored: tuple[Settings, Any], partitions: int, speculative_delay_ms: int
) -> None:
    """Batches read one entity per query (1) and several per ``IN`` (7: six full groups; 25: a group padded),
    with an entity that has no row between others and an entity asked twice; and the same with the
    speculative execution policy on (idempotent statements; one node here, so no second attempt is sent:
    what this shows is that the policy and the statements' flag leave the answers unchanged)."""
    settings, session = stored
    known = [f"n{e:03d}|\u00e9" for e in range(40)]
    ids = [*known[:20], "nobody", *known[20:], known[3]]
    python = OnlineReader(session, settings.cassandra_keyspace, timeout_s=5.0, batch_timeout_s=10.0)
    native = NativeOnlineReader(
        settings.cassandra_hosts,
        settings.cassandra_port,
        settings.cassandra_keyspace,
        timeout_s=5.0,
        batch_timeout_s=10.0,
        partitions_per_read=partitions,
        speculative_delay_ms=speculative_delay_ms,
        speculative_executions=2,
    )

    async def both() -> tuple[Any, ...]:
        try:
            return (
                await python.read_many_async("user", ids),
                await native.read_many_async("user", ids),
                await native.read_each_async("user", ids),
                await python.progress_async(),
                await native.progress_async(),
                await native.read_each_async("user", []),
            )
        finally:
            await native.close()

    expected, many, each, progress, native_progress, none = asyncio.run(both())
    assert many == expected == each
    assert len(expected) == 42 and len(expected[0]) == 4 and expected[20] == {} and expected[-1] == expected[3]
    assert all(len(vector) == 4 for i, vector in enumerate(expected) if i != 20)
    assert expected[7][("txn_count_1h", 1)][0] is None and expected[4][("native_flag", 1)][0] is None
    assert {type(v) for vector in expected for v, _ in vector.values()} == {int, float, str, bool, type(None)}
    assert progress == native_progress and progress
    assert none == []


def test_a_budget_of_one_millisecond_still_opens_a_session(
    stored: tuple[Settings, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    """`FS_REQUEST_BUDGET_MS` may be 1: the budget bounds each read, not the session's own set-up (the keyspace
    and the prepared statements), which has the connect timeout."""
    settings, _ = stored
    native = NativeOnlineReader(
        settings.cassandra_hosts, settings.cassandra_port, settings.cassandra_keyspace, timeout_s=0.001
    )

    async def opened() -> bool:
        try:
            await native.connect()
            return native._session is not None
        finally:
            await native.close()

    assert asyncio.run(opened())
    assert "warning:" not in capfd.readouterr().err  # connect() reports a session it could not open so


def test_a_damaged_cell_is_skipped_by_both_readers_and_the_rest_is_served(stored: tuple[Settings, Any]) -> None:
    """§5.9: a cell a read cannot decode (here a pack cut short beside a good one, and a key this build never
    writes) is skipped and counted; its features read absent, the entity's other features and the batch's other
    entities are served, by one read and by a batch, through both drivers (no 500, no failed batch)."""
    from sinks.cassandra import layout
    from sinks.cassandra.reader import Undecodable

    settings, session = stored
    good, cut = layout.pack((("g", 1, "long"),)), layout.pack((("h", 1, "long"),))
    end = 1_900_000_000_000
    session.execute(
        f"UPDATE {settings.cassandra_keyspace}.{layout.TABLE} SET cells = cells + %s "
        "WHERE entity_type = %s AND entity_id = %s",
        (
            {
                good.key: good.encode(end * 1000, end, [7]),
                cut.key: cut.encode(end * 1000, end, [8])[:-3],
                "*z@1:q": b"",
            },
            "user",
            "damaged",
        ),
    )
    ids = ["damaged", "n001|\u00e9"]
    python = OnlineReader(session, settings.cassandra_keyspace, timeout_s=5.0, batch_timeout_s=10.0)
    native = NativeOnlineReader(
        settings.cassandra_hosts, settings.cassandra_port, settings.cassandra_keyspace, timeout_s=5.0
    )
    before = Undecodable.cells

    async def reads() -> list[Any]:
        try:
            return [
                await python.read_many_async("user", ids),
                await python.read_each_async("user", ids),
                await native.read_many_async("user", ids),
                await native.read_each_async("user", ids),
            ]
        finally:
            await native.close()

    answers = asyncio.run(reads())
    assert {"damaged": dict(python.read("user", "damaged"))} == {"damaged": {("g", 1): (7, end)}}
    for answer in answers:
        assert dict(answer[0]) == {("g", 1): (7, end)}
        assert len(answer[1]) == 4  # the other entity, whole
    assert Undecodable.cells - before == 2 * 5


def test_progress_outlives_its_writers_rows_and_only_moves_forward(stored: tuple[Settings, Any]) -> None:
    """A writer's progress row expires after a day without progress (so a writer rescaled away stops holding its
    stream back); the stream's last-known row does not: once no writer's row is left, both readers take it, so a
    quiet entity never goes back to an older window (its value read 0 at the newer one before). While any
    writer's row is left, the minimum over those rows decides, as before."""
    from datetime import UTC, datetime

    from sinks.cassandra import layout

    settings, session = stored
    keyspace = settings.cassandra_keyspace
    count = FeatureCatalog.from_folder().get("user", "txn_count_1h")
    last_known = f"SELECT writer FROM {keyspace}.{layout.PROGRESS_TABLE} WHERE stream = %s AND writer = '*'"
    assert list(session.execute(last_known, (count.stream,)))  # the fixture's flush wrote it beside its own row
    kept = f"SELECT TTL(closed_through) FROM {keyspace}.{layout.PROGRESS_TABLE} WHERE stream = %s AND writer = '*'"
    (ttl_s,) = session.execute(kept, (count.stream,)).one()
    assert 3 * 3600 < ttl_s <= layout.PROGRESS_TTL_S  # a day, not txn_count_1h's TTL (2 h) plus the grace (1 h)

    stream, end = "audit/progress/last-known", time.time_ns() // 1_000_000 // (5 * MIN) * 5 * MIN - 60 * MIN
    put = session.prepare(layout.progress_cql(keyspace))

    def record(writer: str, end_ms: int) -> None:
        at = (datetime.fromtimestamp(end_ms / 1000, UTC), datetime.now(UTC), end_ms * 1000)
        session.execute(
            put, (stream, writer, *at, stream, *at, layout.last_known_ttl_s(0, time.time_ns() // 1_000_000))
        )

    def progress() -> tuple[int | None, int | None]:
        python = OnlineReader(session, keyspace, timeout_s=5.0)
        native = NativeOnlineReader(settings.cassandra_hosts, settings.cassandra_port, keyspace, timeout_s=5.0)

        async def both() -> tuple[dict[str, int], dict[str, int]]:
            try:
                return await python.progress_async(), await native.progress_async()
            finally:
                await native.close()

        a, b = asyncio.run(both())
        return a.get(stream), b.get(stream)

    record("0", end)
    record("1", end + 5 * MIN)
    assert progress() == (end, end)  # the slower writer holds the stream back
    session.execute(
        f"DELETE FROM {keyspace}.{layout.PROGRESS_TABLE} WHERE stream = %s AND writer IN ('0', '1')", (stream,)
    )
    assert progress() == (end + 5 * MIN, end + 5 * MIN)  # the writers' rows gone (expired): the last known
    record("2", end - 5 * MIN)  # an older point written later: the last-known row keeps the newer one
    assert progress() == (end - 5 * MIN, end - 5 * MIN)  # a writer's row again: it decides
    session.execute(f"DELETE FROM {keyspace}.{layout.PROGRESS_TABLE} WHERE stream = %s AND writer = '2'", (stream,))
    assert progress() == (end + 5 * MIN, end + 5 * MIN)


def test_both_readers_read_every_progress_row_past_a_page(stored: tuple[Settings, Any]) -> None:
    """The progress table holds a row per writer and key, and a given own key per retired version forever (§3.8):
    the Python driver's async read got its first page only (5,000 rows), so the keys past it were lost and their
    versions judged by their streams' progress (audit: a `present` 0 where the native reader served 7, `stale`)."""
    from datetime import UTC, datetime

    from cassandra.concurrent import execute_concurrent_with_args

    from sinks.cassandra import layout

    settings, session = stored
    keyspace = settings.cassandra_keyspace
    end = time.time_ns() // 1_000_000 // MIN * MIN
    at = datetime.fromtimestamp(end / 1000, UTC)
    keys = [f"audit/paging/{i:05d}" for i in range(5_100)]
    put = session.prepare(layout.own_progress_cql(keyspace))
    execute_concurrent_with_args(session, put, [(key, "0", at, at, end * 1000, 600) for key in keys], concurrency=64)
    try:
        python = OnlineReader(session, keyspace, timeout_s=10.0)
        native = NativeOnlineReader(settings.cassandra_hosts, settings.cassandra_port, keyspace, timeout_s=10.0)

        async def both() -> tuple[dict[str, int], dict[str, int]]:
            try:
                return await python.progress_async(), await native.progress_async()
            finally:
                await native.close()

        read, native_read = asyncio.run(both())
        assert {key: read.get(key) for key in keys} == dict.fromkeys(keys, end)  # 4,998 of them before
        assert read == native_read
        assert {key: end for key in keys}.items() <= OnlineReader(session, keyspace, timeout_s=10.0).progress().items()
    finally:
        stmt = f"DELETE FROM {keyspace}.{layout.PROGRESS_TABLE} WHERE stream = ?"
        execute_concurrent_with_args(session, session.prepare(stmt), [(key,) for key in keys], concurrency=64)
