"""An HTTP/1.1 load generator for loopback benchmarks: ``python -m bench.loadgen SPEC.json``.

It runs in its own process (so it does not share a GIL with the server) and prints one JSON line
of results. Requests are pre-encoded bytes sent over keep-alive connections by a small
``asyncio.Protocol``, so the generator spends a few tens of microseconds per request; its own CPU
time per request is reported so a reader can check it was not the bottleneck.

Two modes:

- ``fixed``: open loop at ``rate`` requests/s. Request *k* is due at ``start + k / rate``; its
  latency is measured from that due time, so time spent waiting for a free connection counts
  (no coordinated omission). A thread sleeping to each due time releases the requests (the event
  loop's timers are whole milliseconds), and answers are taken by callbacks: about 150 us of the
  generator's CPU per request at 1,000 requests/s and 90 us at 2,700, against 200-330 and 340 us when
  the loop's timer spun at sub-millisecond waits (measured 2026-12-06).
- ``saturate``: closed loop, ``connections`` requests in flight, each connection sending its next
  request as soon as the previous answer arrives.

Every run is bounded by ``duration_s`` (after ``warmup_s``) and by ``max_requests``; only
loopback addresses are accepted.

What counts as a success: a 200 answer is not enough (a feature API answers 200 for an id it has no row
for, every feature ``missing``). With ``expect_present`` set, every ``check_every``-th answer's body must
hold exactly that many ``"present"`` (a substring count over the body, without copying it: about 8 us for a
1 x 100 answer, 260 us for a 100 x 100 one); an answer that does not is ``bad``: counted apart, and never a
success. ``ok`` answers are the 200s that were checked and right or not checked; ``ok_rate`` and the
``p50_ms``/``p99_ms``/``p999_ms`` are theirs, with every request that timed out (or was still unanswered
when the run gave up) counted at ``timeout_s``, so that the worst requests stay in the tail.
``all_p*_ms`` are over every answer whatever its status (timeouts excluded), ``answered_rate`` their rate.
Percentiles are nearest-rank (the ``ceil(q * n)``-th smallest of ``n``); ``p*_is_max`` says when that rank is
the largest sample (too few samples for the quantile: it is then the maximum).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
SWEEP_S = 0.05  # how often the open loop looks for timed-out requests
PRESENT = b'"present"'  # one per feature served with a value (the API's status of a present feature)


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
    expect_present: int | None = None  # "present" statuses in a right answer's body (None: not checked)
    check_every: int = 1  # check every n-th answer (1: all)
    return_samples: bool = False  # also return the success latencies (ms), to pool several runs

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
            None if doc.get("expect_present") is None else int(doc["expect_present"]),
            max(1, int(doc.get("check_every", 1))),
            bool(doc.get("return_samples", False)),
        )


@dataclass
class Results:
    latencies_s: list[float] = field(default_factory=list)  # of every answer, whatever its status
    ok_latencies_s: list[float] = field(default_factory=list)  # of the successes: 200 and not found wrong
    errors: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    resolved: int = 0  # measured requests answered, failed or timed out
    timeouts: int = 0  # measured requests without an answer within timeout_s (or when the run gave up)
    ok_bytes: int = 0  # bytes of the successes' answers
    answered: int = 0  # every answer, warm-up included (to divide server CPU time by)
    checked: int = 0  # 200 answers whose body was checked
    bad: int = 0  # of them, wrong: not expect_present features present
    bad_example: str = ""
    counter: int = 0  # answers seen, to check every n-th

    def error(self, kind: str, n: int = 1) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + n


Answer = tuple[int, int, int] | Exception  # (status, answer bytes, "present" count or -1), or why there is none


class _Conn(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight. Its answer goes to a callback (``send``, the
    open loop's way: no task, future or timer per request) or resolves a future (``request``)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._on_answer: Callable[[_Conn, Answer], None] | None = None
        self._check = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._finish(ConnectionError("connection closed"))

    def _finish(self, answer: Answer) -> None:
        on_answer, self._on_answer = self._on_answer, None
        if on_answer is not None:
            on_answer(self, answer)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._on_answer is None:
            return
        head_end = self._buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        match = _CONTENT_LENGTH.search(self._buf, 0, head_end + 2)
        if match is None:
            self._finish(ValueError("response without content-length"))
            return
        total = head_end + 4 + int(match.group(1))
        if len(self._buf) < total:
            return
        status = int(self._buf[9:12])
        present = self._buf.count(PRESENT, head_end + 4, total) if self._check and status == 200 else -1
        del self._buf[:total]
        self._finish((status, total, present))

    def send(self, payload: bytes, check: bool, on_answer: Callable[[_Conn, Answer], None]) -> None:
        """Send ``payload``; ``on_answer(self, answer)`` is called once, with the answer or the error that ended it
        (``check``: count ``"present"`` in a 200's body)."""
        assert self.transport is not None
        self._check = check
        self._on_answer = on_answer
        self.transport.write(payload)

    def request(self, payload: bytes, check: bool = False) -> asyncio.Future[tuple[int, int, int]]:
        """Send ``payload``; the future gets (status, answer bytes, ``"present"`` in a 200's body if ``check``
        else -1)."""
        waiter: asyncio.Future[tuple[int, int, int]] = asyncio.get_running_loop().create_future()

        def resolve(_: _Conn, answer: Answer) -> None:
            if waiter.done():
                return
            if isinstance(answer, Exception):
                waiter.set_exception(answer)
            else:
                waiter.set_result(answer)

        self.send(payload, check, resolve)
        return waiter

    def abandon(self) -> None:
        """Give up on the request in flight (timed out): no answer is taken from this connection again."""
        self._on_answer = None
        self.closed = True
        if self.transport is not None:
            self.transport.close()


async def _connect(spec: Spec, n: int) -> list[_Conn]:
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(n):
        _, proto = await loop.create_connection(_Conn, spec.host, spec.port)
        conns.append(proto)
    return conns


def judge(res: Results, spec: Spec, status: int, present: int, latency_s: float, size: int) -> None:
    """Record one measured answer: a success if 200 and, when its body was checked, right."""
    res.latencies_s.append(latency_s)
    if status != 200:
        res.error(f"http_{status}")
        return
    if present >= 0:
        res.checked += 1
        if present != spec.expect_present:
            res.bad += 1
            if not res.bad_example:
                res.bad_example = f'{present} "present" in a 200 answer, {spec.expect_present} expected'
            return
    res.ok_latencies_s.append(latency_s)
    res.ok_bytes += size


async def _one(conn: _Conn, payload: bytes, spec: Spec, res: Results, due: float, record: bool) -> None:
    check = spec.expect_present is not None and record and res.counter % spec.check_every == 0
    res.counter += record
    try:
        status, size, present = await asyncio.wait_for(conn.request(payload, check), spec.timeout_s)
    except (TimeoutError, ConnectionError, ValueError) as exc:
        if record:
            res.resolved += 1
            res.error(type(exc).__name__)
            res.timeouts += isinstance(exc, TimeoutError)
        conn.abandon()
        return
    res.answered += 1
    if record:
        res.resolved += 1
        judge(res, spec, status, present, time.perf_counter() - due, size)


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
    """The open loop. Each request is sent when the ticker thread says it fell due, or by the answer that frees a
    connection for it, and its answer is taken by a callback: no task, future or timer per request (a generator that spent ~300 us of CPU
    per request took a sixth of a core at 1,000 requests/s from the two the server and Cassandra share). Timeouts
    are found by one sweep every ``SWEEP_S``; a timed-out request counts at ``timeout_s`` whenever it is found."""
    loop = asyncio.get_running_loop()
    conns = await _connect(spec, spec.connections)
    idle: deque[_Conn] = deque(conns)
    backlog: deque[tuple[float, bool]] = deque()
    in_flight: dict[_Conn, tuple[float, bool]] = {}  # each busy connection's request: its due time, measured or not
    interval = 1.0 / spec.rate
    start = time.perf_counter() + 0.05
    measure_from = start + spec.warmup_s
    stop = measure_from + spec.duration_s
    total = min(int((spec.warmup_s + spec.duration_s) * spec.rate), spec.max_requests)
    done = asyncio.Event()
    sent_n = 0
    k = 0  # requests that fell due so far
    due_measured = 0  # measured requests that fell due

    def settle(conn: _Conn) -> None:
        if not conn.closed:
            idle.append(conn)
        while backlog and idle:
            dispatch(*backlog.popleft())
        if k >= total and not in_flight and not backlog:
            done.set()

    def on_answer(conn: _Conn, answer: Answer) -> None:
        due, record = in_flight.pop(conn)
        if isinstance(answer, Exception):
            if record:
                res.resolved += 1
                res.error(type(answer).__name__)
            conn.abandon()
        else:
            res.answered += 1
            if record:
                res.resolved += 1
                status, size, present = answer
                judge(res, spec, status, present, time.perf_counter() - due, size)
        settle(conn)

    def dispatch(due: float, record: bool) -> None:
        nonlocal sent_n
        conn = idle.popleft()
        res.sent += record
        check = spec.expect_present is not None and record and res.counter % spec.check_every == 0
        res.counter += record
        in_flight[conn] = (due, record)
        payload = spec.requests[sent_n % len(spec.requests)]
        sent_n += 1
        conn.send(payload, check, on_answer)

    def sweep() -> None:
        now = time.perf_counter()
        for conn, (due, record) in list(in_flight.items()):
            if now - due >= spec.timeout_s:
                del in_flight[conn]
                conn.abandon()
                if record:
                    res.resolved += 1
                    res.error("TimeoutError")
                    res.timeouts += 1
                settle(conn)
        if not done.is_set():
            loop.call_later(SWEEP_S, sweep)

    scheduled = asyncio.Event()  # every request has fallen due, or the schedule gave up

    def release() -> None:
        """On the loop: send (or queue for a free connection) every request that has fallen due."""
        nonlocal k, due_measured
        now = time.perf_counter()
        if now > stop + spec.timeout_s:  # more than a timeout behind: what is left is counted below
            halt.set()
            scheduled.set()
            return
        while k < total and start + k * interval <= now:
            due = start + k * interval
            k += 1
            due_measured += due >= measure_from
            if idle:
                dispatch(due, due >= measure_from)
            else:
                backlog.append((due, due >= measure_from))
        if k >= total:
            scheduled.set()
            if not in_flight and not backlog:
                done.set()

    halt = threading.Event()

    def ticker() -> None:
        """A thread waking at each due time (``time.sleep`` is precise to tens of microseconds) and handing the
        loop what fell due. The loop's own timers are whole milliseconds in uvloop: a shorter sleep woke at once
        and the loop spun (a core of the two the server and Cassandra share, at any rate above ~2,000/s), and a
        longer one sent requests up to a millisecond late (counted in their latency, measured from the due time)."""
        j = 0
        while j < total and not halt.is_set():
            delay = start + j * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            loop.call_soon_threadsafe(release)
            j = max(j + 1, int((time.perf_counter() - start) / interval) + 1)  # one wake-up for all that fell due
        if not halt.is_set():  # the last due time has passed (the release above may have run just before it)
            loop.call_soon_threadsafe(release)

    loop.call_later(SWEEP_S, sweep)
    thread = threading.Thread(target=ticker, name="loadgen-ticker", daemon=True)
    thread.start()
    try:
        await scheduled.wait()
    finally:
        halt.set()
        thread.join(timeout=1.0)  # at most one interval's sleep left
    if in_flight or backlog:
        with contextlib.suppress(TimeoutError):  # what is still unanswered is counted below
            await asyncio.wait_for(done.wait(), spec.timeout_s)
    done.set()  # the sweep stops
    # Measured requests never answered (still queued or in flight when the run gave up, or never sent because
    # the schedule fell more than timeout_s behind): each waited at least timeout_s, so each is a timeout.
    never_due = sum(1 for j in range(k, total) if start + j * interval >= measure_from)
    unfinished = due_measured - res.resolved + never_due
    if unfinished > 0:
        res.error("unfinished", unfinished)
        res.timeouts += unfinished
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    return spec.duration_s


def rank(n: int, q: float) -> int:
    """The nearest rank of quantile ``q`` among ``n`` samples: ``ceil(q * n)``, 1-based, at least 1 (``q`` is taken
    to six decimals, in integers, so that 0.99 * 100 is 99 and not 99.00000000000001)."""
    parts = round(q * 1_000_000)
    return max(1, min(n, -(-parts * n // 1_000_000)))


def percentile(sorted_values: list[float], q: float) -> tuple[float, bool]:
    """The nearest-rank ``q`` quantile of ascending ``sorted_values``, and whether it is their maximum (too few
    samples to tell the quantile from the largest: fewer than ``1 / (1 - q)``). NaN for no samples."""
    n = len(sorted_values)
    if not n:
        return float("nan"), False
    r = rank(n, q)
    return sorted_values[r - 1], r == n and q < 1


def _percentiles(prefix: str, sorted_values: list[float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, q in (("p50", 0.50), ("p99", 0.99), ("p999", 0.999)):
        value, is_max = percentile(sorted_values, q)
        out[f"{prefix}{name}_ms"] = value * 1000
        out[f"{prefix}{name}_is_max"] = is_max
    return out


async def run(spec: Spec) -> dict[str, Any]:
    res = Results()
    cpu0 = time.process_time()
    elapsed = await (_saturate(spec, res) if spec.mode == "saturate" else _fixed(spec, res))
    cpu = time.process_time() - cpu0
    return summary(spec, res, elapsed, cpu)


def summary(spec: Spec, res: Results, elapsed: float, cpu: float) -> dict[str, Any]:
    """The run's one JSON object (see the module's docstring for what is a success)."""
    every = sorted(res.latencies_s)
    ok = len(res.ok_latencies_s)
    # The successes, and each timed-out request at the timeout: a lower bound of its latency, kept in the tail.
    tail = sorted(res.ok_latencies_s + [spec.timeout_s] * res.timeouts)
    out = {
        "mode": spec.mode,
        "target_rate": spec.rate if spec.mode == "fixed" else None,
        "connections": spec.connections,
        "sent": res.sent,
        "completed": len(every),  # measured answers, any status
        "answered": res.answered,
        "answered_rate": len(every) / elapsed if elapsed > 0 else 0.0,
        "ok": ok,
        "ok_rate": ok / elapsed if elapsed > 0 else 0.0,
        "timeouts": res.timeouts,
        "samples": len(tail),  # what p50_ms .. p999_ms are over: ok + timeouts
        **_percentiles("", tail),
        "max_ms": (tail[-1] * 1000) if tail else float("nan"),
        **_percentiles("all_", every),
        "expect_present": spec.expect_present,
        "checked": res.checked,
        "bad": res.bad,
        "bad_example": res.bad_example,
        "errors": res.errors,
        "mean_response_bytes": res.ok_bytes / ok if ok else 0,  # of the successes' answers
        "generator_cpu_s": cpu,
        "generator_cpu_us_per_request": cpu / max(1, len(every)) * 1e6,
    }
    if spec.return_samples:
        out["samples_ms"] = [round(x * 1000, 4) for x in tail]
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = Spec.from_json(json.loads(Path(args[0]).read_text()))
    sys.setswitchinterval(0.0001)  # the ticker thread gets the GIL within 0.1 ms of a due time, not Python's 5 ms
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
