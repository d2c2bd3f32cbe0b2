"""One TTL contract: the serving API and the offline join agree on every value, and serving reports a
value older than its TTL as ``expired`` (null) exactly where the offline join returns null for it.

The same rows are written to a real local Iceberg table and served by the real app (``create_app``)
from an in-memory source that holds, per feature, the latest window stored by the read time (what
the online store holds when Cassandra has not yet dropped an expired row) and stream progress equal
to the data's reach. Read times sit on window ends, on TTL edges and 1 ms either side.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from registry.core.definitions import FeatureDefinition
from registry.core.durations import to_millis
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from serving.offline.historical import get_historical_features
from serving.online.app import create_app
from sinks.cassandra.reader import StoredValue
from sinks.iceberg import layout as offline_layout
from sinks.iceberg.writer import ensure_table

MIN = 60_000
T0 = 1_700_000_000_000 // (60 * MIN) * (60 * MIN)
ROWS: dict[str, list[tuple[int, Any]]] = {  # feature -> [(window end offset in minutes, value)] for entity e1
    "count_10m": [(0, 3), (5, 4), (30, 1)],
    "amount_sum": [(0, 2.5), (45, 7.0)],
    "last_merchant": [(5, "m1"), (10, "m2")],
}


class StoredRows:
    """The online store as seen at ``now``: latest row per feature version with end <= now, and progress."""

    def __init__(self, rows: dict[FeatureDefinition, list[tuple[int, Any]]], progress: dict[str, int]) -> None:
        self.rows = rows
        self.now = 0
        self._progress = progress

    def read(self, entity_type: str, entity_id: str) -> dict[tuple[str, int], StoredValue]:
        out = {}
        for d, rows in self.rows.items():
            seen = [(end, v) for end, v in rows if end <= self.now]
            if entity_id == "e1" and seen:
                end, value = max(seen, key=lambda r: r[0])
                out[(d.name, d.version)] = StoredValue(value, end)
        return out

    def progress(self) -> dict[str, int]:
        return self._progress


@pytest.fixture
def setup(
    tmp_path: Path, make_definition: Callable[..., FeatureDefinition]
) -> tuple[Any, Any, StoredRows, list[FeatureDefinition]]:
    from pyiceberg.catalog.sql import SqlCatalog

    definitions = [
        make_definition(
            name="count_10m", window={"kind": "sliding", "size": "10m", "slide": "5m"}, ttl="20m", freshness_slo="1h"
        ),
        make_definition(
            name="amount_sum",
            value_type="double",
            window={"kind": "tumbling", "size": "15m"},
            aggregation={"function": "sum", "field": "amount"},
            ttl="25m",
        ),
        make_definition(
            name="last_merchant",
            value_type="string",
            window={"kind": "tumbling", "size": "5m"},
            aggregation={"function": "last", "field": "merchant_id"},
            ttl="12m",
        ),
    ]
    store = DefinitionStore(tmp_path / "definitions.db")
    for d in definitions:
        store.register(d)
    table = ensure_table(
        SqlCatalog("unit", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=(tmp_path / "wh").as_uri()), "fs"
    )
    rows: dict[FeatureDefinition, list[tuple[int, Any]]] = {
        d: [(T0 + m * MIN, v) for m, v in ROWS[d.name]] for d in definitions
    }
    records = [
        {
            "entity_type": "user",
            "entity_id": "e1",
            "feature_name": d.name,
            "feature_version": d.version,
            "event_time": end * 1000,
            f"value_{d.value_type}": value,
            "ingested_at": T0 * 1000 + 10**9,
        }
        for d, stored in rows.items()
        for end, value in stored
    ]
    table.append(pa.Table.from_pylist(records, schema=offline_layout.arrow_schema()))
    progress: dict[str, int] = {}
    for d, stored in rows.items():  # online progress = offline reach (per stream; one feature per stream here)
        progress[d.stream] = max(end for end, _ in stored)
    assert len(progress) == len(definitions)
    return table, store, StoredRows(rows, progress), definitions


def test_serving_and_offline_agree_and_expiry_is_reported(
    setup: tuple[Any, Any, StoredRows, list[FeatureDefinition]],
) -> None:
    table, store, source, definitions = setup
    client = TestClient(create_app(LiveCatalog(store, refresh_s=0), source, clock_us=lambda: source.now * 1000))
    rng = random.Random(3)
    times = {T0 - 1}
    for d in definitions:
        for end, _ in source.rows[d]:
            for base in (end, end + to_millis(d.ttl)):
                times.update(base + delta for delta in (-1, 0, 1, 999, 5 * MIN))
    times.update(T0 + rng.randint(-5 * MIN, 90 * MIN) for _ in range(20))
    times_sorted = sorted(times)
    names = [d.name for d in definitions]
    labels = pa.table(
        {"who": ["e1"] * len(times_sorted), "event_timestamp": pa.array(times_sorted, pa.timestamp("ms", tz="UTC"))}
    )
    offline = get_historical_features(table, store.catalog(), labels, names, entity_type="user", entity_column="who")
    expired_seen = 0
    for i, now in enumerate(times_sorted):
        source.now = now
        response = client.get("/v1/features/user/e1", params={"names": ",".join(names)})
        assert response.status_code == 200, response.text
        served = response.json()["features"]
        for d in definitions:
            got = served[d.name]
            assert got["value"] == offline.column(d.name)[i].as_py(), (d.name, now - T0, got)
            latest = max((end for end, _ in source.rows[d] if end <= now), default=None)
            expired = latest is not None and now - latest > to_millis(d.ttl)
            assert (got["status"] == "expired") == expired, (d.name, now - T0, got)
            if expired:
                expired_seen += 1
                assert got["value"] is None
    assert expired_seen > 10
