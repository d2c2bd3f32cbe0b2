"""Benchmark of the point-in-time join: label rows per second and peak memory.

    python bench/pit_join.py                 # 100K label rows against 1M feature rows of 10 features: 10M values
    python bench/pit_join.py --scale 10      # 1M label rows against 10M feature rows of 10 features: 100M values
    python bench/pit_join.py --scale 1 10    # both (what `make bench-pit` runs)

The sizes count three things and print all three: label rows, feature rows (each carries all 10
features) and values (feature rows x 10). Entities: feature rows / 100 (10K, then 100K).

Each case writes its data to a real Iceberg table (SQLite catalog in a temporary folder; sorted and
appended as the offline writer does, ~2M rows per snapshot; `write s` is that sorting and appending,
`gen. s` the making of the random data), then runs the join in a *fresh*
process, so that the peak RSS reported is the join's (labels, scans, join, result) and not the
generator's. Data: entities = feature rows / 100, 10 features of four value types over 30 days on
their window grids, ~1 % of windows ingested twice (replays). Labels: 80 % shortly (0-30 min) after a
stored window of their entity, as labels of activity are, 20 % at uniformly random times, 5 % of all
for entities with no rows. Times are wall-clock after the table is written (warm page cache): the
first call in a fresh process (cold: lazy imports, thread pool start), then the best of three warm calls
with the CPU time it used (all threads); `load` is the 1-minute load average when the join started.
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
# (name, value type, window, aggregation, ttl)
FEATURES: list[tuple[str, str, dict[str, str], dict[str, str], str]] = [
    ("txn_count_1h", "long", {"kind": "sliding", "size": "1h", "slide": "5m"}, {"function": "count"}, "2h"),
    ("txn_count_1d", "long", {"kind": "sliding", "size": "1d", "slide": "1h"}, {"function": "count"}, "2d"),
    ("amount_sum_1h", "double", {"kind": "tumbling", "size": "1h"}, {"function": "sum", "field": "amount"}, "6h"),
    ("amount_max_1d", "double", {"kind": "tumbling", "size": "1d"}, {"function": "max", "field": "amount"}, "3d"),
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
        {"kind": "tumbling", "size": "1d"},
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
    ("max_merchant", "string", {"kind": "tumbling", "size": "1d"}, {"function": "max", "field": "merchant_id"}, "3d"),
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
    ids = rng.integers(0, entities, n)
    ends = T0 + rng.integers(1, SPAN // step, n) * step
    sample.append((ids[: n // 10], ends[: n // 10]))
    if d.value_type == "long":
        values: dict[str, pa.Array] = {"value_long": pa.array(rng.integers(0, 10_000, n))}
    elif d.value_type == "double":
        values = {"value_double": pa.array(rng.random(n) * 1000)}
    elif d.value_type == "string":
        values = {"value_string": pa.array(np.char.add("m_", rng.integers(0, 5000, n).astype(str)).astype(object))}
    else:
        values = {"value_boolean": pa.array(rng.random(n) < 0.5)}
    replay = rng.random(n) < 0.01  # a replayed window: same end, ingested a second later
    columns = {
        "entity_type": pa.array(np.full(n, "user", dtype=object)),
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
    best = min(range(1, len(times)), key=lambda i: times[i])
    return {
        "cold_s": times[0],
        "warm_s": times[best],
        "warm_cpu_s": cpu[best],
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_join_mib": rss_before,
        "non_null_share": non_null,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--scale", type=int, nargs="+", default=[1], help="1 = 100K labels x 1M rows; 10 = ten times both"
    )
    parser.add_argument("--chunk-rows", type=int, default=None, help="labels per chunk (default: the library's)")
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)  # internal: join only, in a fresh process
    args = parser.parse_args(argv)
    if args.run is not None:
        print(json.dumps(run(args.run, args.chunk_rows)))
        return 0
    from serving.offline.historical import DEFAULT_CHUNK_ROWS

    chunk_rows = args.chunk_rows or DEFAULT_CHUNK_ROWS
    print(
        f"{'labels':>10} {'feat. rows':>11} {'values':>12} {'write s':>8} {'gen. s':>7} {'cold s':>7} {'labels/s':>10} {'warm s':>7} {'labels/s':>10} "
        f"{'CPU s':>6} {'peak RSS MiB':>12} {'RSS before':>10} {'non-null':>8} {'load':>5}  "
        f"(10 features, chunk_rows={chunk_rows}, {os.cpu_count()} CPUs)"
    )
    for scale in args.scale:
        labels, rows = 100_000 * scale, 1_000_000 * scale  # rows: feature rows, each of all 10 features
        with tempfile.TemporaryDirectory(prefix="fs-bench-pit-") as tmp:
            folder = Path(tmp)
            written = generate(folder, labels, rows)
            load = os.getloadavg()[0]  # other work on the machine skews wall times: shown with them
            child = subprocess.run(
                [sys.executable, __file__, "--run", str(folder), "--chunk-rows", str(chunk_rows)],
                capture_output=True,
                text=True,
                timeout=600,
                cwd=REPO,
            )
            if child.returncode != 0:
                print(child.stderr, file=sys.stderr)
                return 1
            r = json.loads(child.stdout.strip().splitlines()[-1])
        print(
            f"{labels:>10,} {rows:>11,} {rows * len(FEATURES):>12,} {written['write_s']:>8.1f} {written['generate_s']:>7.1f} {r['cold_s']:>7.2f} {labels / r['cold_s']:>10,.0f} "
            f"{r['warm_s']:>7.2f} {labels / r['warm_s']:>10,.0f} {r['warm_cpu_s']:>6.2f} {r['peak_rss_mib']:>12,.0f} "
            f"{r['rss_before_join_mib']:>10,.0f} {r['non_null_share']:>8.0%} {load:>5.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
