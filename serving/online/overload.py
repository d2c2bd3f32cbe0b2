"""Load shedding: a bound on the requests one API process works on at once, and an immediate 503 past it.

Past the bound a request is not queued (where it would wait beyond its budget and still cost a store
read): it is answered at once with 503 ``overloaded``, so a client sending ten times the sustainable
rate gets fast refusals for the excess while the admitted requests keep their latency. ``/health`` and
``/metrics`` are never shed: an overloaded process must still say it is alive and what it is doing.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from serving.online.http_errors import ApiError, ErrorCode, render

DEFAULT_MAX_IN_FLIGHT = 64
_EXEMPT = ("/health", "/metrics")


class InFlightLimit:
    """ASGI middleware admitting at most ``limit`` HTTP requests at a time (one event loop: no lock needed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        if limit < 1:
            raise ValueError("the in-flight limit must be at least 1")
        self.app = app
        self.limit = limit
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
            await send(
                {
                    "type": "http.response.start",
                    "status": ErrorCode.OVERLOADED.status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(self._body)).encode()),
                        (b"retry-after", b"1"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": self._body})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
