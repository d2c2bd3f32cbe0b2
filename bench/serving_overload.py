"""The overload row of ``python -m bench.serving_load``: (b) offered at a multiple of its saturated rate.

Open loop over 96 connections, more than the API admits at once: what the API admits should keep its
latency while it refuses the excess at once (503 ``overloaded``); the row prints the 200 answers' rate and
percentiles apart from the 503s.
"""

from __future__ import annotations

import argparse
import time

from bench.serving_load import cpu_seconds, load


def overload_run(port: int, requests: list[str], rate: float, args: argparse.Namespace, pid: int | None = None) -> None:
    """(b) offered at ``rate`` over more connections than the API admits at once: the 200 answers' latency, and
    how busy the server process (``pid``) and the load generator were."""
    started, cpu0 = time.monotonic(), cpu_seconds(pid)
    r = load(port, requests, mode="fixed", rate=rate, connections=96, duration_s=args.duration, warmup_s=args.warmup)
    wall, cpu1 = time.monotonic() - started, cpu_seconds(pid)
    answered = r["completed"]
    shed = r["errors"].get("http_503", 0)
    others = sum(r["errors"].values()) - shed
    busy = "" if cpu0 is None or cpu1 is None else f"; the server used {(cpu1 - cpu0) / wall:.2f} cores"
    print(
        f"(b) overload: offered {rate:,.0f} requests/s ({args.overload:g}x saturated), answered "
        f"{r['achieved_rate']:,.0f}/s, of them 200 {r['ok_rate']:,.0f}/s (p50 {r['ok_p50_ms']:.1f} ms, "
        f"p99 {r['ok_p99_ms']:.1f} ms, p99.9 {r['ok_p999_ms']:.1f} ms), 503 {shed / max(1, answered):.0%}, "
        f"other errors {others}; all answers p99 {r['p99_ms']:.1f} ms{busy}, the load generator "
        f"{r['generator_cpu_us_per_request']:.0f} us per request",
        flush=True,
    )
