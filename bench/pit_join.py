"""Benchmark of the point-in-time join: label rows per second and peak memory.

    python bench/pit_join.py                 # 100K label rows against 1M feature rows of 10 features: 10M values
    python bench/pit_join.py --scale 10      # 1M label rows against 10M feature rows of 10 features: 100M values
    python bench/pit_join.py --scale 1 10    # both (what `make bench-pit` runs)

The sizes count three things and print all three: label rows, feature rows (windows stored, for
each of the 10 features) and values (feature rows x 10; the offline table's long layout holds one
value per row, so values = table rows). Entities: feature rows / 100 (10K, then 100K).
`val. scanned`: the rows of the data files the join's scans plan.

Each case writes its data to a real Iceberg table (SQLite catalog in a temporary folder; sorted and
appended as the offline writer does, ~2M rows per snapshot; `write s` is that sorting and appending,
`gen. s` the making of the random data), then runs the join in a *fresh*
process, so that the peak RSS reported is the join's (labels, scans, join, result) and not the
generator's. Data: entities = feature rows / 100, 10 features of four value types over 30 days on
their window grids: each entity's 100 rows of a feature are distinct windows, except ~1 % that store
the window before them again, ingested a second later (replays). Labels: 80 % shortly (0-30 min) after a
stored window of their entity, as labels of activity are, 20 % at uniformly random times, 5 % of all
for entities with no rows. Times are wall-clock after the table is written (warm page cache): the
first call in a fresh process (cold: lazy imports, thread pool start), then the best of three warm calls
with the CPU time it used (all threads); `load` is the 1-minute load average when the join started.
`DuckDB s`: DuckDB's ASOF JOIN over the same Parquet files in another fresh process, as a yardstick
(see ``yardstick``: it skips the TTL, empty-window and tie rules, so it does less than the join).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.cli import run_main  # noqa: E402
from registry.core.arguments import whole  # noqa: E402
from registry.core.catalog import FeatureCatalog  # noqa: E402
from registry.core.definitions import FeatureDefinition  # noqa: E402
from registry.core.durations import to_millis  # noqa: E402
from registry.core.timeline import step_ms  # noqa: E402

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
T0 = 1_700_000_000_000 // DAY * DAY
SPAN = 30 * DAY
SOURCE = {
    "topic": "card_transactions",
    "event_schema": "card_transaction",
    "subject": "card_transactions-value",
    "entity_key": "user_id",
    "timestamp_field": "event_time",
}
# (name, value type, window, aggregation, ttl). Every window grid has at least 720 ends in the 30 days,
# so each entity's 100 rows per feature are 100 distinct windows (as a stream job writes them).
FEATURES: list[tuple[str, str, dict[str, str], dict[str, str], str]] = [
    ("txn_count_1h", "long", {"kind": "sliding", "size": "1h", "slide": "5m"}, {"function": "count"}, "2h"),
    ("txn_count_1d", "long", {"kind": "sliding", "size": "1d", "slide": "1h"}, {"function": "count"}, "2d"),
    ("amount_sum_1h", "double", {"kind": "tumbling", "size": "1h"}, {"function": "sum", "field": "amount"}, "6h"),
    (
        "amount_max_1d",
        "double",
        {"kind": "sliding", "size": "1d", "slide": "1h"},
        {"function": "max", "field": "amount"},
        "3d",
    ),
    (
        "amount_mean_1h",
        "double",
        {"kind": "sliding", "size": "1h", "slide": "15m"},
        {"function": "mean", "field": "amount"},
        "12h",
    ),
    (
        "merchants_1d",
        "long",
        {"kind": "sliding", "size": "1d", "slide": "1h"},
        {"function": "count_distinct", "field": "merchant_id"},
        "7d",
    ),
    (
        "last_merchant",
        "string",
        {"kind": "tumbling", "size": "10m"},
        {"function": "last", "field": "merchant_id"},
        "1d",
    ),
    ("last_country", "string", {"kind": "tumbling", "size": "1h"}, {"function": "last", "field": "country"}, "2d"),
    (
        "last_is_online",
        "boolean",
        {"kind": "tumbling", "size": "30m"},
        {"function": "last", "field": "is_online"},
        "1d",
    ),
    (
        "max_merchant",
        "string",
        {"kind": "sliding", "size": "1d", "slide": "1h"},
        {"function": "max", "field": "merchant_id"},
        "3d",
    ),
]


def catalog() -> FeatureCatalog:
    return FeatureCatalog(
        FeatureDefinition.model_validate(
            {
                "name": name,
                "entity": "user",
                "version": 1,
                "owner": "bench",
                "value_type": value_type,
                "source": SOURCE,
                "window": window,
                "aggregation": aggregation,
                "freshness_slo": "10m",
                "ttl": ttl,
            }
        )
        for name, value_type, window, aggregation, ttl in FEATURES
    )


def _table(folder: Path) -> Any:
    from pyiceberg.catalog.sql import SqlCatalog

    from sinks.iceberg.writer import ensure_table

    sql = SqlCatalog("bench", uri=f"sqlite:///{folder}/catalog.db", warehouse=(folder / "warehouse").as_uri())
    return ensure_table(sql, "bench")


def _rows(
    rng: np.random.Generator,
    d: FeatureDefinition,
    n: int,
    entities: int,
    ingested_us: int,
    sample: list[tuple[np.ndarray, np.ndarray]],
) -> pa.Table:
    from sinks.iceberg import layout as offline_layout

    step = step_ms(d)
    assert step is not None
    size = to_millis(d.window.size) if d.window.size else step
    per = n // entities  # rows per entity: distinct window ends, as a stream job writes them
    slots = SPAN // step - 1
    assert per * entities == n and per <= slots, (n, entities, slots)
    # A sorted draw of `per` from [0, slots - per], plus 0..per-1: `per` distinct slots per entity.
    drawn = np.sort(rng.integers(0, slots - per + 1, (entities, per)), axis=1) + np.arange(per)
    ids = np.repeat(np.arange(entities), per)
    ends = T0 + (drawn.ravel() + 1) * step
    some = rng.integers(0, n, n // 10)
    sample.append((ids[some], ends[some]))
    if d.value_type == "long":
        values: dict[str, pa.Array] = {"value_long": pa.array(rng.integers(0, 10_000, n))}
    elif d.value_type == "double":
        values = {"value_double": pa.array(rng.random(n) * 1000)}
    elif d.value_type == "string":
        values = {"value_string": pa.array(np.char.add("m_", rng.integers(0, 5000, n).astype(str)).astype(object))}
    else:
        values = {"value_boolean": pa.array(rng.random(n) < 0.5)}
    # ~1 % replays: a window of the entity's stored again (recomputed), ingested a second later
    replay = (rng.random(n) < 0.01) & (np.arange(n) % per != 0)
    ends[replay] = ends[np.flatnonzero(replay) - 1]
    columns = {
        "entity_type": pa.array(np.full(n, "user", dtype=object)),
        "revision": pa.array(np.full(n, 1, dtype=np.int64)),
        "entity_id": pa.array(np.char.add("user_", ids.astype(str)).astype(object)),
        "feature_name": pa.array(np.full(n, d.name, dtype=object)),
        "feature_version": pa.array(np.full(n, d.version, dtype=np.int32)),
        "event_time": pa.array(ends * 1000, pa.timestamp("us", tz="UTC")),
        "window_start": pa.array((ends - size) * 1000, pa.timestamp("us", tz="UTC")),
        **values,
        "ingested_at": pa.array(np.where(replay, ingested_us + 1_000_000, ingested_us), pa.timestamp("us", tz="UTC")),
    }
    schema = offline_layout.arrow_schema()
    return pa.table({f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in schema}).cast(schema)


def _write(table: Any, parts: list[pa.Table]) -> float:
    """Sort and append one batch as the offline writer does; its seconds."""
    from sinks.iceberg.writer import append_rows, sorted_rows

    started = time.perf_counter()
    append_rows(table, sorted_rows(pa.concat_tables(parts)))
    return time.perf_counter() - started


def generate(folder: Path, labels: int, feature_rows: int, seed: int = 7) -> dict[str, float]:
    """``feature_rows`` rows of every one of the 10 features (``feature_rows * 10`` values), for
    ``feature_rows / 100`` entities, and ``labels`` label rows. Written as the offline writer writes:
    sorted in the layout's order, one snapshot per 2M rows (``sinks.iceberg.writer``)."""
    rng = np.random.default_rng(seed)
    table = _table(folder)
    defs = list(catalog())
    entities = max(feature_rows // 100, 1)
    started = time.perf_counter()
    writing = 0.0  # of which sorting and appending: what the offline writer pays (the rest makes the data)
    per_feature = feature_rows
    batch_rows = 2_000_000
    pending: list[pa.Table] = []
    pending_rows = 0
    ingested_us = (T0 + SPAN + DAY) * 1000
    sample: list[tuple[np.ndarray, np.ndarray]] = []
    for d in defs:
        for start in range(0, per_feature, batch_rows):
            part = _rows(rng, d, min(batch_rows, per_feature - start), entities, ingested_us, sample)
            pending.append(part)
            pending_rows += part.num_rows
            if pending_rows >= batch_rows:
                writing += _write(table, pending)
                pending, pending_rows = [], 0
    if pending:
        writing += _write(table, pending)
    written = time.perf_counter() - started
    pool_ids = np.concatenate([ids for ids, _ in sample])
    pool_ends = np.concatenate([ends for _, ends in sample])
    pick = rng.integers(0, len(pool_ids), labels)
    near = rng.random(labels) < 0.8
    label_ids = np.where(near, pool_ids[pick], rng.integers(0, entities, labels))
    label_ms = np.where(near, pool_ends[pick] + rng.integers(0, 30 * MIN, labels), T0 + rng.integers(0, SPAN, labels))
    unknown = rng.random(labels) < 0.05
    label_ids = np.where(unknown, entities + rng.integers(0, entities, labels), label_ids)
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array(np.char.add("user_", label_ids.astype(str)).astype(object)),
                "event_timestamp": pa.array(label_ms, pa.timestamp("ms", tz="UTC")),
                "label": pa.array(rng.random(labels) < 0.1),
            }
        ),
        folder / "labels.parquet",
    )
    return {"write_s": writing, "generate_s": written - writing}


def peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec,
    so a child would report its parent's peak (the data generator's)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(folder: Path, chunk_rows: int) -> dict[str, float]:
    """The join alone, in this (fresh) process: wall time and peak RSS."""
    from serving.offline.historical import get_historical_features

    table = _table(folder)
    labels = pq.read_table(folder / "labels.parquet")
    names = [f[0] for f in FEATURES]
    rss_before = peak_rss_mib()
    times, cpu = [], []
    for _ in range(4):  # the first call in a fresh process, then warm ones (the best is reported)
        started, started_cpu = time.perf_counter(), time.process_time()
        result = get_historical_features(
            table, catalog(), labels, names, entity_type="user", entity_column="user_id", chunk_rows=chunk_rows
        )
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        assert result.num_rows == labels.num_rows
        del result
    result = get_historical_features(
        table, catalog(), labels.slice(0, 1000), names, entity_type="user", entity_column="user_id"
    )
    non_null = sum(result.num_rows - result.column(n).null_count for n in names) / (len(names) * result.num_rows)
    from sinks.iceberg.reader import _filter, read_point

    times_us = labels.column("event_timestamp").cast(pa.int64()).to_numpy() * 1000
    scanned = sum(  # the rows of the data files the join's scan plans (what it reads, before row groups are pruned)
        task.file.record_count
        for task in table.scan(
            row_filter=_filter(
                "user",
                list(catalog()),
                read_point(table, None),
                int(times_us.min()) - 7 * DAY * 1000,
                int(times_us.max()),
            )
        ).plan_files()
    )
    best = min(range(1, len(times)), key=lambda i: times[i])
    return {
        "cold_s": times[0],
        "warm_s": times[best],
        "warm_cpu_s": cpu[best],
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_join_mib": rss_before,
        "non_null_share": non_null,
        "values_scanned": scanned,
    }


