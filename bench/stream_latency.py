"""The latency phase of the stream bench (``python -m bench.stream --only latency``): live events at
fixed rates into an unbounded, checkpointing job, timed from window close to the online store.
``bench.stream``'s docstring describes the phase and its figures."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cli import BenchError
from bench.loadgen import percentile as nearest_rank
from bench.stream_events import wire_header
from bench.stream_support import (
    REPO,
    SEC,
    ProgressPoller,
    cpu_report,
    cpu_sample,
    ensure_topic,
    feature_job,
    isolated,
    loadavg,
    log_tail,
    now_ms,
    register_definitions,
)
from registry.core.settings import Settings


@dataclass
class Close:
    window_end_ms: int
    seen_ms: int  # wall clock when the bench saw the progress row pass this window end
    flush_started_ms: int  # the writer's updated_at: when it recorded that progress, after the flush's writes


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (``q`` in 0-100) of ``values`` (``bench.loadgen.percentile``)."""
    return nearest_rank(sorted(values), q / 100)[0]


def quantile_text(name: str, values: list[float], q: float) -> str:
    """``p99 0.512s``, or ``p99=max 0.512s`` when there are too few values to tell that quantile from the largest
    (fewer than 100 for p99: the serving bench's rule, ``bench.loadgen.percentile``). ``values`` in ms."""
    value, is_max = nearest_rank(sorted(values), q / 100)
    return f"{name}{'=max' if is_max else ''} {value / 1000:.3f}s"


@dataclass
class Segment:
    """One rate of the live phase: its producer, and the window closes it measured."""

    rate: int
    count_from_ms: int
    closes: list[Close] = field(default_factory=list)
    produced: dict[str, Any] = field(default_factory=dict)
    cpu: str = ""
    complete: bool = True


