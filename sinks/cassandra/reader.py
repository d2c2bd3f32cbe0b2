"""Single-partition reads of entity feature vectors from Cassandra, and stream progress.

Every read is one prepared, token-aware query on one partition, ``(entity_type, entity_id)``, with a
driver timeout equal to the request budget, so a store that is down or slow becomes
``StoreUnavailableError`` (a 503) within the budget instead of a hang. The async methods bridge the
driver's callbacks (which run on its I/O thread) to the asyncio loop with one wake-up per batch.

Give the reader a session whose ``row_factory`` is ``cassandra.query.tuple_factory`` (the serving
entry point does): the driver's default builds a new namedtuple class for every result set, which
costs more than the rest of the decoding. Rows are read by position, so either factory is correct.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from itertools import repeat
from typing import TYPE_CHECKING, Any, NamedTuple

from registry.core.errors import StoreUnavailableError
from registry.core.timeline import tie_key
from sinks.cassandra import layout as online_layout
from sinks.cassandra.budget import MIN_TIMEOUT_S, left_s

if TYPE_CHECKING:
    from cassandra.cluster import Session

_log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_BUDGET_S = 0.1
DEFAULT_BATCH_BUDGET_S = 1.0  # a batch of up to 1,000 entities: all in flight at once, each answer merged as it arrives


def _ms(value: datetime) -> int:
    if value.tzinfo is None:  # the driver returns naive UTC datetimes
        value = value.replace(tzinfo=UTC)
    return int((value - _EPOCH).total_seconds() * 1000)


class StoredValue(NamedTuple):
    """The latest stored row of one feature version: its value and window end (epoch ms)."""

    value: object
    feature_ts_ms: int


Stored = Mapping[tuple[str, int], tuple[object, int]]
"""An entity's stored rows by (feature name, version): ``(value, window end ms)``, a StoredValue or a plain tuple."""


def select_vector_cql(keyspace: str) -> str:
    """The entity read: its one row's map of cells (``sinks.cassandra.layout``)."""
    return online_layout.select_vector_cql(keyspace)


_Decode = Callable[[bytes], tuple[object, int]]
_Cell = tuple[tuple[str, int], _Decode, _Decode]
_KEYS: dict[str, _Cell | online_layout.Pack] = {}
_MAX_KEYS = 200_000  # distinct cell keys remembered (10,000 features x a few versions, and packs)


class Undecodable:
    """Cells reads skipped because they could not be decoded (a damaged blob, a key this build does not write),
    counted for the whole process (the API exposes it as ``fs_online_undecodable_cells_total``); the first few
    keys are logged. A skipped cell's features are read from the newest other cell of the row that decodes, and are
    absent (``missing``) when none does; the rest of the vector is served."""

    cells = 0
    _logged = 0
    _lock = threading.Lock()

    @classmethod
    def skip(cls, key: str, exc: Exception) -> None:
        with cls._lock:
            cls.cells += 1
            logged, cls._logged = cls._logged, min(cls._logged + 1, 100)
        if logged < 100:  # not a log line per read of a damaged partition
            _log.warning("online store: skipped an undecodable cell %r: %s", key[:200], exc)


def _learn(key: str) -> _Cell | online_layout.Pack:
    if len(_KEYS) >= _MAX_KEYS:
        _KEYS.clear()
    if key.startswith(online_layout.PACK):
        pack = _KEYS[key] = online_layout.parse_pack_key(key)
        return pack  # not _KEYS[key]: another thread may clear the cache in between (a KeyError, a failed read)
    name, version, value_type = online_layout.parse_cell_key(key)
    known = _KEYS[key] = ((name, version), online_layout.FAST[value_type], online_layout.DECODERS[value_type])
    return known


