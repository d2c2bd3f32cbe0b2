"""Brute-force reference of the stream job's semantics, in plain Python, for tests.

It replays records in partition order exactly as the job defines lateness: the watermark after a
record is the highest Kafka timestamp seen so far minus the out-of-orderness bound; a record is too
late when its timestamp is below the watermark before it minus the allowed lateness. Too-late and
undecodable records are dead-lettered; the rest are deduplicated by event id (first arrival wins)
and aggregated per sliding window.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Record:
    key: str
    timestamp_ms: int
    event_id: str | None  # None: the record is malformed and will not decode
    amount: float = 0.0


@dataclass
class Reference:
    dead_letters: list[Record] = field(default_factory=list)
    accepted: list[Record] = field(default_factory=list)
    late: int = 0  # decodable records behind the watermark yet within the allowed lateness (resends too)

    def windows(self, size_ms: int, slide_ms: int) -> dict[tuple[str, int], tuple[int, float]]:
        """(entity, window end) -> (count, sum) for every window holding an accepted event."""
        out: dict[tuple[str, int], list[float]] = defaultdict(list)
        for r in self.accepted:
            first_end = r.timestamp_ms // slide_ms * slide_ms + slide_ms
            for end in range(first_end, r.timestamp_ms + size_ms + 1, slide_ms):
                if end - size_ms <= r.timestamp_ms < end:
                    out[(r.key, end)].append(r.amount)
        return {k: (len(v), sum(v)) for k, v in out.items()}


def simulate(records: list[Record], *, out_of_orderness_ms: int, lateness_ms: int) -> Reference:
    ref = Reference()
    highest: int | None = None
    seen_ids: set[str] = set()
    for r in records:
        watermark = None if highest is None else highest - out_of_orderness_ms
        highest = r.timestamp_ms if highest is None else max(highest, r.timestamp_ms)
        if (watermark is not None and r.timestamp_ms < watermark - lateness_ms) or r.event_id is None:
            ref.dead_letters.append(r)
            continue
        if watermark is not None and r.timestamp_ms < watermark:
            ref.late += 1
        if r.event_id not in seen_ids:
            seen_ids.add(r.event_id)
            ref.accepted.append(r)
    return ref