def _start_producer(settings: Settings, spec: dict[str, Any], spec_file: Path) -> subprocess.Popen[str]:
    spec_file.write_text(json.dumps(spec))
    return subprocess.Popen(
        [sys.executable, "-m", "bench.stream_events", "live", str(spec_file)],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _stop_producer(producer: subprocess.Popen[str], stop_file: Path) -> dict[str, Any]:
    stop_file.touch()
    try:
        out, err = producer.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(producer.pid, signal.SIGKILL)
        producer.wait(timeout=30)
        return {"error": "did not stop within 60 s"}
    lines = out.strip().splitlines()
    return dict(json.loads(lines[-1])) if lines else {"error": err[-2000:]}


def run_latency(args: argparse.Namespace, base: Settings, run_id: str, tmp: Path, cleanup: list[Any]) -> None:
    from registry.core.durations import parse_duration

    settings = isolated(base, run_id, "live", tmp)
    topic = f"bench_{run_id}_live"
    cleanup.append((settings, topic))
    definitions = register_definitions(settings, topic, ttl="1h", size=args.live_size, slide=args.live_slide)
    d = definitions[0]
    slide_ms = int(d.window.slide.total_seconds() * SEC)
    ooo_ms = int(d.source.max_out_of_orderness.total_seconds() * SEC)
    warmup_s = parse_duration(args.live_warmup).total_seconds()
    rates: list[int] = args.live_rates  # checked by the parser: whole numbers of 1 or more
    ensure_topic(settings, topic, args.partitions)
    header = wire_header(settings, topic)
    poller = ProgressPoller(settings, d.stream)
    log = tmp / "live-job.log"
    print(
        f"feature group: {', '.join(x.name for x in definitions)} ({d.stream}), max_out_of_orderness "
        f"{ooo_ms} ms; job unbounded, checkpoints every 10 s; load: {' then '.join(f'{r:,}' for r in rates)} events/s over "
        f"{args.live_users:,} users, event time = now, each rate for {warmup_s:g}s of warm-up + "
        f"{args.live_closes} window closes; polling every {args.poll_ms} ms; load average before: {loadavg()}",
        flush=True,
    )
    segments: list[Segment] = []
    producer: subprocess.Popen[str] | None = None
    try:
        with feature_job(
            settings,
            log,
            args.runtime,
            "--parallelism",
            str(args.parallelism),
            "--group-id",
            f"bench-{run_id}-live",
            "--checkpoint-dir",
            str(tmp / "checkpoints"),
            "--checkpoint-interval-ms",
            "10000",
        ) as job:
            launched = time.monotonic()
            # Running once it has completed a checkpoint (all tasks deployed); the Python operators
            # themselves start on their first bundle, so the warm-up covers their start.
            while not any((tmp / "checkpoints").glob("*/chk-*/_metadata")):
                if job.poll() is not None or time.monotonic() - launched > args.timeout:
                    why = (
                        f"exited with {job.returncode} before its first checkpoint"
                        if job.poll() is not None
                        else f"made no checkpoint within {args.timeout:g}s (--timeout)"
                    )
                    raise BenchError(
                        f"the live job {why} (its log: {log})", detail=f"the job's log ends:\n{log_tail(log)}"
                    )
                time.sleep(0.2)
            print(f"job running (first checkpoint) {time.monotonic() - launched:.1f}s after launch", flush=True)
            last: int | None = None
            for n, rate in enumerate(rates):
                stop_file = tmp / f"live-{n}.stop"
                bound_s = warmup_s + args.live_closes * slide_ms / SEC + 60  # a job that falls behind stops here
                producer = _start_producer(
                    settings,
                    {
                        "bootstrap": settings.kafka_bootstrap,
                        "topic": topic,
                        "rate": rate,
                        "seconds": bound_s + 60,
                        "users": args.live_users,
                        "seed": args.seed + 1 + n,
                        "header_hex": header.hex(),
                        "id_prefix": f"l{run_id}{n}_",
                        "stop_file": str(stop_file),
                        "linger_ms": 5,
                    },
                    tmp / f"live-{n}.json",
                )
                segment = Segment(rate, now_ms() + int(warmup_s * SEC))
                segments.append(segment)
                cpu_from: dict[str, float] | None = None
                cpu_from_s = 0.0
                deadline = time.monotonic() + bound_s
                while len(segment.closes) < args.live_closes:
                    if time.monotonic() > deadline:
                        segment.complete = False
                        break
                    if job.poll() is not None:
                        raise BenchError(
                            f"the live job exited with {job.returncode} (its log: {log})",
                            detail=f"the job's log ends:\n{log_tail(log)}",
                        )
                    if producer.poll() is not None:
                        raise BenchError(f"the live producer stopped early: {producer.communicate()}")
                    got = poller.read()
                    seen = now_ms()
                    if got is not None and got[0] != last:
                        closed, started = got
                        for end in range(closed if last is None else last + slide_ms, closed + 1, slide_ms):
                            if end + ooo_ms >= segment.count_from_ms:  # every window end this flush passed
                                segment.closes.append(Close(end, seen, started))
                        last = closed
                        if segment.closes and cpu_from is None:
                            cpu_from, cpu_from_s = cpu_sample(job.pid), time.monotonic()
                    time.sleep(args.poll_ms / 1000)
                if cpu_from is not None:
                    segment.cpu = cpu_report(cpu_from, cpu_sample(job.pid), time.monotonic() - cpu_from_s)
                segment.produced = _stop_producer(producer, stop_file)
                producer = None
                report_latency(segment, ooo_ms, slide_ms)
    finally:
        if producer is not None and producer.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(producer.pid, signal.SIGKILL)
            producer.wait(timeout=30)
        poller.close()


def latency_stats(values: list[float]) -> str:
    """p50, p90, p99 and max of latencies in ms, a quantile that is the largest value for want of samples labeled
    so (with the default 50 closes the p99 is the maximum)."""
    quantiles = "  ".join(quantile_text(name, values, q) for name, q in (("p50", 50), ("p90", 90), ("p99", 99)))
    return f"{quantiles}  max {max(values) / 1000:.3f}s (n={len(values)})"


def report_latency(segment: Segment, ooo_ms: int, slide_ms: int) -> None:
    produced, closes = segment.produced, segment.closes
    print(f"-- {segment.rate:,} events/s --")
    if "rate" in produced:
        print(
            f"  producer: {produced['sent']:,} events in {produced['seconds']:.1f}s = {produced['rate']:,.0f} "
            f"events/s (most behind its schedule: {produced['max_behind']:,} events; undelivered "
            f"{produced['undelivered']})"
        )
    else:
        print(f"  producer: no report ({produced})")
    if segment.cpu:
        print("  " + segment.cpu)
    if not closes:
        print(
            f"LATENCY at {segment.rate:,} events/s: no window closed within the time allowed (the job is far "
            "behind this load)",
            flush=True,
        )
        return
    from_close = [float(c.seen_ms - c.window_end_ms - ooo_ms) for c in closes]
    from_end = [float(c.seen_ms - c.window_end_ms) for c in closes]
    flush_start = [float(c.flush_started_ms - c.window_end_ms - ooo_ms) for c in closes]
    blocks = [from_close[i : i + 10] for i in range(0, len(from_close), 10)]
    growing = len(blocks) >= 2 and percentile(blocks[-1], 50) > 2 * percentile(blocks[0], 50) + slide_ms
    print(
        "  p50 from close per 10 closes, in order: "
        + " ".join(f"{percentile(b, 50) / 1000:.2f}s" for b in blocks)
        + ("  <- growing: the job falls behind this load" if growing else "")
    )
    if len(closes) >= 2 and closes[-1].seen_ms > closes[0].seen_ms:
        advance = (closes[-1].window_end_ms - closes[0].window_end_ms) / (closes[-1].seen_ms - closes[0].seen_ms)
        print(
            f"  windows closed online {advance:.2f} s of event time per second (kept pace: ~1.00): the job "
            f"processed ~{advance * produced.get('rate', segment.rate):,.0f} events/s of this load"
        )
    if not segment.complete:
        print(f"  only {len(closes)} window closes seen in the time allowed: the job is behind this load")

    stats = latency_stats

    print(f"  writer's progress recorded (stream_progress.updated_at) from window close: {stats(flush_start)}")
    print(
        f"LATENCY at {segment.rate:,} events/s, window end -> online store ({len(closes)} closes, every "
        f"{slide_ms / 1000:g}s): {stats(from_end)}"
    )
    print(
        f"LATENCY at {segment.rate:,} events/s, window close (end + {ooo_ms} ms) -> online store: {stats(from_close)}",
        flush=True,
    )


# ---- main ------------------------------------------------------------------------------------------------------
