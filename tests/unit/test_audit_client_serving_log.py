"""Audit of the serving log (serving/online/serving_log.py, sinks/serving_log.py; docs/design.md §9 "Online
evaluation: serving log and parity").

Found and fixed here:
- ``KafkaSink.send`` served delivery reports (``poll(0)``) only after a successful ``produce``. librdkafka frees a
  record's room in its queue only once its report is served, so once the queue was full (Kafka down under load)
  every send raised ``BufferError`` before polling: the queue stayed full for good, even after Kafka came back, and
  the records it gave up were never counted with ``reason="delivery"``. Reports are now served before each send.
- the landing (``sinks.serving_log.Batch``) checked a record's shape only in part: a record that is JSON of the
  wrong types (a feature timestamp that is not ISO 8601 with its offset, a version that is not a 32-bit whole
  number, a name, status or request field that is not a string, a ``served_at`` out of range) passed ``add`` and
  then failed the whole batch in ``to_arrow``, stopping the sink, again on every restart (the offset was never
  committed). "A record that is not valid JSON of that shape is skipped and counted ... and never stops the sink."
"""

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
from serving.online.client import FeatureClient
from serving.online.serving_log import KafkaSink, producer_config
from sinks.serving_log import ARROW_SCHEMA, Batch, ServingLogSink
from tests.unit.test_app import NOW, MemorySource, T, _stored, live  # noqa: F401 - live is a fixture
from tests.unit.test_serving_log_sink import _Consumer, _Message, _Table


class _Sink:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def send(self, key: bytes, value: bytes) -> None:
        self.records.append(orjson.loads(value))


def _app(live: LiveCatalog, sink: _Sink, sample: float) -> TestClient:  # noqa: F811
    source = MemorySource({("user", "u1"): _stored((T, 4), (T, 12.5))})
    app = create_app(live, source, clock_us=lambda: NOW * 1000, serving_log=sink, serving_log_sample=sample)
    return TestClient(app, raise_server_exceptions=False)


# --- the API's side ----------------------------------------------------------------------------------


def test_a_full_queue_drains_once_its_records_are_given_up() -> None:
    """Kafka down: the queue fills, records are dropped (queue_full); once librdkafka gives the queued ones up
    (``message.timeout.ms``), they are counted as ``delivery`` and there is room again."""
    config = {**producer_config("127.0.0.1:1"), "message.timeout.ms": 300, "queue.buffering.max.messages": 5}
    sink = KafkaSink(Producer(config), "fs_serving_log")
    given_up: list[int] = []
    sink.on_failure = lambda: given_up.append(1)
    for _ in range(5):
        sink.send(b"k", b"v")
    with pytest.raises(BufferError):
        sink.send(b"k", b"v")
    deadline = time.monotonic() + 10
    while True:
        try:
            sink.send(b"k", b"v")
            break
        except BufferError:
            assert time.monotonic() < deadline, "the queue never drained"
            time.sleep(0.1)
    assert len(given_up) == 5
    sink.close(0)


@pytest.mark.parametrize(("sample", "draw", "logged"), [(1.0, 0.999_999_9, 3), (0.0, 0.0, 0), (0.5, 0.5, 0)])
def test_sampling_at_its_bounds(live: LiveCatalog, sample: float, draw: float, logged: int) -> None:  # noqa: F811
    sink = _Sink()
    client = _app(live, sink, sample)
    client.app.state.serving_log._draw = lambda: draw  # type: ignore[attr-defined]
    for _ in range(3):
        assert client.get("/v1/features/user/u1?names=txn_count_1h").status_code == 200
    assert len(sink.records) == logged


