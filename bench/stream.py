"""Stream benchmark: Kafka -> the feature job (``python -m jobs.feature_job``) -> Cassandra + Iceberg.

    python -m bench.stream                      # both phases (what `make bench-stream` runs)
    python -m bench.stream --only throughput    # or --only latency; --help for the sizes
    python -m bench.stream --only batch         # the throughput backlog read from a Parquet file (--events)

Needs the running stack (`make up`: Kafka, Cassandra, schema registry). Each phase has its own
topic, keyspace, Iceberg SQL catalog (SQLite, in a temporary folder) and definitions DB, so the
demo's data is never touched; keyspaces and topics are dropped at the end, even on error.

1. **Throughput.** The real sliding feature group of ``registry/features/user_transactions.toml``
   (count + sum, 1 h windows sliding by 5 min; only topic and TTL changed, the TTL so that no
   window of the replay is too old to be written online) over a pre-produced backlog of
   ``--events`` transactions by ``--users`` users (skewed: user rank r has weight 1/(r+1)), spread
   over ``--hours`` of event time that ended more than an hour ago. The job runs ``--bounded``
   (as backfills do: no checkpoints). The bench polls the online store's ``stream_progress`` row
   (the writer updates it after each flush, after the Iceberg commit, so a new value means both
   stores hold that flush). Events/s sustained = events processed between the first and the last
   flush seen while the job was still reading its input / the time between them: the start-up (the
   client's imports and store preparation, JVM start, job deployment, Python worker start, the first
   5 s batch) is excluded, and only two marks of it are printed: launch -> stores prepared (the
   job's client creates the Iceberg table before it submits the job, ``prepare_stores``) and
   launch -> first flush seen. Also excluded is the end-of-input burst (a bounded run's final watermark closes every window left at
   once: those flushes are left out). Events processed at a flush are counted as those with an
   event time up to its window end + the out-of-orderness bound (what the watermark had to pass).
   With fewer than ``MIN_REGULAR_FLUSHES`` such flushes, or less than ``MIN_SPAN_S`` between
   them, no sustained rate (nor CPU per event) is printed, only the whole run's rate and why. The
   run's results are then checked against what the generated events give (``bench.stream_check``):
   per feature (count, sum of amount) and per (user, window): every offline row (each window with
   an event present exactly once, nothing else; its value, and its revision = its event count),
   each user's online value (the newest window's end and value), and no dead letters. What
   differs is printed (counts and a few examples) and the bench exits 1.

2. **Latency.** The same aggregations with ``--live-size`` windows sliding by ``--live-slide``,
   on a job run the production way (unbounded, checkpointing every 10 s). Once the job is up, a
   separate producer process sends each of ``--live-rates`` events/s in turn, over ``--live-users``
   users, with event time = the wall clock. The
   bench polls ``stream_progress`` every ``--poll-ms``; for every window end that the row passes,
   it records when the bench saw it (all values of that flush are in Cassandra then) and the
   writer's ``updated_at`` (taken when the writer recorded that progress: after its flush's Iceberg
   commit and Cassandra writes). Latency is printed from the window end and from the window close = window end + the
   source's ``max_out_of_orderness`` (the earliest moment the watermark can pass the end). Closes
   during the first ``--live-warmup`` seconds of each rate are not counted; a rate the job cannot
   keep up with shows as growing latency, and the bench estimates the rate the job did process
   from how fast window closes advanced.

3. **Batch** (only with ``--only batch``). The throughput phase's backlog and feature group, written
   to one Parquet file and read by the job with ``--events`` instead of from Kafka (a batch source);
   measured and checked the same way (its dead-letter topic stays empty: a batch run writes the
   records it refuses to ``batch-rejected-*.parquet``, whose rows are the dead letters it counts).

The job runs unchanged, by default with ``--python-workers process`` (a Python worker process per
task slot, as on a cluster; PyFlink's local default, ``loopback``, runs every subtask's Python in
the job's client process). ``--flink-conf KEY=VALUE`` adds a Flink option to the job's
configuration through ``bench.stream_whatif``, to measure a setting before changing the job.

CPU: while measuring, the CPU seconds of the job's processes (the client, the JVM running the
Flink mini-cluster, the Python workers), of Kafka and of Cassandra are read from /proc and shown
as cores used and as CPU microseconds per event; the machine has 2 cores and is shared, so the
load average is printed at the start of each phase.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.cli import (
    BenchError,
    duration_text,
    key_value,
    positive_up_to,
    require_stack,
    run_main,
    whole_list,
)
from bench.stream_check import (
    Feature,
    check_dead_letters,
    check_offline,
    check_online,
    expected_windows,
    rejected_records,
)
from bench.stream_events import (
    Encoder,
    Events,
    check_encoding,
    generate,
    send_backlog,
    topic_size,
    user_id,
    wire_header,
)
from bench.stream_latency import run_latency
from bench.stream_support import (
    HOUR,
    MIN,
    SEC,
    ProgressPoller,
    cpu_report,
    cpu_sample,
    delete_subject,
    delete_topics,
    drop_keyspace,
    ensure_topic,
    feature_job,
    isolated,
    loadavg,
    log_tail,
    now_ms,
    offline_table_exists,
    register_definitions,
    runtime_env,
)
from registry.core.arguments import number, whole
from registry.core.settings import Settings, settings_for_command


@dataclass
class Flush:
    seen_s: float  # monotonic, when the bench saw it
    closed_through_ms: int
    updated_at_ms: int
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds so far (cpu_sample) when the bench saw it


MIN_REGULAR_FLUSHES = 4  # a sustained rate needs this many flushes seen while the input was still being read,
MIN_SPAN_S = 10.0  # spanning at least this many seconds: not the end-of-input burst


@dataclass
class ThroughputRun:
    launched_s: float
    prepared_s: float | None = None  # when the bench first saw the Iceberg table, made by the job's client
    flushes: list[Flush] = field(default_factory=list)
    exited_s: float | None = None
    returncode: int | None = None


def regular_flushes(flushes: list[Flush], *, last_event_ms: int, ooo_ms: int) -> list[Flush]:
    """The flushes seen while the job was still reading its input: their windows closed through a point the
    watermark reached before the last event (``closed_through + max_out_of_orderness <= last event time``). The
    rest came after the end of the input, when a bounded run's final watermark closes every window left at once:
    a burst that says nothing of the sustained rate."""
    return [f for f in flushes if f.closed_through_ms + ooo_ms <= last_event_ms]


def sustained_span(regular: list[Flush]) -> tuple[Flush, Flush] | str:
    """The first and the last regular flush, or why they cannot measure a sustained rate."""
    if len(regular) < MIN_REGULAR_FLUSHES or regular[-1].seen_s - regular[0].seen_s < MIN_SPAN_S:
        span = regular[-1].seen_s - regular[0].seen_s if regular else 0.0
        return (
            f"{len(regular)} flush{'' if len(regular) == 1 else 'es'} seen while the input was read, over {span:.1f}s (a sustained rate needs "
            f"{MIN_REGULAR_FLUSHES} over {MIN_SPAN_S:g}s or more; the rest were the end-of-input burst)"
        )
    return regular[0], regular[-1]


def offline_table(settings: Settings) -> Any:
    """The run's offline rows, the columns the check compares."""
    from sinks.factory import connect_iceberg
    from sinks.iceberg.layout import TABLE

    table = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}")
    columns = ("entity_id", "feature_name", "feature_version", "event_time", "revision", "value_long", "value_double")
    return table.scan(selected_fields=columns).to_arrow()


