"""A batch run's input (``python -m jobs.feature_job --events LOCATION [--since T] [--until T]``).

The events of a table (``jobs.events_table``) or of the topic's archive (``jobs.history``) for the
definitions' one source, the records the stream's decoder would dead-letter written apart with their
reasons, and the chosen window range of event time (``since <= time < until``).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa

from registry.core.definitions import FeatureDefinition, Source, Window
from registry.core.errors import FeatureStoreError
from registry.core.settings import Settings
from registry.core.shown import shown


def one_source(definitions: list[FeatureDefinition]) -> Source:
    """The one source a table of events stands for; FeatureStoreError if the definitions read several."""
    sources = {d.source for d in definitions}
    if len(sources) != 1:
        raise FeatureStoreError(
            f"a table of events is one source's; these definitions read {len(sources)}: run one source at a time"
        )
    return sources.pop()


def epoch_ms_arg(text: str, flag: str) -> int:
    """A CLI time (``registry.core.durations.instant_ms``) as epoch ms; FeatureStoreError naming ``flag``."""
    from registry.core.durations import instant_ms

    try:
        ms = instant_ms(text)
    except ValueError as exc:
        raise FeatureStoreError(f"{flag} {exc}") from None
    if ms > LAST_MS:  # an ISO time with an offset west of UTC on 9999-12-31: the archive's scan failed on it
        raise FeatureStoreError(f"{flag} {text!r} is past the year 9999 in UTC")
    if ms < FIRST_MS:
        raise FeatureStoreError(f"{flag} {text!r} is before the year 1 in UTC")
    return ms


LAST_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z, the latest time Flink SQL and Iceberg hold: the end of an open range."""
FIRST_MS = -62_135_596_800_000
"""0001-01-01T00:00:00Z, the earliest time a timestamp column holds."""


def window_range(since: str | None, until: str | None) -> tuple[int, int] | None:
    """``(since, until)`` in epoch ms from the CLI (an open side: 1970, or ``LAST_MS``), or None."""
    if since is None and until is None:
        return None
    lo = epoch_ms_arg(since, "--since") if since is not None else 0
    hi = epoch_ms_arg(until, "--until") if until is not None else LAST_MS
    if lo >= hi:
        given = f"{lo} ms" if since is not None else "none, so 1970-01-01T00:00:00Z (0 ms)"
        ends = f"{hi} ms" if until is not None else f"none, so 9999-12-31T23:59:59.999Z ({LAST_MS} ms)"
        raise FeatureStoreError(f"--since must be before --until (--since: {given}; --until: {ends})")
    return lo, hi


def check_since(definitions: Iterable[FeatureDefinition], since: str | None) -> None:
    """FeatureStoreError when ``--since`` is given for a session-window version: a session's start is its first
    event, which may lie any time before ``since`` (each event within the gap of the one before), so cutting the
    events at ``since`` would write a session that starts later, with fewer events, than the stream's."""
    if since is None:
        return
    sessions = sorted(f"{d.entity}.{d.name}@{d.version}" for d in definitions if d.window.kind == "session")
    if sessions:
        raise FeatureStoreError(
            f"--since cannot cut session windows ({', '.join(sessions)}): a session that began before it would be "
            "written from its later events only; compute them without --since (--until alone is exact: a session is "
            "written when it ends before it)"
        )


def until_operator(window: Window) -> str:
    """How a window's end must compare with ``--until`` for the window to be written: at or before it, and a
    session strictly before it. Sessions that touch merge (two events exactly ``gap`` apart are one session),
    so a session ending exactly at ``until`` would take an event at ``until``, which the range leaves out: it is
    not final, and writing it wrote a session the stream never has."""
    return "<" if window.kind == "session" else "<="


def in_range(
    events: pa.Table,
    timestamp_field: str,
    window_range_ms: tuple[int, int],
    event_id_field: str | None = None,
    key_fields: Sequence[str] = (),
) -> pa.Table:
    """The events with ``since <= time < until``; with ``event_id_field``, resends are dropped first, over every
    event given (``first_arrivals`` per entity of ``key_fields``): a resend inside the range whose original lies
    before ``since`` was counted, so a window wholly inside the range held an event the whole run ignores."""
    import pyarrow.compute as pc

    if event_id_field is not None:
        events = first_arrivals(events, timestamp_field, event_id_field, key_fields)
    ts = events.column(timestamp_field)
    since, until = window_range_ms
    return events.filter(pc.and_(pc.greater_equal(ts, since), pc.less(ts, until)))


