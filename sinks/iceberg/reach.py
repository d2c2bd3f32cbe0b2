"""How far in event time the offline table holds rows of a writer's features: the rows its identity check covers.

A row the table can already hold is one at or below the highest ``event_time`` of the table's rows of its feature
version,
written by someone other than the writer asking and the writers of its own job attempt (another job, an earlier
attempt of the same job, an erasure, a compaction). The stream job's writer (``sinks.iceberg.writer.OfflineWriter``
with a ``TableReach``) checks identities only for rows at or below that reach, and appends the others without reading
the table's rows (design §5.4). The reach comes from the data files' statistics (their ``event_time`` upper bound,
``feature_name`` and ``feature_version`` bounds), never from their rows: once, when the writer starts, from a plan of the current
snapshot; then, at each look before an append, from the files of the snapshots committed since the last look
(an append asserts the snapshot it was based on, so a commit between the look and the append makes it lose the race,
and the retry looks again). Snapshots tagged with the writer's own job attempt (``ATTEMPT_PROPERTY``) are left out:
within an attempt the writer subtasks hold different entities. A file without an ``event_time`` bound puts the
reach at the end of time (everything is checked). Files whose bounds admit none of the writer's (feature name,
version) pairs do not count: a backfill of a new version is not checked against the live job's files of the version
before it (a file whose name bounds admit one of its features and whose version bounds admit that feature's
version does count, whichever features it holds between those bounds). Deleted rows still count (the bound stays).
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pyiceberg.table import Table

ATTEMPT_PROPERTY = "featurestore.attempt"
"""The snapshot summary property a writer with an ``attempt`` tags its appends with."""
END_OF_TIME_US = 2**63 - 1
"""The reach when a file of the writer's features has no ``event_time`` bound: every row is checked."""


class TableReach:
    """The highest ``event_time`` (epoch µs; None: no row) of the writer's feature versions in the table at its last look,
    not counting the appends of the writer and of its job attempt's other writers since it started. Not thread-safe:
    one writer's."""

    def __init__(self, table: Table, features: Collection[tuple[str, int]], attempt: str | None = None) -> None:
        """Plans ``table``'s current snapshot (reads its manifests) for the files of ``features``, the (feature name,
        version) pairs the writer writes. ``attempt``: the
        writer's job attempt (``attempt_of``), shared with the job's other writer subtasks of that attempt, whose rows
        hold other entities: the snapshots they commit (tagged with it, ``snapshot_properties``) do not move the reach.
        """
        if not features:
            raise ValueError("a table reach needs the (name, version) of the features it is about")
        self._features = sorted(set(features))
        self._names = sorted({name for name, _ in self._features})
        self.attempt = attempt
        self.snapshot_properties: dict[str, str] = {ATTEMPT_PROPERTY: attempt} if attempt is not None else {}
        self.snapshot_id: int | None = table.metadata.current_snapshot_id
        self.reach_us: int | None = self._planned(table)
        self.plans = 1  # how often the table was planned (a lookback that could not follow the snapshots plans again)

    def may_hold(self, ends_us: np.ndarray) -> np.ndarray:
        """Which rows (by ``event_time``, epoch µs) the table may hold already: those at or below the reach."""
        if self.reach_us is None:
            return np.zeros(len(ends_us), dtype=bool)
        return np.asarray(ends_us <= self.reach_us)

    def looked(self, table: Table) -> None:
        """``table`` was refreshed (``table.refresh()``): the reach grows by the rows of the files the snapshots
        since the last look added, planned again if those snapshots cannot be followed back to it (expired, or a
        rollback)."""
        added = _files_added_since(table, self.snapshot_id, self.attempt)
        if added is None:
            reach = self._planned(table)
            self.plans += 1
        else:
            reach = self._highest(added)
        if reach is not None and (self.reach_us is None or reach > self.reach_us):
            self.reach_us = reach
        self.snapshot_id = table.metadata.current_snapshot_id

    def appended(self, table: Table) -> None:
        """The writer's own append committed (``table.metadata`` is its snapshot's): its rows do not move the reach,
        and no one else committed between the snapshot it was based on and its own (the append asserted it)."""
        self.snapshot_id = table.metadata.current_snapshot_id

    def _planned(self, table: Table) -> int | None:
        from pyiceberg.expressions import In

        if table.metadata.current_snapshot_id is None:
            return None
        scan = table.scan(row_filter=In("feature_name", self._names))
        return self._highest(task.file for task in scan.plan_files())

    def _highest(self, files: Iterable[Any]) -> int | None:
        """The highest ``event_time`` upper bound of the files that may hold one of the writer's feature versions."""
        from pyiceberg.conversions import from_bytes
        from pyiceberg.types import TimestamptzType

        from sinks.iceberg.layout import SCHEMA

        time_id = SCHEMA.find_field("event_time").field_id
        name_id = SCHEMA.find_field("feature_name").field_id
        version_id = SCHEMA.find_field("feature_version").field_id
        highest: int | None = None
        for data_file in files:
            lower, upper = data_file.lower_bounds or {}, data_file.upper_bounds or {}
            if not self._admits(lower.get(name_id), upper.get(name_id), lower.get(version_id), upper.get(version_id)):
                continue  # holds none of the writer's feature versions
            high = upper.get(time_id)
            if high is None:
                return END_OF_TIME_US
            end = int(from_bytes(TimestamptzType(), high))  # type: ignore[arg-type]
            highest = end if highest is None else max(highest, end)
        return highest

    def _admits(self, low_name: Any, high_name: Any, low_version: Any, high_version: Any) -> bool:
        """Whether a file with these bounds (serialized; None: none) may hold one of the writer's (name, version)
        pairs: a name within the name bounds whose version is within the version bounds. Truncated string bounds
        are still bounds (a truncated lower bound is a prefix, a truncated upper bound is rounded up)."""
        from pyiceberg.conversions import from_bytes
        from pyiceberg.types import IntegerType, StringType

        first, last = 0, len(self._features)
        if low_name is not None and high_name is not None:
            first = bisect.bisect_left(self._features, (str(from_bytes(StringType(), low_name)),))
            high_text = str(from_bytes(StringType(), high_name))
            last = first
            while last < len(self._features) and self._features[last][0] <= high_text:
                last += 1
        if first == last:
            return False
        if low_version is None or high_version is None:
            return True
        low = int(from_bytes(IntegerType(), low_version))  # type: ignore[arg-type]
        top = int(from_bytes(IntegerType(), high_version))  # type: ignore[arg-type]
        return any(low <= version <= top for _, version in self._features[first:last])


