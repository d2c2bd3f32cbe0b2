"""``featurestore.job.LatenessGate``'s rule and key, driven in the JVM (design §5.3, the lateness gate; the job's
behaviour with it: ``test_idle_subtask_lateness.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from registry.core.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gate(it_settings: Settings) -> Any:
    """The ``LatenessGate`` class in PyFlink's JVM, the job's decoder jar loaded."""
    from pyflink.java_gateway import get_gateway
    from pyflink.util.java_utils import add_jars_to_context_class_loader

    from jobs.decoder import decoder_jar

    add_jars_to_context_class_loader([decoder_jar(it_settings).as_uri()])
    return get_gateway().jvm.featurestore.job.LatenessGate


def test_the_lateness_gate_keeps_the_sources_boundary_and_keys_by_entity(gate: Any) -> None:
    """``LatenessGate`` (design §5.3): too late exactly at ``watermark - allowed_lateness`` and behind it, on time one
    millisecond after; never before a first watermark; no wrap-around near the smallest watermark; the key of a
    composite entity is its fields' values joined by NUL (it only routes events: the gate keeps no state per key)."""
    from pyflink.java_gateway import get_gateway

    gateway = get_gateway()
    none = -(2**63)
    watermark, lateness = 1_000_000, 30_000
    assert gate.tooLate(watermark - lateness, watermark, lateness)
    assert gate.tooLate(watermark - lateness - 1, watermark, lateness)
    assert not gate.tooLate(watermark - lateness + 1, watermark, lateness)
    assert gate.tooLate(watermark, watermark, 0) and not gate.tooLate(watermark + 1, watermark, 0)
    assert not gate.tooLate(none, none, 0)  # no watermark yet: nothing is too late
    assert not gate.tooLate(none, none + 5, 10)  # watermark - lateness would wrap around
    assert gate.tooLate(none, none + 10, 10)

    def key(fields: list[int], values: list[Any]) -> str:
        indexes = gateway.new_array(gateway.jvm.int, len(fields))
        for i, f in enumerate(fields):
            indexes[i] = f
        row = gateway.jvm.org.apache.flink.types.Row.withPositions(len(values))
        for i, v in enumerate(values):
            row.setField(i, v)
        return str(gate.EntityKey(indexes).getKey(row))

    assert key([1], ["x", "alice", 3]) == "alice"
    assert key([0, 1], ["a", "b", 3]) == "a\0b"
    assert key([0, 1], ["a", "b", 3]) != key([0, 1], ["a", "c", 3])