def run_throughput(args: argparse.Namespace, base: Settings, run_id: str, tmp: Path, cleanup: list[Any]) -> bool:
    settings = isolated(base, run_id, "tput", tmp)
    topic = f"bench_{run_id}_tput"
    cleanup.append((settings, topic))
    definitions = register_definitions(settings, topic, ttl="7d")
    d = definitions[0]
    size_ms, slide_ms = int(d.window.size.total_seconds() * SEC), int(d.window.slide.total_seconds() * SEC)
    ooo_ms = int(d.source.max_out_of_orderness.total_seconds() * SEC)
    ensure_topic(settings, topic, args.partitions)

    # Event time: --hours ending on a slide boundary more than one window before now, so every window
    # the events fall in has ended before the run (the writer drops windows that end in the future).
    end_ms = (now_ms() - size_ms - 10 * MIN) // slide_ms * slide_ms
    start_ms = end_ms - int(args.hours * HOUR)
    started = time.monotonic()
    events = generate(args.seed, events=args.events, users=args.users, start_ms=start_ms, span_ms=end_ms - start_ms)
    encoder = Encoder(wire_header(settings, topic), args.users, f"b{run_id}_")
    check_encoding(encoder, events)
    generated = time.monotonic()
    send_backlog(settings.kafka_bootstrap, topic, encoder, events)
    sent = time.monotonic()
    in_topic = topic_size(settings.kafka_bootstrap, topic)
    if in_topic != len(events):
        raise BenchError(f"topic {topic} holds {in_topic} records, {len(events)} were sent")
    print(
        f"backlog: {len(events):,} events, {args.users:,} users, event time {args.hours:g} h "
        f"({len(events) / (args.hours * 12):,.0f} events per 5 min), {args.partitions} partitions; "
        f"generated + encoded-check in {generated - started:.1f}s, produced in {sent - generated:.1f}s "
        f"({len(events) / (sent - generated):,.0f} events/s, acks=all, lz4), all {in_topic:,} in the topic",
        flush=True,
    )
    print(
        f"feature group: {', '.join(x.name for x in definitions)} ({d.stream}; {size_ms // MIN} min windows "
        f"sliding by {slide_ms // MIN} min, max_out_of_orderness {ooo_ms} ms, ttl 7d); job: --bounded "
        f"--parallelism {args.parallelism}; load average before: {loadavg()}",
        flush=True,
    )

    poller = ProgressPoller(settings, d.stream)
    try:
        run = measure_job(
            settings,
            args,
            poller,
            tmp / "tput-job.log",
            "--bounded",
            "--parallelism",
            str(args.parallelism),
            "--group-id",
            f"bench-{run_id}-tput",
        )
        dead = topic_size(settings.kafka_bootstrap, f"{topic}.dlq")
        return report_throughput(
            settings,
            poller,
            run,
            events,
            definitions,
            users=args.users,
            dead_letters=(dead, f"{topic}.dlq"),
        )
    finally:
        poller.close()


