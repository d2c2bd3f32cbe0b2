"""The audit trail's records and the buffer that writes them (docs: ``registry.access``).

Every write (allowed or refused) and every read of a feature above ``internal`` leaves an
``AuditRecord``: who (principal, team), what (action, target), when (UTC, µs), from where (client
address) and the outcome (HTTP-like status). Writes are recorded before they answer; reads are buffered
and written at least once a second (``AuditLog``), so a crash loses at most the last second of reads.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from registry.core.shown import shown

log = logging.getLogger("featurestore.access")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    principal: str
    team: str
    action: str  # e.g. "register_definition", "read_features", "delete_subject"
    target: str  # "user/txn_count_1h@2", "subject:card_transactions-value", "feature_service:fraud"
    outcome: int  # the answer's HTTP status (200, 201, 401, 403, ...)
    client: str = ""  # the caller's address (IP, no port)
    detail: str = ""
    at: str = ""  # ISO UTC µs; for an aggregated record, the first one's time
    count: int = 1  # records this row stands for (reads are aggregated per flush interval, see AuditLog)


class AuditStore(Protocol):
    """Where audit records go (``registry.access_store.AccessStore``)."""

    def record(self, records: Iterable[AuditRecord]) -> int: ...


def stored_instant(text: str) -> str:
    """An ISO 8601 time, or epoch milliseconds (digits, as every other command's times), as the audit log stores
    its times (UTC, microseconds: sortable as text); a time without a zone is UTC. ValueError naming it if it is
    not a time, or has a fraction of a microsecond or an offset's fraction of a second (Python's reader drops them:
    another instant)."""
    from registry.core.durations import extended_date, finer_than_microseconds, offset_finer_than_seconds, parse_instant

    if text.isascii() and text.isdigit():
        return parse_instant(text).astimezone(UTC).isoformat(timespec="microseconds")
    if finer_than_microseconds(text) or offset_finer_than_seconds(text):
        raise ValueError(f"{text!r}: a time to the microsecond at most, with an offset to the second at most")
    try:
        if not extended_date(text):  # basic form: 1796032800000Z read as the year 1796
            raise ValueError
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {shown(text, quoted=True)} (e.g. 2026-11-30T10:00:00Z)") from None
    try:
        utc = (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00
        raise ValueError(f"ISO 8601 time {text!r} is outside years 1-9999 once in UTC") from None
    return utc.isoformat(timespec="microseconds")


class AuditLog:
    """Audit records to the store: writes at once (``now=True``); reads counted and flushed every second.

    Buffered records are aggregated: the records of one flush interval that agree on everything but
    their time become one row whose ``count`` says how many there were and whose ``at`` is the first
    one's time, so the audit table grows with distinct (caller, feature, outcome, client) per second,
    not with the read rate.
    """

    def __init__(self, store: AuditStore, *, flush_s: float | None = 1.0) -> None:
        """``flush_s`` None: no flushing thread (buffered records are written by ``flush``/``close`` only)."""
        self._store = store
        self._pending: dict[tuple[str, str, str, str, int, str, str], list[float]] = {}  # key -> [first, count]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if flush_s is not None:
            self._thread = threading.Thread(target=self._run, args=(flush_s,), name="audit-flush", daemon=True)
            self._thread.start()

    def add(self, record: AuditRecord, *, now: bool = False) -> None:
        if now:
            self._store.record([record if record.at else _stamped(record)])
            return
        self.count(
            (record.principal, record.team, record.action, record.target, record.outcome, record.client, record.detail)
        )

    def count(self, key: tuple[str, str, str, str, int, str, str], at_s: float | None = None) -> None:
        """One more record ``(principal, team, action, target, outcome, client, detail)``, buffered."""
        at = time.time() if at_s is None else at_s
        with self._lock:
            seen = self._pending.get(key)
            if seen is None:
                self._pending[key] = [at, 1]
            else:
                seen[1] += 1

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        records = [
            AuditRecord(*key, at=datetime.fromtimestamp(first, UTC).isoformat(timespec="microseconds"), count=int(n))
            for key, (first, n) in pending.items()
        ]
        try:
            self._store.record(records)
        except sqlite3.Error:
            log.exception("audit records could not be written; kept for the next flush")
            with self._lock:
                for key, (first, n) in pending.items():
                    seen = self._pending.setdefault(key, [first, 0])
                    seen[0], seen[1] = min(seen[0], first), seen[1] + n

    def _run(self, flush_s: float) -> None:
        while not self._stop.wait(flush_s):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()


def _stamped(r: AuditRecord) -> AuditRecord:
    return AuditRecord(r.principal, r.team, r.action, r.target, r.outcome, r.client, r.detail, now_iso(), r.count)


__all__ = ["AuditLog", "AuditRecord", "AuditStore", "now_iso", "stored_instant"]
