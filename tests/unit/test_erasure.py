"""The pieces of per-entity erasure that need no running service: the erasure record and its boundary,
the writers that consult it, and an Iceberg table's erase (a real table on a local warehouse).

The whole erasure against Kafka, the stream job, Cassandra and Iceberg is
``tests/integration/test_erasure.py``.
"""

from __future__ import annotations

import json
import sqlite3
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
from sinks.serving_log import ARROW_SCHEMA, ServingLogSink, ensure_log_table
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
    store.record("user", "alice", ERASED_AT_MS, "dpo", "{}")  # no online delete recorded (yet): the cutoff is erased_at
    sink = ServingLogSink(None, None, erased=ErasedEntities(store, refresh_s=0))  # type: ignore[arg-type]
    served = [
        ("alice", ERASED_AT_MS - 1),
        ("alice", ERASED_AT_MS),
        ("alice", ERASED_AT_MS + 1),
        ("bob", 5),
        ("alice", 5),
    ]
    assert _kept(sink, served) == [("alice", ERASED_AT_MS + 1), ("bob", 5)]  # the erasure's own ms: dropped
    assert sink.dropped_erased == 3


GONE_MS = ERASED_AT_MS + 2_500  # the online delete ended (plus the API's cache TTL) 2.5 s after erased_at


def test_the_landing_drops_what_was_served_until_the_online_data_was_gone(tmp_path: Path) -> None:
    # The API serves the entity's old values until the online delete (step 2) ends: a vector served after erased_at
    # but before then is the erased entity's old data, and must not land.
    store = ErasureStore(tmp_path / "r.db")
    erased = ErasedEntities(store, refresh_s=0)
    store.record("user", "alice", ERASED_AT_MS, "dpo", "{}")
    store.record_online_gone("user", "alice", GONE_MS)
    store.record_key("user_merchant", FIELDS, "user_id", "carol", ERASED_AT_MS, "dpo", "{}")
    store.record_key_online_gone("user_merchant", "user_id", "carol", GONE_MS)
    store.record_online_gone("user", "bob", GONE_MS)  # no erasure of bob: nothing recorded
    assert store.erased() == {("user", "alice"): ERASED_AT_MS}
    assert erased.current().served_cutoff("user", "alice") == GONE_MS
    assert erased.current().erased_at("user", "alice") == ERASED_AT_MS  # the writers' rule is unchanged
    assert not erased.blocks("user", "alice", ERASED_AT_MS + 1)
    sink = ServingLogSink(None, None, erased=erased)  # type: ignore[arg-type]
    served = [("alice", ERASED_AT_MS + 1_000), ("alice", GONE_MS), ("alice", GONE_MS + 1), ("bob", ERASED_AT_MS + 1)]
    assert _kept(sink, served) == [("alice", GONE_MS + 1), ("bob", ERASED_AT_MS + 1)]
    pairs = [("carol|m1", ERASED_AT_MS + 1_000), ("carol|m2", GONE_MS + 1), ("dave|m1", 5)]
    assert _kept(sink, pairs, "user_merchant") == [("carol|m2", GONE_MS + 1), ("dave|m1", 5)]
    assert sink.dropped_erased == 3
    # A re-run's step 1 (a later erased_at, its online delete not done yet) keeps the instant recorded before.
    store.record("user", "alice", ERASED_AT_MS + 1, "dpo", "{}")
    assert erased.current().served_cutoff("user", "alice") == GONE_MS
    store.record_online_gone("user", "alice", GONE_MS - 1)  # never back
    assert erased.current().served_cutoff("user", "alice") == GONE_MS
    store.record("user", "alice", ERASED_AT_MS + 5_000, "dpo", "{}")
    assert erased.current().served_cutoff("user", "alice") == ERASED_AT_MS + 5_000


