"""Progress rows written before a stream job starts (design §3.8, §4 ``stream_progress``).

A job's writers record how far they have written under each progress key the job writes (a stream's, or a version's
own: ``layout.version_stream``), one row per writer, each written at its own point so that it only moves forward;
readers take the minimum over a key's writers' rows (``layout.stream_progress``). What a job finds at its start
decides what those rows must be beforehand: ``start_job_progress`` for any stream job, ``hold_version_progress`` for a
job the follower adds for versions alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from registry.core.definitions import FeatureDefinition
from registry.core.errors import StoreUnavailableError
from registry.core.timeline import step_ms
from sinks.cassandra import layout as online_layout

if TYPE_CHECKING:
    from cassandra.cluster import Session


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def own_key(d: FeatureDefinition) -> str:
    """The progress key of ``d``'s own (``layout.version_stream``)."""
    return online_layout.version_stream(d.stream, d.entity, d.name, d.version)


def start_job_progress(
    session: Session,
    keyspace: str,
    computing: Iterable[FeatureDefinition],
    registered: Iterable[FeatureDefinition],
    *,
    per_version: bool,
    writers: Sequence[str],
) -> frozenset[tuple[str, str, int]]:
    """Before a job computing ``computing`` starts, whose writers (``writers``: their ids, the job's bucket numbers)
    record its progress under each version's own key (``per_version``) or under their streams' keys (progress per
    stream). Returns, for a job with progress per stream, the keys of those of ``computing`` that have a progress key
    of their own (a backfill's, a job of their own's), which the job then writes too.

    With progress per stream, every other version of ``registered`` on their streams without such a key (one this job
    does not compute: an older version a feature service pins) is given one now at its stream's progress, as the key's
    last-known row (``layout.LAST_KNOWN_WRITER``, written at that progress, kept as long as Cassandra keeps a row): the
    first row a job or backfill of that version writes under the key decides instead. Serving judges a version with a
    key of its own by it, any other by its stream's (design §3.8). A stream's progress says what the jobs that moved it
    had written; this job, replaying in a new consumer group, has not written that far yet, and of a version no job
    computes nobody writes anything: judged by the stream's progress, their absent windows were served as empty (0 for
    a count, ``present``) until the replay passed them, or for good.

    Then every key the job writes that already has a point gets, for each of ``writers`` without a row of its own
    under it, a row at that point (written at it, kept a day as a writer's row is): a job with more writers than the
    jobs before it (a higher parallelism, a batch run beside a live job), or one started after its writers' rows
    expired (only the last-known row left), wrote its new writers' first rows at its replay's point, and the minimum
    over the key's rows moved back by as much as the replay: a quiet entity was served its last non-zero window as
    ``present`` again, for as long as the new writer's row lived (a day, if no later job had that writer). Not a
    version's own key that has only its last-known row: a key given at a job's start (above) says nothing of what a
    job of that version wrote, so its first writer's row decides, as it did.
    """
    computing = list(computing)
    if not computing:
        return frozenset()
    try:
        rows = [(r[0], r[1], int(r[2])) for r in session.execute(online_layout.select_progress_ms_cql(keyspace))]
    except Exception as exc:
        raise StoreUnavailableError(
            f"Cassandra read of {keyspace}.{online_layout.PROGRESS_TABLE} failed: {exc}"
        ) from exc
    progress = online_layout.stream_progress(rows)
    if per_version:
        carried: frozenset[tuple[str, str, int]] = frozenset()
        keys = {own_key(d) for d in computing}
    else:
        streams = {d.stream for d in computing}
        mine = {d.key for d in computing}
        idle = [d for d in registered if d.stream in streams and d.key not in mine and d.key not in progress.own]
        kept_s = online_layout.ttl_cap_s(time.time_ns() // 1_000_000)
        last = online_layout.LAST_KNOWN_WRITER
        _write_rows(session, keyspace, [(own_key(d), last, progress.get(d.stream, 0), kept_s) for d in idle], True)
        carried = frozenset(d.key for d in computing if d.key in progress.own)
        keys = streams | {own_key(d) for d in computing if d.key in carried}
    have = {(key, writer) for key, writer, _ in rows if writer != online_layout.LAST_KNOWN_WRITER}
    written = {key for key, _ in have} | {d.stream for d in computing}  # keys writers wrote, and the streams'
    seeds = [
        (key, writer, progress[key], online_layout.PROGRESS_TTL_S)
        for key in sorted(keys & written)
        if key in progress
        for writer in writers
        if (key, writer) not in have
    ]
    _write_rows(session, keyspace, seeds, True)
    return carried


def hold_version_progress(session: Session, keyspace: str, definitions: Iterable[FeatureDefinition]) -> None:
    """Give each of ``definitions`` a progress key of its own (``layout.version_stream``) at the epoch, written at the
    current time (writer ``0``, which every job has): a job about to compute them alone has written none of their
    windows yet. Its own rows (written at their window ends) take over once they pass this moment, within a
    window step of it once the job has caught up; until then serving reads their stored values as they are, never
    as the empty windows their stream's progress would imply. Kept a day past one window step (``hold_ttl_s``).
    """
    now_ms = time.time_ns() // 1_000_000
    _write_rows(session, keyspace, [(own_key(d), "0", 0, hold_ttl_s(d, now_ms)) for d in definitions], False)


def _write_rows(session: Session, keyspace: str, rows: Iterable[tuple[str, str, int, int]], at_closed: bool) -> None:
    """Progress rows, ``(key, writer, closed_through ms, TTL s)`` each, written at their closed_through
    (``at_closed``: as a job's rows are, so that any later one decides) or at the current time."""
    rows = list(rows)
    if not rows:
        return
    now_ms = time.time_ns() // 1_000_000
    try:
        statement = session.prepare(online_layout.own_progress_cql(keyspace))  # a node lost here: unavailable too
        for key, writer, closed_ms, ttl_s in rows:
            written_us = (closed_ms if at_closed else now_ms) * 1000
            session.execute(statement, (key, writer, _ts(closed_ms), _ts(now_ms), written_us, ttl_s))
    except Exception as exc:
        raise StoreUnavailableError(
            f"Cassandra write to {keyspace}.{online_layout.PROGRESS_TABLE} failed: {exc}"
        ) from exc


def hold_ttl_s(definition: FeatureDefinition, now_ms: int) -> int:
    """How long a held key written at ``now_ms`` lives: a day (``layout.PROGRESS_TTL_S``) past one window step of
    ``definition`` (a session window: a day), at most the longest TTL Cassandra takes then (``layout.ttl_cap_s``).
    Expired while its job has not yet passed it, it would still hide the job's earlier rows, and the version would
    lose its own key."""
    step = step_ms(definition) or 0
    return min(online_layout.PROGRESS_TTL_S + -(-step // 1000), online_layout.ttl_cap_s(now_ms))
