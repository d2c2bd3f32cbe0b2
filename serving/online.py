"""Single-partition reads of an entity's feature vector from Cassandra, and stream progress."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from registry.errors import StoreUnavailableError
from sinks import online_layout

if TYPE_CHECKING:
    from cassandra.cluster import Session

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(value: datetime) -> int:
    if value.tzinfo is None:  # the driver returns naive UTC datetimes
        value = value.replace(tzinfo=UTC)
    return int((value - _EPOCH).total_seconds() * 1000)


@dataclass(frozen=True, slots=True)
class StoredValue:
    value: object
    feature_ts_ms: int


class OnlineReader:
    """Reads one entity's stored values with one prepared, token-aware, single-partition query.

    Stream progress (the latest window closed by every writer of a stream) is one small table, cached for
    ``progress_ttl_s`` so that a request costs one Cassandra read, not two.
    """

    def __init__(
        self,
        session: Session,
        keyspace: str,
        *,
        timeout_s: float = 0.5,
        progress_ttl_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._timeout_s = timeout_s
        self._select = session.prepare(online_layout.select_entity_cql(keyspace))
        self._progress_stmt = session.prepare(online_layout.select_progress_cql(keyspace))
        self._value_columns = list(online_layout.VALUE_COLUMNS.values())
        self._progress_ttl_s = progress_ttl_s
        self._clock = clock
        self._progress: dict[str, int] = {}
        self._progress_at = float("-inf")
        self._lock = threading.Lock()

    def read(self, entity_type: str, entity_id: str) -> dict[tuple[str, int], StoredValue]:
        try:
            rows = self._session.execute(self._select, (entity_type, entity_id), timeout=self._timeout_s)
        except Exception as exc:
            raise StoreUnavailableError(f"online store read failed: {type(exc).__name__}: {exc}") from exc
        out: dict[tuple[str, int], StoredValue] = {}
        for row in rows:
            value = next((getattr(row, c) for c in self._value_columns if getattr(row, c) is not None), None)
            out[(row.feature_name, row.feature_version)] = StoredValue(value, _ms(row.feature_ts))
        return out

    def progress(self) -> dict[str, int]:
        """Latest window end (epoch ms) closed by all writers of each stream, at most ``progress_ttl_s`` old."""
        now = self._clock()
        if now - self._progress_at < self._progress_ttl_s:
            return self._progress
        with self._lock:
            if now - self._progress_at >= self._progress_ttl_s:
                try:
                    rows = self._session.execute(self._progress_stmt, timeout=self._timeout_s)
                except Exception as exc:
                    raise StoreUnavailableError(f"online store read failed: {type(exc).__name__}: {exc}") from exc
                progress: dict[str, int] = {}
                for r in rows:
                    closed = _ms(r.closed_through)
                    progress[r.stream] = min(progress.get(r.stream, closed), closed)
                self._progress = progress
                self._progress_at = now
        return self._progress
