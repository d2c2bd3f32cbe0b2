"""``make bench-serving``'s (c) runs: the same 10-feature read at one fixed rate against catalogs of several
sizes (``--catalog-sizes``), each size's p50/p99 against the smallest (issue #19: flat from 10 to 10,000
definitions), the sizes' servers side by side and their runs alternated over ``--rounds`` rounds. Called by ``bench.serving_load`` with its seeded keyspace and server helpers."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import random
import threading
from collections.abc import Iterator
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


@contextlib.contextmanager
def churning(db: Path, every_s: float) -> Iterator[list[int]]:
    """While inside, a thread registers a new definition in ``db`` every ``every_s`` seconds (a copy of one bench
    feature under a new name, as another process's ``registry.cli apply`` would): each API process following the
    store reloads its catalog after each. Yields a one-item list, the count registered so far."""
    from registry.definition_store import DefinitionStore

    store, template = DefinitionStore(db), _definitions()[1]
    done, count = threading.Event(), [0]

    def register() -> None:
        for n in itertools.count():
            if done.wait(every_s):
                return
            store.register(template.model_copy(update={"name": f"bench_churn_{n:06d}"}))
            count[0] += 1

    thread = threading.Thread(target=register, name="catalog-churn", daemon=True)
    thread.start()
    try:
        yield count
    finally:
        done.set()
        thread.join()


def catalog_runs(
    settings: Any,
    tmp: Path,
    ids: list[str],
    names: list[str],
    sizes: list[int],
    args: argparse.Namespace,
    rng: random.Random,
    cassandra: int | None,
    *,
    log_topic: str,
) -> list[str]:
    """(c): the same 10-feature read at one fixed rate against catalogs of each size; p50/p99 against the smallest.

    One server per size runs from the start to the end of (c), and the sizes take turns: ``args.rounds`` rounds,
    each a run against every size, the order turning by one each round. With ``args.catalog_churn`` above 0 one more
    server of the largest size takes its turns too, its own copy of the catalog growing by a definition registered
    every ``catalog_churn`` seconds while it is measured (issue #19: flat from 10 to 10,000 definitions; a reload
    that blocked the server would show here). Drift over the minutes of (c) (Cassandra's
    compactions, other processes) then falls on every size alike instead of on whichever ran last, and each size's
    p50/p99 is over its rounds' requests pooled. The sizes run and print smallest first, each compared with the
    smallest. Returns the rows with wrong answers (features not present)."""
    sizes = sorted(sizes)
    for size in sizes:
        if size < CATALOG_READ:
            raise SystemExit(f"--catalog-sizes: at least {CATALOG_READ} definitions (the features read)")
    invalid: list[str] = []
    churn_s = float(getattr(args, "catalog_churn", 0.0))
    arms = [(size, 0.0) for size in sizes] + ([(max(sizes), churn_s)] if churn_s > 0 else [])
    registered = 0
    with contextlib.ExitStack() as servers:
        ports, pids, dbs = [], [], []
        for size, churn in arms:
            folder = tmp / f"churn-{churn:g}" if churn else tmp
            folder.mkdir(exist_ok=True)
            db = catalog_db(folder, size)
            dbs.append(db)
            sized = settings.model_copy(update={"definitions_db": db})
            port = free_port()
            pids.append(
                servers.enter_context(
                    server(sized, port=port, workers=args.workers, cache_ttl_ms=0, profile=None, log_topic=log_topic)
                )
            )
            ports.append(port)
        runs: list[list[dict[str, Any]]] = [[] for _ in arms]
        cpu: list[list[float | None]] = [[0.0, 0.0] for _ in arms]
        for turn in range(args.rounds):
            for i in [(turn + j) % len(arms) for j in range(len(arms))]:
                pid = pids[i] if args.workers == 1 else None
                server0, cassandra0 = cpu_seconds(pid), cpu_seconds(cassandra)
                with churning(dbs[i], arms[i][1]) if arms[i][1] else contextlib.nullcontext([0]) as count:
                    r = load(
                        ports[i],
                        requests_for("a", ports[i], ids, names[:CATALOG_READ], rng),
                        mode="fixed",
                        rate=args.catalog_rate,
                        connections=16,
                        duration_s=args.duration,
                        warmup_s=args.warmup,
                        expect_present=expected_present("c", CATALOG_READ),
                        return_samples=True,
                    )
                registered += count[0]
                server1, cassandra1 = cpu_seconds(pid), cpu_seconds(cassandra)
                runs[i].append(r)
                for k, (before, after) in enumerate(((server0, server1), (cassandra0, cassandra1))):
                    total = cpu[i][k]
                    cpu[i][k] = None if total is None or before is None or after is None else total + after - before
    first: dict[str, Any] | None = None
    for (size, churn), sized_runs, (server_cpu, cassandra_cpu) in zip(arms, runs, cpu, strict=True):
        r = pooled(sized_runs)
        label = f"(c) 1 x {CATALOG_READ} features, {size:,} definitions"
        if churn:
            label += f", one registered {churn:g} s after another"
        if not print_row(label, "off", r, server_cpu, cassandra_cpu):
            invalid.append(label)
        own = sorted(x["p99_ms"] for x in sized_runs)
        print(
            f"    {len(sized_runs)} rounds pooled; the rounds' own p99s from {own[0]:.2f} to {own[-1]:.2f} ms"
            + (f"; {registered} definitions registered during its runs" if churn else ""),
            flush=True,
        )
        if first is None:
            first = r
        else:
            print(
                f"    vs {sizes[0]:,} definitions: p50 {100 * (r['p50_ms'] / first['p50_ms'] - 1):+.0f} %, "
                f"p99 {100 * (r['p99_ms'] / first['p99_ms'] - 1):+.0f} %",
                flush=True,
            )
    return invalid


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One load result of several rounds of one fixed-rate run (each with ``samples_ms``): counts and CPU summed,
    rates averaged over the rounds' measured time, percentiles over every round's samples pooled."""
    from bench.loadgen import percentile

    samples = sorted(x / 1000 for r in runs for x in r["samples_ms"])
    errors: dict[str, int] = {}
    for r in runs:
        for kind, n in r["errors"].items():
            errors[kind] = errors.get(kind, 0) + n
    ok = sum(r["ok"] for r in runs)
    out: dict[str, Any] = {
        "target_rate": runs[0]["target_rate"],
        "ok_rate": sum(r["ok_rate"] for r in runs) / len(runs),
        "samples": len(samples),
        "answered": sum(r["answered"] for r in runs),
        "errors": errors,
        "bad": sum(r["bad"] for r in runs),
        "checked": sum(r["checked"] for r in runs),
        "bad_example": next((r["bad_example"] for r in runs if r["bad_example"]), ""),
        "mean_response_bytes": sum(r["mean_response_bytes"] * r["ok"] for r in runs) / ok if ok else 0,
        "generator_cpu_us_per_request": sum(r["generator_cpu_us_per_request"] for r in runs) / len(runs),
    }
    for name, q in (("p50", 0.50), ("p99", 0.99), ("p999", 0.999)):
        value, is_max = percentile(samples, q)
        out[f"{name}_ms"], out[f"{name}_is_max"] = value * 1000, is_max
    return out
