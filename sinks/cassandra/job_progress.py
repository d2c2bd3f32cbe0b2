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
from typing import TYPE_CHECKING, NamedTuple

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


class JobStart(NamedTuple):
    """What a job's writers need to know of the progress rows its start found (``start_job_progress``)."""

    carried: frozenset[tuple[str, str, int]]
    """The versions it computes with their streams that have a progress key of their own: written beside the stream's."""
    silent: frozenset[tuple[str, str]]
    """``(key, writer)``: rows its writers do not record (a bounded run's writers a key's writers did not have)."""


NO_START = JobStart(frozenset(), frozenset())
"""A job whose start found nothing to carry or keep silent (a first job, a test's writer)."""


def start_job_progress(
    session: Session,
    keyspace: str,
    computing: Iterable[FeatureDefinition],
    registered: Iterable[FeatureDefinition],
    *,
    per_version: bool,
    writers: Sequence[str],
    bounded: bool = False,
) -> JobStart:
    """Before a job computing ``computing`` starts, whose writers (``writers``: their ids, the job's bucket numbers)
    record its progress under each version's own key (``per_version``) or under their streams' keys (progress per
    stream), and which ends (``bounded``) or runs on.

    With progress per stream: the versions of ``computing`` that have a progress key of their own (a backfill's, a job
    of their own's) keep it, and the job writes it too (``JobStart.carried``); every other version of ``registered``
    on their streams without such a key (one this job does not compute: an older version a feature service pins) is
    given one now at its stream's progress, as the key's last-known row (``layout.LAST_KNOWN_WRITER``, written at that
    progress, kept as long as Cassandra keeps a row): the first row a job or backfill of that version writes under the
    key decides instead. Serving judges a version with a key of its own by it, any other by its stream's (design §3.8).
    A stream's progress says what the jobs that moved it had written; this job, replaying in a new consumer group, has
    not written that far yet, and of a version no job computes nobody writes anything: judged by the stream's
    progress, their absent windows were served as empty (0 for a count, ``present``) until the replay passed them, or
    for good.

    Then the writers a key the job writes does not have yet (its rows' minimum is over the writers it has): such a
    writer's first row, at the job's replay point, moved the key back by as much as the replay (a quiet entity served
    its last window again, ``present``), and a writer no later job had held the key there for a day. A job that runs
    on gives each of them a row at the key's point (written at it; kept as long as the row that point comes from is, a
    day at most), so its own rows count once they pass it; a job that ends records none of theirs under a key that
    has writers' rows (``JobStart.silent``), leaving the key to the writers it has (a live job's). Keys with no
    writer's row left: a stream's key is seeded at its last-known row by a job that runs on, and written as before by
    one that ends; a version's own key with its last-known row alone (a key given at a job's start, above) says
    nothing of what a job of that version wrote, so its first writer's row decides, as it did.
    """
    computing = list(computing)
    if not computing:
        return NO_START
    try:
        rows = [(r[0], r[1], int(r[2]), r[3]) for r in session.execute(online_layout.select_progress_ttl_cql(keyspace))]
    except Exception as exc:
        raise StoreUnavailableError(
            f"Cassandra read of {keyspace}.{online_layout.PROGRESS_TABLE} failed: {exc}"
        ) from exc
    progress = online_layout.stream_progress((key, writer, closed) for key, writer, closed, _ in rows)
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
    have = {(key, writer) for key, writer, _, _ in rows if writer != online_layout.LAST_KNOWN_WRITER}
    with_writers = {key for key, _ in have}
    new = [(key, writer) for key in sorted(keys) for writer in writers if (key, writer) not in have]
    if bounded:
        return JobStart(carried, frozenset((key, writer) for key, writer in new if key in with_writers))
    kept = _point_ttl_s(rows, progress)
    seeded = with_writers | {d.stream for d in computing}  # not a version's key given at a start
    seeds = [(key, writer, progress[key], kept[key]) for key, writer in new if key in seeded and key in kept]
    _write_rows(session, keyspace, seeds, True)
    return JobStart(carried, frozenset())


def _point_ttl_s(rows: Iterable[tuple[str, str, int, int | None]], progress: dict[str, int]) -> dict[str, int]:
    """How long a seed at each key's point may live: as long as the row that point comes from (the writer's row at
    the minimum; the last-known row where no writer's row is left), a day at most (``layout.PROGRESS_TTL_S``)."""
    live: dict[str, int] = {}
    last: dict[str, int] = {}
    day = online_layout.PROGRESS_TTL_S
    for key, writer, closed, ttl_s in rows:
        if closed != progress.get(key):
            continue
        ttl = day if ttl_s is None else min(int(ttl_s), day)
        into = last if writer == online_layout.LAST_KNOWN_WRITER else live
        into[key] = max(into.get(key, 0), ttl)
    return {key: ttl for key, ttl in (last | live).items() if ttl > 0}


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
