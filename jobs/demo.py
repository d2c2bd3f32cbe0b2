"""The end-to-end demo behind ``make demo``: events -> Kafka -> Flink -> Cassandra + Iceberg -> API.

It starts the local stack, resets the demo's own data, produces a seeded stream of card
transactions over the last 90 minutes, runs the window job over it, then prints one served
feature vector (checked against the produced events by brute force) and a training-set sample.
Services stay up afterwards; ``make down`` stops them.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa

from infra import stack
from infra.errors import InfraError
from infra.settings import REPO_DIR, StackSettings
from jobs.events import synthetic_transactions
from jobs.produce import ensure_topics, make_producer
from jobs.registry_client import require_registry
from registry.core.arguments import ArgumentParser
from registry.core.catalog import load_folder, load_request_folder
from registry.core.errors import FeatureStoreError
from registry.core.settings import Settings, settings_for_command
from registry.core.shown import error_line
from registry.definition_store import DefinitionStore
from registry.plan import apply
from sinks.topics import require_reachable

TOPIC = "card_transactions"
STEPS = 6


def _step(n: int, text: str) -> None:
    print(f"\n[{n}/{STEPS}] {text}", file=sys.stderr, flush=True)


def _reset(settings: Settings) -> None:
    """Drop the demo's previous data so the printed values come from this run's events only."""
    from confluent_kafka.admin import AdminClient
    from pyiceberg.exceptions import NoSuchTableError

    from sinks.cassandra import layout as online_layout
    from sinks.factory import connect_cassandra, connect_iceberg
    from sinks.iceberg.layout import TABLE

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    doomed = [t for t in (TOPIC, f"{TOPIC}.dlq") if t in admin.list_topics(timeout=10).topics]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=30).values():
            future.result(timeout=30)
        deadline = time.monotonic() + 30
        while set(doomed) & set(admin.list_topics(timeout=10).topics) and time.monotonic() < deadline:
            time.sleep(0.5)
    for attempt in range(20):  # a just-deleted topic can take a moment to be re-creatable
        try:
            ensure_topics(settings.kafka_bootstrap, [TOPIC, f"{TOPIC}.dlq"])
            break
        except FeatureStoreError:
            if attempt == 19:
                raise
            time.sleep(0.5)
    cluster, session = connect_cassandra(settings)
    for table in (online_layout.TABLE, online_layout.PROGRESS_TABLE):
        session.execute(f"TRUNCATE {settings.cassandra_keyspace}.{table}", timeout=60)
    cluster.shutdown()
    with contextlib.suppress(NoSuchTableError):
        connect_iceberg(settings).drop_table(f"{settings.iceberg_namespace}.{TABLE}")


def _run_job(state_dir: Path, settings: Settings) -> None:
    cmd = [sys.executable, "-m", "jobs.feature_job", "--bounded"]
    # run in the repository: the settings as this process read them (relative paths were the caller's folder's)
    env = {**os.environ, **settings.to_env(), "FS_STATE_DIR": str(state_dir)}
    log_path = state_dir / "demo-job.log"  # FS_STATE_DIR, with the stack's data and logs
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        started = time.monotonic()
        while proc.poll() is None:
            time.sleep(1)
            elapsed = time.monotonic() - started
            if int(elapsed) % 5 == 0:
                print(f"      Flink job running ... {elapsed:.0f}s", file=sys.stderr, flush=True)
            if elapsed > 600:
                proc.kill()
                raise FeatureStoreError(f"the Flink job did not finish within 600 s; log: {log_path}")
    if proc.returncode != 0:
        tail = log_path.read_text()[-3000:]
        raise FeatureStoreError(f"the Flink job failed (exit {proc.returncode}); log {log_path}:\n{tail}")
    print(f"      Flink job finished in {time.monotonic() - started:.0f}s", file=sys.stderr)


def _expected(events: list[dict[str, Any]], user: str, window_end_ms: int) -> tuple[int, float]:
    """Brute force over the produced events: the user's count and sum in [end - 1 h, end)."""
    inside = [
        e["amount"]
        for e in events
        if e["user_id"] == user and window_end_ms - 3_600_000 <= e["event_time"] < window_end_ms
    ]
    return len(inside), sum(inside)


