"""Audit of per-entity erasure and retention's orphan pass against docs/design.md §9 ("Retention", "Per-entity
erasure"), at their boundaries.

- Online: "the entity's partition is deleted ``USING TIMESTAMP`` ``erased_at`` µs (+999)". A keyspace not yet
  migrated from the layout before packs (§5.9, ``online_feature_values``) holds the entity's values there too:
  the erasure left them (and a migration after ``gc_grace_seconds`` would copy them back).
- Step 5: each Kafka topic is "deleted by Kafka at the latest ``now + retention.ms + segment.ms`` (+ the timestamp
  skew the broker takes, its retention check interval and file delay)": the date was cut to the second, so it named
  a time up to a second *before* that bound.
- Retention: files "older than ``--orphans-older-than``" are deleted: one exactly that old is not older, and was
  deleted.
- A ``--requested-by`` that is not UTF-8 (kept with the erasure record) reached every store's connection and then
  failed as a bare ``UnicodeEncodeError`` line; it is refused first, naming the option.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest

from registry.erasures import ErasureStore
from serving.offline import erasure
from serving.offline.erasure import erase_online, kafka_horizon
from sinks.cassandra import layout as online_layout
from sinks.iceberg import maintenance
from tests.unit.test_oracle_lifecycle_faults import _one_error_line, env
from tests.unit.test_training_sets import iceberg_table

__all__ = ["env"]  # the fixture, used by name

ERASED_AT_MS = 1_800_000_000_123
LEGACY = online_layout.LEGACY_TABLE


class FakeSession:
    """Answers the erasure's online statements: the new table holds nothing, the legacy table (when the keyspace
    has it) two rows of the entity; every statement is recorded with its arguments."""

    def __init__(self, *, legacy: bool, newest_us: int | None = None, legacy_us: tuple[int, int] = (1, 2)) -> None:
        self.legacy = legacy
        self.newest_us, self.legacy_us = newest_us, legacy_us
        self.executed: list[tuple[str, tuple[Any, ...]]] = []

    def prepare(self, cql: str) -> str:
        return cql

    def execute(self, cql: str, args: tuple[Any, ...] = (), timeout: float = 0) -> list[Any]:
        self.executed.append((cql, args))
        if "system_schema.tables" in cql:
            return [(LEGACY,)] if self.legacy and args[1] == LEGACY else []
        if cql.startswith("SELECT") and f".{LEGACY} " in cql:
            return [("txn_count_1h", self.legacy_us[0]), ("txn_sum_1h", self.legacy_us[1])]
        if cql.startswith("SELECT maxwritetime(cells)"):
            return [(self.newest_us,)] if self.newest_us is not None else []
        return []


@pytest.mark.parametrize("legacy", [True, False])
def test_the_online_erasure_deletes_the_entity_from_the_legacy_table_too_when_the_keyspace_has_it(
    legacy: bool,
) -> None:
    session = FakeSession(legacy=legacy)
    held = erase_online(session, "ks", "user", "alice", ERASED_AT_MS)  # type: ignore[arg-type]
    deletes = [(cql, args) for cql, args in session.executed if cql.startswith("DELETE")]
    at_us = ERASED_AT_MS * 1000 + 999
    assert deletes[0] == (online_layout.erase_entity_cql("ks"), (at_us, "user", "alice"))
    if legacy:
        [(cql, args)] = deletes[1:]
        assert cql.startswith(f"DELETE FROM ks.{LEGACY} USING TIMESTAMP ?") and args == (at_us, "user", "alice")
        assert held == 2  # the legacy rows count with the cells removed
    else:
        assert deletes[1:] == [] and held == 0


@pytest.mark.parametrize(
    ("newest_us", "legacy_us", "at_us"),
    [
        (None, (1, 2), ERASED_AT_MS * 1000 + 999),  # nothing newer: erased_at µs + 999, as before
        (ERASED_AT_MS * 1000 + 999, (1, 2), ERASED_AT_MS * 1000 + 999),  # exactly it
        (ERASED_AT_MS * 1000 + 1000, (1, 2), ERASED_AT_MS * 1000 + 1000),  # a cell 1 µs newer: the cell's
        ((ERASED_AT_MS - 1) * 1000 + 2000, (1, 2), ERASED_AT_MS * 1000 + 1000),  # 1 ms before, revision 2,000
        (None, (1, ERASED_AT_MS * 1000 + 7000), ERASED_AT_MS * 1000 + 7000),  # a legacy row's
    ],
)
def test_the_online_tombstone_lies_at_or_above_every_write_time_the_entity_holds(
    newest_us: int | None, legacy_us: tuple[int, int], at_us: int
) -> None:
    """A cell's write time is its window end plus its revision (its event count): a window that ended less than
    its revision's µs before erased_at was above erased_at µs + 999, and a tombstone there left it served."""
    session = FakeSession(legacy=True, newest_us=newest_us, legacy_us=legacy_us)
    erase_online(session, "ks", "user", "alice", ERASED_AT_MS)  # type: ignore[arg-type]
    deletes = [args for cql, args in session.executed if cql.startswith("DELETE")]
    assert deletes == [(at_us, "user", "alice")] * 2