def measure_job(
    settings: Settings, args: argparse.Namespace, poller: ProgressPoller, log: Path, *job_args: str
) -> ThroughputRun:
    """Run the job to its end, noting each flush it makes (``stream_progress``) and the CPU it used between them."""
    run = ThroughputRun(launched_s=time.monotonic())
    with feature_job(settings, log, args.runtime, *job_args) as proc:
        deadline = run.launched_s + args.timeout
        last: tuple[int, int] | None = None
        while True:
            now = time.monotonic()
            if now > deadline:
                raise job_failure(f"the job did not finish within {args.timeout:g}s (--timeout)", log)
            done = proc.poll() is not None
            if run.prepared_s is None and offline_table_exists(settings):
                run.prepared_s = now
            got = poller.read()
            if got is not None and got != last:
                run.flushes.append(Flush(now, got[0], got[1], cpu_sample(proc.pid)))
                last = got
            if done:
                run.exited_s, run.returncode = now, proc.returncode
                break
            time.sleep(args.poll_ms / 1000)
    if run.returncode != 0:
        raise job_failure(f"the job exited with {run.returncode}", log)
    if not run.flushes:
        raise job_failure("saw no flush; the job wrote nothing", log)
    return run


def run_batch(args: argparse.Namespace, base: Settings, run_id: str, tmp: Path, cleanup: list[Any]) -> bool:
    """The throughput phase's backlog and feature group, read from a Parquet file (``--events``), not Kafka."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bench.stream_events import CURRENCIES

    settings = isolated(base, run_id, "batch", tmp)
    topic = f"bench_{run_id}_batch"  # named by the definitions; only its (empty) dead-letter topic is read
    cleanup.append((settings, topic))
    definitions = register_definitions(settings, topic, ttl="7d")
    d = definitions[0]
    size_ms, slide_ms = int(d.window.size.total_seconds() * SEC), int(d.window.slide.total_seconds() * SEC)
    ensure_topic(settings, topic, 1)
    end_ms = (now_ms() - size_ms - 10 * MIN) // slide_ms * slide_ms
    start_ms = end_ms - int(args.hours * HOUR)
    events = generate(args.seed, events=args.events, users=args.users, start_ms=start_ms, span_ms=end_ms - start_ms)
    users = np.array([user_id(u) for u in range(args.users)], dtype=object)
    currencies = np.array(CURRENCIES, dtype=object)
    path = tmp / "batch-events.parquet"
    started = time.monotonic()
    pq.write_table(
        pa.table(
            {
                "transaction_id": pa.array(
                    np.char.add(f"b{run_id}_", np.arange(len(events)).astype(str)).astype(object)
                ),
                "user_id": pa.array(users[events.users]),
                "merchant_id": pa.array(
                    np.char.add("merchant_", np.char.zfill(events.merchants.astype(str), 4)).astype(object)
                ),
                "amount": pa.array(events.amounts),
                "currency": pa.array(currencies[events.currencies]),
                "event_time": pa.array(events.times, pa.timestamp("ms", tz="UTC")),
            }
        ),
        path,
    )
    print(
        f"events table: {len(events):,} events, {args.users:,} users, event time {args.hours:g} h, one Parquet file "
        f"of {path.stat().st_size / 2**20:,.0f} MiB written in {time.monotonic() - started:.1f}s; job: --events "
        f"--parallelism {args.parallelism}; load average before: {loadavg()}",
        flush=True,
    )
    poller = ProgressPoller(settings, d.stream)
    try:
        run = measure_job(
            settings, args, poller, tmp / "batch-job.log", "--events", str(path), "--parallelism", str(args.parallelism)
        )
        # A batch run does not dead-letter: the job writes the records it refuses beside the definitions database.
        rejected, files = rejected_records(settings.definitions_db.parent)
        where = ", ".join(f.name for f in files) or "batch-rejected-*.parquet (none written)"
        return report_throughput(
            settings,
            poller,
            run,
            events,
            definitions,
            users=args.users,
            dead_letters=(rejected, where),
            through="a Parquet file",
        )
    finally:
        poller.close()


def prepared_text(run: ThroughputRun) -> str:
    """When the job's client had prepared its stores (``jobs.feature_job.prepare_stores`` makes the Iceberg table
    before submitting the job), from launch: the client's imports and store preparation, not its operators'
    start."""
    if run.prepared_s is None:
        return "launch -> stores prepared (the job's client): not seen (no Iceberg table while polled)"
    return f"launch -> stores prepared (the job's client) {run.prepared_s - run.launched_s:.1f}s"


def job_failure(what: str, log: Path) -> BenchError:
    """A failed or too slow job: the message as one line, the tail of its log as the detail."""
    return BenchError(f"{what} (its log: {log})", detail=f"the job's log ends:\n{log_tail(log)}")


def report_throughput(
    settings: Settings,
    poller: ProgressPoller,
    run: ThroughputRun,
    events: Events,
    definitions: list[Any],
    *,
    users: int,
    dead_letters: tuple[int, str],
    through: str = "Kafka",
) -> bool:
    """Print the run's rates and CPU and check its results (``bench.stream_check``); True if all match."""
    d = definitions[0]
    size_ms, slide_ms = int(d.window.size.total_seconds() * SEC), int(d.window.slide.total_seconds() * SEC)
    ooo_ms = int(d.source.max_out_of_orderness.total_seconds() * SEC)
    first, last = run.flushes[0], run.flushes[-1]
    n = len(events)

    def done_by(flush: Flush) -> int:  # events the watermark had to pass for this flush's windows to close
        return int(np.searchsorted(events.times, flush.closed_through_ms + ooo_ms, side="right"))

    regular = regular_flushes(run.flushes, last_event_ms=int(events.times[-1]), ooo_ms=ooo_ms)
    assert run.exited_s is not None
    print(
        f"job: {prepared_text(run)}; -> first flush seen {first.seen_s - run.launched_s:.1f}s ({done_by(first):,} events done by then); last flush seen at "
        f"{last.seen_s - run.launched_s:.1f}s; process exit at {run.exited_s - run.launched_s:.1f}s; "
        f"{len(run.flushes)} flushes seen, {len(regular)} of them while the input was read",
        flush=True,
    )

    # the check: the results against what the generated events give
    started = time.monotonic()
    features = [Feature.of(x) for x in definitions]
    entities = [user_id(u) for u in range(users)]
    until = max(f.closed_through_ms for f in run.flushes)
    expected = expected_windows(
        events.users, events.times, events.amounts, size_ms=size_ms, slide_ms=slide_ms, until_ms=until
    )
    rows = offline_table(settings)
    vectors = poller.online_vectors(settings.cassandra_keyspace, d.entity)
    checks = [
        check_offline(expected, rows, features, entities),
        check_online(expected, vectors, features, entities),
        check_dead_letters(*dead_letters),
    ]
    for check in checks:
        print("\n".join("  " + line for line in check.lines()), flush=True)
    ok = all(c.ok for c in checks)
    print(
        f"  CHECK: {'OK' if ok else 'MISMATCH'} ({time.monotonic() - started:.1f}s; windows ending by "
        f"{datetime.fromtimestamp(until / 1000, UTC):%Y-%m-%d %H:%M:%S}Z, the last flush seen)",
        flush=True,
    )

    whole = (
        f"{n / (run.exited_s - run.launched_s):,.0f} events/s with start-up and exit "
        f"({run.exited_s - run.launched_s:.1f}s for all {n:,})"
    )
    span = sustained_span(regular)
    if isinstance(span, str):
        print(f"THROUGHPUT: no sustained rate measured: {span}; {whole}; no CPU per event either", flush=True)
        return ok
    a, b = span
    counted = done_by(b) - done_by(a)
    seconds = b.seen_s - a.seen_s
    # steadiness: rate over consecutive ~10 s stretches of the regular flushes
    stretches, mark = [], a
    for f in regular[1:]:
        if f.seen_s - mark.seen_s >= 10 or f is b:
            stretches.append((done_by(f) - done_by(mark)) / (f.seen_s - mark.seen_s))
            mark = f
    print("  events/s per ~10 s stretch (from the windows closed): " + " ".join(f"{r / 1000:.1f}K" for r in stretches))
    print("  " + cpu_report(a.cpu, b.cpu, seconds, counted))
    offline = int(((expected.ends > a.closed_through_ms) & (expected.ends <= b.closed_through_ms)).sum()) * len(
        features
    )
    print(
        f"THROUGHPUT: {counted / seconds:,.0f} events/s sustained through {through} -> job -> Iceberg + Cassandra "
        f"({counted:,} events in {seconds:.1f}s between the first and the last flush seen while the input was read, "
        f"{len(regular)} flushes; the end-of-input flush left out); {whole}; {offline / seconds:,.0f} offline rows/s",
        flush=True,
    )
    return ok


