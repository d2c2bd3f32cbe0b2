"""An HTTP/1.1 load generator for loopback benchmarks: ``python -m bench.loadgen SPEC.json``.

It runs in its own process (so it does not share a GIL with the server) and prints one JSON line
of results. Requests are pre-encoded bytes sent over keep-alive connections by a small
``asyncio.Protocol``, so the generator spends a few tens of microseconds per request; its own CPU
time per request is reported so a reader can check it was not the bottleneck.

Two modes:

- ``fixed``: open loop at ``rate`` requests/s. Request *k* is due at ``start + k / rate``; its
  latency is measured from that due time, so time spent waiting for a free connection counts
  (no coordinated omission).
- ``saturate``: closed loop, ``connections`` requests in flight, each connection sending its next
  request as soon as the previous answer arrives.

Every run is bounded by ``duration_s`` (after ``warmup_s``) and by ``max_requests``; only
loopback addresses are accepted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


@dataclass
class Spec:
    host: str
    port: int
    requests: list[bytes]  # complete HTTP/1.1 requests, used round-robin
    mode: str  # "fixed" | "saturate"
    rate: float = 0.0
    connections: int = 16
    duration_s: float = 10.0
    warmup_s: float = 2.0
    max_requests: int = 2_000_000
    timeout_s: float = 10.0

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Spec:
        host = doc["host"]
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"load is sent to loopback addresses only, not {host}")
        requests = [r.encode("latin-1") for r in doc["requests"]]
        return cls(
            host,
            int(doc["port"]),
            requests,
            doc["mode"],
            float(doc.get("rate", 0.0)),
            int(doc.get("connections", 16)),
            float(doc.get("duration_s", 10.0)),
            float(doc.get("warmup_s", 2.0)),
            int(doc.get("max_requests", 2_000_000)),
            float(doc.get("timeout_s", 10.0)),
        )


@dataclass
class Results:
    latencies_s: list[float] = field(default_factory=list)
    ok_latencies_s: list[float] = field(default_factory=list)  # of the 200 answers alone
    errors: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    bytes_in: int = 0
    answered: int = 0  # every answer, warm-up included (to divide server CPU time by)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class _Conn(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, int]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self._buf += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        head_end = self._buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        match = _CONTENT_LENGTH.search(self._buf, 0, head_end + 2)
        if match is None:
            waiter.set_exception(ValueError("response without content-length"))
            return
        total = head_end + 4 + int(match.group(1))
        if len(self._buf) < total:
            return
        status = int(self._buf[9:12])
        del self._buf[:total]
        waiter.set_result((status, total))

    def request(self, payload: bytes) -> asyncio.Future[tuple[int, int]]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return self._waiter


async def _connect(spec: Spec, n: int) -> list[_Conn]:
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(n):
        _, proto = await loop.create_connection(_Conn, spec.host, spec.port)
        conns.append(proto)
    return conns


async def _one(conn: _Conn, payload: bytes, spec: Spec, res: Results, due: float, record: bool) -> None:
    try:
        status, size = await asyncio.wait_for(conn.request(payload), spec.timeout_s)
    except (TimeoutError, ConnectionError, ValueError) as exc:
        if record:
            res.error(type(exc).__name__)
        conn.closed = True
        return
    res.answered += 1
    if record:
        res.latencies_s.append(time.perf_counter() - due)
        res.bytes_in += size
        if status == 200:
            res.ok_latencies_s.append(res.latencies_s[-1])
        else:
            res.error(f"http_{status}")


async def _saturate(spec: Spec, res: Results) -> float:
    conns = await _connect(spec, spec.connections)
    start = time.perf_counter()
    measure_from = start + spec.warmup_s
    stop = measure_from + spec.duration_s
    counter = 0

    async def worker(conn: _Conn) -> None:
        nonlocal counter
        while not conn.closed and counter < spec.max_requests:
            now = time.perf_counter()
            if now >= stop:
                return
            payload = spec.requests[counter % len(spec.requests)]
            counter += 1
            record = now >= measure_from
            res.sent += record
            await _one(conn, payload, spec, res, now, record)

    await asyncio.gather(*(worker(c) for c in conns))
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    return min(time.perf_counter(), stop) - measure_from


async def _fixed(spec: Spec, res: Results) -> float:
    conns = await _connect(spec, spec.connections)
    idle: deque[_Conn] = deque(conns)
    backlog: deque[tuple[float, bool]] = deque()
    interval = 1.0 / spec.rate
    start = time.perf_counter() + 0.05
    measure_from = start + spec.warmup_s
    stop = measure_from + spec.duration_s
    total = min(int((spec.warmup_s + spec.duration_s) * spec.rate), spec.max_requests)
    done = asyncio.Event()
    outstanding = 0
    k = 0

    async def go(conn: _Conn, due: float, record: bool, n: int) -> None:
        nonlocal outstanding
        await _one(conn, spec.requests[n % len(spec.requests)], spec, res, due, record)
        if not conn.closed:
            idle.append(conn)
        outstanding -= 1
        if backlog and idle:
            d, r = backlog.popleft()
            _dispatch(d, r)
        if k >= total and outstanding == 0 and not backlog:
            done.set()

    sent_n = 0
    tasks: set[asyncio.Future[None]] = set()

    def _dispatch(due: float, record: bool) -> None:
        nonlocal outstanding, sent_n
        outstanding += 1
        res.sent += record
        task = asyncio.ensure_future(go(idle.popleft(), due, record, sent_n))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent_n += 1

    while k < total:
        now = time.perf_counter()
        if now > stop + spec.timeout_s:
            break
        while k < total and start + k * interval <= now:
            due = start + k * interval
            k += 1
            if idle:
                _dispatch(due, due >= measure_from)
            else:
                backlog.append((due, due >= measure_from))
        await asyncio.sleep(max(0.0, start + k * interval - time.perf_counter()))
    if outstanding or backlog:
        try:
            await asyncio.wait_for(done.wait(), spec.timeout_s)
        except TimeoutError:
            res.error("unfinished")
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    return spec.duration_s


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


async def run(spec: Spec) -> dict[str, Any]:
    res = Results()
    cpu0 = time.process_time()
    elapsed = await (_saturate(spec, res) if spec.mode == "saturate" else _fixed(spec, res))
    cpu = time.process_time() - cpu0
    lat = sorted(res.latencies_s)
    ok = len(lat)
    lat200 = sorted(res.ok_latencies_s)
    return {
        "mode": spec.mode,
        "target_rate": spec.rate if spec.mode == "fixed" else None,
        "connections": spec.connections,
        "sent": res.sent,
        "completed": ok,
        "answered": res.answered,
        "achieved_rate": ok / elapsed if elapsed > 0 else 0.0,
        "p50_ms": _percentile(lat, 0.50) * 1000,
        "p99_ms": _percentile(lat, 0.99) * 1000,
        "p999_ms": _percentile(lat, 0.999) * 1000,
        "max_ms": (lat[-1] * 1000) if lat else float("nan"),
        "ok": len(lat200),  # 200 answers among the completed
        "ok_rate": len(lat200) / elapsed if elapsed > 0 else 0.0,
        "ok_p50_ms": _percentile(lat200, 0.50) * 1000,
        "ok_p99_ms": _percentile(lat200, 0.99) * 1000,
        "ok_p999_ms": _percentile(lat200, 0.999) * 1000,
        "errors": res.errors,
        "mean_response_bytes": res.bytes_in / ok if ok else 0,
        "generator_cpu_s": cpu,
        "generator_cpu_us_per_request": cpu / max(1, ok) * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = Spec.from_json(json.loads(Path(args[0]).read_text()))
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(spec))
    else:
        result = uvloop.run(run(spec))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
