"""Benchmark of the point-in-time join: label rows per second and peak memory, its answer checked.

    python bench/pit_join.py                 # 100K label rows; 1M rows per feature x 10 features = 10M values
    python bench/pit_join.py --scale 10      # 1M label rows; 10M rows per feature x 10 features = 100M values
    python bench/pit_join.py --scale 1 10    # both (what `make bench-pit` runs)
    python bench/pit_join.py --labels 2000 --rows 10000   # a tiny case, to try the bench and its check

The offline table's layout is long: one row per feature value (entity, feature, window end, one value).
So "1M feature rows of 10 features" (#13's "1M feature rows each carrying 10 features") is stored here as
1M rows for *each* of the 10 features, 10M rows in all, each holding one value. Every case prints its
sizes apart: label rows, `rows/feat.` (rows per feature), `feats` (features), `values` (= rows per feature
x features = table rows) and `entities` (rows per feature / 100: 10K, then 100K).

Each case writes its data to a real Iceberg table (SQLite catalog in a temporary folder; sorted and
appended as the offline writer does, ~2M rows per snapshot; `write s` is that sorting and appending,
`gen. s` the making of the random data), then runs the join in a *fresh*
process, so that the peak RSS reported is the join's (labels, scans, join, result) and not the
generator's. Data: entities = rows per feature / 100, 10 features of four value types over 30 days on
their window grids: each entity's 100 rows of a feature are distinct windows, except ~1 % that store
the window before them again, ingested a second later (replays); at every scale, since each batch of
~2M rows draws the windows of its own entities. Each feature's windows are drawn on their own, also
for features of one window group (the four sliding 1d/1h features share one): a real job writes all of
a group's features for every window with an event, so there an entity's rows of those features share
their window ends. Labels: 80 % shortly (0-30 min) after a
stored window of their entity, as labels of activity are, 20 % at uniformly random times, 5 % of all
for entities with no rows. Times are wall-clock after the table is written (warm page cache): the
first call in a fresh process (`cold s`: lazy imports, thread pool start), then the best of three warm
calls (`warm s (best of 3)`) with the CPU time it used (all threads); `load` is the 1-minute load
average read in the join's process just before its first call.

`rows opened`: the rows of the data files the join's reads of feature rows open in one call, summed over
its chunks and groups of features (a file read by two chunks counts twice; row groups skipped inside a
file by their statistics are not subtracted; the read of the data's reach is not counted). Counted by
wrapping ``sinks.iceberg.files.FileReader.map``: a sum over each read's planned files.

The answer is checked (`checked`): 2,000 label rows drawn at random (seeded; every row of a smaller
case) against a brute-force reference of the join's documented rule (``reference``, docs/design.md
§5.1-5.2) computed from the table's data files read whole with Arrow, not through the join's reader: per
feature the latest window ending at or before the label time (ties: latest ingestion, then highest
revision, then ``registry.core.timeline.tie_key``), null past the TTL, the empty window's value where a
later window closed by the label time and the feature's reach holds no row. Any difference prints
examples and exits 1. `non-null` is the share of non-null values over all labels and features.
`DuckDB s`: DuckDB's ASOF JOIN over the same Parquet files in another fresh process, as a yardstick
of speed only (see ``yardstick``: it skips the TTL, empty-window and tie rules, so it does less than
the join, and its answer is not compared).
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
    first: int,
    entities: int,
    ingested_us: int,
    sample: list[tuple[np.ndarray, np.ndarray]],
) -> pa.Table:
    """``n`` rows of feature ``d`` for the entities ``first .. first + entities - 1``, ``n / entities`` each."""
    from sinks.iceberg import layout as offline_layout

    step = step_ms(d)
    assert step is not None
    size = to_millis(d.window.size) if d.window.size else step
    per = n // entities  # rows per entity: distinct window ends, as a stream job writes them
    slots = SPAN // step - 1
    assert per * entities == n and per <= slots, (n, entities, slots)
    # A sorted draw of `per` from [0, slots - per], plus 0..per-1: `per` distinct slots per entity.
    drawn = np.sort(rng.integers(0, slots - per + 1, (entities, per)), axis=1) + np.arange(per)
    ids = np.repeat(np.arange(first, first + entities), per)
    ends = T0 + (drawn.ravel() + 1) * step
    some = rng.integers(0, n, max(n // 10, 1))  # a tenth of the rows (at least one) the labels are drawn near
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


def entity_count(feature_rows: int) -> int:
    """Entities for ``feature_rows`` rows per feature: 100 rows (windows) each."""
    return max(feature_rows // 100, 1)


BATCH_ROWS = 2_000_000


def generate(
    folder: Path, labels: int, feature_rows: int, seed: int = 7, batch_rows: int = BATCH_ROWS
) -> dict[str, float]:
    """``feature_rows`` rows of every one of the 10 features (``feature_rows * 10`` values, one per row),
    for ``feature_rows / 100`` entities, and ``labels`` label rows. Written as the offline writer writes:
    sorted in the layout's order, one snapshot per ``batch_rows`` rows (``sinks.iceberg.writer``).

    A feature's rows are made in batches of about ``batch_rows``, each for its own range of entities (all
    of an entity's rows of a feature in one batch), so that an entity's windows are distinct at any size."""
    rng = np.random.default_rng(seed)
    table = _table(folder)
    defs = list(catalog())
    entities = entity_count(feature_rows)
    per = feature_rows // entities  # rows per entity and feature
    assert per * entities == feature_rows, (feature_rows, entities)
    batch_entities = max(batch_rows // per, 1)
    started = time.perf_counter()
    writing = 0.0  # of which sorting and appending: what the offline writer pays (the rest makes the data)
    pending: list[pa.Table] = []
    pending_rows = 0
    ingested_us = (T0 + SPAN + DAY) * 1000
    sample: list[tuple[np.ndarray, np.ndarray]] = []
    for d in defs:
        for first in range(0, entities, batch_entities):
            count = min(batch_entities, entities - first)
            part = _rows(rng, d, count * per, first, count, ingested_us, sample)
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


# ---------------------------------------------------------------------------------------------
# The check: a brute-force reference of the join's documented rule, from the data files themselves
# ---------------------------------------------------------------------------------------------

SAMPLE = 2_000  # label rows checked per case
VALUE_COLUMN = {"long": "value_long", "double": "value_double", "string": "value_string", "boolean": "value_boolean"}


def data_files(folder: Path) -> list[str]:
    """The local paths of the table's current data files (the bench only appends: every file it wrote)."""
    return [task.file.file_path.removeprefix("file://") for task in _table(folder).scan().plan_files()]


