"""Online writer: window results into Cassandra, newest-wins by feature time, TTL from the definition."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from registry.core.definitions import MAX_TTL, FeatureDefinition
from registry.core.durations import to_millis
from registry.core.errors import StoreUnavailableError
from registry.core.timeline import step_ms, tie_key
from sinks.cassandra import layout as online_layout
from sinks.records import FeatureRow, Value, WindowResults

if TYPE_CHECKING:
    from cassandra.cluster import Session

MAX_TTL_S = int(MAX_TTL.total_seconds())  # Cassandra's longest TTL; a cell's is cut to layout.ttl_cap_s


CELLS_PER_REQUEST = 64  # cells a request at most
REQUEST_BYTES = 4_096  # a request's estimated mutation size at most: below Cassandra's batch size warning (5 KiB)
STATEMENT_BYTES = 40  # the estimate per statement, plus its key's characters (measured: Cassandra's own sizes)
CELL_BYTES = 30  # the estimate per cell, plus its key's characters and its blob
PARTITIONS_PER_REQUEST = 10  # entities a request at most: Cassandra warns on a batch over more (its default
# unlogged_batch_across_partitions_warn_threshold), and the driver logs each warning


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
    cap = revision_cap(definition) if cap is None else cap
    one = np.array([row.window_end_ms], dtype=np.int64), np.array([row.revision], dtype=np.int64)
    return int(write_timestamps_us(*one, np.array([cap], dtype=np.int64))[0])


def write_timestamps_us(
    ends_ms: npt.NDArray[np.int64], revisions: npt.NDArray[np.int64], caps: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """``write_timestamp_us`` of many values at once: window ends, revisions and each value's revision cap."""
    return ends_ms * 1000 + np.minimum(revisions, caps)


def ensure_schema(session: Session, keyspace: str) -> None:
    """Create the keyspace and tables if missing (idempotent)."""
    session.execute(online_layout.keyspace_ddl(keyspace), timeout=30)
    for ddl in online_layout.table_ddl(keyspace):
        session.execute(ddl, timeout=30)


class Values:
    """A flush's buffered values as columns, one slot per value: entity type and id, feature (an index into
    ``definitions``, one per (entity type, name, version): the first definition object seen for it gives the
    value type, TTL and revision cap, as a registered version never changes), value, window end and revision;
    and per stream the newest window end. Rows come before window results."""

    def __init__(self) -> None:
        self.definitions: list[FeatureDefinition] = []
        self._index: dict[tuple[str, str, int], int] = {}
        self.entity_types: list[str] = []
        self.entity_ids: list[str] = []
        self.feature: list[int] = []
        self.values: list[Value] = []
        self._ends: list[int] = []  # the rows' (all rows come before any window results)
        self._revisions: list[int] = []
        self._result_ends: list[npt.NDArray[np.int64]] = []
        self._result_revisions: list[npt.NDArray[np.int64]] = []
        self.progress: dict[str, int] = {}
        self.stream_ttl_ms: dict[str, int] = {}  # per stream, the longest TTL of its features in the buffer
        self.size = 0

    def _feature(self, definition: FeatureDefinition) -> int:
        key = (definition.entity, definition.name, definition.version)
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self.definitions)
            self.definitions.append(definition)
        return index

    def add_row(self, row: FeatureRow) -> None:
        if self._result_ends:
            raise ValueError("rows are added before window results")
        self.entity_types.append(row.entity_type)
        self.entity_ids.append(row.entity_id)
        self.feature.append(self._feature(row.defined_by))
        self.values.append(row.value)
        self._ends.append(row.window_end_ms)
        self._revisions.append(row.revision)
        self.progress[row.stream] = max(self.progress.get(row.stream, 0), row.window_end_ms)
        self._ttl(row.stream, row.defined_by)
        self.size += 1

    def _ttl(self, stream: str, definition: FeatureDefinition) -> None:
        ttl_ms = to_millis(definition.ttl)
        if ttl_ms > self.stream_ttl_ms.get(stream, 0):
            self.stream_ttl_ms[stream] = ttl_ms

    def add_results(self, results: WindowResults) -> None:
        n = len(results)
        if not n:
            return
        ends = np.asarray(results.ends_ms, dtype=np.int64)
        revisions = np.asarray(results.revisions, dtype=np.int64)
        for definition, column in zip(results.features, results.values, strict=True):
            self.entity_types.extend([results.entity_type] * n)
            self.entity_ids.extend(results.entity_ids)
            self.feature.extend([self._feature(definition)] * n)
            self.values.extend(column)
            self._result_ends.append(ends)
            self._result_revisions.append(revisions)
            self.size += n
        stream = results.stream
        self.progress[stream] = max(self.progress.get(stream, 0), int(ends.max()))
        for definition in results.features:
            self._ttl(stream, definition)

    def ends(self) -> npt.NDArray[np.int64]:
        return np.concatenate([np.array(self._ends, dtype=np.int64), *self._result_ends])

    def revisions(self) -> npt.NDArray[np.int64]:
        return np.concatenate([np.array(self._revisions, dtype=np.int64), *self._result_revisions])


