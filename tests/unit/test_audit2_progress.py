"""A stream's progress (docs/design.md §4, ``stream_progress``): the minimum over its writers' rows; the stream's
last-known row only once none of them is left, kept as long as the stream's longest feature TTL needs it."""

from __future__ import annotations

from sinks.cassandra.layout import (
    EXPIRED_GRACE_S,
    LAST_KNOWN_WRITER,
    PROGRESS_TTL_S,
    last_known_ttl_s,
    stream_progress,
)

DAY_MS = 86_400_000
NOW_MS = 1_796_534_455_000  # 2026-12-06


def test_writers_rows_decide_and_the_last_known_row_only_alone() -> None:
    rows = [("s", "0", 10), ("s", "1", 5), ("s", LAST_KNOWN_WRITER, 12), ("t", LAST_KNOWN_WRITER, 7), ("u", "0", 3)]
    assert stream_progress(rows) == {"s": 5, "t": 7, "u": 3}
    assert stream_progress([]) == {}


def test_the_last_known_row_is_kept_as_long_as_the_longest_ttl_needs_it() -> None:
    assert last_known_ttl_s(0, NOW_MS) == PROGRESS_TTL_S  # never shorter than a writer's row
    assert last_known_ttl_s(2 * 3_600_000, NOW_MS) == PROGRESS_TTL_S
    assert last_known_ttl_s(30 * DAY_MS, NOW_MS) == 30 * 86_400 + EXPIRED_GRACE_S
    assert last_known_ttl_s(30 * DAY_MS + 1, NOW_MS) == 30 * 86_400 + 1 + EXPIRED_GRACE_S  # whole seconds, up
    assert last_known_ttl_s(7300 * DAY_MS, 0) == 630_720_000  # Cassandra's longest TTL
    # From 2026-12-06 Cassandra refuses any expiry after 2038-01-19T03:14:06Z (less this clock's margin).
    assert last_known_ttl_s(7300 * DAY_MS, NOW_MS) == 2_147_483_646 - 3_600 - NOW_MS // 1000
