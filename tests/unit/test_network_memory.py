"""The local mini-cluster's network memory grows with the topics a job reads (design §3.8): its default 64 MiB
(2,048 buffers of 32 KiB) failed a job of 200 topics at start, "Insufficient number of network buffers"
(measured: 100 topics started, 200 did not; with this sizing the 200-topic job runs)."""

from __future__ import annotations

from jobs.flink_environment import network_memory_mib


def test_up_to_32_topic_subtasks_keep_flinks_local_default() -> None:
    assert network_memory_mib(1, 1) == 64
    assert network_memory_mib(32, 1) == 64  # exactly at the default: still the default
    assert network_memory_mib(16, 2) == 64


def test_past_that_one_mib_per_topic_and_subtask_and_32_more() -> None:
    assert network_memory_mib(33, 1) == 65
    assert network_memory_mib(200, 1) == 232
    assert network_memory_mib(200, 2) == 432
