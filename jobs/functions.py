"""The Python operator of the stream job: the dual write at its exit (the decoder runs in the JVM: ``jobs.decoder``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping

import numpy as np
from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext, TimeDomain
from pyflink.datastream.state import ListStateDescriptor
from pyflink.metrics import MetricGroup

from jobs.batching import NO_REACH
from jobs.sql import decode_last
from registry.core.definitions import FeatureDefinition
from registry.core.durations import to_millis
from registry.core.refs import Ref
from registry.core.settings import Settings
from registry.core.timeline import step_ms
from sinks.cassandra.job_progress import NO_START, JobStart
from sinks.records import WindowResults

_END_OF_TIME = 2**63 - 2  # fires only when a bounded input ends (its final watermark is Long.MAX_VALUE)
_SESSION_PROGRESS_STEP_MS = 1_000
"""How often a session stream's progress row is rewritten at most, in event time (sessions have no window grid)."""


def _attempt_number(runtime_context: RuntimeContext) -> int:
    """Flink's attempt number of this subtask (0 first, raised by each failover). In thread mode PyFlink 2.0.2 asks the
    Java context for ``getAttemptNumber``, which Flink 2 moved to the task's info (an AttributeError there)."""
    try:
        return int(runtime_context.get_attempt_number())
    except AttributeError:
        return int(runtime_context._runtime_context.getTaskInfo().getAttemptNumber())


