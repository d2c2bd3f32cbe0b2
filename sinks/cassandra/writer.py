"""Online writer: window results into Cassandra, newest-wins by feature time, TTL from the definition."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from registry.core.definitions import FeatureDefinition
from registry.core.durations import to_millis
from registry.core.errors import StoreUnavailableError
from registry.core.timeline import step_ms, tie_key
from sinks.cassandra import layout as online_layout
from sinks.records import FeatureRow

if TYPE_CHECKING:
    from cassandra.cluster import Session


BATCH_ROWS = 16


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def write_timestamp_us(definition: FeatureDefinition, row: FeatureRow) -> int:
    """Cassandra's write time for a value: newest window wins, then the latest revision of a window.

    The window end in microseconds plus the revision (its event count), capped below the next
    window's end, so a late update beats the value it corrects and never an older window's value
    beats a newer one, whatever order writes arrive in. A replay writes the same timestamp: idempotent.
    """
    step = step_ms(definition)
    cap = step * 1000 - 1 if step is not None else 999
    return row.window_end_ms * 1000 + min(row.revision, cap)


def ensure_schema(session: Session, keyspace: str) -> None:
    """Create the keyspace and tables if missing (idempotent)."""
    session.execute(online_layout.keyspace_ddl(keyspace), timeout=30)
    for ddl in online_layout.table_ddl(keyspace):
        session.execute(ddl, timeout=30)


class OnlineWriter:
    """Buffers rows and writes them with bounded concurrency at ``flush``, one request per entity.

    A value whose TTL has already run out at write time is not written (it would be expired on
    read anyway); ``skipped_expired`` counts them. After the values, the writer records per stream
    the latest window end it has written (``stream_progress``, one row per writer); readers take the
    minimum over a stream's writers to tell an empty window from a value that is still current.
    """

    def __init__(
        self,
        session: Session,
        keyspace: str,
        *,
        writer_id: str = "0",
        concurrency: int = 64,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._session = session
        self._concurrency = concurrency
        self._clock_ms = clock_ms
        self._insert = {t: session.prepare(online_layout.insert_cql(keyspace, t)) for t in online_layout.VALUE_COLUMNS}
        self._progress = session.prepare(online_layout.progress_cql(keyspace))
        self._writer_id = writer_id
        self._buffer: list[FeatureRow] = []
        self.written = 0
        self.requests = 0  # Cassandra requests the values took (one per entity, or per BATCH_ROWS of its values)
        self.skipped_expired = 0

    def add(self, row: FeatureRow) -> None:
        self._buffer.append(row)

    def flush(self) -> None:
        from cassandra.concurrent import execute_concurrent
        from cassandra.query import BatchStatement, BatchType

        if not self._buffer:
            return
        now_ms = self._clock_ms()
        progress: dict[str, int] = {}
        # Only the newest value of each (entity, feature, version) can survive in Cassandra (write time
        # decides), so write just that one: a replay or backfill flush shrinks to one write per key.
        # Of two rows with one write time, the one Cassandra itself would keep (``tie_key``), not the first.
        newest: dict[tuple[str, str, str, int], tuple[int, FeatureRow]] = {}
        for row in self._buffer:
            definition = row.defined_by
            progress[row.stream] = max(progress.get(row.stream, 0), row.window_end_ms)
            key = (row.entity_type, row.entity_id, row.feature_name, row.feature_version)
            ts = write_timestamp_us(definition, row)
            held = newest.get(key)
            if (
                held is None
                or held[0] < ts
                or (
                    held[0] == ts
                    and tie_key(row.value, definition.value_type) > tie_key(held[1].value, definition.value_type)
                )
            ):
                newest[key] = (ts, row)
        # One request per entity (Cassandra partition) rather than per value: its values go as one
        # UNLOGGED batch (a single-partition batch is one mutation, no batch log), at most
        # ``BATCH_ROWS`` values each so that no batch nears Cassandra's size warning (5 KiB).
        by_partition: dict[tuple[str, str], list[tuple[Any, tuple[Any, ...]]]] = defaultdict(list)
        for ts, row in newest.values():
            definition = row.defined_by
            ttl_s = math.ceil((row.window_end_ms + to_millis(definition.ttl) - now_ms) / 1000)
            if ttl_s <= 0:
                self.skipped_expired += 1
                continue
            by_partition[(row.entity_type, row.entity_id)].append(
                (
                    self._insert[definition.value_type],
                    (
                        row.entity_type,
                        row.entity_id,
                        row.feature_name,
                        row.feature_version,
                        row.value,
                        _ts(row.window_end_ms),
                        _ts(row.window_start_ms),
                        _ts(now_ms),
                        ts,
                        ttl_s,
                    ),
                )
            )
        requests: list[tuple[Any, Any]] = []
        values = 0
        for items in by_partition.values():
            values += len(items)
            for start in range(0, len(items), BATCH_ROWS):
                chunk = items[start : start + BATCH_ROWS]
                if len(chunk) == 1:
                    requests.append(chunk[0])
                    continue
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                for statement, params in chunk:
                    batch.add(statement, params)
                requests.append((batch, None))
        try:
            execute_concurrent(self._session, requests, concurrency=self._concurrency, raise_on_first_error=True)
            self.written += values
            self.requests += len(requests)
            for stream, end_ms in progress.items():
                self._session.execute(
                    self._progress, (stream, self._writer_id, _ts(end_ms), _ts(now_ms), end_ms * 1000), timeout=10
                )
        except Exception as exc:
            raise StoreUnavailableError(f"Cassandra write failed: {exc}") from exc
        self._buffer.clear()
