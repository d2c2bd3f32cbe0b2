"""The archiver's ``--retention`` (design §5.7): records whose Kafka timestamp is older than ``now - retention``
go, one exactly at the limit stays. A retention reaching back before 1970 deletes nothing (no Kafka timestamp
is older); one reaching before year 1 ended the archiver in ``OverflowError: date value out of range`` at its
next start once anything was archived (``--retention 1000000d``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from sinks import archive
from sinks.iceberg import maintenance


def _expire(monkeypatch: pytest.MonkeyPatch, retention: timedelta, now_ms: int) -> list[Any]:
    deleted: list[Any] = []
    summary = SimpleNamespace(additional_properties={archive.NEXT_OFFSETS: '{"0": 3}'})
    table = SimpleNamespace(current_snapshot=lambda: SimpleNamespace(summary=summary))

    def delete_rows(t: Any, where: Any, **kwargs: Any) -> Any:
        deleted.append(where)
        return t

    monkeypatch.setattr(maintenance, "delete_rows", delete_rows)
    monkeypatch.setattr(archive.time, "time_ns", lambda: now_ms * 1_000_000)
    archiver = archive.Archiver(None, table, "t", expire_after_s=0, retention=retention)  # type: ignore[arg-type]
    archiver._expire()
    return deleted


@pytest.mark.parametrize("days", [1_000_000, 999_999_999])
def test_a_retention_reaching_before_year_one_deletes_nothing(monkeypatch: pytest.MonkeyPatch, days: int) -> None:
    assert _expire(monkeypatch, timedelta(days=days), now_ms=1_800_000_000_000) == []


def test_a_retention_reaching_exactly_1970_deletes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _expire(monkeypatch, timedelta(milliseconds=1_800_000_000_000), now_ms=1_800_000_000_000) == []


def test_a_retention_deletes_what_is_older_than_its_horizon(monkeypatch: pytest.MonkeyPatch) -> None:
    (where,) = _expire(monkeypatch, timedelta(days=1), now_ms=1_800_000_000_000)
    horizon = datetime.fromtimestamp((1_800_000_000_000 - 86_400_000) / 1000, tz=UTC)
    assert type(where).__name__ == "LessThan" and where.term.name == "kafka_timestamp"  # one at the limit stays
    assert datetime.fromisoformat(where.literal.value) == horizon