def _vector(rows: Any) -> Stored:
    # One row (or none: no cell is live). A cell key is parsed once per process. A pack (one cell for the
    # features of one window, ``layout.Pack``) decodes with one C-level struct call and one split of its
    # strings; a feature's own cell (written before packs) with one struct call for a fixed-size type (a cell
    # without a value raises there and takes the slow decoder). A plain tuple per value (a NamedTuple costs a
    # Python-level __new__ per value).
    out: dict[tuple[str, int], tuple[object, int]] = {}
    get, error, pack_type = _KEYS.get, struct.error, online_layout.Pack
    packs: list[tuple[online_layout.Pack, bytes]] | None = None
    for (cells,) in rows:
        if cells:
            # The driver's OrderedMapSerializedKey keeps its entries in a list of pairs; its Mapping
            # ``items()`` looks each key up again, more than half of the whole decoding.
            entries = getattr(cells, "_items", None)
            for key, blob in cells.items() if entries is None else entries:
                try:
                    known = get(key) or _learn(key)
                except ValueError as exc:  # a key this build does not write
                    Undecodable.skip(key, exc)
                    continue
                if known.__class__ is pack_type:
                    if packs is None:
                        packs = []
                    packs.append((known, blob))  # type: ignore[arg-type]
                    continue
                try:
                    out[known[0]] = known[1](blob)  # type: ignore[index]
                except error:  # a fixed-size cell without a value (or not a value at all)
                    try:
                        out[known[0]] = known[2](blob)  # type: ignore[index]
                    except ValueError as exc:
                        Undecodable.skip(key, exc)
                except ValueError as exc:  # a string cell that is not one
                    Undecodable.skip(key, exc)
    if packs is None:
        return out
    if not out and len(packs) == 1:  # the common case: one window group's pack
        layout, blob = packs[0]
        try:
            _, end, values = layout.decode(blob)
        except ValueError as exc:
            Undecodable.skip(layout.key, exc)
            return out
        return PackedVector(layout, values, end)
    return _newest(out, packs)


class PackedVector(Mapping[tuple[str, int], tuple[object, int]]):
    """An entity's vector read as one pack: its values in the pack's member order and their window end.

    A mapping like any ``Stored``; its dict is built on the first lookup by key, so a consumer that takes
    many features at once (``pick``, by positions the layout gives) never hashes a key per feature."""

    __slots__ = ("_dict", "end_ms", "layout", "member_values")

    def __init__(self, layout: online_layout.Pack, values: list[object], end_ms: int) -> None:
        self.layout = layout
        self.member_values = values
        self.end_ms = end_ms
        self._dict: dict[tuple[str, int], tuple[object, int]] | None = None

    def _entries(self) -> dict[tuple[str, int], tuple[object, int]]:
        entries = self._dict
        if entries is None:
            entries = self._dict = dict(
                zip(self.layout.refs, zip(self.member_values, repeat(self.end_ms)), strict=True)
            )
        return entries

    def __getitem__(self, key: tuple[str, int]) -> tuple[object, int]:
        return self._entries()[key]

    def get(self, key: tuple[str, int], default: Any = None) -> Any:
        return self._entries().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._entries()

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(self.layout.refs)

    def __len__(self) -> int:
        return len(self.member_values)

    def __repr__(self) -> str:
        return f"PackedVector({self._entries()!r})"


def _newest(
    cells: dict[tuple[str, int], tuple[object, int]], packs: list[tuple[online_layout.Pack, bytes]]
) -> dict[tuple[str, int], tuple[object, int]]:
    """Each feature's value from the cell Cassandra would have kept had they been one: the greatest write
    time, then (one write time) the value ``tie_key`` ranks higher. A feature's own cell counts as written
    at its window end (revision 0): it carries no write time."""
    best: dict[tuple[str, int], tuple[int, object, int]] = {
        ref: (end * 1000, value, end) for ref, (value, end) in cells.items()
    }
    for layout, blob in packs:
        try:
            ts, end, values = layout.decode(blob)
        except ValueError as exc:
            Undecodable.skip(layout.key, exc)
            continue
        for ref, value_type, value in zip(layout.refs, layout.types, values, strict=True):
            prior = best.get(ref)  # of the same type: a version's value type never changes
            if (
                prior is None
                or ts > prior[0]
                or (ts == prior[0] and tie_key(value, value_type) > tie_key(prior[1], value_type))
            ):
                best[ref] = (ts, value, end)
    return {ref: (value, end) for ref, (_, value, end) in best.items()}


