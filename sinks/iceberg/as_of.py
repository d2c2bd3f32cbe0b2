"""What a read of the offline (Iceberg) table sees: a snapshot, and optionally only rows ingested by a time.

``read_point`` resolves an ``as_of`` (None, a snapshot id, or a timezone-aware time) to a ``ReadPoint``;
a time gives the snapshot current then *and* an ``ingested_at`` cut, and a time or id whose history was
expired is refused naming the oldest snapshot kept. ``point_from`` checks a point recorded earlier (a
manifest). Times are epoch microseconds (``epoch_us``, ``iso_us``), bounded by what a datetime can spell.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from registry.core.errors import DatasetError

if TYPE_CHECKING:
    from pyiceberg.table import Table

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A table property: its first snapshot's time (epoch ms), recorded by the first expiry that removes it
# (``sinks.iceberg.maintenance.expire_snapshots``), so that a time before it still reads nothing.
FIRST_SNAPSHOT_MS = "featurestore.first-snapshot-ms"
# The first and last microseconds a datetime (and so a filter's bound) can spell: a bound beyond them is none.
FIRST_US = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
LAST_US = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


def epoch_us(at: datetime) -> int:
    """Exact epoch microseconds of a timezone-aware datetime."""
    if not isinstance(at, datetime):
        raise DatasetError(f"as_of must be a timezone-aware datetime, not {at!r}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise DatasetError(f"as_of must be timezone-aware, not the naive {at.isoformat()}")
    return (at - _EPOCH) // timedelta(microseconds=1)


def iso_us(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=us)).isoformat()


@dataclass(frozen=True, slots=True)
class ReadPoint:
    """What a read sees. ``snapshot_id`` None means the table had no snapshot yet: nothing is visible."""

    snapshot_id: int | None
    ingested_until_us: int | None = None  # only rows with ingested_at <= this (epoch µs)


def plain_as_of(as_of: Any) -> Any:
    """``as_of`` with a numpy integer (a snapshot id taken from a DataFrame) as the ``int`` it holds; else as given."""
    if isinstance(as_of, numbers.Integral) and not isinstance(as_of, bool | int):
        return int(as_of)
    return as_of


def read_point(table: Table, as_of: int | datetime | None) -> ReadPoint:
    """Resolve ``as_of``: None = the table's current snapshot, an int = that snapshot id, a
    timezone-aware datetime = the snapshot current at that time plus rows ingested by then (before the
    table's first snapshot: nothing; a time whose snapshot was expired: DatasetError, as for its id)."""
    if as_of is None:
        current = table.current_snapshot()
        return ReadPoint(current.snapshot_id if current is not None else None)
    as_of = plain_as_of(as_of)
    if isinstance(as_of, bool) or not isinstance(as_of, int | datetime):
        raise DatasetError(
            f"snapshot_id / as_of must be a snapshot id (int) or a timezone-aware datetime, not {as_of!r}"
        )
    if isinstance(as_of, int):
        if table.snapshot_by_id(as_of) is None:
            raise DatasetError(
                f"the offline table has no snapshot {as_of} (never existed, or expired){_oldest_kept(table)}"
            )
        return ReadPoint(as_of)
    until_us = epoch_us(as_of)
    if until_us > LAST_US:  # an aware time near the end of year 9999 in a zone behind UTC
        raise DatasetError(f"as_of {as_of.isoformat()} is past the year 9999 (UTC): no time the table records is")
    # Before year 1 (UTC; an aware time early on 0001-01-01 in a zone ahead of UTC) is before every snapshot, so
    # nothing is read; the cut is held at year 1, the earliest time a filter or a manifest can spell.
    until_us = max(until_us, FIRST_US)
    snapshot = table.snapshot_as_of_timestamp(until_us // 1000)
    # The snapshot current then was expired when the first snapshot kept after that time has an expired parent:
    # the time falls before the table's first snapshot kept (nothing known then only if that one has no parent),
    # or in a gap an expiry left after an older snapshot kept (a training set's pin), which is not the one.
    later = [s for s in table.metadata.snapshots if s.timestamp_ms > until_us // 1000]
    after = min(later, key=lambda s: s.timestamp_ms) if later else None
    first_ms = _first_snapshot_ms(table)
    if snapshot is None and first_ms is not None and until_us // 1000 < first_ms:
        return ReadPoint(None, until_us)  # before the table's first snapshot, expired since: nothing, as before it was
    if (
        after is not None
        and after.parent_snapshot_id is not None
        and (snapshot is None or after.parent_snapshot_id != snapshot.snapshot_id)
        and table.snapshot_by_id(after.parent_snapshot_id) is None
    ):
        raise DatasetError(
            f"the offline table's history at {as_of.isoformat()} was expired{_oldest_kept(table)} (pin a training "
            "set's snapshot to keep it, or read as of a later time)"
        )
    return ReadPoint(snapshot.snapshot_id if snapshot is not None else None, until_us)


def _first_snapshot_ms(table: Table) -> int | None:
    """The table's first snapshot's time as the first expiry recorded it (``sinks.iceberg.maintenance``), if it did."""
    raw = table.properties.get(FIRST_SNAPSHOT_MS)
    return int(raw) if raw is not None and raw.isascii() and raw.isdigit() else None


def _oldest_kept(table: Table) -> str:
    """``: its oldest snapshot kept is N, of <time>`` (the table's), or nothing for a table without one."""
    kept = table.metadata.snapshots
    if not kept:
        return ""
    oldest = min(kept, key=lambda s: s.timestamp_ms)
    return f": its oldest snapshot kept is {oldest.snapshot_id}, of {iso_us(oldest.timestamp_ms * 1000)}"


def point_from(snapshot_id: int | None, ingested_until_us: int | None, table: Table) -> ReadPoint:
    """A read point recorded earlier (a manifest), checked against the table."""
    if snapshot_id is not None and table.snapshot_by_id(snapshot_id) is None:
        raise DatasetError(f"the offline table has no snapshot {snapshot_id} any more (expired?): cannot rebuild")
    return ReadPoint(snapshot_id, ingested_until_us)