def test_a_registry_made_before_the_online_instant_keeps_working(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        """
        CREATE TABLE erasures (entity_type TEXT NOT NULL, entity_id TEXT NOT NULL, erased_at_ms INTEGER NOT NULL,
            requested_by TEXT NOT NULL, report TEXT NOT NULL, PRIMARY KEY (entity_type, entity_id));
        CREATE TABLE erased_keys (entity_type TEXT NOT NULL, key_fields TEXT NOT NULL, key_field TEXT NOT NULL,
            key_value TEXT NOT NULL, erased_at_ms INTEGER NOT NULL, requested_by TEXT NOT NULL, report TEXT NOT NULL,
            PRIMARY KEY (entity_type, key_field, key_value));
        CREATE TABLE erasures_seq (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
        INSERT INTO erasures_seq VALUES (1, 1);
        """
    )
    conn.execute("INSERT INTO erasures VALUES ('user', 'alice', ?, 'dpo', '{}')", (ERASED_AT_MS,))
    conn.execute(
        "INSERT INTO erased_keys VALUES ('user_merchant', ?, 'user_id', 'carol', ?, 'dpo', '{}')",
        (json.dumps(FIELDS), ERASED_AT_MS),
    )
    conn.commit()
    conn.close()
    store = ErasureStore(db)  # adds the column; the old records have none: their cutoff is erased_at
    erased = ErasedEntities(store, refresh_s=0)
    assert store.erased() == {("user", "alice"): ERASED_AT_MS}
    assert erased.current().served_cutoff("user", "alice") == ERASED_AT_MS
    sink = ServingLogSink(None, None, erased=erased)  # type: ignore[arg-type]
    served = [("alice", ERASED_AT_MS - 1), ("alice", ERASED_AT_MS + 1)]
    assert _kept(sink, served) == [("alice", ERASED_AT_MS + 1)]
    pairs = [("carol|m1", ERASED_AT_MS - 1), ("carol|m1", ERASED_AT_MS + 1)]
    assert _kept(sink, pairs, "user_merchant") == [("carol|m1", ERASED_AT_MS + 1)]
    ErasureStore(db)  # opened again: nothing to add
    store.record_online_gone("user", "alice", GONE_MS)
    assert erased.current().served_cutoff("user", "alice") == GONE_MS


def test_the_serving_log_erase_deletes_by_the_landings_cutoff(tmp_path: Path) -> None:
    log = ensure_log_table(iceberg_table(tmp_path).catalog, "fs")
    served = [("alice", ERASED_AT_MS - 1), ("alice", GONE_MS), ("alice", GONE_MS + 1), ("bob", ERASED_AT_MS)]
    log.append(pa.Table.from_pylist([_logged(e, at) for e, at in served], schema=ARROW_SCHEMA))
    log, erased, _ = erase_table(log.refresh(), "user", ["alice"], served_until_ms=GONE_MS)
    assert erased.rows_removed == 2
    left = log.scan().to_arrow()
    assert sorted(zip(left.column("entity_id").to_pylist(), left.column("kafka_offset").to_pylist(), strict=True)) == [
        ("alice", GONE_MS + 1),
        ("bob", ERASED_AT_MS),
    ]


def _kept(sink: ServingLogSink, served: list[tuple[str, int]], entity_type: str = "user") -> list[tuple[str, int]]:
    rows = pa.Table.from_pylist(
        [{**_logged(e, at), "entity_type": entity_type} for e, at in served], schema=ARROW_SCHEMA
    )
    kept = sink._without_erased(rows)
    return [(r["entity_id"], r["kafka_offset"]) for r in kept.to_pylist()]  # kafka_offset: the served ms


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
    served = [("alice|m1", ERASED_AT_MS - 1), ("alice|m1", ERASED_AT_MS), ("alice|m2", ERASED_AT_MS + 1), ("bob|m1", 5)]
    assert _kept(sink, served, "user_merchant") == [("alice|m2", ERASED_AT_MS + 1), ("bob|m1", 5)]


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