def newest_cells(
    buffered: Values, now_ms: int
) -> tuple[dict[tuple[str, str], dict[tuple[int, int], dict[str, bytes]]], int]:
    """Per entity, per (write time, TTL in s), the cells to write: packs (``layout.Pack``) by key.

    Only the newest value of each (entity, feature, version) can survive (write time decides,
    ``write_timestamp_us``), so just that one is written: a replay or backfill flush shrinks to one
    value per key. Of two values with one write time, the one Cassandra itself would keep of two written within
    one second (``tie_key``;
    of equal keys, the first buffered). A value past its TTL at ``now_ms`` (older than it, not exactly at it) is
    skipped (the second number returned counts them). The values of one entity that share a write time, a TTL and a window
    end (one window of a window group, as a rule) go into one pack (several past ``PACK_MEMBERS``).
    Decided with numpy over the flush's columns; Python runs per value written, to place it in its pack."""
    defs = buffered.definitions
    if not buffered.size:
        return {}, 0
    feature = np.asarray(buffered.feature, dtype=np.int64)
    ends, revisions = buffered.ends(), buffered.revisions()
    caps = np.array([revision_cap(d) for d in defs], dtype=np.int64)
    ttls = np.array([to_millis(d.ttl) for d in defs], dtype=np.int64)
    ts = write_timestamps_us(ends, revisions, caps[feature])
    types = pc.dictionary_encode(pa.array(buffered.entity_types, pa.string()))
    ids = pc.dictionary_encode(pa.array(buffered.entity_ids, pa.string()))
    entity = types.indices.to_numpy().astype(np.int64) * len(ids.dictionary) + ids.indices.to_numpy()
    key = entity * len(defs) + feature
    order = np.lexsort((ts, key))  # stable: equal (key, ts) stay in the order they were buffered
    k, t = key[order], ts[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = k[1:] != k[:-1]
    at = np.flatnonzero(last)
    winners = order[at]
    tied = np.flatnonzero((at > 0) & (k[at - 1] == k[at]) & (t[at - 1] == t[at]))
    values = buffered.values
    for j in tied.tolist():  # rare: two values of one key with one write time
        p = int(at[j])
        q = p
        while q > 0 and k[q - 1] == k[p] and t[q - 1] == t[p]:
            q -= 1
        value_type = defs[feature[order[p]]].value_type
        best = int(order[q])
        for c in order[q + 1 : p + 1].tolist():
            if tie_key(values[c], value_type) > tie_key(values[best], value_type):
                best = c
        winners[j] = best
    ttl_s = -((now_ms - ends[winners] - ttls[feature[winners]]) // 1000)  # ceil((end + ttl - now) / 1000)
    # A value past its TTL (older than it: `now - end > ttl`, §5.2) is not written; one exactly at it still counts.
    alive = ends[winners] + ttls[feature[winners]] >= now_ms
    expired = int((~alive).sum())
    winners, ttl_s = winners[alive], ttl_s[alive]
    # Kept a grace period past the TTL, so serving reads the value as `expired` (null) and not as `missing`;
    # a window ending ahead of this clock (up to the job's one-hour bound) could ask past Cassandra's longest TTL,
    # and a long TTL past the last expiry Cassandra accepts (2038: ``layout.ttl_cap_s``), which it would refuse.
    ttl_s += online_layout.EXPIRED_GRACE_S
    np.minimum(ttl_s, online_layout.ttl_cap_s(now_ms), out=ttl_s)
    ends_w = ends[winners]
    members: list[online_layout.Member] = [(d.name, d.version, d.value_type) for d in defs]
    rank = np.empty(len(defs), dtype=np.int64)  # each feature's place in pack order
    rank[sorted(range(len(defs)), key=lambda f: online_layout.member_rank(members[f]))] = np.arange(len(defs))
    # A pack's values together, in pack order.
    grouped = np.lexsort((rank[feature[winners]], ends_w, ttl_s, ts[winners], entity[winners]))
    by_partition: dict[tuple[str, str], dict[tuple[int, int], dict[str, bytes]]] = {}
    entity_types, entity_ids = buffered.entity_types, buffered.entity_ids
    rows, w_ts, w_ttl, w_end = (
        winners[grouped],
        ts[winners][grouped],
        ttl_s[grouped],
        ends_w[grouped],
    )
    w_entity = entity[rows]
    # Runs of one (entity, write time, TTL, window end): each run is one pack (more if it has more members
    # than a pack holds).
    cut = np.ones(len(rows), dtype=bool)
    cut[1:] = (
        (w_entity[1:] != w_entity[:-1])
        | (w_ts[1:] != w_ts[:-1])
        | (w_ttl[1:] != w_ttl[:-1])
        | (w_end[1:] != w_end[:-1])
    )
    starts = [*np.flatnonzero(cut).tolist(), len(rows)]
    row_list, feature_list = rows.tolist(), feature[rows].tolist()
    for a, b in itertools.pairwise(starts):
        i = row_list[a]
        cells = by_partition.setdefault((entity_types[i], entity_ids[i]), {}).setdefault(
            (int(w_ts[a]), int(w_ttl[a])), {}
        )
        for c in range(a, b, online_layout.PACK_MEMBERS):
            part = range(c, min(c + online_layout.PACK_MEMBERS, b))
            layout = online_layout.pack(tuple(members[feature_list[j]] for j in part))
            cells[layout.key] = layout.encode(int(w_ts[a]), int(w_end[a]), [values[row_list[j]] for j in part])
    return by_partition, expired


class _Request:
    """A request being filled: its statements' parameters, cells, estimated bytes and entities."""

    __slots__ = ("bytes", "cells", "entities", "last", "statements")

    def __init__(self) -> None:
        self.statements: list[tuple[Any, ...]] = []
        self.cells = 0
        self.bytes = 0
        self.entities = 0
        self.last: tuple[str, str] | None = None  # the entity of the last statement (an entity's are adjacent)

    def fits(self, cost: int, entity: tuple[str, str]) -> bool:
        return (
            self.cells < CELLS_PER_REQUEST
            and self.bytes + cost <= REQUEST_BYTES
            and (entity == self.last or self.entities < PARTITIONS_PER_REQUEST)
        )


class OnlineWriter:
    """Buffers rows and writes them with bounded concurrency at ``flush``, several entities a request.

    An entity's values that share a write time, a TTL and a window end (the features of one window, as a
    rule) go as one pack, one map cell (``layout.Pack``), in one ``UPDATE ... SET cells = cells + ?``; such
    updates of several entities (of one replica set) as one UNLOGGED batch, at most ``CELLS_PER_REQUEST`` cells and ``REQUEST_BYTES`` a request (``_requests``):
    Cassandra's and this process's cost per request dominates a write of a few cells.

    A value whose TTL has already run out at write time is not written (it would be expired on
    read anyway); ``skipped_expired`` counts them. After the values, the writer records per stream
    the latest window end it has written (``stream_progress``, one row per writer, kept a day, and the stream's
    last-known row, kept for good: ``layout.LAST_KNOWN_WRITER``); readers take the minimum over a stream's writers
    to tell an empty window from a value that is still current (the last-known row once no writer's row is left).
    With ``writer_id=None`` a flush records no progress: the caller records it (``record_progress``), as the stream
    job's writer does from its watermark.
    """

    def __init__(
        self,
        session: Session,
        keyspace: str,
        *,
        writer_id: str | None = "0",
        concurrency: int = 64,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._session = session
        self._concurrency = concurrency
        self._clock_ms = clock_ms
        self._update = session.prepare(online_layout.update_cells_cql(keyspace))
        self._progress = session.prepare(online_layout.progress_cql(keyspace))
        self._writer_id = writer_id
        self._keyspace = keyspace
        self._buffer: list[FeatureRow] = []
        self._results: list[WindowResults] = []
        self.written = 0
        self.requests = 0  # Cassandra requests the values took (``_requests`` packs them)
        self.skipped_expired = 0

    def add(self, row: FeatureRow) -> None:
        self._buffer.append(row)

    def add_results(self, results: WindowResults) -> None:
        if len(results):
            self._results.append(results)

    def _values(self) -> Values:
        """What is buffered as one value per slot: rows one by one, window results a column at a time."""
        out = Values()
        for row in self._buffer:
            out.add_row(row)
        for results in self._results:
            out.add_results(results)
        return out

    def flush(self) -> None:
        from cassandra.concurrent import execute_concurrent

        if not self._buffer and not self._results:
            return
        now_ms = self._clock_ms()
        buffered = self._values()
        progress = buffered.progress
        by_partition, expired = newest_cells(buffered, now_ms)
        self.skipped_expired += expired
        requests, values = self._requests(by_partition)
        try:
            execute_concurrent(self._session, requests, concurrency=self._concurrency, raise_on_first_error=True)
            self.written += values
            self.requests += len(requests)
        except Exception as exc:
            raise StoreUnavailableError(f"Cassandra write failed: {exc}") from exc
        if self._writer_id is not None:
            for stream, end_ms in progress.items():
                self.record_progress(stream, end_ms, self._writer_id, buffered.stream_ttl_ms.get(stream, 0))
        self._buffer.clear()
        self._results.clear()

    def record_progress(self, stream: str, closed_through_ms: int, writer_id: str, longest_ttl_ms: int) -> None:
        """Record that ``writer_id`` has written every window of ``stream`` that ends at or before
        ``closed_through_ms`` (epoch ms): its own ``stream_progress`` row (kept a day) and the stream's last-known
        row (kept ``layout.last_known_ttl_s(longest_ttl_ms, now)``, ``longest_ttl_ms`` the longest TTL of the stream's
        features), both written at ``closed_through_ms`` as their write time, so neither ever moves back."""
        now_ms = self._clock_ms()
        at = (_ts(closed_through_ms), _ts(now_ms), closed_through_ms * 1000)
        kept_s = online_layout.last_known_ttl_s(longest_ttl_ms, now_ms)
        try:
            self._session.execute(self._progress, (stream, writer_id, *at, stream, *at, kept_s), timeout=10)
        except Exception as exc:
            raise StoreUnavailableError(f"Cassandra write failed: {exc}") from exc

    def _requests(
        self, by_partition: dict[tuple[str, str], dict[tuple[int, int], dict[str, bytes]]]
    ) -> tuple[list[tuple[Any, Any]], int]:
        """The flush's statements packed into requests, and the number of values they carry.

        A statement is one entity's cells (packs) of one write time and TTL, at most ``CELLS_PER_REQUEST`` of them.
        Statements go out together, several entities to an UNLOGGED batch, up to ``CELLS_PER_REQUEST`` cells,
        ``REQUEST_BYTES`` (estimated) and ``PARTITIONS_PER_REQUEST`` entities a request, only entities of one
        replica set in a batch (on a single node: any). A batch is not atomic across its entities, and needs not be: each statement
        carries its own write time and TTL, exactly as it would alone."""
        replicas = self._replica_sets()
        filling: dict[object, _Request] = {}  # replica set -> the request being filled
        requests: list[tuple[Any, Any]] = []
        values = 0
        for entity, groups in by_partition.items():
            entity_type, entity_id = entity
            group = replicas(entity_type, entity_id)
            key_bytes = STATEMENT_BYTES + len(entity_type.encode()) + len(entity_id.encode())
            for (ts, ttl_s), cells in groups.items():
                values += sum(map(online_layout.values_in, cells))
                cells_of_statement: dict[str, bytes] | None = None  # in the request being filled
                for cell, blob in cells.items():
                    cost = CELL_BYTES + len(cell.encode()) + len(blob)
                    request = filling.get(group)
                    if request is not None and not request.fits(
                        cost + (key_bytes if cells_of_statement is None else 0), entity
                    ):
                        requests.append(self._request(filling.pop(group).statements))
                        request = None
                    if request is None:
                        request = filling[group] = _Request()
                        cells_of_statement = None
                    if cells_of_statement is None:
                        cells_of_statement = {}
                        request.statements.append((ts, ttl_s, cells_of_statement, entity_type, entity_id))
                        cost += key_bytes
                        if request.last != entity:
                            request.entities += 1
                            request.last = entity
                    cells_of_statement[cell] = blob
                    request.cells += 1
                    request.bytes += cost
                    if request.cells == CELLS_PER_REQUEST:
                        requests.append(self._request(filling.pop(group).statements))
                        cells_of_statement = None
        requests.extend(self._request(request.statements) for request in filling.values())
        return requests, values

    def _replica_sets(self) -> Callable[[str, str], object]:
        """Which replica set an entity's partition lives on: one for all on a single node (or without the
        driver's token map), else its replicas from the token map."""
        metadata = self._session.cluster.metadata
        if metadata.token_map is None or len(metadata.all_hosts()) <= 1:
            return lambda entity_type, entity_id: None

        def replicas(entity_type: str, entity_id: str) -> object:
            key = self._update.bind((0, 0, {}, entity_type, entity_id)).routing_key
            return tuple(sorted(str(h.endpoint) for h in metadata.get_replicas(self._keyspace, key)))

        return replicas

    def _request(self, statements: list[tuple[Any, ...]]) -> tuple[Any, Any]:
        from cassandra.query import BatchStatement, BatchType

        if len(statements) == 1:
            return self._update, statements[0]
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for params in statements:
            batch.add(self._update, params)
        return batch, None
