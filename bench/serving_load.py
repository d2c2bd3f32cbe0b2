"""Load benchmark of the online feature API: ``python -m bench.serving_load`` (or ``make bench-serving``).

Self-contained on the running local stack (Cassandra on 9042): it registers 100 feature
definitions in a temporary definitions DB, writes one window's values for ``--entities`` entities
into its own keyspace through ``OnlineWriter`` (the job's writer, so rows have the job's layout,
TTL and write time), starts ``python -m serving.online`` on a free loopback port, and runs the load
generator (``bench.loadgen``, a separate process) for:

    (a) GET  /v1/features/user/{id}?names=<100 names>           1 entity  x 100 features
    (b) POST /v1/features/user/batch  {100 ids, 100 names}       100 entities x 100 features

each at a fixed request rate (open loop, latency from the due time) and at saturation (closed
loop); (a) at its fixed rate ``--rounds`` times (default 3), each round a row, then the p99 of all the
rounds' requests pooled (and the range of the rounds' own p99s) and how late a 1 ms sleep woke meanwhile (``bench.stalls``: the machine's own scheduling delays,
which set a few-millisecond tail on shared cores as much as the code does); after ``--prime`` seconds (default 20) of (a) at saturation that are not measured: a freshly
started Cassandra's first seconds under load are its JIT compiling the read path (measured once on
2026-12-03: right after ``make up`` (a) saturated at 593 requests/s at 2.3 ms of Cassandra CPU each, minutes
later at 1,623/s and 0.27 ms), then

    (c) GET  /v1/features/user/{id}?names=<10 names>            1 entity x 10 features

at ``--catalog-rate`` requests/s with catalogs of ``--catalog-sizes`` definitions (the same ten read,
the others registered beside them for the same entity type): whether latency stays flat as the
registry grows (issue #19 asks within 10 % from 10 to 10,000 definitions); one server per size runs
throughout (c) and the sizes take turns over ``--rounds`` rounds, each size's percentiles over its rounds'
requests pooled (``bench.serving_catalog``). With the cache off, (b)
also runs at ``--overload`` times its saturated rate (default 10; ``bench.serving_overload``). The (a) and (b) runs go
first with the vector cache off (entity ids uniform: every entity read goes to Cassandra)
and then with it on (``FS_CACHE_TTL_MS``) under hot-key traffic (entity ids Zipf-distributed,
``--zipf``; 0 for uniform). ``--auth on`` runs the server with ``FS_AUTH=on`` and every request
carries a bearer token (10 of the 100 features are confidential, granted to the caller's team, so
each request also checks a grant and writes audit records); ``--auth both`` runs the uncached set
with auth off, then on. ``--request-feature on`` adds one request-time feature to every request (its
function divides the request's ``amount`` by a stored feature; ``both``: the uncached set without,
then with it), so the difference of the rows is its cost. ``--only off``/``on`` runs only the (a)/(b) sets with
the cache off (with the overload row) or on, ``--only catalog`` only (c). The API logs ``--log-sample`` of the
requests to a serving-log topic of the bench's own (``bench_<id>_serving_log``), never to the user's. It prints
one table, drops its keyspace, deletes its topic and stops the server.

Every answer of (a) and (c), and every tenth of (b), is checked to hold exactly the features asked as
``present`` (an unseeded id, a wrong keyspace or an expired TTL answer 200 with every feature ``missing``);
a wrong answer is not a success, is counted in the row's ``bad`` column, marks the row INVALID, and makes the
bench exit with status 1 after its last run. A row's ``ok/s`` is the rate of successes (200 and not found
wrong), its percentiles are over the successes with each timed-out request counted at the load generator's
timeout (10 s), ``n`` how many that is; a percentile printed ``max`` is the largest sample (too few for the
quantile). ``--profile`` also samples where the server's time goes (yappi if
installed, else cProfile of the event-loop thread) during a saturation run of (a).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.cli import positive, require_stack, run_main, whole_list
from bench.serving_catalog import CATALOG_READ
from bench.serving_requests import CHECK_EVERY, expected_present, load, requests_for
from bench.serving_seed import N_FEATURES, drop_keyspace, seed
from bench.serving_server import (
    cache_hit_rate,
    cassandra_pid,
    cpu_seconds,
    free_port,
    server,
    settle,
    settle_text,
)
from bench.serving_table import HEADER, LEGEND, print_row, rounds_summary, verdict
from bench.stalls import StallProbe
from registry.core.arguments import number, whole

Run = tuple[int, bool, bool]  # one server's (a)/(b) runs: cache TTL ms (0: off), auth, the request-time feature


def run_sets(args: argparse.Namespace) -> list[Run]:
    """The servers of the (a)/(b) runs, in order, as ``--auth``, ``--request-feature`` and ``--only`` ask: the cache
    off then on; ``both`` of one of the first two: the cache off, without then with it. ``--only off``/``on`` keeps
    the sets with the cache off/on, ``--only catalog`` none."""
    auth, asks = args.auth == "on", args.request_feature == "on"
    if args.auth == "both":
        sets = [(0, False, asks), (0, True, asks)]
    elif args.request_feature == "both":
        sets = [(0, auth, False), (0, auth, True)]
    else:
        sets = [(0, auth, asks), (args.cache_ttl_ms, auth, asks)]
    if args.only == "catalog":
        return []
    if args.only is not None:
        return [s for s in sets if (s[0] > 0) == (args.only == "on")]
    return sets


def option_problem(args: argparse.Namespace) -> str | None:
    """Options that fit one by one but not together (each would be ignored or run nothing): one line, or None."""
    if args.auth == "both" and args.request_feature == "both":
        return "--auth both and --request-feature both: one at a time (each runs the uncached set twice)"
    for name, value in (("--auth", args.auth), ("--request-feature", args.request_feature)):
        if value == "both" and args.only == "on":
            return f"{name} both runs with the cache off only: not with --only on"
        if value != "off" and args.only == "catalog":
            return f"{name} {value}: the (c) runs of --only catalog run without it"
    if args.only == "catalog" and not args.catalog_sizes:
        return "--only catalog with --catalog-sizes '': nothing to run"
    if args.profile_scenario is not None and not args.profile:
        return "--profile-scenario goes with --profile"
    if args.profile_scenario == "overload" and args.only in ("on", "catalog"):
        return f"--profile-scenario overload needs the cache-off (b) runs' saturated rate: not with --only {args.only}"
    if args.profile_scenario == "overload" and args.overload == 0:
        return "--profile-scenario overload offers (b) at --overload times its saturated rate: not with --overload 0"
    return None


def drop_topic(bootstrap: str, topic: str) -> None:
    """Delete the bench's serving-log topic; a failure is one line, not an error (the run's own error follows)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept until its answer: destroyed, it fails the futures
    try:
        for future in admin.delete_topics([topic], operation_timeout=30).values():
            future.result(timeout=30)
    except Exception as exc:
        print(f"could not delete topic {topic}: {exc}", file=sys.stderr, flush=True)
    else:
        print(f"deleted topic {topic}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.serving_load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--entities",
        type=whole(100),
        default=1000,
        help="entities seeded, each one row of 100 values (at least 100: a (b) request reads 100 entities)",
    )
    parser.add_argument(
        "--workers", type=whole(1, 64), default=1, help="server processes, 1 to 64 as the API takes (1 best on 2 cores)"
    )
    parser.add_argument("--duration", type=positive, default=8.0, help="seconds measured per run")
    parser.add_argument(
        "--rounds",
        type=whole(1),
        default=3,
        help="rounds of (a) at 1,000 requests/s, each its own row, then the p99 of their requests pooled and the "
        "machine's scheduling stalls during them (one run's p99 on shared cores swings with the machine); also the "
        "rounds of (c), each a run of every catalog size in turn, pooled per size",
    )
    parser.add_argument("--warmup", type=number(0, math.inf), default=2.0, help="seconds sent before measuring")
    parser.add_argument(
        "--prime",
        type=number(0, math.inf),
        default=20.0,
        help="seconds of (a) at saturation after each server start, not measured: Cassandra's and the server's "
        "first seconds under load (the JVM compiling the read path) are not their steady state (0 skips it)",
    )
    parser.add_argument(
        "--cache-ttl-ms", type=whole(1, 3_600_000), default=1000, help="TTL of the cached runs (1 to 3,600,000)"
    )
    parser.add_argument(
        "--zipf",
        type=number(0, math.inf),
        default=1.1,
        help="skew of entity ids in the cached runs (Zipf exponent; 0: uniform like the uncached runs)",
    )
    parser.add_argument(
        "--only",
        choices=["off", "on", "catalog"],
        help="only the (a)/(b) runs with the cache off (and the overload run), or only those with it on, or only "
        "the (c) runs of the catalog sizes",
    )
    parser.add_argument(
        "--log-sample",
        type=number(0, 1),
        default=0.01,
        help="share of requests the API logs to the serving-log topic (its default 0.01; 0 turns it off)",
    )
    parser.add_argument("--profile", action="store_true", help="also profile the server under saturation of (a)")
    parser.add_argument(
        "--profile-scenario",
        choices=["a", "b", "overload"],
        help="what --profile runs: (a) or (b) saturated (default a), or (b) at --overload times its saturated rate "
        "(needs the cache-off (b) runs: not with --only on or catalog, nor --overload 0)",
    )
    parser.add_argument(
        "--catalog-sizes",
        type=whole_list(CATALOG_READ, empty=True),
        default=[10, 1000, 10000],
        help=f"definitions in the catalog for the (c) runs, comma-separated, each at least {CATALOG_READ} (the "
        "features read; '' skips them)",
    )
    parser.add_argument("--catalog-rate", type=positive, default=300.0, help="requests/s of the (c) runs")
    parser.add_argument(
        "--catalog-churn",
        type=number(0, math.inf),
        default=1.0,
        help="also (c) at the largest size while a definition is registered every this many seconds (0 skips it)",
    )
    parser.add_argument(
        "--overload",
        type=number(0, math.inf),
        default=10.0,
        help="(b) offered at this multiple of its saturated rate, cache off (0 skips the run)",
    )
    parser.add_argument(
        "--auth",
        choices=["off", "on", "both"],
        default="off",
        help="FS_AUTH of the server; both: the uncached runs with auth off, then on",
    )
    parser.add_argument(
        "--request-feature",
        choices=["off", "on", "both"],
        default="off",
        help="add a request-time feature to every request; both: the uncached runs without, then with it",
    )
    args = parser.parse_args(argv)
    problem = option_problem(args)
    if problem is not None:
        parser.error(problem)
    args.profile_scenario = args.profile_scenario or "a"
    os.environ["FS_SERVING_LOG_SAMPLE"] = str(args.log_sample)

    from registry.core.settings import settings_for_command
    from sinks.topics import ensure_topics

    base = settings_for_command()
    require_stack(base, cassandra=True, kafka=args.log_sample > 0)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the cleanup below runs
    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    run_id = uuid.uuid4().hex[:8]
    log_topic = f"bench_{run_id}_serving_log"  # the bench's own: the user's serving log is never written
    settings = base.model_copy(
        update={"cassandra_keyspace": f"bench_{run_id}", "definitions_db": tmp / "definitions.db"}
    )
    topic_made = False
    rng = random.Random(7)
    print(
        f"keyspace {settings.cassandra_keyspace}; seeding {args.entities} entities x {N_FEATURES} features "
        "through OnlineWriter ...",
        flush=True,
    )
    try:
        started = time.monotonic()
        ids, names = seed(settings, args.entities)
        print(
            f"seeded {len(ids):,} rows (one per entity) holding {len(ids) * len(names):,} values in "
            f"{time.monotonic() - started:.0f}s; server: "
            f"{args.workers} worker(s), loopback; load generator: a separate process",
            flush=True,
        )
        cassandra = cassandra_pid()
        waited, busy = settle(cassandra)
        print(settle_text(cassandra, waited, busy), flush=True)
        if args.log_sample > 0:
            topic_made = True  # deleted at the end, also if its making failed midway
            ensure_topics(settings.kafka_bootstrap, [log_topic])  # so that the logged records reach Kafka
            print(
                f"serving log: {args.log_sample * 100:g} % of requests to the bench's topic {log_topic} (deleted at the end)"
            )
        else:
            print("serving log: off (--log-sample 0)")
        print(
            f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (other processes share the 2 cores)"
        )
        print(LEGEND)
        print(HEADER)
        runs = [
            ("(a) 1 entity x 100 features", "a", "fixed", 1000.0, 32),
            ("(a) 1 entity x 100 features", "a", "saturate", 0.0, 8),
            ("(b) 100 entities x 100 features", "b", "fixed", 20.0, 8),
            ("(b) 100 entities x 100 features", "b", "saturate", 0.0, 2),
        ]
        token = None
        if args.auth != "off":
            from registry.access_store import AccessStore

            access = AccessStore(settings.definitions_db)
            token = access.issue("bench-scorer", "bench")
            access.grant("bench-fraud", "bench")
        saturated_b = 0.0
        invalid: list[str] = []  # the runs with wrong answers
        for cache_ttl, auth, asks_request in run_sets(args):
            port = free_port()
            with server(
                settings,
                port=port,
                workers=args.workers,
                cache_ttl_ms=cache_ttl,
                profile=None,
                log_topic=log_topic,
                auth=auth,
            ) as pid:
                if args.prime > 0:
                    primed = load(
                        port,
                        requests_for("a", port, ids, names, rng, 0.0, token if auth else None, asks_request),
                        mode="saturate",
                        rate=0.0,
                        connections=8,
                        duration_s=args.prime,
                        warmup_s=0.0,
                        expect_present=expected_present("a", len(names), asks_request),
                    )
                    print(
                        f"primed: (a) at saturation for {args.prime:g} s, {primed['ok_rate']:,.0f} successes/s, "
                        "not measured (a JVM's first seconds under load compile its read path)",
                        flush=True,
                    )
                    if verdict(primed):
                        print(f"  !!! priming: {verdict(primed)}", flush=True)
                        invalid.append("priming")
                for label, scenario, mode, rate, conns in runs:
                    zipf = args.zipf if cache_ttl else 0.0
                    repeats = args.rounds if (scenario, mode) == ("a", "fixed") else 1
                    rounds: list[list[float]] = []
                    with StallProbe() as probe:
                        for _ in range(repeats):
                            reqs = requests_for(
                                scenario, port, ids, names, rng, zipf, token if auth else None, asks_request
                            )
                            server0 = cpu_seconds(pid if args.workers == 1 else None)
                            cassandra0 = cpu_seconds(cassandra)
                            r = load(
                                port,
                                reqs,
                                mode=mode,
                                rate=rate,
                                connections=conns,
                                duration_s=args.duration,
                                warmup_s=args.warmup,
                                expect_present=expected_present(scenario, len(names), asks_request),
                                check_every=CHECK_EVERY[scenario],
                                return_samples=repeats > 1,
                            )
                            server1 = cpu_seconds(pid if args.workers == 1 else None)
                            cassandra1 = cpu_seconds(cassandra)
                            shown = label + (" auth" if auth else "") + (" +request" if asks_request else "")
                            cache = "off" if cache_ttl == 0 else f"{cache_ttl}ms" + ("/z" if args.zipf > 0 else "")
                            if not print_row(
                                shown,
                                cache,
                                r,
                                None if server0 is None or server1 is None else server1 - server0,
                                None if cassandra0 is None or cassandra1 is None else cassandra1 - cassandra0,
                            ):
                                invalid.append(f"{shown} {mode} cache {cache}")
                            rounds.append(r.get("samples_ms", []))
                    if repeats > 1:
                        print(f"  {rounds_summary(rate, rounds)}; meanwhile {probe.result().describe()}", flush=True)
                    if scenario == "b" and mode == "saturate":
                        saturated_b = r["ok_rate"]
                if not cache_ttl and args.overload > 0 and saturated_b:
                    from bench.serving_overload import overload_run

                    if not overload_run(
                        port,
                        requests_for("b", port, ids, names, rng),
                        saturated_b * args.overload,
                        args,
                        pid if args.workers == 1 else None,
                    ):
                        invalid.append("(b) overload")
                if cache_ttl:
                    print(
                        f"cache hit rate (/metrics): {cache_hit_rate(port)}; /z: entity ids Zipf(s={args.zipf}) "
                        f"over {len(ids)} entities (uncached runs: uniform)",
                        flush=True,
                    )
        sizes = args.catalog_sizes
        if sizes and args.only in (None, "catalog"):
            from bench.serving_catalog import catalog_runs

            invalid += catalog_runs(settings, tmp, ids, names, sizes, args, rng, cassandra, log_topic=log_topic)
        print(
            f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; server us, cassandra: CPU "
            "microseconds per answered request; gen us: the load generator's"
        )
        if args.profile and args.profile_scenario == "overload" and not saturated_b:
            print("\nno profile: (b) at saturation had no successes, so there is no rate to overload", flush=True)
        elif args.profile:
            out = tmp / "profile.txt"
            port = free_port()
            overloaded = args.profile_scenario == "overload"
            with server(settings, port=port, workers=1, cache_ttl_ms=0, profile=out, log_topic=log_topic):
                if overloaded:
                    from bench.serving_overload import overload_run

                    overload_run(port, requests_for("b", port, ids, names, rng), saturated_b * args.overload, args)
                else:
                    load(
                        port,
                        requests_for(args.profile_scenario[0], port, ids, names, rng),
                        mode="saturate",
                        rate=0,
                        connections=8 if args.profile_scenario == "a" else 2,
                        duration_s=args.duration,
                        warmup_s=args.warmup,
                        expect_present=expected_present(args.profile_scenario[0], len(names)),
                        check_every=CHECK_EVERY[args.profile_scenario[0]],
                    )
            time.sleep(0.5)
            run = "(b) overloaded" if overloaded else f"saturation of ({args.profile_scenario[0]})"
            print(f"\nprofile of one server process at {run}, cache off ({out}):")
            print(out.read_text() if out.exists() else "(no profile written)")
        if invalid:
            print(
                f"\nINVALID: {len(invalid)} run(s) had answers without every feature asked present (not measured "
                f"reads): {'; '.join(invalid)}",
                file=sys.stderr,
                flush=True,
            )
            return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if topic_made:
            drop_topic(settings.kafka_bootstrap, log_topic)
        try:
            drop_keyspace(settings)
        except Exception as exc:  # the error that ended the run, if any, follows; this one is said in one line
            print(f"could not drop keyspace {settings.cassandra_keyspace}: {exc}", file=sys.stderr, flush=True)
        else:
            print(f"dropped keyspace {settings.cassandra_keyspace}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
