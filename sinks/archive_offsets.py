"""Where an events archive keeps the next offset to archive per partition: a property of its snapshots.

Each archiver append commits ``NEXT_OFFSETS`` with its snapshot. Another tool's commit (a delete) may not carry it;
readers then take it from the nearest ancestor that has it, and whoever deletes rows or expires snapshots keeps it
reachable (``carried_offsets``, ``offsets_holder``): expiring the only snapshot that holds it would make the archiver
start again from one past the highest offset left, archiving records twice or naming a gap that is not there.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyiceberg.table import Snapshot, Table

NEXT_OFFSETS = "featurestore.archive.next-offsets"
"""Snapshot property: JSON ``{"<partition>": <next offset to archive>}``, committed with each append."""


def _holder(table: Table, snapshot: Snapshot | None) -> Snapshot | None:
    """``snapshot`` or its nearest ancestor that holds the offsets, or None."""
    while snapshot is not None:
        if snapshot.summary is not None and snapshot.summary.additional_properties.get(NEXT_OFFSETS):
            return snapshot
        snapshot = table.snapshot_by_id(snapshot.parent_snapshot_id) if snapshot.parent_snapshot_id else None
    return None


def next_offsets(table: Table, snapshot_id: int | None = None) -> dict[int, int]:
    """The next offset to archive per partition, as committed with the snapshot (the current one by
    default); a partition not in it has nothing archived. A snapshot without the property (made by
    something other than the archiver, e.g. a delete that did not carry it) takes it from its nearest
    ancestor that has it, which such a commit cannot have moved; with no such ancestor left, from its
    rows: one past the highest offset of each partition."""
    snapshot = table.snapshot_by_id(snapshot_id) if snapshot_id is not None else table.current_snapshot()
    if snapshot is None:
        return {}
    holder = _holder(table, snapshot)
    if holder is not None and holder.summary is not None:
        return {int(p): int(o) for p, o in json.loads(holder.summary.additional_properties[NEXT_OFFSETS]).items()}
    rows = table.scan(snapshot_id=snapshot.snapshot_id, selected_fields=("partition", "offset")).to_arrow()
    highest = rows.group_by("partition").aggregate([("offset", "max")]).to_pylist()
    return {int(r["partition"]): int(r["offset_max"]) + 1 for r in highest}


def carried_offsets(table: Table) -> dict[str, str]:
    """The snapshot property a commit by something other than the archiver (a delete) gives its snapshot: the
    next offsets as ``next_offsets`` finds them (from the nearest ancestor that has them), so that expiring that
    ancestor afterwards loses nothing; none for a table with no snapshot."""
    return (
        {NEXT_OFFSETS: json.dumps(next_offsets(table), sort_keys=True)} if table.current_snapshot() is not None else {}
    )


def offsets_holder(table: Table) -> int | None:
    """The id of the nearest snapshot, the current one or an ancestor, that holds the next offsets."""
    holder = _holder(table, table.current_snapshot())
    return holder.snapshot_id if holder is not None else None
