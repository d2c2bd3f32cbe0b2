"""Authentication of every feature-API request, and the helpers routes use to authorize and audit.

``Authenticate`` (ASGI middleware) reads ``Authorization: Bearer <token>`` on every HTTP request, on
every route (``/health``, ``/metrics`` and ``/docs`` included), and answers 401 ``unauthenticated``
(with ``WWW-Authenticate: Bearer``) before any route runs when the token is missing, malformed, unknown
or revoked. The caller it found is ``scope["fs.caller"]``; routes read it with ``caller_of``. With auth
off the middleware is not installed and every caller is ``registry.access.ANONYMOUS``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from registry.access import ANONYMOUS, Access, header_value
from registry.access_store import Caller
from registry.core.errors import ForbiddenError, UnauthenticatedError
from serving.online.http_errors import ApiError, ErrorCode, render

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

CALLER = "fs.caller"


def route_table(routes: Iterable[Any]) -> list[tuple[str, str]]:
    """(method, path) of every route, included routers' routes too (FastAPI keeps those in a wrapper)."""
    out: list[tuple[str, str]] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            out.extend(route_table(inner.routes))
            continue
        path = getattr(route, "path", None)
        for method in sorted(getattr(route, "methods", None) or ()):
            if path is not None and method != "HEAD":
                out.append((method, path))
    return out


def caller_of(scope: Scope) -> Caller:
    found = scope.get(CALLER)
    return found if isinstance(found, Caller) else ANONYMOUS


def client_of(scope: Scope) -> str:
    """The caller's address as the audit log records it: the host, without the (ephemeral) port."""
    client = scope.get("client")
    return str(client[0]) if client else ""


def _authorization(scope: Scope) -> str | None:
    """The request's one ``Authorization`` value (None without one). Two or more are refused, whatever they
    hold: which one a proxy in front acted on is unknown, and the first one alone must not decide."""
    headers = scope.get("headers", ())
    given = sum(1 for key, _ in headers if key == b"authorization")
    if given > 1:
        raise UnauthenticatedError(f"{given} Authorization headers: send one, `Authorization: Bearer <token>`")
    return header_value(headers, b"authorization")


class Authenticate:
    """Refuse, with 401, every HTTP request whose bearer token ``access`` does not know.

    ``on_refused`` is told the code of each refusal (``unauthenticated``), for the error metrics."""

    def __init__(self, app: ASGIApp, access: Access, on_refused: Callable[[ErrorCode], None] | None = None) -> None:
        self.app = app
        self.access = access
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            scope[CALLER] = self.access.authenticate_header(_authorization(scope))
        except UnauthenticatedError as exc:
            if self.on_refused is not None:
                self.on_refused(ErrorCode.UNAUTHENTICATED)
            status, body = render(ApiError(ErrorCode.UNAUTHENTICATED, str(exc)))
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"www-authenticate", b'Bearer realm="feature-store"'),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def authorize_write(access: Access, scope: Scope, action: str, target: str, owners: Iterable[str | None]) -> Caller:
    """The caller, if it may write ``target`` (owned by ``owners``); else the refusal is audited and raised (403)."""
    caller = caller_of(scope)
    try:
        access.check_write(caller, owners, what=target)
    except ForbiddenError:
        access.write_audited(caller, action, target, ErrorCode.FORBIDDEN.status, client_of(scope))
        raise
    return caller
