"""Entity vectors read through a compiled driver: ``acsylla``, asyncio bindings of ScyllaDB's C++ driver.

The same rules and answers as ``sinks.cassandra.reader.OnlineReader``'s asyncio methods (the request
budget on every read; a batch with each entity's own error; stream progress cached), with the
protocol's work (request framing,
I/O, result decoding into Python values) done in C++ on the driver's own I/O thread, not in Python:
measured on the 2-core machine at 32 reads in flight, ~94 µs of the process's CPU per 100-feature read
against ~359 µs with the Python driver (design §5.9). The feature API reads through it by default
(``FS_ONLINE_DRIVER``, ``serving/online/__main__.py``); everything else (the job's writer, tools, tests
of the rules) uses the Python driver.

One entity is one prepared, token-aware, single-partition query. Several entities of one type (a batch)
are read ``partitions_per_read`` at a time (default 25), one prepared ``IN`` on the partition key per
group, every group in flight at once: Cassandra's CPU per entity of a 100-entity batch about halves
against one query each (its fixed cost per request dominates a one-row read), and this process's by a
third (design §5.9). The price: a failed or late group fails its entities together, and on a cluster an
``IN`` is coordinated by one node that asks the replicas of the others (``partitions_per_read=1``, or
``FS_ONLINE_PARTITIONS_PER_READ=1``, reads every entity on its own, token-aware, as before).

The API opens the session at start-up (``connect``, before it accepts requests); otherwise it is opened on
first use inside the running event loop (an acsylla session belongs to the
loop it was opened in; a reader used from another loop, as a test client's per-request loops do, opens
another), one attempt at a time; a store that is down fails that request at the connect timeout, the
next request tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from registry.core.errors import StoreUnavailableError
from sinks.cassandra import layout as online_layout
from sinks.cassandra.budget import MIN_TIMEOUT_S, left_s, reads_from
from sinks.cassandra.reader import DEFAULT_BATCH_BUDGET_S, DEFAULT_BUDGET_S, Stored, _late, _none_within, _vector

DEFAULT_PARTITIONS_PER_READ = 25  # entities of a batch per query (one ``IN`` on the partition key); 1: a query each
# ScyllaDB refuses more partition keys per query by default (max_partition_key_restrictions_per_query).
MAX_PARTITIONS_PER_READ = 100
RECONNECT_DELAY_MS = 500  # as the Python driver's policy (sinks.factory): a node back is used within a second
REOPEN_AFTER_S = 1.0  # reads failing this long: a fresh session is opened beside the failing one
LOOK_EVERY_S = 0.25  # while reads fail, how often the background looks whether a fresh session is due
MAX_SPECULATIVE_EXECUTIONS = 4  # extra attempts of one read at most (each on another replica)


def store_errors() -> tuple[type[BaseException], ...]:
    """What acsylla raises when the store failed, not our code (a 503): no host, connection and I/O
    errors, timeouts, a full request queue, the server's own overload, unavailability and failures. A
    bad parameter or an invalid query is a bug and propagates (a 500)."""
    from acsylla import errors as e

    return (
        e.CassErrorLibNoHostsAvailable,
        e.CassErrorLibUnableToConnect,
        e.CassErrorLibRequestTimedOut,
        e.CassErrorLibRequestQueueFull,
        e.CassErrorLibNoStreams,
        e.CassErrorLibWriteError,
        e.CassErrorLibUnableToSetKeyspace,
        e.CassExceptionConnectionError,
        e.CassErrorServerReadTimeout,
        e.CassErrorServerReadFailure,
        e.CassErrorServerUnavailable,
        e.CassErrorServerOverloaded,
        e.CassErrorServerIsBootstrapping,
        e.CassErrorServerServerError,
        e.CassErrorSourceSsl,
        OSError,
        TimeoutError,
    )


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # a cancelled batch's outcome is not wanted: no "never retrieved" warning


def _unavailable(exc: BaseException) -> StoreUnavailableError:
    return StoreUnavailableError(f"online store (Cassandra) read failed: {type(exc).__name__}: {exc}")


class NativeOnlineReader:
    """An ``AsyncVectorSource`` (``serving.online.vectors``) with ``read_each_async`` for batches."""

    def __init__(
        self,
        hosts: Sequence[str],
        port: int,
        keyspace: str,
        *,
        timeout_s: float = DEFAULT_BUDGET_S,
        batch_timeout_s: float = DEFAULT_BATCH_BUDGET_S,
        connect_timeout_s: float = 5.0,
        progress_ttl_s: float = 1.0,
        partitions_per_read: int = DEFAULT_PARTITIONS_PER_READ,
        speculative_delay_ms: int = 0,
        speculative_executions: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``speculative_delay_ms`` > 0: a read not answered after that long is sent again to the next replica
        in its plan, up to ``speculative_executions`` extra attempts, the first answer winning (the C++ driver's
        constant speculative execution policy; reads are marked idempotent, as they are). It needs a replica
        to go to: on one node (replication factor 1) there is none and no read is repeated."""
        if not 1 <= partitions_per_read <= MAX_PARTITIONS_PER_READ:
            raise ValueError(
                f"partitions_per_read must be from 1 to {MAX_PARTITIONS_PER_READ}, not {partitions_per_read}"
            )
        if not 0 <= speculative_delay_ms < timeout_s * 1000:
            raise ValueError(
                f"speculative_delay_ms must be from 0 to less than the budget ({timeout_s * 1000:.0f} ms), "
                f"not {speculative_delay_ms}"
            )
        if not 1 <= speculative_executions <= MAX_SPECULATIVE_EXECUTIONS:
            raise ValueError(
                f"speculative_executions must be from 1 to {MAX_SPECULATIVE_EXECUTIONS}, not {speculative_executions}"
            )
        self._speculative = (speculative_delay_ms, speculative_executions) if speculative_delay_ms else None
        self._hosts = list(hosts)
        self._partitions = partitions_per_read
        self._port = port
        self._keyspace = keyspace
        self._timeout_s = timeout_s
        self._batch_timeout_s = batch_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._progress_ttl_s = progress_ttl_s
        self._clock = clock
        self._session: Any = None
        self._made_cluster: tuple[asyncio.AbstractEventLoop, Any] | None = None
        self._failing_since: float | None = None  # the clock when reads began failing (None: the last one answered)
        self._reopened_at = float("-inf")
        self._retry: asyncio.TimerHandle | None = None  # the background reopen's next look while reads fail
        self._loop: asyncio.AbstractEventLoop | None = None
        self._select: Any = None
        self._select_many: Any = None
        self._progress_stmt: Any = None
        self._opening: asyncio.Future[None] | None = None
        self._generation = 0  # moved on by ``close``: an attempt to open a session started before it ends closed
        self._closing: set[asyncio.Future[None]] = set()  # sessions being closed in the background
        self._progress: dict[str, int] = {}
        self._progress_at = float("-inf")
        self._progress_refresh: asyncio.Future[dict[str, int]] | None = None
        self._store_errors = store_errors()

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    async def connect(self) -> None:
        """Open the session now (at start-up, in the serving loop), waiting up to the connect timeout; a
        store that does not answer is reported on stderr and left to the next request to try again."""
        try:
            await self._ready(self._connect_timeout_s)
        except StoreUnavailableError as exc:
            print(f"warning: {exc}", file=sys.stderr)

    async def _ready(self, wait_s: float | None = None, budget_s: float | None = None) -> None:
        """The session, opened if need be; a request waits for it ``wait_s`` at most (default: its budget), and a
        failure names ``budget_s`` (the budget that wait is what is left of; default ``wait_s``)."""
        if self._session is not None:
            if self._loop is asyncio.get_running_loop():
                self._reopen_if_failing()
                return
            self._session = None  # opened in another loop, which alone could await it
            self._opening = None
        loop = asyncio.get_running_loop()
        if self._opening is not None and self._opening.get_loop() is not loop:
            self._opening = None
        if self._opening is None:  # one attempt at a time; concurrent requests wait for it
            self._opening = asyncio.ensure_future(self._open())
        opening = self._opening
        wait_s = self._timeout_s if wait_s is None else wait_s
        try:  # a request waits for the session at most its budget; the attempt itself goes on to the connect timeout
            await asyncio.wait_for(asyncio.shield(opening), wait_s)
        except TimeoutError as exc:
            raise StoreUnavailableError(
                f"online store (Cassandra) read failed: no session within {(budget_s or wait_s) * 1000:.0f} ms "
                "(connecting)"
            ) from exc
        finally:
            if opening.done():
                self._opening = None
                if not opening.cancelled():
                    opening.exception()  # retrieved: the next request tries again

    def _reopen_if_failing(self) -> None:
        """A session whose reads have failed for ``REOPEN_AFTER_S`` gets a fresh one beside it (one attempt
        at a time, at most one per ``REOPEN_AFTER_S``), used once it connects: the driver's own reconnection
        took 4-5 s to use a node restarted after a kill -9, a fresh session ~0.1 s."""
        now = self._clock()
        if (
            self._failing_since is None
            or now - self._failing_since < REOPEN_AFTER_S
            or self._opening is not None
            or now - self._reopened_at < REOPEN_AFTER_S
        ):
            return
        self._reopened_at = now
        self._opening = asyncio.ensure_future(self._open())
        self._opening.add_done_callback(self._reopened)

    def _reopened(self, attempt: asyncio.Future[None]) -> None:
        if self._opening is attempt:
            self._opening = None
        if not attempt.cancelled():
            attempt.exception()  # a failed attempt: the next look after REOPEN_AFTER_S tries again

    def _failed(self) -> None:
        if self._failing_since is None:
            self._failing_since = self._clock()
        self._arm_retry()

    def _arm_retry(self) -> None:
        """While reads fail, look every ``LOOK_EVERY_S`` in the background, whether or not a request
        comes: a store back after an outage gets its fresh session as soon as it accepts one, not only once a
        request has found the old session still failing (then the first requests after a restart failed
        for as long as the fresh session took to open)."""
        if self._retry is not None or self._loop is None or self._session is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if loop is self._loop:
            self._retry = loop.call_later(LOOK_EVERY_S, self._look_again)

    def _look_again(self) -> None:
        self._retry = None
        if self._failing_since is None or self._session is None:
            return  # reads answer again, or the reader was closed
        self._reopen_if_failing()
        self._arm_retry()

    def _cluster(self) -> Any:
        """The driver's cluster (its settings), made once: every session, the first and each fresh one, is made from
        it. Each cluster holds 4 file descriptors the driver never gives back, so one made per attempt leaked 4 for
        every attempt of an outage (one each 5 s while requests came: 48 an outage minute, until the API could
        accept no connection); failed sessions of one cluster hold none. One per event loop: a session of a cluster
        made in another loop never connects."""
        import acsylla

        loop = asyncio.get_running_loop()
        if self._made_cluster is None or self._made_cluster[0] is not loop:
            self._made_cluster = (
                loop,
                acsylla.create_cluster(
                    self._hosts,
                    port=self._port,
                    connect_timeout=self._connect_timeout_s,
                    request_timeout=self._connect_timeout_s,  # set-up only: every read binds its own budget
                    constant_reconnect_delay_ms=RECONNECT_DELAY_MS,
                    token_aware_routing=True,
                    log_level="error",
                    speculative_execution_policy=None
                    if self._speculative is None
                    else acsylla.SpeculativeExecutionPolicy(
                        constant_delay_ms=self._speculative[0], max_speculative_executions=self._speculative[1]
                    ),
                ),
            )
        return self._made_cluster[1]

    async def _open(self) -> None:
        cluster = self._cluster()
        generation = self._generation
        try:
            # Never cancelled: freeing a session the driver is still connecting blocks the thread (the
            # loop's) until the connection ends; the driver's own connect timeout ends the attempt.
            session = await cluster.create_session(keyspace=self._keyspace)
            try:
                select = await session.create_prepared(online_layout.select_vector_cql(self._keyspace))
                select_many = (
                    await session.create_prepared(online_layout.select_vectors_cql(self._keyspace, self._partitions))
                    if self._partitions > 1
                    else None
                )
                progress = await session.create_prepared(online_layout.select_progress_ms_cql(self._keyspace))
            except BaseException:
                self._close_later(session)
                raise
        except self._store_errors as exc:
            hosts = ",".join(self._hosts)
            raise StoreUnavailableError(f"Cassandra at {hosts}:{self._port} unavailable: {exc!r}") from exc
        if generation != self._generation:  # the reader was closed while this attempt ran: its session goes too
            self._close_later(session)
            raise StoreUnavailableError("online store (Cassandra) read failed: the reader was closed")
        old = self._session if self._loop is asyncio.get_running_loop() else None
        self._select, self._select_many, self._progress_stmt = select, select_many, progress
        self._session = session
        self._loop = asyncio.get_running_loop()
        self._failing_since = None
        if old is not None:  # replaced after failing reads: closed in the background
            self._close_later(old)

    def _close_later(self, session: Any) -> None:
        """Close ``session`` in the background; ``close`` waits for what is still closing."""
        task = asyncio.ensure_future(session.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        task.add_done_callback(_retrieve)

    def _bound(self, statement: Any, params: list[Any], timeout_s: float) -> Any:
        # acsylla truncates to whole milliseconds, and the C++ driver takes 0 ms for no timeout at all
        bound = statement.bind(timeout=max(math.ceil(timeout_s * 1000), 1) / 1000)
        if self._speculative is not None:  # the driver repeats idempotent statements only
            bound.set_is_idempotent(True)
        if params:
            bound.bind_list(params)
        return bound

    def _failure(self, exc: BaseException) -> BaseException:
        if isinstance(exc, self._store_errors):
            self._failed()
            return _unavailable(exc)
        return exc

    def _chunks(self, entity_ids: Sequence[str]) -> list[list[str]]:
        """The batch's ids in groups of at most ``partitions_per_read``."""
        k = self._partitions
        return [list(entity_ids[i : i + k]) for i in range(0, len(entity_ids), k)]

    def _read(self, entity_type: str, ids: list[str], timeout_s: float) -> Any:
        """The query of one group: the single-partition read for one id, else one ``IN`` (padded with the
        group's last id up to the prepared size; Cassandra reads a repeated id once)."""
        if len(ids) == 1:
            return self._session.execute(self._bound(self._select, [entity_type, ids[0]], timeout_s))
        padded = ids + [ids[-1]] * (self._partitions - len(ids))
        return self._session.execute(self._bound(self._select_many, [entity_type, *padded], timeout_s))

    @staticmethod
    def _vectors(ids: list[str], result: Any) -> list[Stored]:
        """A group's answer in the order of ``ids``; an entity without a row has no cells."""
        if len(ids) == 1:  # the single-partition read (partitions_per_read 1 makes every group one id)
            return [_vector([(row.column_value_by_index(0),) for row in result])]
        if result.has_more_pages():  # never with the driver's default (no paging): rows would go missing
            raise RuntimeError(f"an IN read of {len(ids)} entities answered in pages")
        found = {row.column_value_by_index(0): _vector([(row.column_value_by_index(1),)]) for row in result}
        return [found.get(eid) or {} for eid in ids]

    async def read_many_async(self, entity_type: str, entity_ids: Sequence[str]) -> list[Stored]:
        """Every entity's vector, ``partitions_per_read`` entities per query, all queries in flight at once;
        the first failure fails the whole call. Within what is left of the request budget (``budget.left_s``)."""
        await self._ready(max(left_s(self._timeout_s), 0.0), self._timeout_s)
        timeout = left_s(self._timeout_s)
        if timeout <= 0:
            raise _late(self._timeout_s)
        chunks = self._chunks(entity_ids)
        reads = [self._read(entity_type, ids, timeout) for ids in chunks]
        try:
            async with asyncio.timeout(timeout):  # no task of its own, unlike wait_for (~13 µs a read, measured)
                results = [await reads[0]] if len(reads) == 1 else await asyncio.gather(*reads)
        except TimeoutError as exc:
            self._failed()
            raise StoreUnavailableError(
                f"online store (Cassandra) read failed: no answer within {self._timeout_s * 1000:.0f} ms"
            ) from exc
        except Exception as exc:
            raise self._failure(exc) from exc
        self._failing_since = None
        return [v for ids, result in zip(chunks, results, strict=True) for v in self._vectors(ids, result)]

    async def read_each_async(
        self, entity_type: str, entity_ids: Sequence[str]
    ) -> list[Stored | StoreUnavailableError]:
        """A batch read, as ``OnlineReader.read_each_async`` but ``partitions_per_read`` entities per query:
        every query in flight at once within the batch budget, the entities of a query that failed or
        missed it each get its StoreUnavailableError (the other queries' entities are served); a store that
        answered none of them within the request budget fails them all then; a bug fails the whole call. The batch
        budget runs from the lookup's first read (``budget.left_s``), the request budget for a first answer from when
        these reads are sent, as in ``OnlineReader.read_each_async``."""
        await self._ready(max(left_s(self._batch_timeout_s), 0.0), self._batch_timeout_s)
        n = len(entity_ids)
        if not n:
            return []
        if left_s(self._batch_timeout_s) <= 0:  # the progress read took the whole batch budget: none is sent
            return [_late(self._batch_timeout_s)] * n
        budget = max(left_s(self._batch_timeout_s), MIN_TIMEOUT_S)
        results: list[Stored | StoreUnavailableError | None] = [None] * n
        answered = 0

        async def group(start: int, ids: list[str]) -> None:
            nonlocal answered
            try:
                result = await self._read(entity_type, ids, budget)
            except Exception as exc:
                failure = self._failure(exc)
                if not isinstance(failure, StoreUnavailableError):
                    raise failure from exc
                results[start : start + len(ids)] = [failure] * len(ids)
                return
            results[start : start + len(ids)] = self._vectors(ids, result)
            answered += 1
            self._failing_since = None

        k = self._partitions
        tasks = [asyncio.ensure_future(group(g * k, ids)) for g, ids in enumerate(self._chunks(entity_ids))]
        everything = asyncio.gather(*tasks)
        first = min(self._timeout_s, budget)
        try:
            try:
                await asyncio.wait_for(asyncio.shield(everything), first)
            except TimeoutError:
                if not answered:  # a store that answered none of them within the request budget: hung or down
                    self._failed()
                    hung = _none_within(n, self._timeout_s)
                    return [hung if r is None else r for r in results]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(everything), budget - first)
        finally:
            for task in tasks:
                task.cancel()
            everything.cancel()
            everything.add_done_callback(_retrieve)
        late = _late(self._batch_timeout_s)
        return [late if r is None else r for r in results]

    async def progress_async(self) -> dict[str, int]:
        """Latest window end (epoch ms) closed by all writers of each stream, at most ``progress_ttl_s`` old."""
        now = self._clock()
        if now - self._progress_at < self._progress_ttl_s:
            return self._progress
        refresh = self._progress_refresh
        if refresh is None or refresh.get_loop() is not asyncio.get_running_loop():  # one at a time, per loop
            refresh = self._progress_refresh = asyncio.ensure_future(self._refresh_progress(now))
        return await asyncio.shield(refresh)

    async def _refresh_progress(self, now: float) -> dict[str, int]:
        try:
            # one budget for the session and the read (each had its own: a 503 at twice the budget)
            with reads_from(asyncio.get_running_loop().time()):
                await self._ready()
                left = max(left_s(self._timeout_s), MIN_TIMEOUT_S)
            try:
                result = await asyncio.wait_for(self._session.execute(self._bound(self._progress_stmt, [], left)), left)
            except TimeoutError as exc:
                self._failed()
                raise StoreUnavailableError(
                    f"online store (Cassandra) read failed: no answer within {self._timeout_s * 1000:.0f} ms"
                ) from exc
            except Exception as exc:
                raise self._failure(exc) from exc
            progress = online_layout.stream_progress(
                (row.column_value_by_index(0), row.column_value_by_index(1), row.column_value_by_index(2))
                for row in result
            )
            self._progress = progress
            self._progress_at = now
            return progress
        finally:
            self._progress_refresh = None

    async def close(self) -> None:
        """Stop looking for a fresh session and close the session (the API's shutdown, in its serving loop). A session
        still being opened is waited for (its connect timeout at most), not left to be cancelled with the loop's last
        tasks: freeing a session the driver is still connecting blocks the thread until the connection ends, and a
        SIGTERM while the store was frozen left the API hung for minutes. An attempt that ends after this closes
        its own session; sessions replaced earlier and still closing are waited for too."""
        self._generation += 1
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        opening = self._opening
        if opening is not None and not opening.done() and opening.get_loop() is asyncio.get_running_loop():
            # the session, then its prepared statements: each may take the connect timeout
            statements = 3 if self._partitions > 1 else 2
            with contextlib.suppress(Exception):  # opened or not: what matters is that it ended
                await asyncio.wait_for(asyncio.shield(opening), self._connect_timeout_s * (1 + statements) + 1.0)
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=self._connect_timeout_s)
