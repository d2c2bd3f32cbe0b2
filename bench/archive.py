"""The events archive: how fast a topic is archived, and how fast history is read back across the seam.

    python -m bench.archive [--events 500000] [--archived 0.5]

On the running local stack (``make up``). A fresh topic of ``--events`` card transactions (3
partitions, 10,000 skewed users, as ``bench.stream``'s backlog); the first ``--archived`` fraction
is produced, archived (``sinks.archive.Archiver``, ``--once``) and deleted from Kafka as retention
would; the rest is produced and left in Kafka only. Then ``jobs.history.read_history`` reads all of
it back: the archive's part from Iceberg, the rest from the topic, every record decoded by the
stream's decoder. Printed: records and MiB archived per second, records read and decoded per second
(archive and topic parts counted separately), the check that every event came back once, and this
process's peak RSS. Everything the bench made is deleted at the end.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import signal
import sys
import tempfile
import time
import uuid
from contextlib import suppress
from pathlib import Path

from bench.cli import require_stack, run_main
from bench.stream_events import Encoder, Events, generate, send_backlog, wire_header
from bench.stream_support import (
    HOUR,
    delete_subject,
    delete_topics,
    ensure_topic,
    isolated,
    loadavg,
    now_ms,
    register_definitions,
)
from registry.core.arguments import number, whole
from registry.core.settings import settings_for_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.archive", description=__doc__)
    parser.add_argument("--events", type=whole(1), default=500_000)
    parser.add_argument("--archived", type=number(0, 1), default=0.5, help="fraction archived then deleted from Kafka")
    parser.add_argument("--users", type=whole(1), default=10_000)
    parser.add_argument("--seed", type=whole(0), default=7)
    args = parser.parse_args(argv)
    base = settings_for_command()
    require_stack(base, cassandra=False, kafka=True, registry=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the cleanup below runs
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient

    from jobs.history import read_history
    from sinks.archive import Archiver, consumer_config, ensure_table, kafka_offsets
    from sinks.factory import connect_iceberg

    run_id = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="bench-archive-"))
    settings = isolated(base, run_id, "archive", tmp)
    topic = f"bench_{run_id}_archive"
    print(f"bench.archive {run_id}: load average at start {loadavg()} (2 cores, shared); {tmp}", flush=True)
    try:
        definitions = register_definitions(settings, topic, ttl="7d")
        ensure_topic(settings, topic, 3)
        end_ms = now_ms() - 2 * HOUR
        events = generate(args.seed, events=args.events, users=args.users, start_ms=end_ms - 3 * HOUR, span_ms=3 * HOUR)
        header = wire_header(settings, topic)
        encoder = Encoder(header, args.users, f"a{run_id}_")
        cut = int(len(events) * args.archived)
        first = _slice(events, 0, cut)
        send_backlog(settings.kafka_bootstrap, topic, encoder, first)
        table = ensure_table(connect_iceberg(settings), settings.iceberg_namespace, topic)
        consumer = Consumer(consumer_config(settings.kafka_bootstrap))
        try:
            started = time.monotonic()
            archived = Archiver(consumer, table, topic).run(once=True, timeout_s=600)
            took = time.monotonic() - started
            ends = {p: high for p, (_, high) in kafka_offsets(consumer, topic).items()}
        finally:
            consumer.close()
        size = sum(f.file.file_size_in_bytes for f in table.scan().plan_files()) if archived else 0
        print(
            f"archive: {archived:,} records in {took:.1f}s = {archived / took:,.0f} records/s "
            f"({size / 2**20:,.1f} MiB of Parquet written, {size / 2**20 / took:,.1f} MiB/s)",
            flush=True,
        )
        admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
        for future in admin.delete_records([TopicPartition(topic, p, o) for p, o in ends.items()]).values():
            future.result(timeout=60)
        rest = _slice(events, cut, len(events))  # ids of their own (another prefix): every event id is unique
        send_backlog(settings.kafka_bootstrap, topic, Encoder(header, args.users, f"a{run_id}_rest_"), rest)
        started = time.monotonic()
        history = read_history(settings, definitions[0].source, now_ms=now_ms())
        took = time.monotonic() - started
        n = history.valid.num_rows
        ids = history.valid.column("transaction_id")
        ok = n == len(events) and len(set(ids.to_pylist())) == n and history.rejected.num_rows == 0
        print(
            f"history: {n:,} events ({cut:,} from the archive, {len(events) - cut:,} from the topic) read, decoded and "
            f"sorted in {took:.1f}s = {n / took:,.0f} events/s; check (every event once, none refused): "
            f"{'OK' if ok else 'FAILED'}",
            flush=True,
        )
        rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of this process: {rss_mib:,.0f} MiB; load average at end {loadavg()}", flush=True)
        return 0 if ok else 1
    finally:
        with suppress(Exception):
            delete_topics(settings, [topic, f"{topic}.dlq"])
        delete_subject(settings, f"{topic}-value")
        shutil.rmtree(tmp, ignore_errors=True)


def _slice(events: Events, lo: int, hi: int) -> Events:
    return Events(
        users=events.users[lo:hi],
        merchants=events.merchants[lo:hi],
        currencies=events.currencies[lo:hi],
        amounts=events.amounts[lo:hi],
        times=events.times[lo:hi],
    )


if __name__ == "__main__":
    sys.exit(run_main(main))