def reach_us(folder: Path) -> dict[tuple[str, int], int]:
    """The latest window end (µs) stored per feature version of entity type ``user``, any entity: every row read."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    reach: dict[tuple[str, int], int] = {}
    data = ds.dataset(data_files(folder), format="parquet")
    columns = ["feature_name", "feature_version", "event_time"]
    for batch in data.to_batches(columns=columns, filter=pc.field("entity_type") == "user"):
        latest = pa.Table.from_batches([batch]).group_by(columns[:2]).aggregate([("event_time", "max")])
        ends = latest.column("event_time_max").cast(pa.int64()).to_pylist()
        for name, version, end in zip(
            latest.column("feature_name").to_pylist(), latest.column("feature_version").to_pylist(), ends, strict=True
        ):
            reach[(name, version)] = max(reach.get((name, version), end), end)
    return reach


def reference(folder: Path, entity_ids: list[str], label_us: list[int]) -> dict[str, list[Any]]:
    """Each feature's value for the label rows (entity id, label time in µs), by the rule as documented
    (docs/design.md §5.1-5.2), one row at a time over every stored row of the label's entity and feature."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from registry.core.timeline import empty_value, tie_key

    wanted = sorted(set(entity_ids))
    data = ds.dataset(data_files(folder), format="parquet")
    rows = data.to_table(
        columns=[
            "entity_id",
            "feature_name",
            "feature_version",
            "event_time",
            "ingested_at",
            "revision",
            *VALUE_COLUMN.values(),
        ],
        filter=(pc.field("entity_type") == "user") & pc.field("entity_id").isin(wanted),
    )
    reach = reach_us(folder)
    out: dict[str, list[Any]] = {}
    for d in catalog():  # one feature's rows as Python objects at a time
        mine = rows.filter((pc.field("feature_name") == d.name) & (pc.field("feature_version") == d.version))
        stored: dict[str, list[tuple[int, int, int, Any]]] = {}
        for entity, end, ingested, revision, stored_value in zip(
            mine.column("entity_id").to_pylist(),
            mine.column("event_time").cast(pa.int64()).to_pylist(),
            mine.column("ingested_at").cast(pa.int64()).to_pylist(),
            mine.column("revision").to_pylist(),
            mine.column(VALUE_COLUMN[d.value_type]).to_pylist(),
            strict=True,
        ):
            stored.setdefault(entity, []).append((end, ingested, revision or 0, stored_value))
        step = step_ms(d)
        assert step is not None  # every feature here has a window grid
        ttl_us, step_us = to_millis(d.ttl) * 1000, step * 1000
        answers: list[Any] = []
        for entity, label in zip(entity_ids, label_us, strict=True):
            best: tuple[int, int, int, tuple[int, int | bytes]] | None = None  # the order's key of the row kept
            value: Any = None
            for end, ingested, revision, stored_value in stored.get(entity, []):
                key = (end, ingested, revision, tie_key(stored_value, d.value_type))
                if end <= label and (best is None or key > best):
                    best, value = key, stored_value
            if best is None or label - best[0] > ttl_us:
                answers.append(None)
                continue
            closed = min(label, reach[(d.name, d.version)])
            answers.append(empty_value(d) if best[0] < closed // step_us * step_us else value)
        out[d.name] = answers
    return out


def check(folder: Path, labels: pa.Table, result: pa.Table, sample: int = SAMPLE, seed: int = 11) -> dict[str, Any]:
    """``result`` (the join's, row for row with ``labels``) against ``reference`` on ``sample`` label rows
    drawn at random (seeded; all rows if fewer): how many were checked, how many values differ, and up to
    ten differences written out."""
    if result.num_rows != labels.num_rows:
        return {"checked": 0, "mismatches": 1, "examples": [f"{result.num_rows} rows for {labels.num_rows} labels"]}
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(labels.num_rows, min(sample, labels.num_rows), replace=False)).tolist()
    entity_ids = labels.column("user_id").take(rows).to_pylist()
    label_us = (
        labels.column("event_timestamp").cast(pa.timestamp("us", tz="UTC")).take(rows).cast(pa.int64())
    ).to_pylist()
    expected = reference(folder, entity_ids, label_us)
    mismatches, examples = 0, list[str]()
    for name, want in expected.items():
        got = result.column(name).take(rows).to_pylist()
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            if g != w or (g is None) != (w is None) or type(g) is not type(w):
                mismatches += 1
                if len(examples) < 10:
                    examples.append(
                        f"label row {rows[i]} ({entity_ids[i]} at {label_us[i]} µs) {name}: join {g!r}, reference {w!r}"
                    )
    return {"checked": len(rows), "mismatches": mismatches, "examples": examples}


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


