"""Audit F2: the time rule at its exact boundaries, online (the API in-process, a microsecond clock)
and offline (the point-in-time join on a temp Iceberg table), against an oracle written from the
docs alone (design §5.1, §5.2, §3.3 step 6; README "Online serving", "Training sets")."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.timeline import Rule, judge
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from serving.online.app import create_app
from tests.unit.test_serving_reads import STREAM, Source, T, rows

MIN_US = 60_000_000
TTL_US = 120 * MIN_US  # txn_count_1h@v1 / txn_amount_sum_1h@v1: 2h TTL, 10 min freshness, 5 min step
FRESH_US = 10 * MIN_US
STEP_US = 5 * MIN_US


def oracle(
    end_us: int | None,
    value: Any,
    now_us: int,
    closed_us: int,
    ttl_us: int,
    fresh_us: int,
    step_us: int | None,
    empty: Any,
) -> tuple[Any, int | None, str]:
    """§5.2 as written: missing; ``now - W > ttl`` expired; L = closed rounded down to the step, L > W:
    the empty value at L; status stale when ``now - feature_timestamp > freshness_slo``."""
    if end_us is None:
        return None, None, "missing"
    if now_us - end_us > ttl_us:
        return None, end_us, "expired"
    latest = closed_us // step_us * step_us if step_us is not None else None
    value, ts = (empty, latest) if latest is not None and latest > end_us else (value, end_us)
    assert ts is not None
    return value, ts, "stale" if now_us - ts > fresh_us else "present"


def iso_ms(ms: int) -> str:
    """The doc's format: UTC, whole milliseconds, a Z suffix (computed with integers only)."""
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.fixture
def live(tmp_path: Path, shipped_catalog: FeatureCatalog) -> LiveCatalog:
    """The shipped definitions in a temp registry (txn_amount_sum_1h@v1 active)."""
    store = DefinitionStore(tmp_path / "definitions.db")
    for d in shipped_catalog:
        store.register(d)
    return LiveCatalog(store)


def client(live: LiveCatalog, source: Source, now_us: int) -> TestClient:
    return TestClient(create_app(live, source, clock_us=lambda: now_us), raise_server_exceptions=False)


