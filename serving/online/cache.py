"""Hot-entity protection: a short-lived, bounded, in-process cache of stored vectors with single-flight reads.

What is cached is what the store returned (each feature's value and window end) together with the
stream progress read *before* it, never a resolved answer: freshness, status and age are computed
when the vector is served, so a value served from the cache reports its true age, and a cached
vector never meets a progress newer than itself (which would turn a value not yet seen into a
false empty window).

Concurrent misses for one entity share one store read (single-flight), whether they come from many
requests or from one batch naming an entity twice. A single vector's read (``get_many``) only joins a read
that is itself bounded by the request budget, never a batch's read (bounded by the longer batch budget),
so a GET still fails at its own budget; a batch joins either. The cache holds at most ``max_entries`` vectors
(least recently used out first); an entry costs about 300 bytes per stored feature row (measured
with tracemalloc: dict slot, key and value tuples, name string, ints), so the default 1,024 entries
of 100-feature vectors hold about 30 MB per process. ``ttl_ms=0`` keeps
single-flight and caches nothing.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import NamedTuple

from registry.core.errors import StoreUnavailableError
from serving.online.vectors import AsyncVectorSource
from sinks.cassandra.budget import reads_from
from sinks.cassandra.reader import Stored

DEFAULT_TTL_MS = 1000
DEFAULT_MAX_ENTRIES = 1024


class Snapshot(NamedTuple):
    """One entity's stored vector and the stream progress read before it."""

    stored: Stored
    progress: dict[str, int]
    read_at_ms: int


class _Entry(NamedTuple):
    snapshot: Snapshot
    read_at_us: int  # the clock when the read was sent (the TTL is compared in µs, not ms cut down)
    sent: int  # the read's place in the order reads were sent (which of two reads is newer, whatever the clock)


