"""Online/offline parity at one instant (docs/design.md §5.2, §5.5, §4 ``stream_progress``): with online stream
progress equal to the offline reach, the API and the training join give the same value for every feature at every
read time, for a window group of three features sharing one stream (count, sum, last), a tumbling count and a
session count; read times on window ends, TTL and freshness edges and 1 ms either side, and for entities that go
quiet (empty windows, then expiry). Progress is read through ``stream_progress`` from two writers' rows and the
stream's last-known row, as the reader does (the minimum over the writers' rows).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
from fastapi.testclient import TestClient

from registry.core.definitions import FeatureDefinition
from registry.core.durations import to_millis
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from serving.offline.historical import get_historical_features
from serving.online.app import create_app
from sinks.cassandra import layout as online_layout
from sinks.cassandra.reader import StoredValue
from sinks.iceberg import layout as offline_layout
from sinks.iceberg.writer import ensure_table

MIN = 60_000
T0 = 1_700_000_000_000 // (60 * MIN) * (60 * MIN)
SLIDING = {"kind": "sliding", "size": "10m", "slide": "5m"}
# feature -> entity -> [(window end offset in minutes, value)]
ROWS: dict[str, dict[str, list[tuple[float, Any]]]] = {
    "sl_count": {"e1": [(5, 1), (10, 2), (15, 1)], "e2": [(40, 3), (45, 3)]},
    "sl_sum": {"e1": [(5, 1.5), (10, 4.0), (15, 2.5)], "e2": [(40, 6.0), (45, 6.0)]},
    "sl_last": {"e1": [(5, "m1"), (10, "m2"), (15, "m2")], "e2": [(40, "m3"), (45, "m3")]},
    "tu_count": {"e1": [(5, 1), (10, 1)], "e2": [(40, 3)]},
    "se_count": {"e1": [(9.5, 2)], "e3": [(30.25, 4), (55, 1)]},
}


def _definitions(make_definition: Callable[..., FeatureDefinition]) -> list[FeatureDefinition]:
    amount = {"function": "sum", "field": "amount"}
    return [
        make_definition(name="sl_count", window=SLIDING, ttl="20m", freshness_slo="7m"),
        make_definition(name="sl_sum", value_type="double", window=SLIDING, aggregation=amount, ttl="20m"),
        make_definition(
            name="sl_last",
            value_type="string",
            window=SLIDING,
            aggregation={"function": "last", "field": "merchant_id"},
            ttl="20m",
            freshness_slo="7m",
        ),
        make_definition(name="tu_count", window={"kind": "tumbling", "size": "5m"}, ttl="12m", freshness_slo="6m"),
        make_definition(name="se_count", window={"kind": "session", "gap": "5m"}, ttl="30m", freshness_slo="10m"),
    ]


class AtNow:
    """The online store at ``now``: per entity and feature the latest row ending at or before it, and progress."""

    def __init__(self, rows: dict[FeatureDefinition, dict[str, list[tuple[int, Any]]]], progress: dict[str, int]):
        self.rows, self._progress, self.now = rows, progress, 0

    def read(self, entity_type: str, entity_id: str) -> dict[tuple[str, int], StoredValue]:
        out = {}
        for d, by_entity in self.rows.items():
            seen = [r for r in by_entity.get(entity_id, []) if r[0] <= self.now]
            if seen:
                end, value = max(seen, key=lambda r: r[0])
                out[(d.name, d.version)] = StoredValue(value, end)
        return out

    def progress(self) -> dict[str, int]:
        return self._progress


def test_online_equals_offline_at_every_instant(
    tmp_path: Path, make_definition: Callable[..., FeatureDefinition]
) -> None:
    from pyiceberg.catalog.sql import SqlCatalog

    definitions = _definitions(make_definition)
    store = DefinitionStore(tmp_path / "definitions.db")
    for d in definitions:
        store.register(d)
    rows = {d: {e: [(T0 + int(m * MIN), v) for m, v in rs] for e, rs in ROWS[d.name].items()} for d in definitions}
    table = ensure_table(
        SqlCatalog("unit", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri()), "fs"
    )
    records = [
        {
            "entity_type": "user",
            "entity_id": entity,
            "feature_name": d.name,
            "feature_version": d.version,
            "event_time": end * 1000,
            f"value_{d.value_type}": value,
            "ingested_at": T0 * 1000,
        }
        for d, by_entity in rows.items()
        for entity, stored in by_entity.items()
        for end, value in stored
    ]
    table.append(pa.Table.from_pylist(records, schema=offline_layout.arrow_schema()))
    reach = {d.stream: max(end for stored in rows[d].values() for end, _ in stored) for d in definitions}
    assert len(reach) == 3  # the three sliding features share one stream
    progress_rows = [(stream, writer, end) for stream, end in reach.items() for writer in ("0", "1")]
    progress_rows += [(stream, online_layout.LAST_KNOWN_WRITER, end + 5 * MIN) for stream, end in reach.items()]
    source = AtNow(rows, online_layout.stream_progress(progress_rows))
    assert source.progress() == reach

    edges = {T0 + m * MIN for m in range(0, 90)}
    for d, by_entity in rows.items():
        for stored in by_entity.values():
            for end, _ in stored:
                edges |= {end, end + to_millis(d.ttl), end + to_millis(d.freshness_slo)}
    instants = sorted(t + delta for t in edges for delta in (-1, 0, 1))
    entities = ["e1", "e2", "e3"]
    names = [d.name for d in definitions]
    labels = pa.table(
        {
            "user_id": [e for _ in instants for e in entities],
            "event_timestamp": pa.array([t for t in instants for _ in entities], pa.timestamp("ms", tz="UTC")),
        }
    )
    offline = get_historical_features(
        table, LiveCatalog(store).current(), labels, names, entity_type="user", entity_column="user_id"
    ).to_pylist()

    http = TestClient(create_app(LiveCatalog(store), source, clock_us=lambda: source.now * 1000))
    differences = []
    for i, now in enumerate(instants):
        source.now = now
        body = http.post("/v1/features/user/batch", json={"entity_ids": entities, "names": names})
        assert body.status_code == 200, body.text
        answer = body.json()
        for j, (entity, served) in enumerate(zip(entities, answer["results"], strict=True)):
            expected = offline[i * len(entities) + j]
            for name, value, status in zip(answer["names"], served["values"], served["statuses"], strict=True):
                if value != expected[name]:
                    differences.append((now - T0, entity, name, value, status, expected[name]))
    assert not differences, differences[:5]
    assert len(instants) > 200
