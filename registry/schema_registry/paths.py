"""Request paths whose subject holds a ``/``, sent percent-encoded (``%2F``) as Confluent's clients send it.

The ASGI server decodes the path before routing, so ``/subjects/a%2Fb/versions`` would reach the routes as
``/subjects/a/b/versions`` and match nothing. :func:`escaped_path` rebuilds the path from the raw bytes
with each segment decoded and its own ``%`` and ``/`` escaped again: split on ``/`` it gives the segments the
client sent, and ``urllib.parse.unquote`` reads one back. The routes (:class:`SubjectRoute`) and the write
check of the auth middleware both read the path this way.
"""

from __future__ import annotations

from urllib.parse import unquote

from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope


def _escape(segment: str) -> str:
    return segment.replace("%", "%25").replace("/", "%2F")


def escaped_path(scope: Scope) -> str:
    """The request path with each segment decoded, then its ``%`` and ``/`` escaped (see the module docstring)."""
    raw = scope.get("raw_path")
    if not isinstance(raw, bytes) or scope.get("root_path"):  # no raw path, or one with a prefix: the decoded path
        return "/".join(_escape(segment) for segment in str(scope["path"]).split("/"))
    return "/".join(_escape(unquote(segment)) for segment in raw.decode("latin-1").split("/"))


class SubjectRoute(APIRoute):
    """A route matched against :func:`escaped_path`, its path parameters read back with ``unquote``."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return super().matches(scope)
        match, child = super().matches({**scope, "path": escaped_path(scope)})
        params = child.get("path_params")
        if isinstance(params, dict):
            child["path_params"] = {k: unquote(v) if isinstance(v, str) else v for k, v in params.items()}
        return match, child
