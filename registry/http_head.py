"""HEAD wherever GET, for every HTTP app of the project (the feature API and the schema registry).

HTTP (RFC 9110 §9.3.2) asks a server to answer ``HEAD`` wherever it answers ``GET``: the same status and
headers, no body. FastAPI routes take only the methods they declare, so without this a ``HEAD`` on a FastAPI
``GET`` route is a 405. :class:`HeadAsGet` serves every ``HEAD`` as the ``GET`` of the same target, in one
place per app instead of one declaration per route. Pure ASGI: it imports no web framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")  # what a 405's Allow may list


def allowed_methods(request: Request) -> list[str]:
    """The methods the routes of ``request``'s path take, for a 405's ``Allow`` (HTTP requires it): every route's,
    asked method by method (Starlette's own header names the first matching route's only), and ``HEAD`` wherever
    ``GET`` (:class:`HeadAsGet` serves it)."""
    from starlette.routing import Match

    scope = {k: v for k, v in request.scope.items() if k not in ("route", "endpoint", "path_params")}
    taken = {
        method
        for method in METHODS
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in request.app.router.routes)
    }
    if "GET" in taken:
        taken.add("HEAD")
    return [method for method in METHODS if method in taken]


class HeadAsGet:
    """ASGI middleware: a ``HEAD`` request is handled as a ``GET``, and its answer's body is dropped.

    Status and headers are the GET's own, ``Content-Length`` included (the length of the body a GET would
    get, as RFC 9110 allows). A path whose routes take no ``GET`` answers ``HEAD`` as it answers ``GET``:
    405 (with ``Allow``, where the app sends one), or 404, its body dropped. Installed outside every other layer,
    so every middleware inside sees the ``GET`` and every answer to a ``HEAD``, a refusal of the auth or
    in-flight middleware too, is the GET's without its body. The app runs on a copy of the scope saying
    ``GET``; the server's own scope still says ``HEAD`` (uvicorn then expects no body, whatever
    ``Content-Length`` says: with the method changed in place it refuses the empty body as too short).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        # A copy: the server keeps its own scope saying HEAD, so it sends no body and checks no Content-Length.
        scope = {**scope, "method": "GET"}

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        await self.app(scope, receive, without_body)