def run(folder: Path, chunk_rows: int) -> dict[str, Any]:
    """The join alone, in this (fresh) process: wall time and peak RSS; then its answer checked."""
    from serving.offline.historical import get_historical_features
    from sinks.iceberg.files import FileReader

    table = _table(folder)
    labels = pq.read_table(folder / "labels.parquet")
    names = [f[0] for f in FEATURES]
    opened = [0]  # rows of the data files the current call's reads of feature rows open
    mapped = FileReader.map

    def counted(self: FileReader, *args: Any, **kwargs: Any) -> Any:
        opened[0] += sum(task.file.record_count for task in self.tasks)
        return mapped(self, *args, **kwargs)

    FileReader.map = counted  # type: ignore[method-assign]
    rss_before = peak_rss_mib()
    load = os.getloadavg()[0]  # other work on the machine skews wall times: shown with them
    times, cpu, rows_opened = [], [], []
    result = None
    for _ in range(4):  # the first call in a fresh process, then warm ones (the best is reported)
        result = None  # the previous call's result is not held during this one
        opened[0] = 0
        started, started_cpu = time.perf_counter(), time.process_time()
        result = get_historical_features(
            table, catalog(), labels, names, entity_type="user", entity_column="user_id", chunk_rows=chunk_rows
        )
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        rows_opened.append(opened[0])
    FileReader.map = mapped  # type: ignore[method-assign]
    peak = peak_rss_mib()  # before the check, which reads rows of its own
    assert result is not None
    values = result.num_rows * len(names)
    non_null = sum(result.num_rows - result.column(n).null_count for n in names) / values if values else 0.0
    best = min(range(1, len(times)), key=lambda i: times[i])
    return {
        "cold_s": times[0],
        "warm_s": times[best],
        "warm_cpu_s": cpu[best],
        "peak_rss_mib": peak,
        "rss_before_join_mib": rss_before,
        "load": load,
        "non_null_share": non_null,
        "rows_opened": rows_opened[best],
        **check(folder, labels, result),
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


def _child(flag: str, folder: Path, chunk_rows: int) -> dict[str, Any] | None:
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
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--scale",
        type=whole(1),
        nargs="+",
        help="1 = 100K label rows, 1M rows per feature x 10 features (10M values); 10 = ten times both (default 1; "
        "not with --labels and --rows)",
    )
    parser.add_argument("--labels", type=whole(1), help="one case of this many label rows (with --rows), not --scale")
    parser.add_argument("--rows", type=whole(1), help="rows per feature of that case: under 100, or a multiple of 100")
    parser.add_argument("--chunk-rows", type=whole(1), default=None, help="labels per chunk (default: the library's)")
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)  # internal: join only, in a fresh process
    parser.add_argument("--duckdb", type=Path, help=argparse.SUPPRESS)  # internal: the yardstick, in another
    args = parser.parse_args(argv)
    if (args.labels is None) != (args.rows is None):
        parser.error("--labels and --rows go together")
    if args.labels is not None and args.scale is not None:
        parser.error("--scale or --labels with --rows: one case size, not both")
    args.scale = args.scale or [1]
    if args.rows is not None and args.rows >= 100 and args.rows % 100:
        parser.error(f"--rows must be under 100 or a multiple of 100 (100 rows per entity), not {args.rows}")
    if args.run is not None:
        print(json.dumps(run(args.run, args.chunk_rows)))
        return 0
    if args.duckdb is not None:
        print(json.dumps(yardstick(args.duckdb)))
        return 0
    from serving.offline.historical import DEFAULT_CHUNK_ROWS

    chunk_rows = args.chunk_rows or DEFAULT_CHUNK_ROWS
    cases = (
        [(args.labels, args.rows)] if args.labels is not None else [(100_000 * s, 1_000_000 * s) for s in args.scale]
    )
    print(
        f"{'labels':>10} {'rows/feat.':>11} {'feats':>5} {'values':>12} {'entities':>9} {'write s':>8} {'gen. s':>7} "
        f"{'load':>5} {'cold s':>7} {'labels/s':>10} {'warm s (best of 3)':>18} {'labels/s':>10} {'CPU s':>6} "
        f"{'peak RSS MiB':>12} {'RSS before':>10} {'rows opened':>12} {'non-null':>8} {'checked':>7} "
        f"{'DuckDB s':>8} {'labels/s':>10} {'its RSS':>9}  "
        f"(long layout: one row per feature value; chunk_rows={chunk_rows}, {os.cpu_count()} CPUs)"
    )
    failed = False
    for labels, rows in cases:
        with tempfile.TemporaryDirectory(prefix="fs-bench-pit-") as tmp:
            folder = Path(tmp)
            written = generate(folder, labels, rows)
            r = _child("--run", folder, chunk_rows)
            duck = _child("--duckdb", folder, chunk_rows)
            if r is None or duck is None:
                return 1
        print(
            f"{labels:>10,} {rows:>11,} {len(FEATURES):>5} {rows * len(FEATURES):>12,} {entity_count(rows):>9,} "
            f"{written['write_s']:>8.1f} {written['generate_s']:>7.1f} {r['load']:>5.1f} {r['cold_s']:>7.2f} "
            f"{labels / r['cold_s']:>10,.0f} {r['warm_s']:>18.2f} {labels / r['warm_s']:>10,.0f} {r['warm_cpu_s']:>6.2f} "
            f"{r['peak_rss_mib']:>12,.0f} {r['rss_before_join_mib']:>10,.0f} {r['rows_opened']:>12,} "
            f"{r['non_null_share']:>8.0%} {r['checked']:>7,} {duck['duckdb_s']:>8.2f} "
            f"{labels / duck['duckdb_s']:>10,.0f} {duck['duckdb_peak_rss_mib']:>9,.0f}",
            flush=True,
        )
        if r["mismatches"]:
            failed = True
            print(
                f"error: the join differs from the reference in {r['mismatches']:,} of {r['checked'] * len(FEATURES):,}"
                f" values checked ({r['checked']:,} label rows); for example:",
                file=sys.stderr,
            )
            for example in r["examples"]:
                print(f"  {example}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_main(main))