def attempt_of(run_id: str, attempt_number: int) -> str:
    """A job attempt's tag: the job's submission (a random id its client draws) and Flink's attempt number, which a
    failover raises for every subtask it restarts (all of a job whose operators are connected by keyed exchanges), so
    a writer of a failed attempt never shares the tag of a restored one."""
    return f"{run_id}/{attempt_number}"


def _files_added_since(table: Table, snapshot_id: int | None, attempt: str | None = None) -> list[Any] | None:
    """The data files the snapshots after ``snapshot_id`` (None: from the first) up to the current one added, except
    those of snapshots tagged with ``attempt`` (``ATTEMPT_PROPERTY``), or None
    if the current snapshot does not descend from it, or if a snapshot between them is gone (expired: its parent id
    names a snapshot the table no longer has), so the walk cannot tell what was added: with ``snapshot_id`` None too,
    where a chain cut by an expiry would otherwise pass for one reaching back to the table's first snapshot."""
    from pyiceberg.manifest import ManifestContent, ManifestEntryStatus

    metadata = table.metadata
    snapshot = metadata.current_snapshot()
    files: list[Any] = []
    while snapshot is not None and snapshot.snapshot_id != snapshot_id:
        tagged = snapshot.summary is not None and snapshot.summary[ATTEMPT_PROPERTY]
        for manifest in () if attempt is not None and tagged == attempt else snapshot.manifests(table.io):
            if manifest.content != ManifestContent.DATA or manifest.added_snapshot_id != snapshot.snapshot_id:
                continue
            files += [
                entry.data_file
                for entry in manifest.fetch_manifest_entry(table.io)
                if entry.status == ManifestEntryStatus.ADDED and entry.snapshot_id == snapshot.snapshot_id
            ]
        parent = snapshot.parent_snapshot_id
        if parent is None:  # the table's first snapshot: every snapshot since ``snapshot_id`` was walked, if None
            return files if snapshot_id is None else None
        snapshot = metadata.snapshot_by_id(parent)
    if snapshot is None:  # no current snapshot, or a parent that was expired
        return files if snapshot_id is None and metadata.current_snapshot_id is None else None
    return files
