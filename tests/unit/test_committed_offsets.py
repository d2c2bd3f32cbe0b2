"""``sinks.topics.committed_offsets`` while a group's coordinator moves or loads.

On a broker whose first consumer group is being set up (``__consumer_offsets`` created and loaded), the coordinator
answers NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS for a moment, for the whole call or per partition, and
``Consumer.committed`` does not ask again itself: the job refused to start ("Kafka ... unavailable: Not coordinator",
CI of a47fffe). These answers are asked again until the deadline; any other error is a named failure, never read as
"nothing committed" (which would let an unbounded run start without its state)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from registry.core.errors import StoreUnavailableError
from sinks import topics


class _Admin:
    def list_topics(self, timeout: float) -> Any:
        return SimpleNamespace(topics={"t": SimpleNamespace(partitions={0: None, 1: None})})


def _fake(monkeypatch: pytest.MonkeyPatch, answers: list[Any]) -> list[int]:
    """Consumer.committed answers ``answers`` in turn (an int: raise KafkaException of that code; a dict
    partition -> offset or error code: that answer); the returned list counts the calls."""
    calls: list[int] = []

    class _Consumer:
        def __init__(self, config: dict[str, Any]) -> None:
            assert config["enable.auto.commit"] is False

        def committed(self, partitions: list[TopicPartition], timeout: float) -> list[Any]:
            calls.append(1)
            answer = answers[min(len(calls), len(answers)) - 1]
            if isinstance(answer, int):
                raise KafkaException(KafkaError(answer))
            out = []
            for tp in partitions:  # TopicPartition's error cannot be set from Python: its fields, as the call gives
                value = answer.get(tp.partition, -1001)
                error = value if isinstance(value, KafkaError) else None
                offset = -1001 if error else value
                out.append(SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=offset, error=error))
            return out

        def close(self) -> None:
            pass

    monkeypatch.setattr(topics, "_existing_topics", lambda bootstrap, timeout_s: (_Admin(), {"t"}))
    monkeypatch.setattr(confluent_kafka, "Consumer", _Consumer)
    monkeypatch.setattr(topics.time, "sleep", lambda s: None)
    return calls


@pytest.mark.parametrize(
    "code", [KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE]
)
def test_a_moving_coordinator_is_asked_again(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    calls = _fake(monkeypatch, [code, code, {0: 7}])
    assert topics.committed_offsets("127.0.0.1:9092", "g", ["t", "absent"]) == {"t": {0: 7}}
    assert len(calls) == 3


def test_a_partition_whose_coordinator_moves_is_asked_again_not_read_as_nothing_committed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _fake(monkeypatch, [{0: 3, 1: KafkaError(KafkaError.NOT_COORDINATOR)}, {0: 3, 1: 5}])
    assert topics.committed_offsets("127.0.0.1:9092", "g", ["t"]) == {"t": {0: 3, 1: 5}}
    assert len(calls) == 2


def test_a_partition_error_of_another_kind_is_a_named_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake(monkeypatch, [{0: KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED)}])
    with pytest.raises(StoreUnavailableError, match=r"unavailable.*GROUP_AUTHORIZATION_FAILED"):
        topics.committed_offsets("127.0.0.1:9092", "g", ["t"])
    assert len(calls) == 1


def test_a_coordinator_that_never_settles_fails_by_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(topics.time, "monotonic", lambda: clock[0])
    calls = _fake(monkeypatch, [KafkaError.NOT_COORDINATOR])
    monkeypatch.setattr(topics.time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    with pytest.raises(StoreUnavailableError, match="NOT_COORDINATOR"):
        topics.committed_offsets("127.0.0.1:9092", "g", ["t"], timeout_s=5)
    assert clock[0] <= 5
    assert len(calls) >= 5  # 0.1, 0.2, 0.4, 0.8, 1, 1, ... apart


def test_nothing_committed_is_an_empty_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake(monkeypatch, [{}])
    assert topics.committed_offsets("127.0.0.1:9092", "g", ["t"]) == {}