class _Admin:
    CONFIGS: ClassVar[dict[str, str]] = {}

    def __init__(self, conf: dict[str, Any]) -> None:
        pass

    def list_topics(self, timeout: float = 0) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(topics={"events": None}, brokers={})

    def describe_configs(self, resources: list[Any]) -> dict[Any, Any]:
        from types import SimpleNamespace

        values = {k: SimpleNamespace(value=v) for k, v in self.CONFIGS.items()}
        return {r: SimpleNamespace(result=lambda timeout=0: values) for r in resources}


@pytest.mark.parametrize(
    ("now", "until"),
    [
        (datetime(2026, 11, 30, 12, 0, 0, 999_999, tzinfo=UTC), "2026-12-14T13:06:00.999+00:00"),
        (datetime(2026, 11, 30, 12, 0, 0, 123_456, tzinfo=UTC), "2026-12-14T13:06:00.123+00:00"),
        (datetime(2026, 11, 30, 12, 0, 0, 456, tzinfo=UTC), "2026-12-14T13:06:00+00:00"),
    ],
)
def test_the_kafka_horizon_is_the_erasure_instant_plus_retention_segment_skew_and_check_never_earlier(
    monkeypatch: pytest.MonkeyPatch, now: datetime, until: str
) -> None:
    """``erased_at`` is reported to the millisecond: the horizon is exactly it + retention.ms + segment.ms + Kafka's
    defaults for a setting the description leaves out (message.timestamp.after.max.ms 1 h, the retention check
    interval 5 min, file.delete.delay.ms 1 min)."""
    import confluent_kafka.admin

    import sinks.topics

    week_ms = 604_800_000
    _Admin.CONFIGS = {"retention.ms": str(week_ms), "segment.ms": str(week_ms), "cleanup.policy": "delete"}
    monkeypatch.setattr(confluent_kafka.admin, "AdminClient", _Admin)
    monkeypatch.setattr(sinks.topics, "require_reachable", lambda bootstrap: None)
    [left] = kafka_horizon("127.0.0.1:1", ["events"], now)
    assert left["until"] == until
    erased_at = datetime.fromisoformat(now.isoformat(timespec="milliseconds"))  # as the report gives it
    assert datetime.fromisoformat(left["until"]) == erased_at + timedelta(milliseconds=2 * week_ms + 3_960_000)


