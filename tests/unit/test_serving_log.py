"""The serving log in the feature API: what a sampled request logs, and that a log that cannot take a
record (a full producer queue, any error) neither fails nor delays the read; the landing's decoding."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pyarrow as pa
import pytest
from confluent_kafka import Producer
from fastapi.testclient import TestClient

from registry.live import LiveCatalog
from serving.online.app import create_app
from serving.online.serving_log import KafkaSink, producer_config
from sinks.serving_log import ARROW_SCHEMA, Batch
from tests.unit.test_app import NOW, MemorySource, T, _stored, live  # noqa: F401 - live is a fixture


class ListSink:
    def __init__(self, error: Exception | None = None) -> None:
        self.records: list[tuple[bytes, dict[str, Any]]] = []
        self.error = error

    def send(self, key: bytes, value: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.records.append((key, orjson.loads(value)))


def _client(live: LiveCatalog, sink: Any, sample: float, source: MemorySource | None = None) -> TestClient:  # noqa: F811
    source = source or MemorySource({("user", "u1"): _stored((T, 4), (T, 12.5)), ("user", "u2"): _stored((T, 1))})
    app = create_app(live, source, clock_us=lambda: NOW * 1000, serving_log=sink, serving_log_sample=sample)
    return TestClient(app, raise_server_exceptions=False)


def test_a_get_logs_the_vector_it_served_with_the_request_headers(live: LiveCatalog) -> None:  # noqa: F811
    sink = ListSink()
    client = _client(live, sink, 1.0)
    response = client.get(
        "/v1/features/user/u1?names=txn_count_1h,txn_amount_sum_1h",
        headers={"x-request-id": "r-1", "x-caller": "ranker", "x-model-name": "m", "x-model-version": "7"},
    )
    assert response.status_code == 200
    served = response.json()["features"]
    ((key, record),) = sink.records
    assert key == b"u1"
    assert record["request_id"] == "r-1" and record["caller"] == "ranker"
    assert (record["model_name"], record["model_version"]) == ("m", "7")
    assert record["served_at"] == NOW and record["entity_type"] == "user" and record["entity_id"] == "u1"
    assert record["names"] == ["txn_count_1h", "txn_amount_sum_1h"] and record["versions"] == [1, 1]
    assert record["values"] == [served["txn_count_1h"]["value"], served["txn_amount_sum_1h"]["value"]] == [4, 12.5]
    assert record["feature_timestamps"] == [served[n]["feature_timestamp"] for n in record["names"]]
    assert record["statuses"] == [served[n]["status"] for n in record["names"]]
    assert record["feature_service"] is None


def test_a_batch_logs_each_entity_served_and_not_the_failed_ones(live: LiveCatalog) -> None:  # noqa: F811
    sink = ListSink()
    client = _client(live, sink, 1.0)
    response = client.post(
        "/v1/features/user/batch", json={"entity_ids": ["u1", "u2", "u3"], "names": ["txn_count_1h"]}
    )
    assert response.status_code == 200
    records = [r for _, r in sink.records]
    assert [r["entity_id"] for r in records] == ["u1", "u2", "u3"]
    assert [r["values"] for r in records] == [[4], [1], [None]]
    assert records[2]["statuses"] == ["missing"] and records[2]["feature_timestamps"] == [None]
    assert len({r["request_id"] for r in records}) == 1  # one request, one generated id


@pytest.mark.parametrize(("sample", "draws", "expected"), [(0.0, [0.0], 0), (0.25, [0.1, 0.3, 0.2, 0.9], 2)])
def test_sampling_is_per_request(live: LiveCatalog, sample: float, draws: list[float], expected: int) -> None:  # noqa: F811
    sink = ListSink()
    client = _client(live, sink, sample)
    log = client.app.state.serving_log  # type: ignore[attr-defined]
    values = iter(draws)
    log._draw = lambda: next(values)
    for _ in draws:
        assert client.get("/v1/features/user/u1?names=txn_count_1h").status_code == 200
    assert len(sink.records) == expected


@pytest.mark.parametrize(
    ("error", "reason"), [(BufferError("Local: Queue full"), "queue_full"), (RuntimeError("x"), "error")]
)
def test_a_log_that_refuses_records_never_fails_the_read(live: LiveCatalog, error: Exception, reason: str) -> None:  # noqa: F811
    client = _client(live, ListSink(error), 1.0)
    for _ in range(3):
        response = client.get("/v1/features/user/u1?names=txn_count_1h")
        assert response.status_code == 200 and response.json()["features"]["txn_count_1h"]["value"] == 4
    metrics = client.get("/metrics").text
    assert f'fs_serving_log_dropped_total{{reason="{reason}"}} 3.0' in metrics


def test_an_unreachable_broker_adds_no_latency(live: LiveCatalog) -> None:  # noqa: F811
    """A real librdkafka producer aimed at a port nothing listens on: produce only queues, so reads stay fast."""
    config = {**producer_config("127.0.0.1:1"), "message.timeout.ms": 1000}
    sink = KafkaSink(Producer(config), "fs_serving_log")
    client = _client(live, sink, 1.0)
    client.get("/v1/features/user/u1?names=txn_count_1h")  # warm up the route
    started = time.perf_counter()
    for _ in range(200):
        assert client.get("/v1/features/user/u1?names=txn_count_1h").status_code == 200
    per_read_ms = (time.perf_counter() - started) / 200 * 1000
    assert per_read_ms < 50, per_read_ms  # a blocking send would wait for the broker's timeout (1 s)
    deadline = time.monotonic() + 20  # the records are given up after message.timeout.ms
    given_up = 'fs_serving_log_dropped_total{reason="delivery"} 201.0'
    # The records time out in librdkafka's timeout scans, not all at once: wait for every one, not the first.
    while time.monotonic() < deadline and given_up not in client.get("/metrics").text:
        time.sleep(0.2)  # no read logged meanwhile: the scrape itself serves the delivery reports
    assert given_up in client.get("/metrics").text


def test_the_landing_decodes_records_into_one_row_per_value_and_skips_malformed_ones() -> None:
    batch = Batch.empty()
    record = {
        "request_id": "r",
        "served_at": NOW,
        "caller": None,
        "feature_service": "svc@1",
        "model_name": None,
        "model_version": None,
        "entity_type": "user",
        "entity_id": "u1",
        "names": ["a", "b", "c"],
        "versions": [1, 2, 1],
        "values": [4, 0.1 + 0.2, None],
        "feature_timestamps": ["2023-11-14T22:15:00.000Z", "2023-11-14T22:15:00.001Z", None],
        "statuses": ["present", "stale", "missing"],
    }
    batch.add(orjson.dumps(record), "t", 3, 41)
    batch.add(b"not json", "t", 3, 42)
    batch.add(orjson.dumps({**record, "values": [1]}), "t", 3, 43)  # columns of different lengths
    assert batch.bad == 2
    table = batch.to_arrow()
    assert table.schema == ARROW_SCHEMA
    rows = table.to_pylist()
    assert [r["feature_name"] for r in rows] == ["a", "b", "c"]
    assert [orjson.loads(r["value_json"]) for r in rows] == [4, 0.1 + 0.2, None]  # doubles exact
    assert [r["position"] for r in rows] == [0, 1, 2] and {r["kafka_offset"] for r in rows} == {41}
    times = table.column("feature_time").cast(pa.int64()).to_pylist()
    assert times == [T * 1000, T * 1000 + 1000, None]
    assert {r["feature_service"] for r in rows} == {"svc@1"}
