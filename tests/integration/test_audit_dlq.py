"""Audit of design §5.3 / §6 "Bad input", "Late events", "Duplicate events" / §7 job metrics on the real stack:
one bounded run of the job over records placed at the documented boundaries, then the dead-letter topic (each
letter's JSON shape, reason, detail and exact payload), the offline windows and the decoder's metrics.

The boundaries (the card features: 5 s out-of-orderness, 30 min allowed lateness, 1 h windows sliding by 5 min):
a record exactly at ``watermark - allowed_lateness`` in a window's last millisecond is too late, one a millisecond
later is late but counted by every window it is in; a record exactly at the watermark is late, one a millisecond
after it is not; entity keys of 256 code points are accepted and of 257 refused; a record over an hour ahead is
dead-lettered and does not move the watermark; the first arrival of a transaction id counts.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from jobs.produce import ensure_topics, make_producer
from registry.core.settings import Settings
from schemas.wire import frame
from tests.conftest import isolated, run_module
from tests.integration.stream_io import (
    BASE,
    LATENESS,
    MARKER,
    MIN,
    OUT_OF_ORDERNESS,
    kill_job,
    offline_rows,
    register_card_features,
    start_job,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Sent:
    key: str
    payload: bytes | None
    ts: int
    expect: str | None  # the dead-letter reason, None when accepted
    detail: str | None = None  # the exact detail expected, when the docs give it
    late: bool = False  # accepted and counted as late


@dataclass(frozen=True)
class Run:
    topic: str
    sent: list[Sent]
    letters: list[tuple[dict[str, Any], int]]  # (the letter's JSON, its Kafka timestamp)
    rows: list[dict[str, Any]]
    metrics: Metrics
    started_ms: int
    ended_ms: int


def _event(**changes: Any) -> dict[str, Any]:
    return {
        "transaction_id": "t",
        "user_id": "u",
        "merchant_id": "m",
        "amount": 1.0,
        "currency": "EUR",
        "event_time": 0,
        **changes,
    }


def _records(serialize: Any, schema_id: int) -> list[Sent]:
    out: list[Sent] = []

    def good(user: str, ts: int, txn: str, *, amount: float = 1.0, late: bool = False, **changes: Any) -> None:
        event = _event(transaction_id=txn, user_id=user, amount=amount, event_time=ts, **changes)
        out.append(Sent(user, serialize(event), ts, None, late=late))

    def bad(reason: str, ts: int, payload: bytes | None, detail: str | None = None, key: str = "bad") -> None:
        out.append(Sent(key, payload, ts, reason, detail))

    t0 = BASE + 10 * MIN
    good("uA", t0, "t1", amount=2.0)
    good("uA", t0 + 1_000, "t1", amount=100.0)  # a resend with another amount: the first arrival counts
    body = serialize(_event(transaction_id="tb", user_id="ub", event_time=t0))
    bad("empty", t0, None, "record value is empty or null")
    bad("empty", t0, b"", "record value is empty or null")
    bad("truncated", t0, b"\x00\x00\x01", "3 bytes is shorter than the 5-byte header")
    bad("bad_magic", t0, b"\x07not an event", "first byte is 7, not the Confluent magic byte 0")
    bad("unknown_schema_id", t0, frame(987_654, body[5:]), "schema id 987654 is not in the schema registry")
    bad("undecodable", t0, body[:-3])  # truncated Avro
    bad("undecodable", t0, body + b"\x00", "1 trailing bytes after the Avro record")
    bad("undecodable", t0, frame(schema_id, b""))
    bad("undecodable", t0, body.replace(b"ub", b"\xff\xfe"))  # a string that is not UTF-8
    for user in ("k" * 256, "\U0001f600" * 256):  # 256 code points: in
        good(user, t0, f"k256-{len(user.encode())}")
    too_long = "key field 'user_id' is 257 characters (at most 256)"
    bad("bad_key", t0, serialize(_event(transaction_id="k257", user_id="k" * 257, event_time=t0)), too_long)
    bad("bad_key", t0, serialize(_event(transaction_id="k257e", user_id="\U0001f600" * 257, event_time=t0)), too_long)
    nan_key = _event(transaction_id="k257n", user_id="k" * 257, amount=float("nan"), event_time=t0)
    bad("bad_key", t0, serialize(nan_key), too_long)  # bad_key is checked before NaN
    missing = "required field {!r} is missing or empty"
    bad(
        "missing_field",
        t0,
        serialize(_event(transaction_id="e1", user_id="", event_time=t0)),
        missing.format("user_id"),
    )
    bad(
        "missing_field",
        t0,
        serialize(_event(transaction_id="", user_id="ue", event_time=t0)),
        missing.format("transaction_id"),
    )
    empty_merchant = _event(transaction_id="e3", user_id="ue", merchant_id="", event_time=t0)
    bad("missing_field", t0, serialize(empty_merchant), missing.format("merchant_id"))
    good("uC", t0, "c1", currency="")  # an empty string that is not an id: accepted
    for shown, value in (("nan", float("nan")), ("inf", float("inf")), ("-inf", float("-inf"))):
        event = _event(transaction_id=f"n{shown}", user_id="un", amount=value, event_time=t0)
        bad("non_finite", t0, serialize(event), f"field 'amount' is {shown}")
    bad("bad_timestamp", t0, serialize(_event(transaction_id="b1", event_time=-5)), "event_time=-5 is before 1970")
    mismatch = serialize(_event(transaction_id="mm", event_time=t0 + 1))
    bad(
        "timestamp_mismatch",
        t0,
        mismatch,
        f"event_time={t0 + 1} but the Kafka timestamp is {t0}; producers must set the record timestamp to the event time",
    )
    future = time.time_ns() // 1_000_000 + 3_600_000 + 10 * MIN
    bad("future_timestamp", future, serialize(_event(transaction_id="f1", user_id="uF", event_time=future)))
    # Not too late: the future record did not move the watermark.
    good("uB", t0 + 500, "after_future")

    # Phase A: watermark = E1 - 2 + lateness; a record in E1's window's last millisecond is late, not too late.
    e1 = BASE + 30 * MIN
    wm = e1 - 2 + LATENESS
    good("uLeadA", wm + OUT_OF_ORDERNESS, "leadA")
    good("uW1", e1 - 1, "w1", late=True)
    good("uW1b", wm, "w1b", late=True)  # exactly at the watermark: late
    good("uW1c", wm + 1, "w1c")  # a millisecond after it: not late

    # Phase B: watermark = E2 - 1 + lateness; a record in E2's window's last millisecond is too late.
    e2 = BASE + 60 * MIN
    wm = e2 - 1 + LATENESS
    good("uLeadB", wm + OUT_OF_ORDERNESS, "leadB")
    too_late = "event time {} ms is at or behind the watermark minus the allowed lateness"
    w2 = serialize(_event(transaction_id="w2", user_id="uW2", event_time=e2 - 1))
    out.append(Sent("uW2", w2, e2 - 1, "too_late", too_late.format(e2 - 1)))
    bad("too_late", e2 - 1_000, b"\x07not an event", too_late.format(e2 - 1_000))  # whatever its content
    good("uW3", e2, "w3", late=True)  # a millisecond inside: accepted, late
    good(
        "uA", e2 + 5 * MIN, "t1", amount=50.0, late=True
    )  # a much later resend: still ignored (late: behind the watermark)
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(port: int) -> Metrics:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    found: Metrics = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name.removeprefix("flink_taskmanager_job_task_operator_")
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k in ("topic", "reason")))
            found[(name, labels)] = found.get((name, labels), 0.0) + sample.value
    return found


def _letters(settings: Settings, dlq: str, expected: int) -> list[tuple[dict[str, Any], int]]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"audit-{dlq}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([dlq])
    letters: list[tuple[dict[str, Any], int]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        batch = consumer.consume(100, timeout=1)
        letters += [(json.loads(m.value() or b"null"), m.timestamp()[1]) for m in batch if m.error() is None]
        if len(letters) >= expected and not batch:
            break
    consumer.close()
    return letters


def _dead_lettered(settings: Settings, dlq: str) -> int:
    """How many records the dead-letter topic holds (its partitions' end offsets; it may not exist: 0)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"audit-count-{dlq}"})
    try:
        topics = consumer.list_topics(dlq, timeout=10).topics
        partitions = topics[dlq].partitions if dlq in topics and topics[dlq].error is None else {}
        return sum(consumer.get_watermark_offsets(TopicPartition(dlq, p), timeout=10)[1] for p in partitions)
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def run(it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    settings = isolated(it_settings, "auditdlq", tmp_path_factory.mktemp("auditdlq"))
    topic = f"it_{run_id}_audit_dlq"
    register_card_features(settings, topic, allowed_lateness="30m")
    ensure_topics(
        settings.kafka_bootstrap, [topic], partitions=1, config={"message.timestamp.after.max.ms": "604800000"}
    )
    producer = make_producer(settings)
    first = producer.serialize(topic, _event(event_time=BASE))
    schema_id = int.from_bytes(first[1:5], "big")
    sent = _records(lambda e: producer.serialize(topic, e), schema_id)
    for record in sent:
        producer.send_raw(topic, record.key.encode(), record.payload, record.ts)
    marker_ms = time.time_ns() // 1_000_000 - MIN  # its watermark closes every window

    producer.send_raw(
        topic, MARKER.encode(), producer.serialize(topic, _event(user_id=MARKER, event_time=marker_ms)), marker_ms
    )
    producer.flush()

    # Unbounded, as in production: a bounded run's operators (and their metrics) are gone when it ends.
    port = _free_port()
    expected = sum(1 for s in sent if s.expect)
    started_ms = time.time_ns() // 1_000_000
    job = start_job(settings, f"audit-{run_id}", metrics_port=port)
    try:
        deadline = time.monotonic() + 240
        metrics: Metrics = {}
        while True:
            assert job.poll() is None, (job.stdout.read() if job.stdout else "")[-4000:]
            metrics = _scrape(port)
            done = _metric(metrics, "topic_events_in") == len(sent) + 1
            dead = _metric(metrics, "topic_reason_events_dead_lettered") == expected
            rows = offline_rows(settings, leave_out="")
            if done and dead and {"uW3", "uA", "uC"} <= {r["entity_id"] for r in rows}:
                break
            assert time.monotonic() < deadline, metrics
            time.sleep(1)
        # The last windows' rows: every accepted user in at least the 12 windows of one event (both features).
        accepted = {s.key for s in sent if s.expect is None}
        while True:
            rows = offline_rows(settings, leave_out=MARKER)
            try:
                windows = _windows(rows)
            except KeyError:  # a window with one feature's row so far
                windows = {}
            per_user = Counter(u for u, _ in windows)
            if all(per_user[u] >= 12 for u in accepted):
                break
            assert time.monotonic() < deadline, per_user
            time.sleep(1)
        metrics = _scrape(port)
    finally:
        kill_job(job)
        job.wait()
    letters = _letters(settings, f"{topic}.dlq", expected)
    ended_ms = time.time_ns() // 1_000_000
    yield Run(topic, sent, letters, rows, metrics, started_ms, ended_ms)


def test_every_dead_letter_has_the_documented_shape_and_the_exact_payload(run: Run) -> None:
    for letter, kafka_ts in run.letters:
        assert set(letter) == {"topic", "reason", "detail", "payload_b64", "dead_lettered_at_ms"}, letter
        assert letter["topic"] == run.topic
        assert isinstance(letter["dead_lettered_at_ms"], int)
        assert run.started_ms <= letter["dead_lettered_at_ms"] <= run.ended_ms
        assert kafka_ts == letter["dead_lettered_at_ms"]  # the dead-lettering time is the Kafka timestamp


def test_each_record_gets_its_documented_reason_and_detail(run: Run) -> None:
    want = sorted(((s.payload or b"", s.expect) for s in run.sent if s.expect), key=lambda x: (x[0], x[1] or ""))
    got = sorted(
        ((base64.b64decode(letter["payload_b64"]), letter["reason"]) for letter, _ in run.letters),
        key=lambda x: (x[0], x[1]),
    )
    assert got == want
    details = {(s.payload or b"", s.expect): s.detail for s in run.sent if s.expect and s.detail}
    for letter, _ in run.letters:
        key = (base64.b64decode(letter["payload_b64"]), letter["reason"])
        if key in details:
            assert letter["detail"] == details[key], letter


def _windows(rows: list[dict[str, Any]]) -> dict[tuple[str, int], tuple[int, float]]:
    """(entity, window end ms) -> (count, sum) at the window's last revision."""
    final: dict[tuple[str, int], dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["revision"]):
        end = int(r["event_time"].timestamp() * 1000)
        value = r["value_long"] if r["feature_name"] == "txn_count_1h" else r["value_double"]
        final.setdefault((r["entity_id"], end), {})[r["feature_name"]] = value
    return {k: (v["txn_count_1h"], v["txn_amount_sum_1h"]) for k, v in final.items()}


def test_accepted_records_are_in_all_their_windows_and_resends_count_once(run: Run) -> None:
    windows = _windows(run.rows)
    users = {u for u, _ in windows}
    accepted = {s.key for s in run.sent if s.expect is None}
    assert accepted <= users, accepted - users
    assert not users & {"uW2", "uF", "ub", "un", "ue"}
    # uA: t1 first at BASE+10m with 2.0; its resends (100.0, and 50.0 later) are ignored
    t0 = BASE + 10 * MIN
    a = {end: v for (u, end), v in windows.items() if u == "uA"}
    assert len(a) == 12 and all(v == (1, 2.0) for v in a.values()), a
    assert all(end - 60 * MIN <= t0 < end for end in a)
    e1 = BASE + 30 * MIN
    w1 = sorted(end for (u, end) in windows if u == "uW1")
    assert w1 == [e1 + k * 5 * MIN for k in range(12)]  # its last millisecond's window E1 included
    e2 = BASE + 60 * MIN
    w3 = sorted(end for (u, end) in windows if u == "uW3")
    assert w3 == [e2 + 5 * MIN + k * 5 * MIN for k in range(12)]


def _metric(metrics: Metrics, name: str, **labels: str) -> float:
    return sum(v for (n, found), v in metrics.items() if n == name and all(item in found for item in labels.items()))


def test_metrics_count_in_late_and_dead_lettered(run: Run) -> None:
    m, topic = run.metrics, run.topic
    assert _metric(m, "topic_events_in", topic=topic) == len(run.sent) + 1  # and the marker
    assert _metric(m, "topic_events_late", topic=topic) == sum(1 for s in run.sent if s.late)
    reasons: dict[str, int] = {}
    for s in run.sent:
        if s.expect:
            reasons[s.expect] = reasons.get(s.expect, 0) + 1
    for reason, count in reasons.items():
        assert _metric(m, "topic_reason_events_dead_lettered", topic=topic, reason=reason) == count, reason


def test_the_job_reports_its_restarts_the_restart_loop_alert_reads(run: Run) -> None:
    """infra/prometheus/alerts.yml's StreamJobRestartLoop reads Flink's numRestarts under this name: reported, and 0
    for a run that never failed."""
    assert ("flink_jobmanager_job_numRestarts", ()) in run.metrics, sorted(n for n, _ in run.metrics)
    assert _metric(run.metrics, "flink_jobmanager_job_numRestarts") == 0


class _Proxy:
    """The real schema registry behind a proxy that answers ``GET /schemas/ids/<refused>`` itself (status, body)."""

    def __init__(self, upstream: str, refused: int, answer: tuple[int, str]) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] == f"/schemas/ids/{refused}":
                    status, body = answer
                    data = body.encode()
                else:
                    try:
                        with urllib.request.urlopen(upstream + self.path, timeout=5) as response:
                            status, data = response.status, response.read()
                    except urllib.error.HTTPError as exc:
                        status, data = exc.code, exc.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.parametrize(
    "answer",
    # (the decoder's reading of each kind of answer, 404s of other codes included, is test_audit_dlq_decoders'
    # test_only_a_404_with_error_code_40403_is_an_unknown_id: one bounded run here, for the one-line error)
    [(502, "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>nginx</body>\n</html>\n")],
    ids=["502-html"],
)
def test_a_registry_answer_other_than_404_40403_stops_a_bounded_run_and_dead_letters_nothing(
    it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory, answer: tuple[int, str]
) -> None:
    """§6 "Schema registry down": only a 404 with error code 40403 is an unknown id; a 404 of another code (a
    proxy's, a wrong path) is the registry failing: a bounded run ends with one ``error:`` line naming the
    registry, exit 1, and nothing is dead-lettered for it."""
    settings = isolated(it_settings, f"auditreg{answer[0]}", tmp_path_factory.mktemp("auditreg"))
    topic = f"it_{run_id}_audit_reg{answer[0]}"
    register_card_features(settings, topic)
    ensure_topics(settings.kafka_bootstrap, [topic], partitions=1)
    producer = make_producer(settings)
    value = producer.serialize(topic, _event(transaction_id="r1", user_id="ur", event_time=BASE))
    producer.send_raw(topic, b"ur", value, BASE)
    producer.flush()
    schema_id = int.from_bytes(value[1:5], "big")
    proxy = _Proxy(settings.schema_registry_url, schema_id, answer)
    try:
        proxied = settings.model_copy(update={"schema_registry_url": proxy.url})
        job = run_module(proxied, "jobs.feature_job", "--bounded", "--metrics-port", "0", timeout_s=300)
    finally:
        proxy.server.shutdown()
    assert job.returncode == 1, (job.stdout[-2000:], job.stderr[-3000:])
    errors = [line for line in job.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(
        f"error: schema registry at {proxy.url} unavailable during the run: "
    ), job.stderr[-3000:]
    assert job.stderr.rstrip("\n").splitlines()[-1] == errors[0], job.stderr[-3000:]  # one line, the last
    assert _dead_lettered(settings, f"{topic}.dlq") == 0


def test_without_allowed_lateness_every_record_at_or_behind_the_watermark_is_too_late(
    it_settings: Settings, run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """§5.3 with the default ``allowed_lateness`` of 0: too late is ``ts <= watermark``, so a record exactly at
    the watermark is dead-lettered (whatever its content) and one a millisecond after it counts."""
    settings = isolated(it_settings, "auditlate0", tmp_path_factory.mktemp("auditlate0"))
    topic = f"it_{run_id}_audit_late0"
    register_card_features(settings, topic)
    ensure_topics(settings.kafka_bootstrap, [topic], partitions=1)
    producer = make_producer(settings)
    lead = BASE + 30 * MIN - 1 + OUT_OF_ORDERNESS  # watermark after it: a window's last millisecond
    wm = lead - OUT_OF_ORDERNESS
    sent = [
        ("uL", lead, "lead"),
        ("uAt", wm, "at"),  # too late
        ("uIn", wm + 1, "in"),  # accepted, in the windows from the next one on
    ]
    for user, ts, txn in sent:
        value = producer.serialize(topic, _event(transaction_id=txn, user_id=user, event_time=ts))
        producer.send_raw(topic, user.encode(), value, ts)
    producer.send_raw(topic, b"x", b"\x07not an event", wm)
    producer.flush()
    job = run_module(settings, "jobs.feature_job", "--bounded", "--metrics-port", "0", timeout_s=300)
    assert job.returncode == 0, job.stderr[-3000:]
    letters = _letters(settings, f"{topic}.dlq", 2)
    assert sorted(letter["reason"] for letter, _ in letters) == ["too_late", "too_late"]
    users = {r["entity_id"] for r in offline_rows(settings, leave_out="")}
    assert users == {"uL", "uIn"}