def test_an_orphan_file_exactly_as_old_as_the_limit_is_kept_and_an_older_one_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = iceberg_table(tmp_path)
    table.append(pa.Table.from_pylist([], schema=table.schema().as_arrow()))  # a snapshot: the table is read
    folder = Path(table.location().removeprefix("file://")) / "data"
    folder.mkdir(parents=True, exist_ok=True)
    at_limit, older = folder / "at_limit.parquet", folder / "older.parquet"
    now_s = 1_800_000_000
    for path, mtime_s in ((at_limit, now_s - 86_400), (older, now_s - 86_401)):
        path.write_bytes(b"orphan")
        os.utime(path, ns=(mtime_s * 10**9, mtime_s * 10**9))
    monkeypatch.setattr(maintenance.time, "time", lambda: float(now_s))
    assert maintenance.remove_orphan_files(table.refresh(), older_than_s=86_400) == 1
    assert at_limit.exists() and not older.exists()


def test_a_requested_by_that_is_not_utf8_is_refused_before_any_store(
    env: tuple[Path, Any, list[Any]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FS_CASSANDRA_HOSTS", "127.0.0.1")
    monkeypatch.setenv("FS_CASSANDRA_PORT", "1")  # nobody listens: a check after connecting would name Cassandra
    assert erasure.main(["--entity-type", "user", "--entity-id", "u1", "--requested-by", "dpo\udcff"]) == 1
    err = _one_error_line(capsys)
    assert "--requested-by 'dpo\\udcff' is not UTF-8 text" in err and "Cassandra" not in err, err
    assert ErasureStore(env[0].parent / "definitions.db").snapshot().ids == {}


class _SilentAdmin(_Admin):
    """A broker that answers the connection check and the topic listing but not a topic's configs in time."""

    def describe_configs(self, resources: list[Any]) -> dict[Any, Any]:
        from types import SimpleNamespace

        def result(timeout: float = 0) -> Any:
            raise TimeoutError()  # what concurrent.futures raises when the answer does not come within `timeout`

        return {r: SimpleNamespace(result=result) for r in resources}


def test_a_topic_whose_configs_do_not_come_in_time_is_unknown_not_a_failed_erasure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stores are erased by then: a horizon it cannot learn is reported ``unknown`` with why, as a Kafka it
    cannot reach is; it was a ``TimeoutError`` (an ``OSError``) that ended the command with exit 1, no report and
    none recorded."""
    import confluent_kafka.admin

    import sinks.topics

    monkeypatch.setattr(confluent_kafka.admin, "AdminClient", _SilentAdmin)
    monkeypatch.setattr(sinks.topics, "require_reachable", lambda bootstrap: None)
    [left] = kafka_horizon("127.0.0.1:1", ["events"], datetime(2026, 11, 30, tzinfo=UTC))
    assert left["where"] == "Kafka topic events" and left["until"] == "unknown", left
    assert "configs" in left["why"] and "10 s" in left["why"], left


@pytest.mark.parametrize("spelled", ["path", "as_uri"])
def test_orphans_are_found_in_a_warehouse_whose_folder_holds_a_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelled: str
) -> None:
    """pyiceberg writes a file URI's path as it is (an ``as_uri()`` warehouse of "s p" made a folder "s%20p"), and
    pyarrow's ``from_uri`` unescaped it: orphan removal listed a folder holding nothing and deleted nothing, silently
    (erasure relies on it for the files it could not delete). A warehouse given as a plain path is read the same."""
    from pyiceberg.catalog.sql import SqlCatalog

    from sinks.iceberg.writer import ensure_table

    folder = tmp_path / "s p"
    warehouse = str(folder) if spelled == "path" else folder.as_uri()
    table = ensure_table(SqlCatalog("unit", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=warehouse), "fs")
    table.append(pa.Table.from_pylist([], schema=table.schema().as_arrow()))
    written = next(p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith("s"))  # where pyiceberg wrote
    orphan = next(written.rglob("metadata")) / "orphan.parquet"
    orphan.write_bytes(b"orphan")
    os.utime(orphan, ns=(10**9, 10**9))
    assert maintenance.remove_orphan_files(table.refresh(), older_than_s=86_400) == 1
    assert not orphan.exists()