class VectorCache:
    def __init__(
        self,
        source: AsyncVectorSource,
        *,
        clock_ms: Callable[[], int],
        ttl_ms: int = DEFAULT_TTL_MS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock_us: Callable[[], int] | None = None,
    ) -> None:
        """``clock_us`` (epoch µs), when given, is the clock the TTL is measured on (``clock_ms`` otherwise):
        an entry is served while less than ``ttl_ms`` has passed since its read, to the microsecond, and never
        while the clock reads earlier than its read (a clock set back would otherwise keep it for that long)."""
        if ttl_ms < 0 or max_entries < 1:
            raise ValueError("ttl_ms must be >= 0 and max_entries >= 1")
        self._source = source
        self._clock_us: Callable[[], int] = clock_us if clock_us is not None else lambda: clock_ms() * 1000
        self._ttl_ms = ttl_ms
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        # Reads in flight: those of single vectors (bounded by the request budget) and those of batches (the
        # batch budget), apart, so a single vector never waits on a batch's longer budget.
        self._inflight: dict[tuple[str, str], asyncio.Future[Snapshot]] = {}
        self._inflight_batch: dict[tuple[str, str], asyncio.Future[Snapshot]] = {}
        self._sent = 0  # reads sent so far
        self.hits = 0
        self.misses = 0
        self.coalesced = 0

    @property
    def ttl_ms(self) -> int:
        return self._ttl_ms

    def __len__(self) -> int:
        return len(self._entries)

    async def get_many(self, entity_type: str, entity_ids: Sequence[str]) -> list[Snapshot]:
        """Snapshots in the order of ``entity_ids``; a failed store read fails every request waiting on it."""
        out = await self.get_each(entity_type, entity_ids, partial=False)
        return out  # type: ignore[return-value]  # without ``partial`` every slot is a Snapshot or it raised

    async def get_each(
        self, entity_type: str, entity_ids: Sequence[str], *, partial: bool = True
    ) -> list[Snapshot | StoreUnavailableError]:
        """``get_many`` for a batch: with ``partial``, an entity whose read failed is its StoreUnavailableError
        and the others are served (the source's ``read_each_async`` when it has one, with the batch budget)."""
        now_us = self._clock_us()
        ttl_us = self._ttl_ms * 1000
        entries = self._entries
        out: list[Snapshot | StoreUnavailableError | None] = [None] * len(entity_ids)
        waits: list[tuple[int, asyncio.Future[Snapshot]]] = []
        miss_ids: list[str] = []
        miss_slots: list[list[int]] = []
        miss_at: dict[str, int] = {}
        for i, eid in enumerate(entity_ids):
            key = (entity_type, eid)
            entry = entries.get(key)
            if entry is not None and 0 <= now_us - entry.read_at_us < ttl_us:
                entries.move_to_end(key)
                out[i] = entry.snapshot
                self.hits += 1
                continue
            pending = self._inflight.get(key)
            if pending is None and partial:
                pending = self._inflight_batch.get(key)
            if pending is not None:
                waits.append((i, pending))
                self.coalesced += 1
            elif eid in miss_at:
                miss_slots[miss_at[eid]].append(i)
                self.coalesced += 1
            else:
                miss_at[eid] = len(miss_ids)
                miss_ids.append(eid)
                miss_slots.append([i])
                self.misses += 1
        if miss_ids:
            # Registered before anything awaits, so a concurrent request finds the read in flight. The read
            # runs as its own task: a requester that goes away does not cancel it for the others.
            loop = asyncio.get_running_loop()
            keys = [(entity_type, eid) for eid in miss_ids]
            futures: list[asyncio.Future[Snapshot]] = [loop.create_future() for _ in keys]
            (self._inflight_batch if partial else self._inflight).update(zip(keys, futures, strict=True))
            self._sent += 1
            read = asyncio.ensure_future(
                self._load(entity_type, miss_ids, keys, futures, now_us, self._sent, partial=partial)
            )
            read.add_done_callback(_retrieve)  # its requester may be gone: its failure reached the waiters already
            snapshots: list[Snapshot | StoreUnavailableError]
            try:
                snapshots = await asyncio.shield(read)
            except StoreUnavailableError as exc:  # the read failed as a whole (progress, no session)
                if not partial:
                    raise
                snapshots = [exc] * len(miss_ids)  # the misses fail; what the cache or other reads held is served
            for snap, slots in zip(snapshots, miss_slots, strict=True):
                if isinstance(snap, StoreUnavailableError) and not partial:
                    raise snap
                for i in slots:
                    out[i] = snap
        for i, pending in waits:
            try:
                out[i] = await asyncio.shield(pending)
            except StoreUnavailableError as exc:
                if not partial:
                    raise
                out[i] = exc
        return out  # type: ignore[return-value]  # every slot is filled above

    async def _load(
        self,
        entity_type: str,
        ids: list[str],
        keys: list[tuple[str, str]],
        futures: list[asyncio.Future[Snapshot]],
        now_us: int,
        sent: int,
        *,
        partial: bool = False,
    ) -> list[Snapshot | StoreUnavailableError]:
        inflight = self._inflight_batch if partial else self._inflight
        try:
            with reads_from(asyncio.get_running_loop().time()):  # one budget from the first read to the last
                progress = await self._source.progress_async()  # first: progress never runs ahead of the rows
                each = getattr(self._source, "read_each_async", None) if partial else None
                vectors: list[Stored | StoreUnavailableError] = list(
                    await each(entity_type, ids)
                    if each is not None
                    else await self._source.read_many_async(entity_type, ids)
                )
        except BaseException as exc:
            for key, fut in zip(keys, futures, strict=True):
                if inflight.get(key) is fut:
                    del inflight[key]
                if isinstance(exc, asyncio.CancelledError):
                    fut.cancel()
                else:
                    fut.set_exception(exc)
                    fut.exception()  # retrieved: nobody else may be waiting
            raise
        snapshots: list[Snapshot | StoreUnavailableError] = [
            v if isinstance(v, StoreUnavailableError) else Snapshot(v, progress, now_us // 1000) for v in vectors
        ]
        for key, fut, snap in zip(keys, futures, snapshots, strict=True):
            if inflight.get(key) is fut:
                del inflight[key]
            if isinstance(snap, StoreUnavailableError):
                fut.set_exception(snap)
                fut.exception()  # retrieved: nobody else may be waiting
                continue
            fut.set_result(snap)
            held = self._entries.get(key)
            # a batch's read sent before a single read that ended first never replaces the newer entry
            if self._ttl_ms > 0 and (held is None or held.sent < sent):
                self._entries[key] = _Entry(snap, now_us, sent)
                self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return snapshots


def _retrieve(read: asyncio.Future[list[Snapshot | StoreUnavailableError]]) -> None:
    """Mark a finished read's failure as seen (its waiters got it through their own futures), so asyncio does not
    log 'Task exception was never retrieved' for a read whose requester went away before it failed."""
    if not read.cancelled():
        read.exception()