def scan_vectors(session: Session, keyspace: str) -> Iterator[tuple[str, str, Stored]]:
    """Every entity's stored vector, ``(entity_type, entity_id, vector)``: a whole-table scan, for tools and
    checks, never for serving."""
    for entity_type, entity_id, cells in session.execute(
        f"SELECT entity_type, entity_id, cells FROM {keyspace}.{online_layout.TABLE}", timeout=60
    ):
        yield entity_type, entity_id, _vector([(cells,)])


def _late(budget_s: float) -> StoreUnavailableError:
    """A read's failure when it did not answer within ``budget_s``."""
    return StoreUnavailableError(f"online store (Cassandra) read failed: no answer within {budget_s * 1000:.0f} ms")


def _none_within(n: int, budget_s: float) -> StoreUnavailableError:
    """A batch's failure when the store answered none of its ``n`` entities within the request budget."""
    return StoreUnavailableError(
        f"online store (Cassandra) read failed: none of {n} entities answered within {budget_s * 1000:.0f} ms"
    )


def _unavailable(exc: BaseException) -> StoreUnavailableError:
    return StoreUnavailableError(f"online store (Cassandra) read failed: {type(exc).__name__}: {exc}")


def store_errors() -> tuple[type[BaseException], ...]:
    """What the driver raises when the store failed, not our code: no host, timeouts, unavailable or
    failed replicas, broken connections, errors the server reports as its own. These are a 503.
    Anything else (a TypeError binding a value, an InvalidRequest for a query the store refuses) is a
    bug and propagates: a 500 with a request id, never disguised as the store being down."""
    from cassandra import OperationTimedOut, RequestExecutionException
    from cassandra.cluster import NoHostAvailable
    from cassandra.connection import ConnectionException
    from cassandra.protocol import ErrorMessage

    return (NoHostAvailable, OperationTimedOut, RequestExecutionException, ConnectionException, ErrorMessage, OSError)


def _failure(exc: BaseException, expected: tuple[type[BaseException], ...]) -> BaseException:
    return _unavailable(exc) if isinstance(exc, expected) else exc