# ---- phase 2: latency (bench/stream_latency.py) --------------------------------------------------------------


MAX_HOURS = 160.0  # the backlog's event time inside the 7 d TTL of run_throughput's features
MIN_TIMEOUT_S = 10.0


def window_problem(size: str, slide: str) -> str | None:
    """Why ``--live-size`` and ``--live-slide`` make no sliding window a definition may have (one line), or None."""
    from pydantic import ValidationError

    from registry.core.catalog import validation_problems
    from registry.core.definitions import Window

    try:
        Window.model_validate({"kind": "sliding", "size": size, "slide": slide})
    except ValidationError as exc:
        reasons = "; ".join(msg for _, msg in validation_problems(exc))
        return f"argument --live-size/--live-slide: {size} windows sliding by {slide}: {reasons}"
    return None


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stream", description=__doc__, formatter_class=_Help)
    parser.add_argument(
        "--only",
        choices=["throughput", "latency", "batch"],
        help="one phase only; throughput and latency when not given (batch: the throughput backlog from a Parquet "
        "file through `--events`)",
    )
    parser.add_argument("--events", type=whole(1), default=1_000_000, help="backlog size of the throughput phase")
    parser.add_argument("--users", type=whole(1), default=10_000, help="users of the backlog")
    parser.add_argument(
        "--hours",
        type=positive_up_to(MAX_HOURS),
        default=3.0,
        help=f"event time the backlog spans (at most {MAX_HOURS:g}: inside the 7 d TTL the bench gives the features, "
        "so that every window of it is written online)",
    )
    parser.add_argument("--partitions", type=whole(1), default=3, help="of the bench's topics")
    parser.add_argument("--parallelism", type=whole(1), default=1, help="of the job, both phases")
    parser.add_argument(
        "--python-workers",
        choices=["loopback", "process"],
        default="process",
        help="PyFlink's Python worker mode (loopback: its local default, all Python in one process)",
    )
    parser.add_argument(
        "--python-mode",
        choices=["thread", "process"],
        help="the job's --python-mode (default: the job's own: thread for the unbounded latency phase, process "
        "for the bounded throughput and batch phases)",
    )
    parser.add_argument(
        "--flink-conf",
        action="append",
        type=key_value,
        metavar="KEY=VALUE",
        help="a Flink option added to the job's configuration, e.g. "
        "python.fn-execution.bundle.time=100 (repeatable; a what-if run through "
        "bench.stream_whatif: the job's code is unchanged)",
    )
    parser.add_argument(
        "--live-rates", type=whole_list(1), default="2000,20000", help="events/s of the latency phase, in turn"
    )
    parser.add_argument("--live-users", type=whole(1), default=1000, help="users of the live load")
    parser.add_argument(
        "--live-size", type=duration_text(zero=False), default="1m", help="window size of the latency phase"
    )
    parser.add_argument(
        "--live-slide", type=duration_text(zero=False), default="2s", help="window slide of the latency phase"
    )
    parser.add_argument("--live-closes", type=whole(1), default=50, help="window closes measured per rate")
    parser.add_argument(
        "--live-warmup", type=duration_text(zero=True), default="20s", help="load at each rate before closes count"
    )
    parser.add_argument("--poll-ms", type=whole(1), default=25, help="how often stream_progress is read")
    parser.add_argument("--seed", type=whole(0), default=7, help="of the generated events")
    parser.add_argument(
        "--timeout",
        type=number(MIN_TIMEOUT_S, math.inf),
        default=900,
        help=f"bound on each job run, seconds (at least {MIN_TIMEOUT_S:g}: a job takes longer to start)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (job logs)")
    args = parser.parse_args(argv)
    problem = window_problem(args.live_size, args.live_slide)
    if problem is not None:
        parser.error(problem)

    base = settings_for_command()
    require_stack(base, cassandra=True, kafka=True, registry=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the cleanup below runs
    run_id = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    cleanup: list[tuple[Settings, str]] = []
    started = time.monotonic()
    print(
        f"bench.stream {run_id}: load average at start {loadavg()} ({os.cpu_count()} cores, shared); "
        f"temporary folder {tmp}",
        flush=True,
    )
    args.runtime = runtime_env(args)
    print(
        f"job: python -m jobs.feature_job, parallelism {args.parallelism}, Python mode: "
        f"{args.python_mode or 'the job default (thread unbounded, process bounded)'}, "
        f"Python workers (process mode): {args.python_workers}"
        + (f", Flink options: {'; '.join(args.flink_conf)}" if args.flink_conf else ""),
        flush=True,
    )
    ok = True
    try:
        if args.only in (None, "throughput"):
            print("\n== throughput: a backlog through the job, bounded ==", flush=True)
            ok = run_throughput(args, base, run_id, tmp, cleanup) and ok
        if args.only == "batch":
            print("\n== batch: the backlog from a table of events (--events), bounded ==", flush=True)
            ok = run_batch(args, base, run_id, tmp, cleanup) and ok
        if args.only in (None, "latency"):
            print("\n== latency: window close -> online store, live ==", flush=True)
            run_latency(args, base, run_id, tmp, cleanup)
    finally:
        for settings, topic in cleanup:
            with suppress(Exception):
                drop_keyspace(settings)
            with suppress(Exception):
                delete_topics(settings, [topic, f"{topic}.dlq"])
            delete_subject(settings, f"{topic}-value")
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        print(
            f"\ndropped the keyspaces, topics and schema subjects of {', '.join(t for _, t in cleanup)}; bench took "
            f"{time.monotonic() - started:.0f}s; load average at end {loadavg()}",
            flush=True,
        )
    if not ok:
        print("the results differ from what the generated events give (CHECK: MISMATCH above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
