"""The API's reader (C++ driver) keeps its file descriptors through an outage: each attempt to open a session made a
new driver cluster, and each cluster holds 4 descriptors the driver never gives back, so an outage with requests
coming leaked 4 every 5 s (48 an outage minute) until the API could accept no connection. A store that does not
answer here: a port nothing listens on."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

from registry.core.errors import StoreUnavailableError
from sinks.cassandra.native_reader import NativeOnlineReader


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens there


def _descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_attempts_to_open_a_session_during_an_outage_hold_no_more_descriptors() -> None:
    reader = NativeOnlineReader(
        ["127.0.0.1"], _closed_port(), "feature_store", timeout_s=0.1, batch_timeout_s=1.0, connect_timeout_s=0.5
    )

    async def attempts(count: int) -> None:
        for _ in range(count):
            with contextlib.suppress(StoreUnavailableError):
                await reader._open()

    async def outage() -> tuple[int, int]:
        await attempts(2)  # the cluster made, and whatever the driver holds for good
        before = _descriptors()
        await attempts(6)
        return before, _descriptors()

    before, after = asyncio.run(outage())
    assert after <= before, (before, after)  # 4 more per attempt before: 24 here
