"""Load shedding: bounds on what one API process works on at once, and an immediate 503 past them.

Past the bound a request is not queued (where it would wait beyond its budget and still cost a store
read): it is answered at once with 503 ``overloaded``, so a client sending ten times the sustainable
rate gets fast refusals for the excess while the admitted requests keep their latency. ``/health`` and
``/metrics`` are never shed: an overloaded process must still say it is alive and what it is doing.

Two bounds, both answered the same way (503 ``overloaded``, ``Retry-After: 1``): ``InFlightLimit``
counts requests, whatever they ask; ``EntityBound`` counts the entities the feature reads in flight
ask for (a GET one, a batch its ids, ``/v1/vectors`` its parts), because a 100-entity batch costs about
a hundred single reads: a bound on requests alone let 64 such batches in at once, ~6,400 entity reads
queued behind each other and seconds of latency for every admitted request (measured, docs/design.md
§2.3). While the entity bound is reached, ``ShedAtBound`` refuses every feature read before routing, so
that a refusal costs the admitted reads as little CPU as the HTTP server allows (§2.6).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.online.http_errors import ApiError, ErrorCode, render

DEFAULT_MAX_IN_FLIGHT = 64
DEFAULT_MAX_ENTITIES_IN_FLIGHT = 400
"""Four concurrent 100-entity batches; larger bounds let more reads share the CPU and stretch every admitted
read's latency under overload (measured, docs/design.md §2.6)."""
_EXEMPT = ("/health", "/metrics")


class InFlightLimit:
    """ASGI middleware admitting at most ``limit`` HTTP requests at a time (one event loop: no lock needed);
    ``on_refused`` is told the code of each refusal (``overloaded``), for the error metrics."""

    def __init__(self, app: ASGIApp, limit: int, on_refused: Callable[[ErrorCode], None] | None = None) -> None:
        if limit < 1:
            raise ValueError("the in-flight limit must be at least 1")
        self.app = app
        self.limit = limit
        self.on_refused = on_refused
        self.in_flight = 0
        self.shed = 0
        self._body = render(
            ApiError(ErrorCode.OVERLOADED, f"more than {limit} requests in flight in this process: retry later")
        )[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self.shed += 1
            if self.on_refused is not None:
                self.on_refused(ErrorCode.OVERLOADED)
            await send_overloaded(send, self._body)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


async def send_overloaded(send: Send, body: bytes) -> None:
    """A 503 ``overloaded`` answer (``body``: its rendered problem) with ``Retry-After: 1``."""
    await send(
        {
            "type": "http.response.start",
            "status": ErrorCode.OVERLOADED.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class EntityBound:
    """At most ``limit`` entities in flight over one process's feature reads (one event loop: no lock).

    A read of ``n`` entities is admitted when the entities already in flight plus ``n`` are at most
    ``limit`` (exactly ``limit`` is admitted), or when nothing is in flight at all, so that a read larger
    than the bound still runs, alone; otherwise it raises ``ApiError(OVERLOADED)`` at once, before any
    store read. ``check`` refuses a request before its body is even parsed when the bound is already
    reached (every read asks for at least one entity), so that refusing costs little under overload.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the entity bound must be at least 1")
        self.limit = limit
        self.in_flight = 0
        self.shed = 0

    def check(self) -> None:
        """Refuse at once when no read of even one more entity would be admitted."""
        if self.in_flight >= self.limit:
            self._refuse(1)

    def _refuse(self, n: int) -> None:
        self.shed += 1
        raise ApiError(
            ErrorCode.OVERLOADED,
            f"{self.in_flight} entities in flight in this process and {n} more asked, past its bound of "
            f"{self.limit}: retry later",
        )

    @contextmanager
    def admit(self, n: int) -> Iterator[None]:
        if self.in_flight and self.in_flight + n > self.limit:
            self._refuse(n)
        self.in_flight += n
        try:
            yield
        finally:
            self.in_flight -= n


class ShedAtBound:
    """ASGI middleware: while ``bound`` is reached, a request for one of the feature-read ``routes`` is refused
    with 503 ``overloaded`` here, before routing, validation or authentication (``on_refused`` is told its code).

    The condition is ``EntityBound.check``'s: with the bound reached no read of even one entity would be
    admitted, so a valid read is refused exactly as its route would refuse it, only sooner; a request that its
    route would have refused as invalid (400, 404, 401, 403) is refused as overloaded instead while the bound is
    reached. Under ten times the sustainable rate nine requests in ten are refused, and what a refusal costs
    is CPU the admitted reads do not get (about a third of a core for ~900 refusals/s through the framework's
    routing and exception handling, measured, docs/design.md §2.6). The matched route is left in the scope,
    so the request metrics count the refusal under its route.
    """

    def __init__(
        self, app: ASGIApp, bound: EntityBound, routes: Sequence[Route], on_refused: Callable[[ErrorCode], None]
    ) -> None:
        self.app = app
        self.bound = bound
        self.routes = tuple(routes)
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.bound.in_flight >= self.bound.limit:
            route = next((r for r in self.routes if r.matches(scope)[0] is Match.FULL), None)
            if route is not None:
                try:
                    self.bound.check()
                except ApiError as refused:
                    scope["route"] = route
                    self.on_refused(refused.code)
                    await send_overloaded(send, render(refused)[1])
                    return
        await self.app(scope, receive, send)
