"""Brute-force reference of the stream job's semantics, in plain Python, for tests.

It replays records in partition order exactly as the job defines lateness: the watermark after a
record is the highest Kafka timestamp seen so far minus the out-of-orderness bound, where a timestamp
too far in the future does not count; a record is too late when its timestamp is at or below the
watermark before it minus the allowed lateness, and late when it is at or below that watermark. Too-late and bad records are dead-lettered; the
rest are deduplicated by event id per entity key (first arrival wins) and aggregated per sliding window. A record's key is its
event's entity key (``user_id``): one longer than the stores hold is ``bad_key`` (``reason``), whatever the record
was built as, unless a rule the decoder applies before that one refuses it first.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

# registry.core.entity_keys.MAX_KEY_CHARS, spelled here again: the reference does not import what it checks
MAX_KEY_CHARS = 256
# The decoder's reasons that come before ``bad_key`` in its order (the frame, the writer schema, the body, the
# required fields); every later one (non_finite, future_timestamp, ...) gives way to an over-long key.
_BEFORE_KEY = frozenset(
    {"empty", "truncated", "bad_magic", "unknown_schema_id", "bad_writer_schema", "undecodable", "missing_field"}
)


@dataclass(frozen=True)
class Record:
    key: str
    timestamp_ms: int
    event_id: str | None  # None: the record is not an event at all
    amount: float = 0.0
    bad: str | None = None  # how the record is made bad, if it is (``reason`` says what the decoder answers)


def reason(r: Record) -> str | None:
    """The dead-letter reason the decoder gives a record (None: it decodes to an event)."""
    if r.bad in _BEFORE_KEY:
        return r.bad
    if len(r.key) > MAX_KEY_CHARS:  # code points, as the decoders count
        return "bad_key"
    return r.bad


@dataclass
class Reference:
    dead_letters: list[tuple[str, Record]] = field(default_factory=list)  # (reason, record)
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
    seen_ids: set[tuple[str, str]] = set()  # (entity key, event id): an id counts once per entity
    for r in records:
        watermark = None if highest is None else highest - out_of_orderness_ms
        if r.bad != "future_timestamp":  # a clock far ahead must not move everyone's watermark
            highest = r.timestamp_ms if highest is None else max(highest, r.timestamp_ms)
        if watermark is not None and r.timestamp_ms <= watermark - lateness_ms:
            ref.dead_letters.append(("too_late", r))
            continue
        bad = reason(r)
        if bad is not None:
            ref.dead_letters.append((bad, r))
            continue
        assert r.event_id is not None, "a record that is not an event must say its reason"
        if watermark is not None and r.timestamp_ms <= watermark:
            ref.late += 1
        if (r.key, r.event_id) not in seen_ids:
            seen_ids.add((r.key, r.event_id))
            ref.accepted.append(r)
    return ref
