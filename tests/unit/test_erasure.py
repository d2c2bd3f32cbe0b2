"""The pieces of per-entity erasure that need no running service: the erasure record and its boundary,
the writers that consult it, and an Iceberg table's erase (a real table on a local warehouse).

The whole erasure against Kafka, the stream job, Cassandra and Iceberg is
``tests/integration/test_erasure.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from registry.erasures import ErasedEntities, ErasureStore
from serving.offline.erasure import erase_table
from sinks.dual import DualWriter
from sinks.iceberg.writer import OfflineWriter
from sinks.records import FeatureRow
from sinks.serving_log import ARROW_SCHEMA, ServingLogSink
from tests.recording_writer import RecordingWriter
from tests.unit.conftest import build_definition
from tests.unit.test_training_sets import iceberg_table

ERASED_AT_MS = 1_800_000_000_000
COUNT = build_definition()


def test_an_erasure_is_recorded_once_and_only_moves_forward(tmp_path: Path) -> None:
    store = ErasureStore(tmp_path / "r.db")
    store.record("user", "alice", ERASED_AT_MS, "dpo", "{}")
    store.record("user", "alice", ERASED_AT_MS - 5, "dpo", "{}")  # an older time does not move it back
    assert store.erased() == {("user", "alice"): ERASED_AT_MS}
    store.record("user", "alice", ERASED_AT_MS + 5, "dpo", '{"again": true}')
    assert store.get("user", "alice") == {
        "erased_at_ms": ERASED_AT_MS + 5,
        "erased_at": datetime.fromtimestamp((ERASED_AT_MS + 5) / 1000, UTC).isoformat(timespec="milliseconds"),
        "requested_by": "dpo",
        "report": '{"again": true}',
    }
    assert store.get("user", "bob") is None


def test_data_reaching_back_before_the_erasure_is_blocked_and_newer_data_is_not(tmp_path: Path) -> None:
    store = ErasureStore(tmp_path / "r.db")
    erased = ErasedEntities(store, refresh_s=0)
    assert not erased.blocks("user", "alice", 0)
    store.record("user", "alice", ERASED_AT_MS, "dpo", "{}")
    assert erased.blocks("user", "alice", ERASED_AT_MS - 1)
    assert not erased.blocks("user", "alice", ERASED_AT_MS)  # a window starting at the erasure: only new events
    assert not erased.blocks("user", "bob", 0)
    assert not erased.blocks("merchant", "alice", 0)


def test_the_stream_writers_drop_an_erased_entitys_replayed_windows(tmp_path: Path) -> None:
    store = ErasureStore(tmp_path / "r.db")
    store.record("user", "alice", ERASED_AT_MS, "dpo", "{}")
    offline, online = RecordingWriter(), RecordingWriter()
    writer = DualWriter(offline, online, ErasedEntities(store, refresh_s=0).blocks)
    hour = 3_600_000
    rows = [
        FeatureRow.of(COUNT, "alice", 3, ERASED_AT_MS - hour, ERASED_AT_MS),  # old window: dropped
        FeatureRow.of(COUNT, "alice", 4, ERASED_AT_MS - 1, ERASED_AT_MS + hour - 1),  # holds pre-erasure time: dropped
        FeatureRow.of(COUNT, "alice", 5, ERASED_AT_MS, ERASED_AT_MS + hour),  # only new events: written
        FeatureRow.of(COUNT, "bob", 6, ERASED_AT_MS - hour, ERASED_AT_MS),
    ]
    for row in rows:
        writer.add(row)
    writer.flush()
    assert [(r.entity_id, r.value) for r in offline.rows] == [("alice", 5), ("bob", 6)]
    assert online.rows == offline.rows
    assert writer.dropped_erased == 2


def test_the_serving_log_landing_drops_what_was_served_before_the_erasure(tmp_path: Path) -> None:
    store = ErasureStore(tmp_path / "r.db")
    store.record("user", "alice", ERASED_AT_MS, "dpo", "{}")
    sink = ServingLogSink(None, None, erased=ErasedEntities(store, refresh_s=0))  # type: ignore[arg-type]
    served = [("alice", ERASED_AT_MS - 1), ("alice", ERASED_AT_MS), ("bob", ERASED_AT_MS - 1), ("alice", 5)]
    rows = pa.Table.from_pylist([_logged(e, at) for e, at in served], schema=ARROW_SCHEMA)
    kept = sink._without_erased(rows)
    assert [(r["entity_id"], int(r["served_at"].timestamp() * 1000)) for r in kept.to_pylist()] == [
        ("alice", ERASED_AT_MS),
        ("bob", ERASED_AT_MS - 1),
    ]
    assert sink.dropped_erased == 2


def _logged(entity_id: str, served_ms: int) -> dict[str, Any]:
    return {
        "served_at": served_ms * 1000,
        "entity_type": "user",
        "entity_id": entity_id,
        "feature_name": "txn_count_1h",
        "feature_version": 1,
        "status": "present",
        "kafka_topic": "t",
        "kafka_partition": 0,
        "kafka_offset": served_ms,
        "position": 0,
    }


def test_an_iceberg_table_loses_the_entity_in_every_readable_snapshot_and_file(tmp_path: Path) -> None:
    table = iceberg_table(tmp_path)
    for end in (ERASED_AT_MS - 600_000, ERASED_AT_MS - 300_000):
        writer = OfflineWriter(table)
        for entity in ("alice", "bob", "carol"):
            writer.add(FeatureRow.of(COUNT, entity, 1, end - 3_600_000, end))
        writer.flush()
        table = table.refresh()
    table, erased, expired = erase_table(table, "user", "alice")
    assert (erased.rows_removed, erased.snapshots_expired, len(expired)) == (2, 2, 2)
    assert erased.files_deleted > 0
    assert [s.snapshot_id for s in table.metadata.snapshots] == [table.metadata.current_snapshot_id]
    entities = table.scan().to_arrow().column("entity_id").to_pylist()
    assert sorted(entities) == ["bob", "bob", "carol", "carol"]
    on_disk = [
        e for p in (tmp_path / "wh").rglob("*.parquet") for e in pq.read_table(p).column("entity_id").to_pylist()
    ]
    assert "alice" not in on_disk and sorted(on_disk) == sorted(entities)
    _, again, _ = erase_table(table, "user", "alice")
    assert (again.rows_removed, again.snapshots_expired, again.files_deleted) == (0, 0, 0)


# --- erasure by a composite key's field (docs/design.md §5.8) ---------------------------------------

PAIR = build_definition(name="pair_count", entity="user_merchant", **{"source.entity_key": ["user_id", "merchant_id"]})
FIELDS = ("user_id", "merchant_id")


def test_an_erasure_by_key_field_covers_every_entity_with_that_value(tmp_path: Path) -> None:
    store = ErasureStore(tmp_path / "r.db")
    store.record_key("user_merchant", FIELDS, "user_id", "alice", ERASED_AT_MS, "dpo", "{}")
    store.record_key("user_merchant", FIELDS, "user_id", "alice", ERASED_AT_MS - 5, "dpo", "{}")  # never back
    store.record_key("user_merchant", FIELDS, "merchant_id", "m9", ERASED_AT_MS + 7, "dpo", "{}")
    snapshot = store.snapshot()
    assert snapshot.erased_at("user_merchant", "alice|m1") == ERASED_AT_MS
    assert snapshot.erased_at("user_merchant", "alice|m9") == ERASED_AT_MS + 7  # the later of the two
    assert snapshot.erased_at("user_merchant", "bob|m9") == ERASED_AT_MS + 7
    assert snapshot.erased_at("user_merchant", "bob|alice") is None  # alice as a merchant is not the user
    assert snapshot.erased_at("user_merchant", "alice\\|x|m1") is None  # user "alice|x", not alice
    assert snapshot.erased_at("user_merchant", "not-a-pair") is None
    assert snapshot.erased_at("user", "alice") is None  # another entity type
    with pytest.raises(ValueError, match="not a key field"):
        store.record_key("user_merchant", FIELDS, "currency", "EUR", ERASED_AT_MS, "dpo", "{}")


def test_the_writers_drop_every_matching_pair_even_one_never_seen(tmp_path: Path) -> None:
    store = ErasureStore(tmp_path / "r.db")
    store.record_key("user_merchant", FIELDS, "user_id", "alice", ERASED_AT_MS, "dpo", "{}")
    offline, online = RecordingWriter(), RecordingWriter()
    writer = DualWriter(offline, online, ErasedEntities(store, refresh_s=0).blocks)
    hour = 3_600_000
    for entity_id, start in [
        ("alice|m1", ERASED_AT_MS - hour),  # dropped
        ("alice|m_new", ERASED_AT_MS - hour),  # a pair no store held at the erasure: dropped too
        ("alice|m1", ERASED_AT_MS),  # only new events: written
        ("bob|m1", ERASED_AT_MS - hour),
    ]:
        writer.add(FeatureRow.of(PAIR, entity_id, 1, start, start + hour))
    writer.flush()
    assert [(r.entity_id, r.window_start_ms) for r in offline.rows] == [
        ("alice|m1", ERASED_AT_MS),
        ("bob|m1", ERASED_AT_MS - hour),
    ]
    assert writer.dropped_erased == 2
    sink = ServingLogSink(None, None, erased=ErasedEntities(store, refresh_s=0))  # type: ignore[arg-type]
    served = [("alice|m1", ERASED_AT_MS - 1), ("alice|m2", ERASED_AT_MS), ("bob|m1", 5)]
    rows = pa.Table.from_pylist(
        [{**_logged(e, at), "entity_type": "user_merchant"} for e, at in served], schema=ARROW_SCHEMA
    )
    assert [r["entity_id"] for r in sink._without_erased(rows).to_pylist()] == ["alice|m2", "bob|m1"]


def test_erase_table_takes_several_ids(tmp_path: Path) -> None:
    table = iceberg_table(tmp_path)
    writer = OfflineWriter(table)
    for entity_id in ("alice|m1", "alice|m2", "bob|m1"):
        writer.add(FeatureRow.of(PAIR, entity_id, 1, ERASED_AT_MS - 3_600_000, ERASED_AT_MS))
    writer.flush()
    table, erased, _ = erase_table(table.refresh(), "user_merchant", ["alice|m1", "alice|m2"])
    assert erased.rows_removed == 2
    assert table.scan().to_arrow().column("entity_id").to_pylist() == ["bob|m1"]
    _, none, _ = erase_table(table, "user_merchant", [])
    assert none.rows_removed == 0
