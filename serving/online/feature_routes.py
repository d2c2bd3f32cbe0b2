"""The ``/v1/features`` and ``/v1/vectors`` routes as plain ASGI endpoints: no Request object, no parameter
resolution; each hands the path, query string, headers and (for a POST) the bounded body to
``serving.online.features_api.FeatureReads`` and sends its orjson body, or a refusal in the one error shape."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import Route

from serving.online.auth import caller_of, client_of
from serving.online.features_api import (
    BATCH_PATH,
    GET_PATH,
    KEY_PATH,
    MAX_BATCH_BODY_BYTES,
    VECTORS_PATH,
    FeatureReads,
)
from serving.online.http_errors import ApiError, ErrorCode, render
from serving.online.metrics import Metrics
from serving.online.responses import read_body

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

_HEADERS = [(b"content-type", b"application/json")]


async def _send(send: Send, status: int, body: bytes, retry_after: bool = False) -> None:
    headers = [*_HEADERS, (b"content-length", str(len(body)).encode())]
    if retry_after:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Endpoint:
    """A plain ASGI endpoint: no Request object, no parameter resolution, one orjson body."""

    route_path = ""

    def __init__(self, reads: FeatureReads, metrics: Metrics) -> None:
        self._reads = reads
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await self._body(scope, receive)
        except ApiError as refused:  # answered here, without the exception middleware: the same body as render's
            self._metrics.error(refused.code)
            await _send(send, *render(refused), retry_after=refused.code is ErrorCode.OVERLOADED)
            return
        await _send(send, 200, body)

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        raise NotImplementedError


class _Get(_Endpoint):
    route_path = GET_PATH

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        params = scope["path_params"]
        return await self._reads.get(
            params["entity_type"],
            params["entity_id"],
            scope["query_string"],
            scope.get("headers", ()),
            caller_of(scope),
            client_of(scope),
        )


class _GetByKey(_Endpoint):
    route_path = KEY_PATH

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        return await self._reads.get(
            scope["path_params"]["entity_type"],
            None,
            scope["query_string"],
            scope.get("headers", ()),
            caller_of(scope),
            client_of(scope),
        )


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    """The body, at most ``MAX_BATCH_BODY_BYTES`` (``serving.online.responses.read_body``)."""
    return await read_body(scope, receive, max_bytes=MAX_BATCH_BODY_BYTES)


class _Batch(_Endpoint):
    route_path = BATCH_PATH

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        self._reads.bound.check()  # before the body is read and parsed: refusing must cost little
        entity_type = scope["path_params"]["entity_type"]
        try:
            raw = await _read_body(scope, receive)
        except ApiError:
            self._reads.check_entity_type(entity_type)  # 404 before anything in the body, its size too (413)
            raise
        return await self._reads.batch(entity_type, raw, scope.get("headers", ()), caller_of(scope), client_of(scope))


class _Vectors(_Endpoint):
    route_path = VECTORS_PATH

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        self._reads.bound.check()
        return await self._reads.vectors(
            await _read_body(scope, receive), scope.get("headers", ()), caller_of(scope), client_of(scope)
        )


def feature_routes(reads: FeatureReads, metrics: Metrics) -> list[Route]:
    """The read routes over ``reads``, counted in ``metrics``."""
    # The hot GET first; a POST to .../batch only partly matches it (method) and goes on to the batch route.
    return [
        Route(GET_PATH, _Get(reads, metrics), methods=["GET"]),
        Route(BATCH_PATH, _Batch(reads, metrics), methods=["POST"]),
        Route(KEY_PATH, _GetByKey(reads, metrics), methods=["GET"]),
        Route(VECTORS_PATH, _Vectors(reads, metrics), methods=["POST"]),
    ]
