"""What the offline writer's reach saves a backfill: ``python -m bench.backfill_reach``.

In a catalog of its own (a temporary directory, removed at the end; no service needed) it writes ``--entities`` x
``--windows`` rows of version 1 of one feature (the live job's), then writes the same windows of version 2 (a
backfill) in ``--flushes`` flushes through ``OfflineWriter`` with a ``TableReach`` two ways, version 2 first:

- ``per version``: the writer's reach counts the files of its own (name, version) pairs (today's rule): version 1's
  files do not count, and no row is checked;
- ``per name``: the files of every version of the feature count (the rule before), so every row at or below version
  1's newest window end goes through the identity check (a read of the table's rows of those window ends).

Each prints the flushes' wall time, the rows checked and the rows written (one value a row); version 2's rows are
deleted between the two ways.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.cli import run_main
from registry.core.arguments import whole

MIN = 60_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, epoch ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill_reach", description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=whole(1), default=10_000)
    parser.add_argument("--windows", type=whole(1), default=100, help="window ends, 5 minutes apart")
    parser.add_argument("--flushes", type=whole(1), default=10, help="the backfill's flushes (windows split evenly)")
    args = parser.parse_args(argv)
    return run_main(lambda: _run(args.entities, args.windows, args.flushes))


def _run(entities: int, windows: int, flushes: int) -> int:
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.expressions import EqualTo

    from registry.core.catalog import FeatureCatalog
    from registry.core.definitions import FeatureDefinition
    from sinks.iceberg.reach import TableReach
    from sinks.iceberg.writer import OfflineWriter, ensure_table
    from sinks.records import WindowResults

    feature = FeatureCatalog.from_folder().get("user", "txn_count_1h")
    v2 = feature.model_copy(update={"version": 2})
    ids = [f"user_{i}" for i in range(entities)]
    ends = [T0 + i * 5 * MIN for i in range(windows)]
    parts = [list(p) for p in np.array_split(np.array(ends, dtype=np.int64), flushes) if len(p)]

    def results(version: FeatureDefinition, part: list[int]) -> WindowResults:
        at = np.repeat(np.array(part, dtype=np.int64), entities)
        ones = np.ones(len(at), dtype=np.int64)
        return WindowResults((version,), ids * len(part), at - 60 * MIN, at, ones, [ones.tolist()])

    where = Path(tempfile.mkdtemp(prefix="bench_reach_"))
    try:
        catalog = SqlCatalog("bench", uri=f"sqlite:///{where}/c.db", warehouse=(where / "w").as_uri())
        table = ensure_table(catalog, "bench")
        for part in parts:
            writer = OfflineWriter(table)
            writer.add_results(results(feature, part))
            writer.flush()
        rows = entities * windows
        print(f"version 1 in the table: {rows:,} rows ({rows:,} values), {len(parts)} appends")
        ways = (("per version", {(feature.name, 2)}), ("per name", {(feature.name, 1), (feature.name, 2)}))
        for label, pairs in ways:
            loaded = catalog.load_table(table.name())
            writer = OfflineWriter(loaded, reach=TableReach(loaded, pairs))
            started = time.perf_counter()
            for part in parts:
                writer.add_results(results(v2, part))
                writer.flush()
            took = time.perf_counter() - started
            print(
                f"{label:>11}: version 2 written in {len(parts)} flushes in {took:.2f} s: "
                f"{writer.written:,} rows ({writer.written:,} values) written, {writer.checked:,} rows checked",
                flush=True,
            )
            loaded.refresh().delete(EqualTo("feature_version", 2))
    finally:
        shutil.rmtree(where, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
