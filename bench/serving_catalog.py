"""``make bench-serving``'s (c) runs: the same 10-feature read at one fixed rate against catalogs of several
sizes (``--catalog-sizes``), each size's p50/p99 against the smallest (issue #19: flat from 10 to 10,000
definitions). Called by ``bench.serving_load`` with its seeded keyspace and server helpers."""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

from bench.serving_requests import expected_present, load, requests_for
from bench.serving_seed import N_FEATURES, _definitions
from bench.serving_server import cpu_seconds, free_port, server
from bench.serving_table import print_row

CATALOG_READ = 10  # features each (c) request reads


def catalog_db(folder: Path, size: int) -> Path:
    """A definitions DB of ``size`` definitions: the first ``CATALOG_READ`` bench features, then copies of one
    under other names (registered, never read)."""
    from registry.definition_store import DefinitionStore

    definitions = _definitions()
    kept = definitions[: min(size, N_FEATURES)]
    template = definitions[1]
    extra = [template.model_copy(update={"name": f"bench_extra_{i:05d}"}) for i in range(size - len(kept))]
    db = folder / f"catalog-{size}.db"
    DefinitionStore(db).register_all([*kept, *extra])
    return db


def catalog_runs(
    settings: Any,
    tmp: Path,
    ids: list[str],
    names: list[str],
    sizes: list[int],
    args: argparse.Namespace,
    rng: random.Random,
    cassandra: int | None,
) -> list[str]:
    """(c): the same 10-feature read at one fixed rate against catalogs of each size; p50/p99 against the smallest.
    Returns the rows with wrong answers (features not present)."""
    invalid: list[str] = []
    first: dict[str, Any] | None = None
    for size in sizes:
        if size < CATALOG_READ:
            raise SystemExit(f"--catalog-sizes: at least {CATALOG_READ} definitions (the features read)")
        sized = settings.model_copy(update={"definitions_db": catalog_db(tmp, size)})
        port = free_port()
        with server(sized, port=port, workers=args.workers, cache_ttl_ms=0, profile=None) as pid:
            reqs = requests_for("a", port, ids, names[:CATALOG_READ], rng)
            server0, cassandra0 = cpu_seconds(pid if args.workers == 1 else None), cpu_seconds(cassandra)
            r = load(
                port,
                reqs,
                mode="fixed",
                rate=args.catalog_rate,
                connections=16,
                duration_s=args.duration,
                warmup_s=args.warmup,
                expect_present=expected_present("c", CATALOG_READ),
            )
            server1, cassandra1 = cpu_seconds(pid if args.workers == 1 else None), cpu_seconds(cassandra)
        label = f"(c) 1 x {CATALOG_READ} features, {size:,} definitions"
        if not print_row(
            label,
            "off",
            r,
            None if server0 is None or server1 is None else server1 - server0,
            None if cassandra0 is None or cassandra1 is None else cassandra1 - cassandra0,
        ):
            invalid.append(label)
        if first is None:
            first = r
        else:
            print(
                f"    vs {sizes[0]:,} definitions: p50 {100 * (r['p50_ms'] / first['p50_ms'] - 1):+.0f} %, "
                f"p99 {100 * (r['p99_ms'] / first['p99_ms'] - 1):+.0f} %",
                flush=True,
            )
    return invalid
