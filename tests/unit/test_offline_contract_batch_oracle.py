"""Batch scoring (``serving.offline.batch_scoring``) against a brute-force reference written from the docs alone
(README "Training sets, batch scoring, promotion", docs/design.md §5.1, §5.2, §5.8): on seeded random tables
with ties on window end, ingestion time and revision, TTL boundaries to the microsecond, empty windows, null
values, several versions, a composite key whose ids need the escapes, and reads pinned to a snapshot.

The reference: the entities are every id of the type with a visible row of a requested feature version ending at
or before ``as_of``, sorted by id; each value is the training join's at label time ``as_of``: the latest window
end at or before it (ties: latest ``ingested_at``, highest ``revision``, then no value, then the greater value as
unsigned big-endian bytes), null when older than the TTL (exactly TTL old counts), and 0 for count and sum (null
otherwise) when a later window closed by ``min(as_of, reach)``, on the step grid, held no row."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from registry.core import entity_keys
from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from serving.offline.batch_scoring import export_feature_vectors
from sinks.iceberg import layout as offline_layout
from sinks.iceberg.writer import ensure_table

MIN_US = 60_000_000
STEP_US = 5 * MIN_US
T0_US = 1_700_000_000_000_000 // (60 * MIN_US) * (60 * MIN_US)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PAIR_KEY = ["user_id", "merchant_id"]

Row = dict[str, Any]


@pytest.fixture(scope="module")
def catalog(make_definition: Callable[..., FeatureDefinition]) -> FeatureCatalog:
    return oracle_catalog(make_definition)


def oracle_catalog(make_definition: Callable[..., FeatureDefinition]) -> FeatureCatalog:
    """Features of every aggregation kind the timeline rule treats apart, two versions, and a composite key."""
    five = {"kind": "tumbling", "size": "5m"}
    sliding = {"kind": "sliding", "size": "15m", "slide": "5m"}
    pair = {"source.entity_key": PAIR_KEY}
    return FeatureCatalog(
        [
            make_definition(name="cnt", window=five, ttl="20m"),
            make_definition(name="cnt", version=2, window=five, ttl="10m"),
            make_definition(name="cnt_sl", window=sliding, ttl="30m"),
            make_definition(
                name="tot",
                value_type="double",
                window=five,
                ttl="15m",
                aggregation={"function": "sum", "field": "amount"},
            ),
            make_definition(
                name="avg",
                value_type="double",
                window=five,
                ttl="15m",
                aggregation={"function": "mean", "field": "amount"},
            ),
            make_definition(
                name="last_m",
                value_type="string",
                window=five,
                ttl="25m",
                aggregation={"function": "last", "field": "merchant_id"},
            ),
            make_definition(name="pcount", entity="pair", window=five, ttl="20m", **pair),
            make_definition(
                name="plast",
                entity="pair",
                value_type="string",
                window=five,
                ttl="20m",
                aggregation={"function": "last", "field": "merchant_id"},
                **pair,
            ),
        ],
        {("user", "cnt"): 1},
    )


def _value(rng: random.Random, d: FeatureDefinition) -> Any:
    if rng.random() < 0.15:
        return None
    if d.value_type == "long":
        return rng.choice([0, 1, 2, 7, -1, -3, 2**62])
    if d.value_type == "double":
        return rng.choice([0.0, 0.5, 1.25, -2.0, -0.75, 3.0])
    return rng.choice(["m1", "m2", "zz", "é", "m10"])


USERS = ["u0", "u1", "u2", "u10", "U3", "u|4"]
PAIRS = [("u0", "m1"), ("u1", "m|1"), ("u1\\", "m1"), ("u1", "\\m1"), ("a|b", "c"), ("a", "b|c"), ("u2", "m2")]


def _rows(rng: random.Random, catalog: FeatureCatalog, appends: int, per_append: int) -> list[list[Row]]:
    definitions = sorted(catalog, key=lambda d: d.key)
    out: list[list[Row]] = []
    for k in range(appends):
        batch = []
        for _ in range(per_append):
            d = rng.choice(definitions)
            entity = entity_keys.encode(list(rng.choice(PAIRS))) if d.entity == "pair" else rng.choice(USERS)
            end = T0_US + STEP_US * rng.randint(-6, 6)
            batch.append(
                {
                    "d": d,
                    "entity_id": entity,
                    "end": end,
                    "value": _value(rng, d),
                    "ingested": T0_US + 3600_000_000 * k + rng.choice([0, 0, 0, 1000]),
                    "revision": rng.choice([0, 1, 1, 1]),
                }
            )
        out.append(batch)
    return out


def _append(table: Any, rows: list[Row]) -> int:
    records = []
    for r in rows:
        d: FeatureDefinition = r["d"]
        size = 15 * MIN_US if d.name == "cnt_sl" else STEP_US
        records.append(
            {
                "entity_type": d.entity,
                "entity_id": r["entity_id"],
                "feature_name": d.name,
                "feature_version": d.version,
                "event_time": r["end"],
                "window_start": r["end"] - size,
                "value_long": r["value"] if d.value_type == "long" else None,
                "value_double": r["value"] if d.value_type == "double" else None,
                "value_string": r["value"] if d.value_type == "string" else None,
                "ingested_at": r["ingested"],
                "revision": r["revision"],
            }
        )
    table.append(pa.Table.from_pylist(records, schema=offline_layout.arrow_schema()))
    return int(table.metadata.current_snapshot_id)


# --- the reference -------------------------------------------------------------------------------------------


def _value_order(value: Any, value_type: str) -> tuple[int, bytes]:
    """Greater wins a tie: no value first, then the serialized value as unsigned bytes (design §5.1, "Ties")."""
    if value is None:
        return (1, b"")
    if value_type == "long":
        return (0, struct.pack(">q", value))
    if value_type == "double":
        return (0, struct.pack(">d", value))
    return (0, value.encode())


def _us(td: timedelta) -> int:
    return (td.days * 86_400 + td.seconds) * 1_000_000 + td.microseconds


def _step_us(d: FeatureDefinition) -> int:
    w = d.window
    step = w.slide if w.kind == "sliding" else w.size
    assert step is not None
    return _us(step)


def expected_value(d: FeatureDefinition, visible: list[Row], entity: str, t_us: int) -> Any:
    mine = [r for r in visible if r["d"].key == d.key]
    reach = max((r["end"] for r in mine), default=None)
    rows = [r for r in mine if r["entity_id"] == entity and r["end"] <= t_us]
    if not rows:
        return None
    w = max(r["end"] for r in rows)
    tied = [r for r in rows if r["end"] == w]
    winner = max(tied, key=lambda r: (r["ingested"], r["revision"], _value_order(r["value"], d.value_type)))
    if t_us - w > _us(d.ttl):
        return None
    assert reach is not None
    closed = min(t_us, reach) // _step_us(d) * _step_us(d)
    if closed > w:
        function = d.aggregation.function
        if function in ("count", "count_distinct"):
            return 0
        if function == "sum":
            return 0 if d.value_type == "long" else 0.0
        return None
    return winner["value"]


def expected_export(
    catalog: FeatureCatalog, entity_type: str, features: list[str], visible: list[Row], t_us: int
) -> dict[str, list[Any]]:
    definitions = [catalog.get(entity_type, *_ref(f)) for f in features]
    keys = {d.key for d in definitions}
    ids = sorted({r["entity_id"] for r in visible if r["d"].key in keys and r["end"] <= t_us})
    at = EPOCH + timedelta(microseconds=t_us)
    out: dict[str, list[Any]] = {"entity_id": ids}
    key = catalog.composite_key(entity_type)
    for i, field in enumerate(key):
        out[field] = [entity_keys.decode(e, len(key))[i] for e in ids]
    out["as_of"] = [at] * len(ids)
    for d in definitions:
        out[d.name] = [expected_value(d, visible, e, t_us) for e in ids]
    return out


def _ref(feature: str) -> tuple[str, int | None]:
    name, _, version = feature.partition("@v")
    return name, int(version) if version else None


# --- the comparison ------------------------------------------------------------------------------------------

QUERIES: list[tuple[str, list[str]]] = [
    ("user", ["cnt", "tot", "last_m"]),
    ("user", ["cnt@v2", "avg", "cnt_sl"]),
    ("user", ["last_m"]),
    ("pair", ["pcount", "plast"]),
]
OFFSETS_US = [0, 1, -1, STEP_US // 2, 999]  # on the grid, 1 µs past and before it (TTLs end on the grid too)


@pytest.mark.parametrize("seed", [1, 2])
def test_batch_scoring_equals_the_reference(tmp_path: Path, catalog: FeatureCatalog, seed: int) -> None:
    rng = random.Random(seed)
    table = ensure_table(SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri()), "fs")
    appends = _rows(rng, catalog, appends=3, per_append=120)
    snapshots = [_append(table, rows) for rows in appends]
    reads: list[tuple[int | None, list[Row]]] = [(None, [r for rows in appends for r in rows])]
    reads.append((snapshots[0], appends[0]))
    reads.append((snapshots[1], appends[0] + appends[1]))
    checked = 0
    for read_as_of, visible in reads:
        for step in range(-8, 10, 3 if read_as_of is None else 6):
            t_us = T0_US + STEP_US * step + rng.choice(OFFSETS_US)
            for entity_type, features in QUERIES:
                at = EPOCH + timedelta(microseconds=t_us)
                got = export_feature_vectors(
                    table,
                    catalog,
                    entity_type,
                    features,
                    at,
                    read_as_of=read_as_of,
                    chunk_rows=rng.choice([1, 3, 1000]),
                ).to_pydict()
                want = expected_export(catalog, entity_type, features, visible, t_us)
                assert got == want, (read_as_of, t_us - T0_US, entity_type, features)
                checked += len(want["entity_id"])
    assert checked > 100  # the tables and times give the comparison entities to check