def yardstick(folder: Path) -> dict[str, float]:
    """DuckDB's ASOF JOIN on the same data, in this (fresh) process: per feature, the latest window end
    at or before each label, read from the same Parquet files (the table's current snapshot).

    A yardstick for the engine, not the same answer: it applies neither the TTL, nor empty windows, nor
    the tie rule (a window stored twice may give either row). One query per feature (its row groups
    pruned by the feature name, as the join's reads are), DuckDB's memory limited to 3 GB (it spills
    beyond); best of three calls after one to warm up.
    """
    import duckdb

    table = _table(folder)
    files = [task.file.file_path for task in table.scan().plan_files()]
    column = {"long": "value_long", "double": "value_double", "string": "value_string", "boolean": "value_boolean"}
    labels = folder / "labels.parquet"
    connection = duckdb.connect()
    connection.execute("SET memory_limit = '3GB'")
    connection.execute(
        "CREATE TEMP TABLE labels AS SELECT row_number() OVER () AS i, user_id, event_timestamp AS ts"
        f" FROM read_parquet('{labels}')"
    )
    times = []
    for _ in range(4):
        started = time.perf_counter()
        columns = {}
        for name, value_type, *_ in FEATURES:
            query = (
                f"SELECT f.v FROM labels l ASOF LEFT JOIN (SELECT entity_id, event_time, {column[value_type]} AS v"
                f" FROM read_parquet({files!r}) WHERE entity_type = 'user' AND feature_name = '{name}'"
                " AND feature_version = 1) f ON l.user_id = f.entity_id AND f.event_time <= l.ts ORDER BY l.i"
            )
            columns[name] = connection.sql(query).to_arrow_table().column(0)
        times.append(time.perf_counter() - started)
        assert all(len(c) == pq.ParquetFile(labels).metadata.num_rows for c in columns.values())
    return {"duckdb_s": min(times[1:]), "duckdb_peak_rss_mib": peak_rss_mib()}


