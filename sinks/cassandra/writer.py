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


CELLS_PER_REQUEST = 64  # at ~50 bytes a cell, a request stays below Cassandra's batch size warning (5 KiB)


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def revision_cap(definition: FeatureDefinition) -> int:
    """The largest revision a write time can carry: 1 µs below the next window's end (999 for sessions)."""
    step = step_ms(definition)
    return step * 1000 - 1 if step is not None else 999


def write_timestamp_us(definition: FeatureDefinition, row: FeatureRow, cap: int | None = None) -> int:
    """Cassandra's write time for a value: newest window wins, then the latest revision of a window.

    The window end in microseconds plus the revision (its event count), capped below the next
    window's end (``revision_cap``; pass it when writing many values of one definition), so a late
    update beats the value it corrects and never an older window's value beats a newer one, whatever
    order writes arrive in. A replay writes the same timestamp: idempotent.
    """
    return row.window_end_ms * 1000 + min(row.revision, revision_cap(definition) if cap is None else cap)


def ensure_schema(session: Session, keyspace: str) -> None:
    """Create the keyspace and tables if missing (idempotent)."""
    session.execute(online_layout.keyspace_ddl(keyspace), timeout=30)
    for ddl in online_layout.table_ddl(keyspace):
        session.execute(ddl, timeout=30)


class OnlineWriter:
    """Buffers rows and writes them with bounded concurrency at ``flush``, one request per entity.

    An entity's cells that share a write time and a TTL (the features of one window, as a rule) go as one
    ``UPDATE ... SET cells = cells + ?``; several such updates of one entity as one UNLOGGED batch (a
    single-partition batch is one mutation, no batch log); at most ``CELLS_PER_REQUEST`` cells a request.

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
        self._update = session.prepare(online_layout.update_cells_cql(keyspace))
        self._progress = session.prepare(online_layout.progress_cql(keyspace))
        self._writer_id = writer_id
        self._buffer: list[FeatureRow] = []
        self.written = 0
        self.requests = 0  # Cassandra requests the values took (one per entity, or per CELLS_PER_REQUEST of its values)
        self.skipped_expired = 0

    def add(self, row: FeatureRow) -> None:
        self._buffer.append(row)

    def flush(self) -> None:
        from cassandra.concurrent import execute_concurrent

        if not self._buffer:
            return
        now_ms = self._clock_ms()
        progress: dict[str, int] = {}
        # Only the newest value of each (entity, feature, version) can survive in Cassandra (write time
        # decides), so write just that one: a replay or backfill flush shrinks to one write per key.
        # Of two rows with one write time, the one Cassandra itself would keep (``tie_key``), not the first.
        newest: dict[tuple[str, str, str, int], tuple[int, FeatureRow]] = {}
        # id(definition) -> (its revision cap, its TTL in ms): taken once per flush, not per value.
        limits: dict[int, tuple[int, int]] = {}
        for row in self._buffer:
            definition = row.defined_by
            progress[row.stream] = max(progress.get(row.stream, 0), row.window_end_ms)
            key = (row.entity_type, row.entity_id, row.feature_name, row.feature_version)
            if id(definition) not in limits:
                limits[id(definition)] = (revision_cap(definition), to_millis(definition.ttl))
            ts = write_timestamp_us(definition, row, limits[id(definition)][0])
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
        # One request per entity (Cassandra partition) rather than per value.
        by_partition: dict[tuple[str, str], dict[tuple[int, int], dict[str, bytes]]] = defaultdict(dict)
        for ts, row in newest.values():
            definition = row.defined_by
            ttl_s = math.ceil((row.window_end_ms + limits[id(definition)][1] - now_ms) / 1000)
            if ttl_s <= 0:
                self.skipped_expired += 1
                continue
            cells = by_partition[(row.entity_type, row.entity_id)].setdefault((ts, ttl_s), {})
            cell = online_layout.cell_key(row.feature_name, row.feature_version, definition.value_type)
            cells[cell] = online_layout.encode_cell(definition.value_type, row.value, row.window_end_ms)
        requests: list[tuple[Any, Any]] = []
        values = 0
        for (entity_type, entity_id), groups in by_partition.items():
            statements: list[tuple[int, int, dict[str, bytes]]] = []
            room = CELLS_PER_REQUEST
            for (ts, ttl_s), cells in groups.items():
                values += len(cells)
                items = list(cells.items())
                while items:
                    if room == 0:
                        requests.append(self._request(entity_type, entity_id, statements))
                        statements, room = [], CELLS_PER_REQUEST
                    part, items = items[:room], items[room:]
                    statements.append((ts, ttl_s, dict(part)))
                    room -= len(part)
            if statements:
                requests.append(self._request(entity_type, entity_id, statements))
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

    def _request(
        self, entity_type: str, entity_id: str, statements: list[tuple[int, int, dict[str, bytes]]]
    ) -> tuple[Any, Any]:
        from cassandra.query import BatchStatement, BatchType

        if len(statements) == 1:
            ts, ttl_s, cells = statements[0]
            return self._update, (ts, ttl_s, cells, entity_type, entity_id)
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for ts, ttl_s, cells in statements:
            batch.add(self._update, (ts, ttl_s, cells, entity_type, entity_id))
        return batch, None