def first_arrivals(events: pa.Table, timestamp_field: str, event_id_field: str, key_fields: Sequence[str]) -> pa.Table:
    """``events`` without resends: of the events sharing an event id and entity (every field of ``key_fields``), the
    first in time order (ties: the table's order), as the batch job's dedup keeps (``jobs.sql.dedup_sql``); an id
    reused by another entity is that entity's event; events without an id are all kept. The table's order is kept."""
    import numpy as np
    import pyarrow.compute as pc

    n = events.num_rows
    if n == 0:
        return events
    at = pa.array(np.arange(n, dtype=np.int64))
    order = pc.sort_indices(  # time order, stable
        pa.table({"t": events.column(timestamp_field), "i": at}), sort_keys=[("t", "ascending"), ("i", "ascending")]
    )
    keys = {f"k{j}": events.column(f).take(order) for j, f in enumerate(key_fields)}
    ranked = pa.table({**keys, "id": events.column(event_id_field).take(order), "i": order})
    firsts = (
        ranked.filter(pc.is_valid(ranked.column("id")))
        .group_by([*keys, "id"], use_threads=False)
        .aggregate([("i", "first")])
    )
    keep = np.zeros(n, dtype=bool)
    keep[firsts.column("i_first").to_numpy()] = True
    keep[pc.is_null(events.column(event_id_field)).to_numpy(zero_copy_only=False)] = True
    return events.filter(pa.array(keep))


def read_events_input(
    settings: Settings,
    location: str,
    definitions: list[FeatureDefinition],
    rejected_path: Path | None,
    window_range_ms: tuple[int, int] | None = None,
) -> pa.Table:
    """The valid events of ``location`` for the definitions' one source (in ``window_range_ms`` if
    given); the rest written to ``rejected_path`` with their reasons (nothing is dropped silently),
    and counted on stderr."""
    import time

    import pyarrow.parquet as pq

    from jobs.events_table import read_events
    from jobs.history import ARCHIVE, read_history
    from sinks.factory import connect_iceberg

    source = one_source(definitions)
    now_ms = time.time_ns() // 1_000_000
    events = (
        read_history(settings, source, now_ms=now_ms, time_range_ms=window_range_ms)
        if location == ARCHIVE
        else read_events(location, source, lambda: connect_iceberg(settings), now_ms=now_ms)
    )
    print(f"[events] {shown(location)}: {events.valid.num_rows:,} events", file=sys.stderr, flush=True)
    if events.rejected.num_rows:
        # and a random part: two runs in one second wrote one file, the first run's records lost
        name = f"batch-rejected-{int(time.time())}-{uuid.uuid4().hex[:8]}.parquet"
        path = rejected_path or settings.definitions_db.parent / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(events.rejected, path)
        except OSError as exc:  # a folder, a path under a file, no permission: nothing is run without them
            raise FeatureStoreError(
                f"--rejected {shown(path)}: cannot write the {events.rejected.num_rows:,} rejected record(s): "
                f"{exc.strerror or exc}"
            ) from None
        counts = ", ".join(f"{reason}: {n:,}" for reason, n in sorted(events.reasons().items()))
        print(f"[events] {events.rejected.num_rows:,} rejected ({counts}), written to {shown(path)}", file=sys.stderr)
    if window_range_ms is None:
        return events.valid
    # From the archive only the events from --since on are read: a resend whose original lies before it counts there.
    chosen = in_range(events.valid, source.timestamp_field, window_range_ms, source.event_id_field, source.key_fields)
    print(f"[events] {chosen.num_rows:,} events in [{window_range_ms[0]}, {window_range_ms[1]}) ms", file=sys.stderr)
    return chosen


__all__ = [
    "LAST_MS",
    "epoch_ms_arg",
    "first_arrivals",
    "in_range",
    "one_source",
    "read_events_input",
    "window_range",
]