def _child(flag: str, folder: Path, chunk_rows: int) -> dict[str, float] | None:
    child = subprocess.run(
        [sys.executable, __file__, flag, str(folder), "--chunk-rows", str(chunk_rows)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    if child.returncode != 0:
        print(child.stderr, file=sys.stderr)
        return None
    result: dict[str, float] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--scale", type=whole(1), nargs="+", default=[1], help="1 = 100K labels x 1M rows; 10 = ten times both"
    )
    parser.add_argument("--chunk-rows", type=whole(1), default=None, help="labels per chunk (default: the library's)")
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)  # internal: join only, in a fresh process
    parser.add_argument("--duckdb", type=Path, help=argparse.SUPPRESS)  # internal: the yardstick, in another
    args = parser.parse_args(argv)
    if args.run is not None:
        print(json.dumps(run(args.run, args.chunk_rows)))
        return 0
    if args.duckdb is not None:
        print(json.dumps(yardstick(args.duckdb)))
        return 0
    from serving.offline.historical import DEFAULT_CHUNK_ROWS

    chunk_rows = args.chunk_rows or DEFAULT_CHUNK_ROWS
    print(
        f"{'labels':>10} {'feat. rows':>11} {'values':>12} {'write s':>8} {'gen. s':>7} {'cold s':>7} {'labels/s':>10} {'warm s':>7} {'labels/s':>10} "
        f"{'CPU s':>6} {'peak RSS MiB':>12} {'RSS before':>10} {'val. scanned':>12} {'non-null':>8} {'DuckDB s':>8} {'labels/s':>10} "
        f"{'its RSS':>9} {'load':>5}  "
        f"(10 features, chunk_rows={chunk_rows}, {os.cpu_count()} CPUs)"
    )
    for scale in args.scale:
        labels, rows = 100_000 * scale, 1_000_000 * scale  # rows: feature rows (windows) of each of the 10 features
        with tempfile.TemporaryDirectory(prefix="fs-bench-pit-") as tmp:
            folder = Path(tmp)
            written = generate(folder, labels, rows)
            load = os.getloadavg()[0]  # other work on the machine skews wall times: shown with them
            r = _child("--run", folder, chunk_rows)
            duck = _child("--duckdb", folder, chunk_rows)
            if r is None or duck is None:
                return 1
        print(
            f"{labels:>10,} {rows:>11,} {rows * len(FEATURES):>12,} {written['write_s']:>8.1f} {written['generate_s']:>7.1f} {r['cold_s']:>7.2f} {labels / r['cold_s']:>10,.0f} "
            f"{r['warm_s']:>7.2f} {labels / r['warm_s']:>10,.0f} {r['warm_cpu_s']:>6.2f} {r['peak_rss_mib']:>12,.0f} "
            f"{r['rss_before_join_mib']:>10,.0f} {r['values_scanned']:>12,} {r['non_null_share']:>8.0%} {duck['duckdb_s']:>8.2f} "
            f"{labels / duck['duckdb_s']:>10,.0f} {duck['duckdb_peak_rss_mib']:>9,.0f} {load:>5.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