class WriteWindowResults(KeyedProcessFunction):  # type: ignore[misc]
    """Writes the (entity, window) results to both stores, a flush's results as columns (``WindowResults``).

    Input is the window operator's changelog in batches, one element per bucket per watermark per window subtask
    (``jobs.batching``): a window's first result and each late update's new values, each with its
    revision (the retractions were dropped in the JVM), window bounds in epoch ms.

    Results wait in Flink keyed state (checkpointed), not in Python memory, until an event-time timer
    at the window end flushes them: the window operator emits a window's results when the watermark
    passes its end, so the timer fires right after them. Live (the window ended less than
    ``live_within_ms`` ago) every timer flushes, for freshness; in a backfill timers flush once
    ``batch_rows`` results wait or ``batch_interval_s`` passed, and a timer at the end of time flushes
    what remains when a bounded input ends, so a long replay makes few large commits, not one per
    window. A crash between a checkpoint and a flush
    therefore loses nothing (the state comes back with the checkpoint), and a flush repeated after a
    crash is harmless (online writes are idempotent by write time, offline commits by row identity, checked for the
    rows at or below the table's reach when this writer opened or another committed: ``sinks.iceberg.reach``).
    ``close()`` is never a commit point: PyFlink runs it during worker teardown without waiting.

    Results for windows that end after the wall clock are dropped: a window cannot have closed before
    its end; such results appear only when a bounded run's final watermark fires open windows.

    Progress (design §5.5): each key (bucket) records its own ``stream_progress`` row, writer id the bucket's
    number, from the watermark: each key keeps an event-time timer at the last millisecond of the current window
    step (renewed when it fires; a window's flush timer is the same timer), and when a timer fires, or a marker
    arrives (the empty batch a bucket gets when the stream's reach moved), with none of the key's results left
    unwritten, the key has written every window of its entities that ends at or before ``watermark + 1`` (the
    window operator emits a window's results before the watermark that passes its last millisecond). The row says ``min(watermark + 1, reach, now)``, ``reach``
    the latest window end of any result of the stream (``jobs.batching.batch_type``): as offline, where the
    latest window end stored by any entity bounds the empty windows a reader may assume. Written when it
    enters a new window step (a second for sessions), so a key whose entities are quiet moves on with the
    stream's windows and never holds the stream's online progress back.

    Metrics: ``watermark_ms`` (this operator's event-time watermark; watermark lag is the wall clock
    minus it), ``rows_written`` (values given to the stores, an erased entity's left out), ``flushes``,
    ``offline_rows_checked`` (rows whose identity was checked against the table before their append: only rows it may
    hold already, ``sinks.iceberg.reach``) and ``offline_rows_past_retention`` (values kept out of the offline table,
    their window ended before ``now - offline_retention``; written online within their TTL), and per feature version
    (labels ``entity_type``, ``feature``, ``version``) ``online_window_end_ms`` (the
    newest window end written online: the freshness lag is the wall clock minus it) and
    ``freshness_lag_ms`` (at the latest online write, its wall-clock time minus that window end).
    Times are exported as epoch milliseconds, not as lags, because PyFlink reports Python metrics only
    when a bundle finishes: a lag computed then would freeze while the stream is idle.
    """

    def __init__(
        self,
        settings: Settings,
        features: tuple[FeatureDefinition, ...],
        *,
        live_within_ms: int = 60_000,
        batch_rows: int = 50_000,
        batch_interval_s: float = 5.0,
        bucket_of: Mapping[int, int] | None = None,
        progress_per_version: bool = False,
        start: JobStart = NO_START,
    ) -> None:
        """``bucket_of``: each key's bucket number (``jobs.batching.bucket_keys``), its progress row's writer id;
        a key missing from it is its own id. ``progress_per_version``: progress rows under each feature version's
        own key (``sinks.cassandra.layout.version_stream``), for a job computing versions beside another job on
        the same stream, instead of the stream's key; ``start``: what the progress rows at the job's start ask
        (``jobs.feature_job.prepare_stores``): the versions whose own key gets the rows beside the stream's (they have
        one), and the ``(key, writer)`` rows not recorded (a bounded run's writers new to a key)."""
        from sinks.cassandra.layout import version_stream

        self._settings = settings
        self._features = features
        self._bucket_of = dict(bucket_of or {})
        stream = features[0].stream
        # Each progress key with the longest TTL of what it judges (its last-known row's lifetime).
        own = tuple(
            (version_stream(stream, d.entity, d.name, d.version), to_millis(d.ttl))
            for d in features
            if progress_per_version or d.key in start.carried
        )
        shared = () if progress_per_version else ((stream, max(to_millis(d.ttl) for d in features)),)
        self._progress_keys: tuple[tuple[str, int], ...] = (*shared, *own)
        self._silent = start.silent
        step = step_ms(features[0])  # the time rule's window grid (one per stream)
        self._progress_step_ms = step if step is not None else _SESSION_PROGRESS_STEP_MS
        self._live_within_ms = live_within_ms
        # One id per submission of the job (this object is built by its client, and a failover restores it as it was):
        # with Flink's attempt number it tags this attempt's offline appends (``sinks.iceberg.reach.attempt_of``).
        self._run_id = uuid.uuid4().hex
        self._batch_rows = batch_rows
        self._batch_interval_s = batch_interval_s

    def open(self, runtime_context: RuntimeContext) -> None:
        from registry.erasures import ErasedEntities
        from sinks.cassandra.writer import OnlineWriter
        from sinks.dual import DualWriter
        from sinks.factory import connect_cassandra, connect_iceberg
        from sinks.iceberg.reach import TableReach, attempt_of
        from sinks.iceberg.writer import OfflineWriter, load_table

        # The job's client created both stores' tables (jobs.feature_job.prepare_stores): load only.
        self._cluster, session = connect_cassandra(self._settings, create_schema=False)
        table = load_table(connect_iceberg(self._settings), self._settings.iceberg_namespace)
        erased = ErasedEntities.at(self._settings.definitions_db)  # a replay must not bring an erased entity back
        # No progress from the flush: each key records its own from the watermark (``_record_progress``).
        self._online = OnlineWriter(session, self._settings.cassandra_keyspace, writer_id=None)
        # Identities are checked only for rows the table may hold already: at or below the highest window end of
        # these features in it now (a replay, an earlier run), or committed since by anyone but this attempt's writers
        # (design §5.4).
        attempt = attempt_of(self._run_id, _attempt_number(runtime_context))
        self._offline = OfflineWriter(
            table, reach=TableReach(table, {(d.name, d.version) for d in self._features}, attempt)
        )
        # A replay keeps values past their offline retention out of the table (retention removed them once).
        self._stores = DualWriter(self._offline, self._online, erased.blocks, lambda: time.time_ns() // 1000)
        self._pending = runtime_context.get_list_state(ListStateDescriptor("pending", Types.PICKLED_BYTE_ARRAY()))
        self._pending_count = 0  # since the last flush in this process (0 after a restore: flushes later)
        # Timers, like the pending rows, belong to a key (a bucket of entities): a process may hold several
        # keys (parallelism above 1 maps buckets to subtasks by key group), and each key's rows flush only on
        # its own timers. So the bookkeeping of what is registered is per key too.
        self._timers: dict[int, set[int]] = {}  # key -> window ends with a timer registered by this process
        self._backstop_at: dict[int, int] = {}  # key -> the processing-time flush registered for it
        self._unwritten: set[int] = set()  # keys with results in their pending state (known to this process)
        self._looked_at: set[int] = set()  # keys whose restored pending state this process has looked at
        self._progress_timer: dict[int, int] = {}  # key -> its latest progress timer (a step's last millisecond)
        self._reach: dict[int, int] = {}  # key -> the greatest reach its elements carried
        self._progress_step: dict[int, int] = {}  # key -> the window step (index) of its last progress row
        self._last_flush = time.monotonic()
        self.dropped_open_windows = 0
        metrics = runtime_context.get_metrics_group()
        self._watermark_ms = 0
        metrics.gauge("watermark_ms", lambda: self._watermark_ms)
        self._rows_written = metrics.counter("rows_written")
        # Results of windows ending after this process's clock (a producer whose clock runs ahead, within the hour
        # the decoder accepts, moved the watermark past them): not written, counted here (docs/design.md §5.4).
        self._open_windows_dropped = metrics.counter("open_windows_dropped")
        self._flushes = metrics.counter("flushes")
        self._rows_checked = metrics.counter("offline_rows_checked")  # rows that needed the identity check's scan
        self._past_retention = metrics.counter("offline_rows_past_retention")  # kept out of the offline table
        self._feature_gauges(metrics)

    def _feature_gauges(self, metrics: MetricGroup) -> None:
        """Per feature version, labelled ``entity_type``, ``feature`` (its name) and ``version``, as the feature API's
        and parity's metrics are: a version computed beside the one before it (its own job, §3.8) or a feature of
        another entity type under the same name has its own series, so the freshest of them never hides the others'
        staleness. (Flink's reporter puts each group's key in the metric's name, its value in a label.)"""
        refs = [str(Ref(d.entity, d.name, d.version)) for d in self._features]
        self._online_end_ms = dict.fromkeys(refs, 0)
        self._freshness_lag_ms = dict.fromkeys(refs, 0)
        # each feature's own freshness_slo, so the alert rules judge a feature by its definition
        self._freshness_slo_ms = {r: to_millis(d.freshness_slo) for r, d in zip(refs, self._features, strict=True)}
        for ref, d in zip(refs, self._features, strict=True):
            group = (
                metrics.add_group("entity_type", d.entity)
                .add_group("feature", d.name)
                .add_group("version", str(d.version))
            )
            group.gauge("online_window_end_ms", lambda r=ref: self._online_end_ms[r])
            group.gauge("freshness_lag_ms", lambda r=ref: self._freshness_lag_ms[r])
            group.gauge("freshness_slo_ms", lambda r=ref: self._freshness_slo_ms[r])

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        """One batch of a bucket's window results (``jobs.batching.batch_type``): columns, new values only."""
        watermark = ctx.timer_service().current_watermark()
        self._watermark_ms = max(self._watermark_ms, watermark)
        now_ms = time.time_ns() // 1_000_000
        entity_ids, starts, ends, revisions, reach, *columns = value
        key = ctx.get_current_key()
        self._look_at(key)
        if reach is not None and reach > self._reach.get(key, NO_REACH):
            self._reach[key] = reach
        self._next_progress_timer(key, watermark, ctx)
        results = [
            (entity_id, start, end, revision, values)
            for entity_id, start, end, revision, values in zip(
                entity_ids, starts, ends, revisions, zip(*columns, strict=True), strict=True
            )
            if end <= now_ms
        ]
        if len(results) < len(entity_ids):
            self.dropped_open_windows += len(entity_ids) - len(results)
            self._open_windows_dropped.inc(len(entity_ids) - len(results))
        if not results:
            if key not in self._unwritten:
                # A marker held back past its watermark (``BatchWindowResults``) comes after it: every window
                # result that watermark released has arrived, and this key has written all of its own.
                self._record_progress(key, watermark)
            return
        # One state call per batch, an item per result (a list added with add() comes back cut in thread mode).
        self._pending.add_all(results)
        self._pending_count += len(results)
        self._unwritten.add(key)
        timers = self._timers.setdefault(key, set())
        for end in {end for _, _, end, _, _ in results} - timers:
            # One timer per key and window end (Flink dedupes too, but each call costs a round trip).
            timers.add(end)
            ctx.timer_service().register_event_time_timer(end - 1)
            ctx.timer_service().register_event_time_timer(_END_OF_TIME)
        if key not in self._backstop_at:
            # An unbounded replay whose watermark stops (the topic is drained) fires no more event-time
            # timers: this flushes what the batching held back, at most one interval later.
            self._backstop_at[key] = now_ms + int(self._batch_interval_s * 1000)
            ctx.timer_service().register_processing_time_timer(self._backstop_at[key])
        return
        yield  # a generator that emits nothing: this operator is the end of the pipeline

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):  # type: ignore[no-untyped-def]
        watermark = ctx.timer_service().current_watermark()
        self._watermark_ms = max(self._watermark_ms, min(watermark, _END_OF_TIME))
        key = ctx.get_current_key()
        self._look_at(key)
        if ctx.time_domain() == TimeDomain.PROCESSING_TIME:
            self._backstop_at.pop(key, None)
            if key in self._unwritten:
                self._flush(key)
        else:
            self._timers.get(key, set()).discard(timestamp + 1)
            live = time.time_ns() // 1_000_000 - (timestamp + 1) < self._live_within_ms  # ended less than that ago
            due = (
                self._pending_count >= self._batch_rows or time.monotonic() - self._last_flush >= self._batch_interval_s
            )
            if key in self._unwritten and (live or due or timestamp == _END_OF_TIME):
                self._flush(key)
            self._next_progress_timer(key, watermark, ctx)
        if key not in self._unwritten and watermark is not None:
            self._record_progress(key, watermark)
        return
        yield

    def _next_progress_timer(self, key: int, watermark: int, ctx: KeyedProcessFunction.Context) -> None:
        """An event-time timer at the last millisecond before the next window step after ``watermark``: it fires
        when the watermark enters that step, when the key's progress may move (``_record_progress``). A window's
        flush timer (its end - 1) is the same timer when the window ends on the step, so a busy key has no more
        timers than before; a quiet key renews its own each step."""
        if watermark is None or watermark >= _END_OF_TIME:
            return
        at = ((watermark + 1) // self._progress_step_ms + 1) * self._progress_step_ms - 1
        if self._progress_timer.get(key) != at:
            self._progress_timer[key] = at
            ctx.timer_service().register_event_time_timer(at)

    def _look_at(self, key: int) -> None:
        """The first time this process meets ``key``: whether its state came back from a checkpoint with results
        not yet written (then its progress waits for their flush)."""
        if key not in self._looked_at:
            self._looked_at.add(key)
            if list(self._pending.get() or []):
                self._unwritten.add(key)

    def _record_progress(self, key: int, watermark: int) -> None:
        """``key`` has written every result it had: its progress row says ``min(watermark + 1, reach, now)``, written
        when that enters a new window step."""
        reach = self._reach.get(key, NO_REACH)
        closed_ms = min(watermark + 1, reach, time.time_ns() // 1_000_000)
        if closed_ms <= 0:
            return
        step = closed_ms // self._progress_step_ms
        if step <= self._progress_step.get(key, -1):
            return
        writer_id = str(self._bucket_of.get(key, key))
        for stream, longest_ttl_ms in self._progress_keys:
            if (stream, writer_id) not in self._silent:
                self._online.record_progress(stream, closed_ms, writer_id, longest_ttl_ms)
        self._progress_step[key] = step

    def _flush(self, key: int) -> None:
        """Writes the current key's (``key``'s) pending results to both stores."""
        pending = list(self._pending.get() or [])
        if pending:
            entity_ids, starts, ends, revisions, values = zip(*pending, strict=True)
            columns = [
                [decode_last(raw, d.value_type) for raw in column] if d.aggregation.function == "last" else column
                for d, column in zip(self._features, zip(*values, strict=True), strict=True)
            ]
            ends_ms = np.array(ends, dtype=np.int64)
            results = WindowResults(
                self._features,
                entity_ids,
                np.array(starts, dtype=np.int64),
                ends_ms,
                np.array(revisions, dtype=np.int64),
                columns,
            )
            erased, retained = self._stores.dropped_erased, self._stores.dropped_retained
            self._stores.add_results(results)
            erased, retained = self._stores.dropped_erased - erased, self._stores.dropped_retained - retained
            checked = self._offline.checked
            self._stores.flush()  # offline, then online (sinks.dual)
            self._rows_checked.inc(self._offline.checked - checked)
            self._past_retention.inc(retained)
            self._pending.clear()
            newest_end = int(ends_ms.max())
            written_ms = time.time_ns() // 1_000_000
            for name in self._online_end_ms:
                if newest_end > self._online_end_ms[name]:
                    self._online_end_ms[name] = newest_end
                    self._freshness_lag_ms[name] = written_ms - newest_end
            self._rows_written.inc(len(pending) * len(self._features) - erased)  # an erased entity's: in neither
            self._flushes.inc()
        self._unwritten.discard(key)
        self._pending_count = 0
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self._cluster.shutdown()