def main(argv: list[str] | None = None) -> int:
    ArgumentParser(
        prog="python -m jobs.demo",
        description="The end-to-end demo (make demo): starts the local stack, RESETS the demo's topic "
        "(card_transactions), online tables and offline table, produces events, runs the job, prints a served "
        "vector and a training set. Takes no options.",
    ).parse_args(argv)  # --help prints this and exits 0; anything else is a usage error (exit 2), before any reset
    stack_settings = StackSettings.from_env()
    settings = settings_for_command()
    try:
        _step(1, "starting Kafka, Cassandra and the schema registry (first run downloads them)")
        stack.up(stack_settings, ["kafka", "cassandra", "registry"])
        # The clients' Kafka and registry (FS_KAFKA_BOOTSTRAP, FS_SCHEMA_REGISTRY_URL may name others than the
        # stack's): one that does not answer is named now, before a definition, topic or table is touched.
        require_reachable(settings.kafka_bootstrap)
        require_registry(settings.schema_registry_url, settings.token)

        _step(2, "registering the feature definitions and resetting the demo's topic and tables")
        for result in apply(
            DefinitionStore(settings.definitions_db),
            load_folder(settings.definitions_dir),
            load_request_folder(settings.definitions_dir),
        ):
            d = result.definition
            print(f"      {d.entity}.{d.name} v{d.version}: {result.action} ({d.transform_ref})", file=sys.stderr)
        _reset(settings)

        _step(3, "producing 5,000 seeded card transactions over the last 90 minutes")
        now_ms = time.time_ns() // 1_000_000
        events = synthetic_transactions(7, users=50, events=5000, start_ms=now_ms - 90 * 60_000, span_ms=89 * 60_000)
        producer = make_producer(settings)
        producer.send(TOPIC, events)
        producer.flush()
        print(f"      sent {len(events)} events to {TOPIC} (Confluent Avro, key = user_id)", file=sys.stderr)

        _step(4, "running the Flink window job (1 h window sliding every 5 min) into Cassandra and Iceberg")
        _run_job(stack_settings.state_dir, settings)

        _step(5, "serving a feature vector from the online store over HTTP")
        stack.up(stack_settings, ["api"])
        user = Counter(e["user_id"] for e in events).most_common(1)[0][0]
        url = f"http://{stack_settings.host}:{stack_settings.api_port}/v1/features/user/{user}"
        names = "txn_count_1h,txn_amount_sum_1h,amount_vs_mean_1h"  # the last: a request-time feature
        response = httpx.get(url, params={"names": names, "amount": "42.5"}, timeout=5)
        response.raise_for_status()
        body = response.json()
        print(f"GET {response.request.url}")
        print(json.dumps(body, indent=2))
        served = body["features"]
        stamp = datetime.fromisoformat(served["txn_count_1h"]["feature_timestamp"].replace("Z", "+00:00"))
        end_ms = int(stamp.timestamp() * 1000)
        count, total = _expected(events, user, end_ms)
        ratio = 42.5 / (total / count) if count and total else None
        got_ratio = served["amount_vs_mean_1h"]["value"]
        ok = (
            served["txn_count_1h"]["value"] == count
            and abs(served["txn_amount_sum_1h"]["value"] - total) < 1e-6
            and (got_ratio is None if ratio is None else got_ratio is not None and abs(got_ratio - ratio) < 1e-9)
        )
        print(
            f"      brute force over the produced events for {user} in the window ending "
            f"{served['txn_count_1h']['feature_timestamp']}: count={count}, sum={total:.2f}, "
            f"amount 42.5 / mean = {ratio} -> {'MATCH' if ok else 'MISMATCH'}",
            file=sys.stderr,
        )
        if not ok:
            return 1

        _step(6, "building a point-in-time training set from the Iceberg table")
        from serving.offline.historical import get_historical_features
        from sinks.factory import connect_iceberg
        from sinks.iceberg.layout import TABLE

        users = [u for u, _ in Counter(e["user_id"] for e in events).most_common(3)]
        label_times = [now_ms - m * 60_000 for m in (60, 30, 5)]
        labels = pa.table(
            {
                "user_id": [u for u in users for _ in label_times],
                "event_timestamp": pa.array([t for _ in users for t in label_times], pa.timestamp("ms", tz="UTC")),
                "label": [i % 2 for i in range(len(users) * len(label_times))],
                "amount": [42.5] * (len(users) * len(label_times)),  # the request field of amount_vs_mean_1h
            }
        )
        table = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}")
        training = get_historical_features(
            table,
            DefinitionStore(settings.definitions_db).catalog(),
            labels,
            ["txn_count_1h", "txn_amount_sum_1h", "amount_vs_mean_1h"],
            entity_type="user",
            entity_column="user_id",
        )
        print(training.to_pandas().to_string(index=False))
        print(f"\nDone. Services are still running (try: curl '{url}'); `make down` stops them.", file=sys.stderr)
        return 0
    except (InfraError, FeatureStoreError, httpx.HTTPError) as exc:
        print(error_line(exc), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
