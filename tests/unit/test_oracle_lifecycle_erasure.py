"""Per-entity erasure (README "Retention and erasure", docs/design.md §9 "Per-entity erasure") against a
model, on real Iceberg tables: the offline table, the serving-log table and an events archive. Cassandra
and Kafka are not run here (a stub session stands in for the online store, and no Kafka horizon is asked).

The model: every row of (entity type, id) leaves every readable snapshot and every data file of the
offline and serving-log tables, every archived record keyed by the id leaves the archive (the archive's
offsets carried into the delete), and nothing else moves (other entities, the same id under another
entity type, a key that merely starts with the id). Every training-set manifest pinned on an expired
snapshot is named, whatever its age; the erasure is recorded with its report; a re-run finds nothing and
moves ``erased_at`` forward.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from registry.core.catalog import FeatureCatalog
from registry.erasures import ErasureStore
from registry.training_sets import TrainingSetStore
from serving.offline.erasure import erase
from sinks import archive
from sinks.serving_log import ARROW_SCHEMA as LOG_SCHEMA
from sinks.serving_log import ensure_log_table
from tests.unit.conftest import build_definition
from tests.unit.test_oracle_lifecycle_retention import _append, _manifest, _rows
from tests.unit.test_training_sets import iceberg_table

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
NOW_US = int(NOW.timestamp() * 1_000_000)
COUNT = build_definition(name="a_count")


class StubSession:
    """The online store's part is not run here: SELECT answers nothing, DELETE is recorded."""

    def __init__(self) -> None:
        self.deleted: list[tuple[Any, ...]] = []

    def prepare(self, cql: str) -> str:
        return cql

    def execute(self, cql: str, args: tuple[Any, ...], timeout: float = 0) -> list[Any]:
        if cql.startswith("DELETE"):
            self.deleted.append(args)
        return []


def _log(table: Any, entities: list[tuple[str, str]]) -> None:
    rows = [
        {
            "served_at": NOW_US - 60_000_000, "request_id": "r", "caller": "c", "feature_service": None,
            "model_name": None, "model_version": None, "entity_type": t, "entity_id": e, "feature_name": "a_count",
            "feature_version": 1, "value_json": "1", "feature_time": NOW_US - 120_000_000, "status": "present",
            "kafka_topic": "fs_serving_log", "kafka_partition": 0, "kafka_offset": i, "position": 0,
        }
        for i, (t, e) in enumerate(entities)
    ]  # fmt: skip
    table.append(pa.Table.from_pylist(rows, schema=LOG_SCHEMA))


def _files(folder: Path, column: str) -> list[Any]:
    return [v for p in folder.rglob("*.parquet") for v in pq.read_table(p).column(column).to_pylist()]


def test_an_erasure_removes_exactly_the_entity_everywhere_and_a_rerun_finds_nothing(tmp_path: Path) -> None:
    offline = iceberg_table(tmp_path / "t")
    end = NOW_US - 3_600_000_000
    first = _append(offline, [("a_count", 1, e, end) for e in ("alice", "bob")])
    offline = offline.refresh()
    current = _append(offline, [("a_count", 1, e, end + 300_000_000) for e in ("alice", "bob")])
    offline = offline.refresh()
    # the same id under another entity type stays
    cols = offline.scan().to_arrow().slice(0, 1).to_pylist()[0] | {"entity_type": "merchant", "entity_id": "alice"}
    offline.append(pa.Table.from_pylist([cols], schema=offline.scan().to_arrow().schema))
    offline = offline.refresh()
    current = offline.metadata.current_snapshot_id
    sql = offline.catalog
    log = ensure_log_table(sql, "fs")
    _log(log, [("user", "alice"), ("user", "bob"), ("merchant", "alice")])
    arch = archive.ensure_table(sql, "fs", "card_transactions")
    records = archive.ARROW_SCHEMA.empty_table().to_pydict()
    for i, key in enumerate([b"alice", b"bob", b"alice2", None]):
        for c, v in (("kafka_timestamp", NOW_US), ("partition", 0), ("offset", i), ("key", key), ("schema_id", 1),
                     ("payload", b"x"), ("archived_at", NOW_US)):  # fmt: skip
            records[c].append(v)
    arch.append(pa.Table.from_pydict(records, schema=archive.ARROW_SCHEMA), {archive.NEXT_OFFSETS: '{"0": 4}'})
    store = TrainingSetStore(tmp_path / "ts.db")
    old, recent = _manifest(first, NOW - timedelta(days=400), 1), _manifest(current, NOW - timedelta(hours=1), 2)
    store.record(old)
    store.record(recent)
    erasures = ErasureStore(tmp_path / "ts.db")
    session = StubSession()

    def run(now: datetime) -> Any:
        return erase(
            "user", "alice", session=session, keyspace="fs", offline=offline.refresh(), serving_log=log.refresh(),  # type: ignore[arg-type]
            catalog=FeatureCatalog([COUNT]), archives={"card_transactions": arch.refresh()}, erasures=erasures,
            training_sets=store, kafka_bootstrap=None, serving_log_topic="fs_serving_log", settle_s=0, now=now,
        )  # fmt: skip

    report = run(NOW)
    offline, log, arch = offline.refresh(), log.refresh(), arch.refresh()
    for t in (offline, log):
        assert len(t.snapshots()) == 1
        assert ("user", "alice") not in set(
            zip(*(t.scan().to_arrow().column(c).to_pylist() for c in ("entity_type", "entity_id")), strict=True)
        )
    assert sorted(e for _, _, e, _ in _rows(offline).elements()) == ["alice", "bob", "bob"]  # merchant alice stays
    assert _files(tmp_path / "t" / "wh" / "fs.db" / "offline_feature_values", "entity_id").count("alice") == 1
    assert sorted(_files(tmp_path / "t" / "wh" / "fs.db" / "serving_log", "entity_id")) == ["alice", "bob"]
    assert sorted(map(str, arch.scan().to_arrow().column("key").to_pylist())) == sorted(
        map(str, [b"bob", b"alice2", None])
    )
    assert b"alice" not in _files(tmp_path / "t" / "wh" / "fs.db" / archive.table_name("card_transactions"), "key")
    assert archive.next_offsets(arch) == {0: 4}  # the archive's offsets carried into the delete
    assert (
        report.offline.rows_removed,
        report.serving_log.rows_removed,
        report.archives["card_transactions"].rows_removed,
    ) == (2, 1, 1)
    assert report.manifests_invalidated == sorted([old.id, recent.id])  # erasure keeps no pins, old or recent
    assert [a[1:] for a in session.deleted] == [("user", "alice")]
    recorded = erasures.get("user", "alice")
    assert recorded is not None and json.loads(recorded["report"]) == json.loads(report.to_json())
    again = run(NOW + timedelta(minutes=1))
    assert (
        again.offline.rows_removed,
        again.serving_log.rows_removed,
        again.archives["card_transactions"].rows_removed,
    ) == (0, 0, 0)
    assert again.manifests_invalidated == [] and again.offline.snapshots_expired == 0
    assert erasures.get("user", "alice")["erased_at_ms"] == int((NOW + timedelta(minutes=1)).timestamp() * 1000)  # type: ignore[index]
