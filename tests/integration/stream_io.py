"""What the stream tests send to and read back from the real stores: records as Kafka payloads, dead letters
from the dead-letter topic, windows from the offline table (the card-transaction features)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import fastavro
from confluent_kafka import Consumer, KafkaException, TopicPartition

from registry.core.catalog import load_folder
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.plan import apply
from schemas import load_schema
from sinks.factory import connect_iceberg
from sinks.iceberg.layout import TABLE
from tests.conftest import REPO, settings_env
from tests.integration.stream_reference import Record

# The scenario of the lateness tests: the card features with 30 minutes of allowed lateness (their source's
# default 5 s out-of-orderness), events from four hours ago, and a marker entity whose event closes every window.
MIN = 60_000
HOUR = 60 * MIN
BASE = time.time_ns() // 1_000_000 // HOUR * HOUR - 4 * HOUR
OUT_OF_ORDERNESS = 5_000
LATENESS = 30 * MIN
MARKER = "zz_marker"


def register_card_features(
    settings: Settings, topic: str, *, allowed_lateness: str | None = None, idle_timeout: str | None = None
) -> None:
    """The repository's card-transaction features, read from ``topic``, kept a day online, registered and
    activated in ``settings``' definition store (``allowed_lateness``, the source's ``idle_timeout``: durations
    such as ``"30m"``)."""
    toml = (REPO / "registry" / "features" / "user_transactions.toml").read_text()
    toml = toml.replace('topic = "card_transactions"', f'topic = "{topic}"').replace('ttl = "2h"', 'ttl = "1d"')
    if allowed_lateness is not None:
        toml = toml.replace('slide = "5m"', f'slide = "5m"\nallowed_lateness = "{allowed_lateness}"')
    if idle_timeout is not None:
        toml = toml.replace(
            'max_out_of_orderness = "5s"', f'max_out_of_orderness = "5s"\nidle_timeout = "{idle_timeout}"'
        )
    (settings.definitions_dir / "features.toml").write_text(toml)
    apply(DefinitionStore(settings.definitions_db), load_folder(settings.definitions_dir))


def start_job(settings: Settings, group_id: str, *extra: str, metrics_port: int = 0) -> subprocess.Popen[str]:
    """``python -m jobs.feature_job`` in a session of its own (``os.killpg`` kills all of it), output piped;
    ``metrics_port`` 0: no metrics endpoint."""
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.feature_job", "--group-id", group_id, "--metrics-port", str(metrics_port), *extra],
        cwd=REPO,
        env=settings_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def kill_job(job: subprocess.Popen[str]) -> None:
    """SIGKILL to all of ``job``'s session (client, mini-cluster JVM, Python workers), then reap it; a job whose
    session is gone already (it failed, and its failure is what the caller reports) is no error here."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(job.pid, signal.SIGKILL)
    job.wait()


def payload(producer: Any, topic: str, r: Record) -> bytes:
    """The record's bytes: a real event in the Confluent wire format, or bad input of the record's kind."""
    if r.bad == "bad_magic":
        return b"\x07not an event"
    if r.bad == "unknown_schema_id":
        return b"\x00" + (987_654).to_bytes(4, "big") + b"\x02"
    event = {
        "transaction_id": r.event_id,
        "user_id": r.key,
        "merchant_id": "m",
        "amount": r.amount,
        "currency": "EUR",
        "event_time": r.timestamp_ms,
    }
    if r.bad == "non_finite":
        event["amount"] = float("nan")
    if r.bad == "missing_field":
        event["merchant_id"] = ""
    value = bytes(producer._serializer(event, value_context(topic)))
    return value[:-3] if r.bad == "undecodable" else value


def value_context(topic: str) -> Any:
    from confluent_kafka.serialization import MessageField, SerializationContext

    return SerializationContext(topic, MessageField.VALUE)


def offline_rows(settings: Settings, *, leave_out: str) -> list[dict[str, Any]]:
    """Every row of the offline table but ``leave_out``'s (a marker entity); none before the first commit."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    try:
        table = connect_iceberg(settings).load_table(f"{settings.iceberg_namespace}.{TABLE}")
    except (NoSuchTableError, NoSuchNamespaceError):
        return []
    if table.current_snapshot() is None:
        return []
    return [r for r in table.scan().to_arrow().to_pylist() if r["entity_id"] != leave_out]


def final_windows_written(settings: Settings, expected: dict[tuple[str, int], tuple[int, float]]) -> bool:
    """Whether the offline table holds every expected (entity, window end) at its final revision."""
    rows = offline_rows(settings, leave_out="")
    written = {(r["entity_id"], int(r["event_time"].timestamp() * 1000), r["revision"]) for r in rows}
    return bool(rows) and all((user, end, count) in written for (user, end), (count, _) in expected.items())


def final_windows(rows: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """(entity, window end) -> the two features' values and the revision, at each window's last revision."""
    final: dict[tuple[str, int], dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["revision"]):
        end = int(r["event_time"].timestamp() * 1000)
        value = r["value_long"] if r["feature_name"] == "txn_count_1h" else r["value_double"]
        final.setdefault((r["entity_id"], end), {})[r["feature_name"]] = value
        final[(r["entity_id"], end)]["revision"] = r["revision"]
    return final


def dead_letters(settings: Settings, dlq: str, group_id: str, expected: int) -> Counter[tuple[str, str | None]]:
    """(reason, event id) of every letter in ``dlq``, the event id for too-late letters only (the others need
    not decode), read until ``expected`` letters came and the topic has no more, or for at most 30 s."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([dlq])
    letters: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        batch = consumer.consume(100, timeout=1)
        letters += [json.loads(m.value() or b"null") for m in batch if m.error() is None]
        if len(letters) >= expected and not batch:
            break
    consumer.close()
    schema = fastavro.parse_schema(load_schema("card_transaction"))

    def event_id(letter: dict[str, Any]) -> str | None:
        raw = base64.b64decode(letter["payload_b64"])
        if letter["reason"] != "too_late":
            return None
        record: Any = fastavro.schemaless_reader(io.BytesIO(raw[5:]), schema)
        return str(record["transaction_id"])

    return Counter((letter["reason"], event_id(letter)) for letter in letters)


def committed_offset(settings: Settings, group_id: str, topic: str, partitions: int = 1) -> int:
    """The offsets ``group_id`` has committed on ``topic``'s first ``partitions`` partitions, summed: the job commits
    them when a checkpoint completes, so the newest retained checkpoint then holds every record below them. -1 when
    the broker does not answer (slow under load: not committed yet, as far as we know)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group_id})
    try:
        parts = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return sum(max(int(p.offset), 0) for p in parts)
    except KafkaException:
        return -1
    finally:
        consumer.close()


def caught_up(settings: Settings, expected: dict[tuple[str, int], tuple[int, float]], *, leave_out: str) -> bool:
    """Every expected (entity, window end) is in the offline table at its final revision or past it (a wrong run
    ends here too, and the tests say how it is wrong)."""
    reached: dict[tuple[str, int], int] = {}
    for r in offline_rows(settings, leave_out=leave_out):
        key = (r["entity_id"], int(r["event_time"].timestamp() * 1000))
        reached[key] = max(reached.get(key, 0), r["revision"])
    return all(reached.get(key, 0) >= count for key, (count, _) in expected.items())


def job_output(proc: subprocess.Popen[str]) -> str:
    """The last 4,000 characters a job started by ``start_job`` printed (read once it has ended)."""
    return (proc.stdout.read() if proc.stdout else "")[-4000:]