class OnlineReader:
    """Reads entity vectors with one prepared, token-aware, single-partition query per entity.

    Stream progress (the latest window closed by every writer of a stream) is one small table, cached for
    ``progress_ttl_s`` so that a request costs one Cassandra read, not two. ``timeout_s`` is the request
    budget given to every read: past it, the read fails with StoreUnavailableError.
    """

    def __init__(
        self,
        session: Session,
        keyspace: str,
        *,
        timeout_s: float = DEFAULT_BUDGET_S,
        batch_timeout_s: float = DEFAULT_BATCH_BUDGET_S,
        progress_ttl_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._timeout_s = timeout_s
        self._batch_timeout_s = batch_timeout_s
        self._select = session.prepare(select_vector_cql(keyspace))
        self._progress_stmt = session.prepare(online_layout.select_progress_cql(keyspace))
        # One page, however many rows: the async read's callback gets the first page only (the driver's 5,000 rows),
        # and an own key past it was lost: its version judged by its stream's progress (a `present` 0).
        self._progress_stmt.fetch_size = None
        self._progress_ttl_s = progress_ttl_s
        self._clock = clock
        self._progress: dict[str, int] = {}
        self._progress_at = float("-inf")
        self._progress_refresh: asyncio.Future[dict[str, int]] | None = None
        self._lock = threading.Lock()
        self._store_errors = store_errors()

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    # --- synchronous ------------------------------------------------------------------------------

    def read(self, entity_type: str, entity_id: str) -> dict[tuple[str, int], StoredValue]:
        """One entity's stored rows, as StoredValue (named fields; the async path keeps plain tuples)."""
        try:
            rows = self._session.execute(self._select, (entity_type, entity_id), timeout=self._timeout_s)
        except self._store_errors as exc:
            raise _unavailable(exc) from exc
        return {key: StoredValue(*cell) for key, cell in _vector(rows).items()}

    def progress(self) -> dict[str, int]:
        """Latest window end (epoch ms) closed by all writers of each stream, at most ``progress_ttl_s`` old."""
        now = self._clock()
        if now - self._progress_at < self._progress_ttl_s:
            return self._progress
        with self._lock:
            if now - self._progress_at >= self._progress_ttl_s:
                try:
                    rows = self._session.execute(self._progress_stmt, timeout=self._timeout_s)
                except self._store_errors as exc:
                    raise _unavailable(exc) from exc
                self._set_progress(rows, now)
        return self._progress

    def _set_progress(self, rows: Any, at: float) -> None:
        self._progress = online_layout.stream_progress((r[0], r[1], _ms(r[2])) for r in rows)
        self._progress_at = at

    # --- asyncio ----------------------------------------------------------------------------------

    async def read_many_async(self, entity_type: str, entity_ids: Sequence[str]) -> list[Stored]:
        """One concurrent single-partition read per entity; the first failure fails the whole call. Within what is
        left of the request budget (``budget.left_s``)."""
        timeout_s = left_s(self._timeout_s)
        if timeout_s <= 0:
            raise StoreUnavailableError(
                f"online store (Cassandra) read failed: no answer within {self._timeout_s * 1000:.0f} ms"
            )
        rows = await self._gather([(self._select, (entity_type, eid)) for eid in entity_ids], timeout_s)
        return [_vector(r) for r in rows]

    async def read_each_async(
        self, entity_type: str, entity_ids: Sequence[str]
    ) -> list[Stored | StoreUnavailableError]:
        """A batch read: every entity's query in flight at once within the batch budget, each answer kept as it
        arrives; an entity whose read failed or did not answer in time gets its own StoreUnavailableError
        (the others are served). A store that has answered none of them within the request budget is taken
        for hung or down: every entity fails then (a 503 at the request budget, as for a single read), rather
        than at the batch budget. A bug (not a store error) still fails the whole call. The batch budget runs from
        the lookup's first read (``budget.left_s``: the progress read, when it made one), the request budget for a
        first answer from when these reads are sent (the store answered the progress read: it is not hung)."""
        loop = asyncio.get_running_loop()
        n = len(entity_ids)
        if n and left_s(self._batch_timeout_s) <= 0:  # the progress read took the whole batch budget: none is sent
            return [_late(self._batch_timeout_s)] * n
        batch_s = max(left_s(self._batch_timeout_s), MIN_TIMEOUT_S)
        done: asyncio.Future[list[Stored | StoreUnavailableError]] = loop.create_future()
        results: list[Stored | StoreUnavailableError | None] = [None] * n
        answered = itertools.count(1)
        late = _late(self._batch_timeout_s)

        def finish() -> None:
            guard.cancel()
            first.cancel()
            if not done.done():
                done.set_result([late if r is None else r for r in results])

        def none_yet() -> None:  # at the request budget
            if not any(r is not None and not isinstance(r, StoreUnavailableError) for r in results):
                hung = _none_within(n, self._timeout_s)
                for i, r in enumerate(results):
                    if r is None:
                        results[i] = hung
                finish()

        def fail(exc: BaseException) -> None:
            guard.cancel()
            first.cancel()
            if not done.done():
                done.set_exception(exc)

        def settle(i: int, value: Stored | BaseException) -> None:  # on the loop
            if done.done():
                return
            if isinstance(value, BaseException):
                failure = _failure(value, self._store_errors)
                if not isinstance(failure, StoreUnavailableError):
                    fail(failure)
                    return
                value = failure
            results[i] = value

        def on_rows(rows: Any, i: int) -> None:  # the driver's I/O thread: decode there, merge on the loop
            try:
                vector: Stored | BaseException = _vector(rows)
            except Exception as exc:
                vector = exc
            loop.call_soon_threadsafe(settle, i, vector)
            if next(answered) == n:
                loop.call_soon_threadsafe(finish)

        def on_error(exc: BaseException, i: int) -> None:
            loop.call_soon_threadsafe(settle, i, exc)
            if next(answered) == n:
                loop.call_soon_threadsafe(finish)

        guard = loop.call_later(batch_s, finish)  # whatever has not answered by then is unavailable
        first = loop.call_later(min(self._timeout_s, batch_s), none_yet)
        for i, eid in enumerate(entity_ids):
            try:
                future = self._session.execute_async(self._select, (entity_type, eid), timeout=batch_s)
            except Exception as exc:  # NoHostAvailable and the like are raised before any I/O
                settle(i, exc)
                if next(answered) == n:
                    finish()
                continue
            future.add_callbacks(on_rows, on_error, callback_args=(i,), errback_args=(i,))
        if not entity_ids:
            finish()
        return await done

    async def progress_async(self) -> dict[str, int]:
        now = self._clock()
        if now - self._progress_at < self._progress_ttl_s:
            return self._progress
        if self._progress_refresh is None:  # one refresh at a time; concurrent requests wait for it
            self._progress_refresh = asyncio.ensure_future(self._refresh_progress(now))
        return await asyncio.shield(self._progress_refresh)

    async def _refresh_progress(self, now: float) -> dict[str, int]:
        try:
            (rows,) = await self._gather([(self._progress_stmt, ())])
            self._set_progress(rows, now)
            return self._progress
        finally:
            self._progress_refresh = None

    def _gather(
        self, queries: list[tuple[Any, tuple[Any, ...]]], timeout_s: float | None = None
    ) -> asyncio.Future[list[Any]]:
        """Start every query now; the future resolves on the loop once all have answered (one wake-up), or fails at
        ``timeout_s`` (default: the request budget)."""
        loop = asyncio.get_running_loop()
        timeout_s = self._timeout_s if timeout_s is None else timeout_s
        done: asyncio.Future[list[Any]] = loop.create_future()
        n = len(queries)
        results: list[Any] = [None] * n
        answered = itertools.count(1)  # next() on it is atomic: callbacks may run on two threads

        def finish(value: list[Any] | BaseException) -> None:
            guard.cancel()
            if done.done():
                return
            if isinstance(value, BaseException):
                done.set_exception(value)
            else:
                done.set_result(value)

        def on_rows(rows: Any, i: int) -> None:  # runs on the driver's I/O thread (or here, if already answered)
            results[i] = rows
            if next(answered) == n:
                loop.call_soon_threadsafe(finish, results)

        def on_error(exc: BaseException) -> None:
            loop.call_soon_threadsafe(finish, _failure(exc, self._store_errors))

        # The driver's own timer fails each query at the budget; this guard, due at the same instant, answers
        # even if it did not (a callback lost with a connection): the 503 leaves at the budget plus loop latency.
        guard = loop.call_later(
            timeout_s,
            finish,
            StoreUnavailableError(
                f"online store (Cassandra) read failed: no answer within {self._timeout_s * 1000:.0f} ms"
            ),
        )
        for i, (stmt, params) in enumerate(queries):
            try:
                future = self._session.execute_async(stmt, params, timeout=timeout_s)
            except Exception as exc:  # NoHostAvailable and the like are raised before any I/O; a bug too
                finish(_failure(exc, self._store_errors))
                break
            future.add_callbacks(on_rows, on_error, callback_args=(i,))
        if not queries:
            finish([])
        return done
