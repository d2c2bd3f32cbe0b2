"""A whole answer within a time limit for synchronous httpx clients.

httpx's timeouts apply to each socket operation: a server that trickles its answer a byte at a time keeps a
request alive for as long as it likes. :func:`bound_by_deadline` wraps a client's connection pools so every
connect, read and write ends by the deadline :func:`deadline` sets for the calls made inside it (per thread);
calls made outside one keep httpx's own timeouts. httpx takes no network backend, so each pool's is wrapped
(httpx and httpcore are pinned in constraints.txt)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

_DEADLINE = threading.local()  # the monotonic time by which this thread's current call must have its whole answer


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Calls of bounded clients in this block (on this thread) end within ``seconds`` in all, body included."""
    outer: float | None = getattr(_DEADLINE, "at", None)
    at = time.monotonic() + seconds
    _DEADLINE.at = at if outer is None else min(at, outer)  # a block inside another ends by the outer's deadline too
    try:
        yield
    finally:
        _DEADLINE.at = outer


def _bounded(timeout: float | None, late: type[httpcore.TimeoutException]) -> float | None:
    """A socket operation's timeout cut to what is left of the current deadline; ``late`` once none is."""
    at: float | None = getattr(_DEADLINE, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise late("no whole answer within the time limit")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the current deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        inner = self._inner.start_tls(ssl_context, server_hostname, _bounded(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        timeout = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def bound_by_deadline(client: httpx.Client) -> httpx.Client:
    """``client`` with its connections (direct or through a proxy) bounded by the current :func:`deadline`."""
    bounded = False
    for transport in (client._transport, *client._mounts.values()):
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend) and not isinstance(backend, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]
        bounded = bounded or isinstance(getattr(pool, "_network_backend", None), _DeadlineBackend)
    if not bounded:  # another transport, or an httpx whose pools are built otherwise: never an unbounded client
        raise TypeError(f"cannot bound {type(client._transport).__name__}'s answers by a deadline")
    return client
