"""serving.offline.historical.get_historical_features against a brute-force reference, on a real local Iceberg table.

The reference is deliberately naive: for every label row and feature, scan every row written to the
offline table, keep those of the same entity type, entity, feature name and version whose window
ended at or before the label time, take the latest window end (ties: the latest ingestion), then
apply ``registry.core.timeline.resolve`` with the label time as "now". "Closed through" is the label time
capped by how far the feature's data reaches (the latest window end stored for that feature version,
any entity), the offline counterpart of stream progress, as serving/offline/historical.py documents it.

The data is adversarial: window ends on the step grid with labels exactly on them, 1 µs / 1 ms
either side, exactly at and just past the TTL; windows re-ingested with other values in batches
whose ingestion clock runs backwards (revisions drawn independently of it); an older version and another entity type sharing names and
ids; label rows for entities with no rows, duplicated, out of time order, naive or tz-aware.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.durations import to_millis
from registry.core.timeline import empty_value, step_ms
from serving.offline import historical
from serving.offline.historical import get_historical_features
from sinks.iceberg.writer import OfflineWriter, ensure_table
from sinks.records import FeatureRow

MIN = 60_000
HOUR = 60 * MIN
T0 = 1_700_000_000_000 // HOUR * HOUR  # on every grid used below (5, 10 and 15 minutes)
SPAN = 3 * HOUR  # window ends are generated in [T0, T0 + SPAN]
CLOCK0 = T0 + 10 * HOUR  # ingestion clock (any value works: only its order matters)

USERS = ("u0", "u1", "u2")
GHOST = "u_never_seen"


def _catalog(shipped: FeatureCatalog, build_definition: Callable[..., FeatureDefinition]) -> FeatureCatalog:
    tumbling = {"kind": "tumbling", "size": "10m"}
    max_15m = {
        "aggregation": {"function": "max", "field": "amount"},
        "value_type": "double",
        "window": {"kind": "tumbling", "size": "15m"},
    }
    return FeatureCatalog(
        [
            *shipped,  # user.txn_count_1h (sliding 1h/5m, long) and user.txn_amount_sum_1h (sliding, double), ttl 2h
            build_definition(name="txn_count_10m", window=tumbling, ttl="25m"),
            build_definition(name="amount_max_15m", version=1, ttl="40m", **max_15m),
            build_definition(name="amount_max_15m", version=2, ttl="35m", **max_15m),  # active
            build_definition(name="txn_count_1h", entity="merchant", ttl="3h"),  # same name and ids, other entity type
            build_definition(
                name="last_merchant_5m",
                value_type="string",
                ttl="20m",
                aggregation={"function": "last", "field": "merchant_id"},
                window={"kind": "tumbling", "size": "5m"},
            ),
        ]
    )


FEATURES = ("txn_count_1h", "txn_amount_sum_1h", "txn_count_10m", "amount_max_15m", "last_merchant_5m")
ARROW_TYPES = {"long": pa.int64(), "double": pa.float64(), "string": pa.string()}


@pytest.fixture(scope="module")
def catalog(shipped_catalog: FeatureCatalog, make_definition: Callable[..., FeatureDefinition]) -> FeatureCatalog:
    return _catalog(shipped_catalog, make_definition)


# ---------------------------------------------------------------------------------------------
# The reference
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    row: FeatureRow
    ingested_ms: int
    end_us: int  # the stored window end: the row's whole millisecond, or up to 999 µs past it


def reference(
    written: Sequence[Written],
    catalog: FeatureCatalog,
    entity_type: str,
    features: Sequence[str],
    labels: Sequence[tuple[str, int]],
    per_ms: int = 1000,
) -> dict[str, list[Any]]:
    """labels: (entity id, label time) per row, in units of ``1 / per_ms`` ms (1000: µs, 10**6: ns).

    Every comparison is made in the labels' unit, at full precision: no rounding anywhere.
    """
    per_us = per_ms // 1000
    definitions = [catalog.get(entity_type, name) for name in features]
    reach: dict[tuple[str, str, int], int] = {}  # latest window end stored per feature version, any entity
    for w in written:
        key = (w.row.entity_type, w.row.feature_name, w.row.feature_version)
        reach[key] = max(reach.get(key, w.end_us), w.end_us)
    out: dict[str, list[Any]] = {name: [] for name in features}
    for entity_id, label in labels:
        for d in definitions:
            best: Written | None = None
            for w in written:
                r = w.row
                if (r.entity_type, r.entity_id, r.feature_name, r.feature_version) != (
                    entity_type,
                    entity_id,
                    d.name,
                    d.version,
                ):
                    continue
                if w.end_us * per_us > label:
                    continue
                if best is None or (w.end_us, w.ingested_ms) > (best.end_us, best.ingested_ms):
                    best = w
            out[d.name].append(_rule_value(d, best, label, reach.get((entity_type, d.name, d.version)), per_ms))
    return out


def _rule_value(d: FeatureDefinition, best: Written | None, label: int, reach_us: int | None, per_ms: int) -> Any:
    """The time rule as docs/design.md states it, at the label's own precision: expired past the TTL, and
    an empty window where a later window closed (by the label and by the data's reach) with no row."""
    if best is None:
        return None
    end = best.end_us * (per_ms // 1000)
    if label - end > to_millis(d.ttl) * per_ms:
        return None
    step = step_ms(d)
    assert step is not None and reach_us is not None
    closed = min(label, reach_us * (per_ms // 1000))
    if end < closed // (step * per_ms) * (step * per_ms):
        return empty_value(d)
    return best.row.value


# ---------------------------------------------------------------------------------------------
# Scenario generation, driven by either a seeded Random or Hypothesis (which then shrinks failures)
# ---------------------------------------------------------------------------------------------


class Chooser(Protocol):
    def integer(self, lo: int, hi: int) -> int: ...

    def choice(self, options: Sequence[Any]) -> Any: ...


class RandomChooser:
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self._rng.randint(lo, hi)

    def choice(self, options: Sequence[Any]) -> Any:
        return self._rng.choice(list(options))


class DataChooser:
    def __init__(self, data: st.DataObject) -> None:
        self._data = data

    def integer(self, lo: int, hi: int) -> int:
        return self._data.draw(st.integers(min_value=lo, max_value=hi))

    def choice(self, options: Sequence[Any]) -> Any:
        return self._data.draw(st.sampled_from(list(options)))


def _shuffled(c: Chooser, items: Sequence[Any]) -> list[Any]:
    pool, out = list(items), []
    while pool:
        out.append(pool.pop(c.integer(0, len(pool) - 1)))
    return out


def _value(c: Chooser, d: FeatureDefinition) -> int | float | str:
    if d.value_type == "long":
        return c.integer(1, 500)
    if d.value_type == "string":
        return c.choice(["merchant_0001", "merchant_0002", "", "m\u00fcnchen-caf\u00e9"])
    return c.choice([0.0, 0.01, 1.5, 12.25, 99.99, 1e-9, 123456.78]) if c.integer(0, 1) else c.integer(0, 10**7) / 100


@dataclass
class Scenario:
    batches: list[tuple[int, list[tuple[FeatureRow, int]]]]  # (ingestion clock ms, [(row, end µs)]), append order
    features: list[str]
    labels: list[tuple[str, int]]  # (entity id, epoch time in ``unit``)
    tz: str | None
    unit: str = "us"  # the label column's unit: "us" or "ns"

    @property
    def per_ms(self) -> int:
        return 1000 if self.unit == "us" else 1_000_000


def generate(c: Chooser, catalog: FeatureCatalog) -> Scenario:
    # Ingestion clocks: distinct, 1 ms apart, in an order unrelated to the append order.
    n_batches = c.integer(1, 4)
    clocks = [CLOCK0 + k for k in _shuffled(c, range(n_batches))]
    batches: list[list[tuple[FeatureRow, int]]] = [[] for _ in range(n_batches)]
    ends_seen: list[tuple[FeatureDefinition, int]] = []  # (definition, window end µs)

    revisions: dict[tuple[Any, ...], set[int]] = {}
    for d in catalog:  # every version and entity type, active or not
        step = step_ms(d)
        assert step is not None
        size = to_millis(d.window.size) if d.window.size else step
        for entity_id in USERS:
            for _ in range(c.integer(0, 5)):
                end = T0 + step * c.integer(0, SPAN // step)
                # Window ends off the whole millisecond too (other writers than the stream job store them),
                # several of them within one millisecond.
                end_us = end * 1000 + c.choice([0, 0, 0, 1, 500, 999])
                ends_seen.append((d, end_us))
                # The same window written by 1..n_batches batches (re-ingestion), each with its own value.
                for b in _shuffled(c, range(n_batches))[: c.integer(1, n_batches)]:
                    if any(
                        e == end_us
                        and r.entity_id == entity_id
                        and r.feature_name == d.name
                        and r.feature_version == d.version
                        and r.entity_type == d.entity
                        for r, e in batches[b]
                    ):
                        continue  # one row per window per batch: equal ingestion times would be ambiguous
                    # Each copy has its own revision (the writer drops a repeated identity, which names the
                    # whole millisecond). Revisions are drawn independently of the ingestion clock: the
                    # latest ingestion wins, not the revision.
                    key = (d.key, entity_id, end)
                    if len(revisions.setdefault(key, set())) == 8:
                        continue
                    revision = c.choice([r for r in range(1, 9) if r not in revisions[key]])
                    revisions[key].add(revision)
                    batches[b].append((FeatureRow.of(d, entity_id, _value(c, d), end - size, end, revision), end_us))

    features = _shuffled(c, FEATURES)[: c.integer(1, len(FEATURES))]
    user_defs = [catalog.get("user", name) for name in FEATURES]
    deltas_us = [0, 0, -1, 1, -1000, 1000, 999, -999, 1001, -1001]
    labels: list[tuple[str, int]] = []
    for _ in range(c.integer(1, 25)):
        entity_id = c.choice([*USERS, *USERS, GHOST])
        kind = c.choice(["grid", "row_end", "ttl_edge", "ttl_edge", "random", "dup"])
        if kind == "dup" and labels:
            labels.append(labels[c.integer(0, len(labels) - 1)])
            continue
        if kind in ("row_end", "ttl_edge") and ends_seen:
            d, end_us = ends_seen[c.integer(0, len(ends_seen) - 1)]
            at_us = end_us
            if kind == "ttl_edge":
                at_us += to_millis(c.choice([d, *user_defs]).ttl) * 1000
            label_us = at_us + c.choice(deltas_us)
        elif kind == "random":
            label_us = (T0 + c.integer(-HOUR, SPAN + 3 * HOUR)) * 1000 + c.integer(0, 999)
        else:  # grid, or a fallback when nothing to copy from
            step = c.choice([5 * MIN, 10 * MIN, 15 * MIN])
            label_us = (T0 + step * c.integer(-2, (SPAN + 3 * HOUR) // step)) * 1000 + c.choice(deltas_us)
        labels.append((entity_id, label_us))

    tz = c.choice([None, "UTC", "America/New_York"])
    unit = c.choice(["us", "us", "ns"])
    if unit == "ns":  # a nanosecond either side of a stored microsecond, too
        labels = [(e, us * 1000 + c.choice([0, 0, 1, 999, -1])) for e, us in labels]
    return Scenario(list(zip(clocks, batches, strict=True)), features, labels, tz, unit)


def label_table(labels: Sequence[tuple[str, int]], tz: str | None, unit: str = "us") -> pa.Table:
    return pa.table(
        {
            "row_id": pa.array(range(len(labels)), type=pa.int64()),
            "user": pa.array([e for e, _ in labels], type=pa.string()),
            "event_timestamp": pa.array([t for _, t in labels], type=pa.timestamp(unit, tz=tz)),
            "label": pa.array([i % 3 == 0 for i in range(len(labels))], type=pa.bool_()),
        }
    )


def iceberg_table(folder: Path) -> Any:
    from pyiceberg.catalog.sql import SqlCatalog

    sql_catalog = SqlCatalog("unit", uri=f"sqlite:///{folder}/cat.db", warehouse=f"file://{folder}/wh")
    return ensure_table(sql_catalog, "fs")


def write(
    table: Any, catalog: FeatureCatalog, batches: Sequence[tuple[int, Sequence[FeatureRow | tuple[FeatureRow, int]]]]
) -> list[Written]:
    """Whole-millisecond rows through the stream job's writer; the others (given as ``(row, window end µs)``)
    appended as another writer (a batch source, a migration) would."""
    now = [0]
    writer = OfflineWriter(table, clock_ms=lambda: now[0])
    written: list[Written] = []
    through_writer = 0
    for clock, supplied in batches:
        now[0] = clock
        rows = [(r, r.window_end_ms * 1000) if isinstance(r, FeatureRow) else r for r in supplied]
        finer = []
        for row, end_us in rows:
            if end_us == row.window_end_ms * 1000:
                writer.add(row)
                through_writer += 1
            else:
                one = writer.to_arrow([row], clock)
                at = one.schema.get_field_index("event_time")
                finer.append(one.set_column(at, one.schema.field(at), pa.array([end_us], one.schema.field(at).type)))
        writer.flush()
        if finer:
            table.append(pa.concat_tables(finer))
        written.extend(Written(row, clock, end_us) for row, end_us in rows)
    assert writer.written == through_writer
    assert len(writer) == 0
    return written


def check(
    table: Any,
    catalog: FeatureCatalog,
    written: Sequence[Written],
    features: Sequence[str],
    labels: Sequence[tuple[str, int]],
    tz: str | None,
    unit: str = "us",
) -> None:
    given_labels = label_table(labels, tz, unit)
    result = get_historical_features(
        table, catalog, given_labels, list(features), entity_type="user", entity_column="user"
    )
    expected = reference(written, catalog, "user", features, labels, 1000 if unit == "us" else 1_000_000)

    assert result.num_rows == len(labels)
    assert result.column_names == [*given_labels.column_names, *features]
    assert result.select(given_labels.column_names).equals(given_labels)  # label columns untouched, input order
    assert result.column("row_id").to_pylist() == list(range(len(labels)))
    for name in features:
        d = catalog.get("user", name)
        assert result.schema.field(name).type == ARROW_TYPES[d.value_type]
        got = result.column(name).to_pylist()
        assert got == expected[name], f"{name}: labels={labels}"
        assert [type(v) for v in got] == [type(v) for v in expected[name]], name


def _us(ms: int, extra_us: int = 0) -> int:
    return ms * 1000 + extra_us


@pytest.fixture
def hand_table(tmp_path: Path, catalog: FeatureCatalog) -> tuple[Any, list[Written]]:
    count = catalog.get("user", "txn_count_1h")
    total = catalog.get("user", "txn_amount_sum_1h")
    max_v1 = catalog.get("user", "amount_max_15m", 1)
    max_v2 = catalog.get("user", "amount_max_15m", 2)
    merchant = catalog.get("merchant", "txn_count_1h")
    w1, w2, w3 = T0, T0 + 10 * MIN, T0 + 30 * MIN  # w3: another entity's rows; the data reaches T0 + 30m
    batches = [
        (
            CLOCK0 + 1,
            [
                FeatureRow.of(count, "u1", 5, w1 - HOUR, w1),
                FeatureRow.of(total, "u1", 10.5, w1 - HOUR, w1),
                FeatureRow.of(count, "u1", 9, w2 - HOUR, w2),
                FeatureRow.of(max_v1, "u1", 999.0, w1 - 15 * MIN, w1),
                FeatureRow.of(max_v2, "u1", 42.0, w1 - 15 * MIN, w1),
                FeatureRow.of(merchant, "u2", 777, w1 - HOUR, w1),
                FeatureRow.of(count, "u0", 3, w3 - HOUR, w3),
                FeatureRow.of(total, "u0", 4.5, w3 - HOUR, w3),
                FeatureRow.of(max_v2, "u0", 7.0, w3 - 15 * MIN, w3),
            ],
        ),
        (
            CLOCK0 + 3,
            [FeatureRow.of(count, "u1", 6, w1 - HOUR, w1, 1), FeatureRow.of(total, "u1", 11.25, w1 - HOUR, w1, 1)],
        ),
        (
            CLOCK0 + 2,
            [FeatureRow.of(count, "u1", 7, w1 - HOUR, w1, 5), FeatureRow.of(total, "u1", 99.0, w1 - HOUR, w1, 5)],
        ),
    ]
    table = iceberg_table(tmp_path)
    return table, write(table, catalog, batches)


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_matches_reference_seeded(seed: int, tmp_path: Path, catalog: FeatureCatalog) -> None:
    scenario = generate(RandomChooser(seed), catalog)
    table = iceberg_table(tmp_path)
    written = write(table, catalog, scenario.batches)
    check(table, catalog, written, scenario.features, scenario.labels, scenario.tz, scenario.unit)
    # Every requested feature at once, in the catalog's order, on the same table.
    check(table, catalog, written, list(FEATURES), scenario.labels, scenario.tz, scenario.unit)


@pytest.mark.parametrize("seed", range(12, 18))
def test_matches_reference_reading_features_in_groups(
    seed: int, tmp_path: Path, catalog: FeatureCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk whose files hold more than ``ROWS_PER_READ`` rows reads its features a group at a time:
    here one feature per read (the bound is one row), with the same answers."""
    monkeypatch.setattr(historical, "ROWS_PER_READ", 1)
    scenario = generate(RandomChooser(seed), catalog)
    table = iceberg_table(tmp_path)
    written = write(table, catalog, scenario.batches)
    check(table, catalog, written, list(FEATURES), scenario.labels, scenario.tz, scenario.unit)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_matches_reference_property(data: st.DataObject, catalog: FeatureCatalog) -> None:
    scenario = generate(DataChooser(data), catalog)
    with tempfile.TemporaryDirectory(prefix="fs-hist-") as folder:
        table = iceberg_table(Path(folder))
        written = write(table, catalog, scenario.batches)
        check(table, catalog, written, scenario.features, scenario.labels, scenario.tz, scenario.unit)