def test_the_client_s_headers_are_logged_as_given(live: LiveCatalog) -> None:  # noqa: F811
    sink = _Sink()
    fs = FeatureClient(client=_app(live, sink, 1.0), caller="équipe-日本")
    fs.get_features("user", "u1", ["txn_count_1h"], model=("modèle", "7"), request_id="req-1")
    fs.get_features_batch("user", ["u1", "u2"], ["txn_count_1h"], model=("m", "8"))
    first, *batch = sink.records
    assert (first["caller"], first["model_name"], first["model_version"]) == ("équipe-日本", "modèle", "7")
    assert first["request_id"] == "req-1" and first["values"] == [4]
    assert [r["entity_id"] for r in batch] == ["u1", "u2"] and {r["model_version"] for r in batch} == {"8"}
    assert len({r["request_id"] for r in batch}) == 1 and batch[0]["request_id"] != "req-1"


# --- the landing -------------------------------------------------------------------------------------

GOOD: dict[str, Any] = {
    "request_id": "r",
    "served_at": NOW,
    "caller": None,
    "feature_service": None,
    "model_name": None,
    "model_version": None,
    "entity_type": "user",
    "entity_id": "u1",
    "names": ["a", "b"],
    "versions": [1, 2],
    "values": [4, None],
    "feature_timestamps": ["2023-11-14T22:15:00.000Z", None],
    "statuses": ["present", "missing"],
}

MALFORMED = [
    {"feature_timestamps": ["yesterday", None]},
    {"feature_timestamps": ["2023-11-14T22:15:00", None]},  # no offset: not the instant the API served
    {"feature_timestamps": [5, None]},
    {"versions": ["1", 2]},
    {"versions": [2**31, 2]},
    {"versions": [1.5, 2]},
    {"versions": [None, 2]},
    {"versions": [True, 2]},
    {"names": [None, "b"]},
    {"names": [3, "b"]},
    {"statuses": [None, "missing"]},
    {"request_id": 5},
    {"caller": {"team": "x"}},
    {"served_at": 2**62},
    {"served_at": "1700000190000"},
    {"served_at": 1.7e12},
    {"entity_type": None},
    {"entity_id": 7},
    {"names": "ab", "versions": "12", "values": "xy", "feature_timestamps": "zz", "statuses": "pm"},
]


@pytest.mark.parametrize("patch", MALFORMED)
def test_a_record_of_the_wrong_types_is_skipped_alone(patch: dict[str, Any]) -> None:
    batch = Batch.empty()
    batch.add(orjson.dumps(GOOD), "t", 0, 1)
    batch.add(orjson.dumps({**GOOD, **patch}), "t", 0, 2)
    batch.add(orjson.dumps(GOOD), "t", 0, 3)
    assert batch.bad == 1
    table = batch.to_arrow()
    assert table.schema == ARROW_SCHEMA
    assert table.column("kafka_offset").to_pylist() == [1, 1, 3, 3]
    assert table.column("feature_time").cast(pa.int64()).to_pylist() == [T * 1000, None, T * 1000, None]


def test_an_offset_in_a_feature_timestamp_is_kept_as_the_instant() -> None:
    batch = Batch.empty()
    batch.add(orjson.dumps({**GOOD, "feature_timestamps": ["2023-11-14T23:15:00+01:00", None]}), "t", 0, 1)
    assert batch.bad == 0
    assert batch.to_arrow().column("feature_time").cast(pa.int64()).to_pylist() == [T * 1000, None]


def test_the_sink_lands_the_records_around_a_malformed_one_and_commits_past_it() -> None:
    consumer, table = _Consumer({0: 3}), _Table()
    bad = orjson.dumps({**GOOD, "feature_timestamps": ["not a time", None]})
    consumer.pending.insert(1, _Message(0, 3, bad))
    consumer.pending.insert(4, _Message(0, 4, orjson.dumps(GOOD)))
    sink = ServingLogSink(consumer, table, expire_after_s=0)  # type: ignore[arg-type]
    rows = sink.run(once=True, timeout_s=30)
    assert sink.bad == 1
    assert rows == 3 * 100 + 2  # _Consumer's records have 100 names; GOOD has 2
    assert consumer.committed == {0: 5}
