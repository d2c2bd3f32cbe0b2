"""Absolute-form request targets, for every HTTP app of the project (the feature API and the schema registry).

HTTP/1.1 (RFC 9112 §3.2.2) has a server accept a request whose target is an absolute URI
(``GET http://host:8081/subjects HTTP/1.1``), as a client talking through a proxy sends it, and answer it as the
path it names. uvicorn's h11 server (the schema registry's) passes such a target on as the path, so every route
answered 404. :class:`OriginForm` rewrites the scope's ``path`` and ``raw_path`` to the target's path (``/`` when
it has none) before anything routes on them; an origin-form target passes unchanged. Pure ASGI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

_SCHEMES = (b"http://", b"https://")


def origin_form(raw_path: bytes) -> bytes | None:
    """The path of an absolute-form target (its query already split off by the server), None for any other form."""
    lowered = raw_path[:8].lower()
    scheme = next((s for s in _SCHEMES if lowered.startswith(s)), None)
    if scheme is None:
        return None
    authority_end = raw_path.find(b"/", len(scheme))
    return b"/" if authority_end < 0 else raw_path[authority_end:]


class OriginForm:
    """ASGI middleware: a request with an absolute-form target is routed as its path (see the module docstring).
    Installed outermost, so every layer inside sees the path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        root = str(scope.get("root_path") or "")
        if isinstance(raw, bytes) and raw.startswith(root.encode()):  # a server's root path comes before the target
            path = origin_form(raw[len(root.encode()) :])
            if path is not None:
                scope = {**scope, "path": root + unquote(path.decode("latin-1")), "raw_path": root.encode() + path}
        await self.app(scope, receive, send)
