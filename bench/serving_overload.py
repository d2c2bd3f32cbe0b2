"""The overload row of ``python -m bench.serving_load``: (b) offered at a multiple of its saturated rate.

Open loop over 96 connections, more than the API admits at once: what the API admits should keep its
latency while it refuses the excess at once (503 ``overloaded``); the row prints the successes' rate and
percentiles (200 answers holding every feature asked, with timed-out requests at the timeout) apart from the 503s.
"""

from __future__ import annotations

import argparse
import time

from bench.serving_requests import CHECK_EVERY, expected_present, load
from bench.serving_server import cpu_seconds
from bench.serving_table import ms, verdict


def overload_run(port: int, requests: list[str], rate: float, args: argparse.Namespace, pid: int | None = None) -> bool:
    """(b) offered at ``rate`` over more connections than the API admits at once: the successes' latency (with the
    timed-out requests at the timeout), and how busy the server process (``pid``) and the load generator were.
    Returns whether no answer was found wrong."""
    started, cpu0 = time.monotonic(), cpu_seconds(pid)
    r = load(
        port,
        requests,
        mode="fixed",
        rate=rate,
        connections=96,
        duration_s=args.duration,
        warmup_s=args.warmup,
        expect_present=expected_present("b", 100),
        check_every=CHECK_EVERY["b"],
    )
    wall, cpu1 = time.monotonic() - started, cpu_seconds(pid)
    answered = r["completed"]
    shed = r["errors"].get("http_503", 0)
    others = sum(r["errors"].values()) - shed - r["timeouts"]
    busy = "" if cpu0 is None or cpu1 is None else f"; the server used {(cpu1 - cpu0) / wall:.2f} cores"
    print(
        f"(b) overload: offered {rate:,.0f} requests/s ({args.overload:g}x saturated), answered "
        f"{r['answered_rate']:,.0f}/s (any status), of them successes (200, every feature present) "
        f"{r['ok_rate']:,.0f}/s; successes and timeouts (n={r['samples']:,}, each timeout at 10 s): "
        f"p50 {ms(r, 'p50')} ms, p99 {ms(r, 'p99')} ms, p99.9 {ms(r, 'p999')} ms; 503 {shed / max(1, answered):.0%} "
        f"of answers, timed out {r['timeouts']}, other errors {others}, wrong answers {r['bad']} of "
        f"{r['checked']} checked; every answer (any status, no timeouts) p99 {ms(r, 'all_p99')} ms{busy}, "
        f"the load generator {r['generator_cpu_us_per_request']:.0f} us per request",
        flush=True,
    )
    if verdict(r):
        print(f"  !!! (b) overload: {verdict(r)}", flush=True)
    return not verdict(r)