# --- the rule itself, µs and ms cuts, against the oracle ----------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "fresh", "step"),
    [(TTL_US, FRESH_US, STEP_US), (FRESH_US, FRESH_US, STEP_US), (TTL_US, 0, None), (0, 0, 1000)],
)
def test_rule_matches_the_doc_oracle_at_every_boundary_in_us_and_ms(ttl: int, fresh: int, step: int | None) -> None:
    rule = Rule(ttl, fresh, step, 0)
    base = T * 1000
    ends = [base, base - ttl, base - fresh, base - (step or 0)]
    nows = {a + d for w in ends for a in (w, w + ttl, w + fresh, w + (step or 0)) for d in (-1000, -1, 0, 1, 999, 1000)}
    for now in sorted(nows):
        for progress_ms in [0, now // 1000, now // 1000 - 1, *(w // 1000 + (step or 0) // 1000 for w in ends)]:
            closed = min(now, progress_ms * 1000)
            for end_ms in [None, *(w // 1000 for w in ends)]:
                end = None if end_ms is None else end_ms * 1000
                expected = oracle(end, 7, now, closed, ttl, fresh, step, 0)
                assert judge(rule.cut(closed, now), end, 7) == expected
                v, ts, status = judge(rule.cut(closed, now, unit_us=1000), end_ms, 7)
                assert (v, None if ts is None else ts * 1000, status) == expected, (now, progress_ms, end_ms)


# --- online: the API (txn_amount_sum_1h@v1: a sum of doubles, stored 2.5 at T)
# --- at the exact boundaries ------------------------------------------------------------


@pytest.mark.parametrize(
    ("now_us", "progress_ms", "expected"),
    [
        # exactly at W + freshness_slo: present; 1 µs later: stale (age still 600.0: served_at is cut to ms)
        (T * 1000 + FRESH_US, T, (2.5, T, 600.0, "present")),
        (T * 1000 + FRESH_US + 1, T, (2.5, T, 600.0, "stale")),
        (T * 1000 + FRESH_US + 1000, T, (2.5, T, 600.001, "stale")),
        # exactly at W + ttl: still read (stale); 1 µs later: expired, age equals the TTL
        (T * 1000 + TTL_US, T, (2.5, T, 7200.0, "stale")),
        (T * 1000 + TTL_US + 1, T, (None, T, 7200.0, "expired")),
        # progress exactly at the next window end: the empty window (0 at L); 1 ms before it: the stored row
        (T * 1000 + STEP_US, T + STEP_US // 1000, (0.0, T + STEP_US // 1000, 0.0, "present")),
        (T * 1000 + STEP_US, T + STEP_US // 1000 - 1, (2.5, T, 300.0, "present")),
        # progress ahead of the clock: min(now, progress); now 1 µs before the next window end
        (T * 1000 + STEP_US - 1, T + 2 * STEP_US // 1000, (2.5, T, 299.999, "present")),
        # a clock behind the feature timestamp: a negative age, reported as is
        (T * 1000 - 1500, T, (2.5, T, -0.002, "present")),
    ],
)
def test_online_boundaries(live: LiveCatalog, now_us: int, progress_ms: int, expected: tuple[Any, ...]) -> None:
    source = Source({"u1": rows(total=(T, 2.5))}, progress={STREAM: progress_ms})
    body = client(live, source, now_us).get("/v1/features/user/u1?names=txn_amount_sum_1h").json()
    value, ts_ms, age, status = expected
    assert body["served_at"] == iso_ms(now_us // 1000)
    f = body["features"]["txn_amount_sum_1h"]
    assert (f["value"], f["feature_timestamp"], f["age_seconds"], f["status"]) == (value, iso_ms(ts_ms), age, status)


# --- offline: the join on a temp Iceberg table, against the doc oracle ------------------------------------


def unsigned_tie(value: Any, value_type: str) -> tuple[int, Any]:
    """§5.1 "Ties", from the text: null wins; else the serialized value as unsigned bytes."""
    import struct

    if value is None:
        return (1, b"")
    if value_type == "long":
        return (0, struct.pack(">q", value))
    if value_type == "double":
        return (0, struct.pack(">d", value))
    if value_type == "string":
        return (0, value.encode())
    return (0, bytes([bool(value)]))


Stored = tuple[str, int, Any, int, int]  # entity, window end µs, value, ingested µs, revision


def offline_oracle(d: FeatureDefinition, rows: list[Stored], label: tuple[str, int, int]) -> Any:
    """One label (entity, floor µs, ceil µs): latest end <= t; ties: ingested, revision, tie order;
    TTL on the ceiled time; closed = min(t, reach) rounded down to the step."""
    entity, floor_us, ceil_us = label
    rule = Rule.of(d)
    reach = max((r[1] for r in rows), default=None)
    mine = [r for r in rows if r[0] == entity and r[1] <= floor_us]
    if not mine:
        return None
    best = max(mine, key=lambda r: (r[1], r[3], r[4], unsigned_tie(r[2], d.value_type)))
    if ceil_us - best[1] > rule.ttl_us:
        return None
    step = rule.step_us
    if step is not None and reach is not None and min(floor_us, reach) // step * step > best[1]:
        return rule.empty
    return best[2]


def append_us(table: Any, d: FeatureDefinition, rows: list[Stored]) -> int:
    from sinks.iceberg import layout

    schema = layout.arrow_schema()
    cols: dict[str, list[Any]] = {f.name: [] for f in schema}
    for entity, end, value, ingested, revision in rows:
        cols["entity_type"].append(d.entity)
        cols["entity_id"].append(entity)
        cols["feature_name"].append(d.name)
        cols["feature_version"].append(d.version)
        cols["event_time"].append(end)
        cols["window_start"].append(end - 1)
        for vt in ("long", "double", "string", "boolean"):
            cols[f"value_{vt}"].append(value if d.value_type == vt else None)
        cols["ingested_at"].append(ingested)
        cols["revision"].append(revision)
    table.append(pa.Table.from_arrays([pa.array(cols[f.name], f.type) for f in schema], schema=schema))
    return int(table.metadata.current_snapshot_id)


@pytest.fixture
def offline(tmp_path: Path, make_definition: Callable[..., FeatureDefinition]) -> tuple[Any, FeatureCatalog]:
    from tests.unit.test_training_sets import iceberg_table

    defs = [
        make_definition(name="n5", window={"kind": "tumbling", "size": "5m"}, ttl="20m"),
        make_definition(
            name="s10",
            value_type="double",
            window={"kind": "sliding", "size": "10m", "slide": "5m"},
            aggregation={"function": "sum", "field": "amount"},
            ttl="30m",
        ),
        make_definition(
            name="lm",
            value_type="string",
            window={"kind": "tumbling", "size": "5m"},
            ttl="15m",
            aggregation={"function": "last", "field": "merchant_id"},
        ),
    ]
    return iceberg_table(tmp_path), FeatureCatalog(defs)


def join(
    table: Any, catalog: FeatureCatalog, names: list[str], labels: list[tuple[str, int]], unit: str = "us", **kw: Any
) -> dict[str, list[Any]]:
    from serving.offline.historical import get_historical_features

    frame = pa.table(
        {
            "who": [e for e, _ in labels],
            "event_timestamp": pa.array([t for _, t in labels], pa.timestamp(unit, tz="UTC")),
        }
    )
    out = get_historical_features(table, catalog, frame, names, entity_type="user", entity_column="who", **kw)
    return {n: out.column(n).to_pylist() for n in names}


W0 = 1_700_000_100_000_000  # a 5-minute window end, µs
ING = W0 + 3_600_000_000


def boundary_labels(d: FeatureDefinition, ends: list[int]) -> list[int]:
    rule = Rule.of(d)
    step = rule.step_us or 0
    return sorted({e + k + dd for e in ends for k in (0, rule.ttl_us, step, 2 * step) for dd in (-1, 0, 1)})


def test_offline_boundaries_equal_the_doc_oracle(offline: tuple[Any, FeatureCatalog]) -> None:
    table, catalog = offline
    data: dict[str, list[Stored]] = {
        "n5": [
            ("a", W0, 3, ING, 1),
            ("a", W0, 5, ING, 2),  # a late update: the higher revision
            ("a", W0 + 300_000_000, 9, ING + 1, 0),
            ("a", W0 + 300_000_000, 8, ING, 7),  # ingested earlier: loses despite its revision
            ("b", W0 + 600_000_000, 1, ING, 1),  # reach: 10 min past W0
            ("b", W0 + 1, 4, ING, 1),  # an end 1 µs off the grid
        ],
        "s10": [
            ("a", W0, -3.0, ING, 1),
            ("a", W0, 2.0, ING, 1),  # tied on everything: the negative number wins
            ("b", W0 + 300_000_000, 0.5, ING, 1),
        ],
        "lm": [
            ("a", W0, "m1", ING, 1),
            ("a", W0, None, ING, 1),  # tied: null wins
            ("b", W0, "z", ING, 1),
            ("b", W0, "\u00e9", ING, 1),  # é (0xC3 0xA9) above z
        ],
    }
    for name, stored in data.items():
        append_us(table, catalog.get("user", name), stored)
    for name, stored in data.items():
        d = catalog.get("user", name)
        times = boundary_labels(d, sorted({r[1] for r in stored}))
        labels = [(e, t) for e in ("a", "b", "c") for t in times]
        got = join(table, catalog, [name], labels)[name]
        want = [offline_oracle(d, stored, (e, t, t)) for e, t in labels]
        diff = [(lab, g, w) for lab, g, w in zip(labels, got, want, strict=True) if g != w or type(g) is not type(w)]
        assert not diff, (name, diff[:5])


def test_offline_nanosecond_labels_floor_for_the_window_and_ceil_for_the_ttl(
    offline: tuple[Any, FeatureCatalog],
) -> None:
    table, catalog = offline
    d = catalog.get("user", "n5")
    rows: list[Stored] = [("a", W0, 3, ING, 1)]
    append_us(table, d, rows)
    ttl_ns = Rule.of(d).ttl_us * 1000
    ns = [W0 * 1000 - 1, W0 * 1000, W0 * 1000 + 1, W0 * 1000 + ttl_ns, W0 * 1000 + ttl_ns + 1, W0 * 1000 + ttl_ns + 999]
    got = join(table, catalog, ["n5"], [("a", t) for t in ns], unit="ns")["n5"]
    want = [offline_oracle(d, rows, ("a", t // 1000, -(-t // 1000))) for t in ns]
    assert got == want == [None, 3, 3, 3, None, None]


def test_offline_as_of_time_includes_a_row_ingested_exactly_then_and_its_reach(
    offline: tuple[Any, FeatureCatalog],
) -> None:
    import time as _time

    table, catalog = offline
    d = catalog.get("user", "n5")
    append_us(table, d, [("a", W0, 3, ING, 1)])
    x = (_time.time_ns() // 1000 // 1000 + 5_000) * 1000  # a whole-ms time after the commit
    later: list[Stored] = [
        ("a", W0 + 300_000_000, 4, x, 1),  # ingested exactly at as_of: in
        ("b", W0 + 600_000_000, 1, x + 1, 1),  # 1 µs after: out, and so is its reach
    ]
    append_us(table, d, later)
    _time.sleep(max(0.0, (x / 1e6) - _time.time()) + 0.05)
    as_of = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=x)
    labels = [("a", W0 + 600_000_000), ("a", W0 + 300_000_000), ("a", W0 + 300_000_000 - 1)]
    visible: list[Stored] = [("a", W0, 3, ING, 1), later[0]]
    got = join(table, catalog, ["n5"], labels, as_of=as_of)["n5"]
    assert got == [offline_oracle(d, visible, (e, t, t)) for e, t in labels] == [4, 4, 3]
    everything = join(table, catalog, ["n5"], labels)["n5"]
    assert everything == [offline_oracle(d, [*visible, later[1]], (e, t, t)) for e, t in labels] == [0, 4, 3]


def at_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def test_batch_scoring_vectors_as_of_a_time_at_the_boundaries(offline: tuple[Any, FeatureCatalog]) -> None:
    from serving.offline.batch_scoring import export_feature_vectors

    table, catalog = offline
    d = catalog.get("user", "n5")
    rows: list[Stored] = [("a", W0, 3, ING, 1), ("b", W0 + 1, 4, ING, 1)]
    append_us(table, d, rows)
    ttl = Rule.of(d).ttl_us

    def export(t: int) -> dict[str, Any]:
        out = export_feature_vectors(table, catalog, "user", ["n5"], at_us(t))
        return dict(zip(out.column("entity_id").to_pylist(), out.column("n5").to_pylist(), strict=True))

    assert export(W0 - 1) == {}
    assert export(W0) == {"a": 3}  # a row ending exactly at as_of is seen; one 1 µs later is not
    assert export(W0 + 1) == {"a": 3, "b": 4}
    assert export(W0 + ttl) == {"a": 3, "b": 4}  # exactly TTL old still counts
    assert export(W0 + ttl + 1) == {"a": None, "b": 4}  # expired: a row of nulls, not a missing row
    for t in (W0, W0 + 1, W0 + ttl, W0 + ttl + 1):
        labels = [("a", t), ("b", t)]
        assert list(export(t).values()) == [offline_oracle(d, rows, (e, tt, tt)) for e, tt in labels if e in export(t)]


def test_online_cached_rows_are_judged_at_serve_time_across_the_ttl(live: LiveCatalog) -> None:
    now = [T * 1000 + TTL_US]
    source = Source({"u1": rows(total=(T, 2.5))}, progress={STREAM: T})
    api = TestClient(
        create_app(live, source, clock_us=lambda: now[0], cache_ttl_ms=1000), raise_server_exceptions=False
    )
    first = api.get("/v1/features/user/u1?names=txn_amount_sum_1h").json()["features"]["txn_amount_sum_1h"]
    now[0] += 1  # 1 µs later, well inside the cache's 1 s: the same stored rows, judged again
    second = api.get("/v1/features/user/u1?names=txn_amount_sum_1h").json()["features"]["txn_amount_sum_1h"]
    batch = api.post("/v1/features/user/batch", json={"entity_ids": ["u1"], "names": ["txn_amount_sum_1h"]}).json()
    vec = api.post(
        "/v1/vectors", json={"entities": [{"entity_type": "user", "entity_id": "u1", "names": ["txn_amount_sum_1h"]}]}
    ).json()
    assert len(source.reads) == 1
    assert (first["status"], first["value"]) == ("stale", 2.5)
    assert (second["status"], second["value"], second["age_seconds"]) == ("expired", None, 7200.0)
    assert batch["results"][0]["statuses"] == ["expired"] and batch["results"][0]["age_seconds"] == [7200.0]
    assert vec["vectors"][0]["features"]["txn_amount_sum_1h"] == second


def test_online_and_offline_agree_at_every_boundary(
    live: LiveCatalog, tmp_path: Path, shipped_catalog: FeatureCatalog
) -> None:
    """The same stored rows: online at clock t (progress = the data's reach) and offline for a label at t
    give the same value; online's status follows the doc oracle."""
    from tests.unit.test_training_sets import iceberg_table

    d = shipped_catalog.get("user", "txn_amount_sum_1h")
    table = iceberg_table(tmp_path / "wh")
    w = T * 1000
    stored: list[Stored] = [
        ("u1", w, 2.5, ING, 1),
        ("u1", w, 4.0, ING, 3),  # a late update (higher revision, ingested with it)
        ("u1", w + STEP_US, 1.5, ING + 5, 2),
        ("u2", w + 3 * STEP_US, 9.0, ING, 1),  # reach: three steps past w
    ]
    append_us(table, d, stored)
    reach = max(r[1] for r in stored)
    times = sorted(
        {e + k + dd for e in (w, w + STEP_US, reach) for k in (0, STEP_US, FRESH_US, TTL_US) for dd in (-1, 0, 1)}
    )
    offline_values = join(table, shipped_catalog, ["txn_amount_sum_1h"], [("u1", t) for t in times])[
        "txn_amount_sum_1h"
    ]
    for t, off in zip(times, offline_values, strict=True):
        written = [r for r in stored if r[0] == "u1" and r[1] <= t]  # windows are written once closed
        cell = max(written, key=lambda r: r[1] + r[4], default=None)  # online: greatest write time wins
        cells = {} if cell is None else rows(total=(cell[1] // 1000, cell[2]))
        source = Source({"u1": cells}, progress={STREAM: reach // 1000})
        f = client(live, source, t).get("/v1/features/user/u1?names=txn_amount_sum_1h").json()["features"]
        got = f["txn_amount_sum_1h"]
        want = oracle(
            None if cell is None else cell[1],
            None if cell is None else cell[2],
            t,
            min(t, reach),
            TTL_US,
            FRESH_US,
            STEP_US,
            0.0,
        )
        assert (got["value"], got["status"]) == (want[0], want[2]), t
        assert got["value"] == off, (t, got, off)


def test_online_writer_writes_a_value_exactly_at_its_ttl(shipped_catalog: FeatureCatalog) -> None:
    """§5.2: at exactly ``W + ttl`` a value "still counts" (``now - W > ttl`` is strict) and offline reads it;
    design §4: only values *past* their TTL are not written. So a flush at exactly ``W + ttl`` writes it
    (its remaining TTL is 0 s, plus the grace hour); 1 ms later it is past its TTL and skipped."""
    import numpy as np

    from sinks.cassandra.writer import Values, newest_cells
    from sinks.records import WindowResults

    count = shipped_catalog.get("user", "txn_count_1h")  # ttl 2h
    end = T
    ttl_ms = TTL_US // 1000

    def flush(now_ms: int) -> tuple[list[int], int]:
        values = Values()
        values.add_results(
            WindowResults((count,), ["u1"], np.array([end - 60 * 60_000]), np.array([end]), np.array([1]), [[5]])
        )
        cells, expired = newest_cells(values, now_ms)
        return [ttl for _, ttl in cells.get(("user", "u1"), {})], expired

    assert flush(end + ttl_ms - 1) == ([1 + 3_600], 0)
    assert flush(end + ttl_ms + 1) == ([], 1)
    assert flush(end + ttl_ms) == ([3_600], 0)  # fails today: skipped as if past its TTL


def test_batch_scoring_read_as_of_keeps_later_rows_and_their_entities_out(offline: tuple[Any, FeatureCatalog]) -> None:
    import time as _time

    from serving.offline.batch_scoring import export_feature_vectors

    table, catalog = offline
    d = catalog.get("user", "n5")
    append_us(table, d, [("a", W0, 3, ING, 1)])
    x = (_time.time_ns() // 1_000_000 + 5_000) * 1000
    append_us(table, d, [("a", W0 + STEP_US, 4, x, 1), ("b", W0 + 2 * STEP_US, 1, x + 1, 1)])
    _time.sleep(max(0.0, x / 1e6 - _time.time()) + 0.05)

    def export(read_as_of: Any) -> dict[str, Any]:
        out = export_feature_vectors(table, catalog, "user", ["n5"], at_us(W0 + 2 * STEP_US), read_as_of=read_as_of)
        return dict(zip(out.column("entity_id").to_pylist(), out.column("n5").to_pylist(), strict=True))

    assert export(at_us(x)) == {"a": 4}  # ingested exactly at read_as_of: in; 1 µs later (b): out, reach too
    assert export(at_us(x - 1)) == {"a": 3}
    assert export(None) == {"a": 0, "b": 1}  # b's row reaches W0 + 2 steps: a's window there held no events


def test_feature_timestamps_format_whole_milliseconds_exactly_to_year_9999() -> None:
    """§3.3 step 6: timestamps are whole milliseconds, UTC, ``Z``; the float ``ms / 1000`` loses a
    millisecond for some times after about 2109 (here the last millisecond of year 9999)."""
    from serving.online.vectors import format_ms

    for ms in (0, 999, T, 108_438_666_086_349, 250_978_919_548_543, 253_402_300_799_999):
        assert format_ms(ms) == iso_ms(ms), ms


@pytest.mark.parametrize("names", [["txn_count_1h", "txn_amount_sum_1h"], ["txn_amount_sum_1h", "txn_count_1h"]])
def test_online_empty_window_is_zero_in_each_value_type_whatever_the_order(live: LiveCatalog, names: list[str]) -> None:
    source = Source({"u1": rows(count=(T, 7), total=(T, 2.5))}, progress={STREAM: T + STEP_US // 1000})
    api = client(live, source, T * 1000 + STEP_US)
    body = api.get(f"/v1/features/user/u1?names={','.join(names)}").json()["features"]
    batch = api.post("/v1/features/user/batch", json={"entity_ids": ["u1"], "names": names}).json()["results"][0]
    for i, n in enumerate(names):
        want = 0 if n == "txn_count_1h" else 0.0
        for got in (body[n]["value"], batch["values"][i]):
            assert got == want and type(got) is type(want), (n, got)
        assert body[n]["feature_timestamp"] == iso_ms(T + STEP_US // 1000) and body[n]["age_seconds"] == 0.0
