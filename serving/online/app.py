"""The feature API: an app factory, so tests and servers build it with the clients they choose.

HTTP status codes are chosen in ``serving/`` and only here and in its routers: an unknown entity
type, feature or feature service is 404 (naming what is unknown), a malformed id or name list is
400, an invalid definition 422, a version conflict 409, and a store that fails or does not answer
within the request budget 503.

Routes: ``/v1/features/...`` (vectors), ``/v1/feature-definitions``, ``/v1/feature-services``,
``/v1/quality`` (stored statistics, drift and parity),
``/metrics`` (Prometheus text format), ``/health``, and FastAPI's ``/openapi.json`` and ``/docs``. Every
route that takes GET takes HEAD (``registry.http_head.HeadAsGet``): the GET's status and headers, no body.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from registry.access import Access
from registry.core.errors import (
    DefinitionError,
    ForbiddenError,
    StoreUnavailableError,
    UnauthenticatedError,
    UnknownFeatureError,
    UnknownFeatureServiceError,
)
from registry.core.shown import shown
from registry.definition_store import DefinitionConflictError
from registry.feature_services import LiveFeatureServices
from registry.http_head import HeadAsGet, allowed_methods
from registry.http_target import OriginForm
from registry.live import LiveCatalog
from registry.quality import QualityStore
from serving.online.auth import Authenticate, route_table
from serving.online.cache import DEFAULT_MAX_ENTRIES, VectorCache
from serving.online.definitions_api import definitions_router
from serving.online.feature_routes import feature_routes
from serving.online.features_api import MAX_NAMES, FeatureReads
from serving.online.features_docs import docs_router
from serving.online.http_errors import ApiError, ErrorCode, render
from serving.online.metrics import Metrics, MetricsMiddleware
from serving.online.overload import (
    DEFAULT_MAX_ENTITIES_IN_FLIGHT,
    DEFAULT_MAX_IN_FLIGHT,
    EntityBound,
    InFlightLimit,
    ShedAtBound,
)
from serving.online.plans import Plans
from serving.online.quality_api import quality_router
from serving.online.refusals import refusal
from serving.online.responses import DEFAULT_BODY_TIMEOUT_MS, JSONResponse, without_validation_errors
from serving.online.services_api import services_router
from serving.online.serving_log import KafkaSink, ServingLog, Sink
from serving.online.vectors import AsyncVectorSource, VectorSource, as_async
from sinks.names import StoreNames

__all__ = ["MAX_NAMES", "create_app"]
log = logging.getLogger("featurestore.api")
auth_log = logging.getLogger("featurestore.auth")


class EscapedSlash:
    """ASGI middleware: a path holding an escaped ``/`` (``%2F``, any case) matches no route, 404 ``not_found``.

    The server decodes ``%2F`` before routing, so ``/v1/features/user%2Fu1`` would be read as
    ``/v1/features/user/u1`` and ``/v1/features/user%2Fbatch`` as entity ``batch``: one path segment is never
    two (README, "Online serving": an id holding ``/``, even escaped, matches no route; so does any segment)."""

    def __init__(self, app: ASGIApp, on_refused: Callable[[ErrorCode], None]) -> None:
        self.app = app
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and b"%2f" in (scope.get("raw_path") or b"").lower():
            refused = ApiError(
                ErrorCode.NOT_FOUND, "404: Not Found (a path segment holds an escaped '/': no route takes one)"
            )
            self.on_refused(refused.code)
            status, body = render(refused)
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def api_error(request: Request, exc: Exception) -> ApiError:
    """The refusal an exception stands for: the project's errors by kind, the framework's by status,
    anything else a bug (500 ``internal_error`` whose request id finds the traceback in the log; a store
    that is down is ``StoreUnavailableError``, a 503, never this)."""
    refused = refusal(exc)
    if refused is not None:
        return refused
    if isinstance(exc, RequestValidationError):
        # A malformed path or query parameter (``?version=x``): the service's own error shape, not FastAPI's.
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:10])
        return ApiError(ErrorCode.BAD_REQUEST, f"invalid request: {where}")
    if isinstance(exc, StarletteHTTPException):
        # Unknown routes (404) and methods (405), in the service's own error shape.
        code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}.get(exc.status_code, ErrorCode.HTTP_ERROR)
        return ApiError(code, f"{exc.status_code}: {exc.detail}", status=exc.status_code)
    request_id = uuid.uuid4().hex[:16]
    path = shown(request.url.path)  # the client's path, decoded: a %0A in it must not forge a log line
    log.error("unexpected error (request id %s) on %s %s", request_id, request.method, path, exc_info=exc)
    return ApiError(
        ErrorCode.INTERNAL_ERROR, f"unexpected error; request id {request_id} in the server log", request_id=request_id
    )


def framework_headers(request: Request, exc: Exception) -> dict[str, str] | None:
    """The headers of a framework refusal (``StarletteHTTPException.headers``) kept on the service's own body; on a
    405 ``Allow`` lists every method the path's routes take (HTTP requires it), not only the first such route's,
    and ``HEAD`` wherever ``GET`` (``HeadAsGet`` serves it)."""
    if not isinstance(exc, StarletteHTTPException):
        return None
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        allowed = allowed_methods(request)
        headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
        if allowed:
            headers["Allow"] = ", ".join(allowed)
    return headers or None


def create_app(
    live: LiveCatalog,
    source: VectorSource | AsyncVectorSource,
    *,
    clock_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    services: LiveFeatureServices | None = None,
    cache_ttl_ms: int = 0,
    cache_max_entries: int = DEFAULT_MAX_ENTRIES,
    registry: CollectorRegistry | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    max_entities_in_flight: int = DEFAULT_MAX_ENTITIES_IN_FLIGHT,
    serving_log: Sink | None = None,
    serving_log_sample: float = 0.0,
    quality: QualityStore | None = None,
    access: Access | None = None,
    body_timeout_ms: int = DEFAULT_BODY_TIMEOUT_MS,
    stores: StoreNames | None = None,
) -> FastAPI:
    """The API over a catalog and a vector source.

    Args:
        live: definitions, refreshed on change (no registry read per request).
        source: stored vectors; an ``AsyncVectorSource`` (``OnlineReader``) enforces the request budget itself.
        clock_us: wall clock in epoch µs: ages, statuses and the cache's TTL are computed from it.
        services: feature services; without them ``feature_service=`` answers 404.
        cache_ttl_ms: how long a read vector may be served again (0: never; concurrent reads still coalesce).
        cache_max_entries: bound of the vector cache (least recently used out first).
        registry: where the metrics are registered (a fresh registry if None, never the global one).
        max_in_flight: requests the process works on at once; past it, an immediate 503 ``overloaded``.
        max_entities_in_flight: entities the feature reads in flight ask for, summed; a read that would
            go past it gets an immediate 503 ``overloaded`` (unless nothing is in flight: see ``EntityBound``).
        serving_log: where sampled served vectors go (``serving.online.serving_log``); None logs nothing.
        serving_log_sample: the share of requests logged, within [0, 1].
        quality: stored data-quality results, served at ``/v1/quality/...``; None answers 404 there.
        access: tokens, ownership and grants (``registry.access``); None or disabled: every route open,
            which the app logs at start-up, one line per route.
        body_timeout_ms: a request body not received whole within it is refused, 408 ``body_timeout``.
        stores: the keyspace and namespace of the tables, named in each definition's lineage (None: the tables'
            names alone).
    """
    if max_in_flight < 1:
        raise ValueError("max_in_flight: the in-flight limit must be at least 1")
    if max_entities_in_flight < 1:
        raise ValueError("max_entities_in_flight: the entity bound must be at least 1")
    if body_timeout_ms < 1:
        raise ValueError("body_timeout_ms: the body timeout must be at least 1 ms")
    # FastAPI's own OpenTelemetry hooks off: with no provider set they record nothing, and their per-request check
    # of the global providers read the environment three times a request (about 5 % of a refusal's CPU, measured);
    # this service's metrics are Prometheus' (/metrics).
    app = FastAPI(
        title="feature store",
        version="0.2.0",
        default_response_class=JSONResponse,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    cache = VectorCache(
        as_async(source),
        clock_ms=lambda: clock_us() // 1000,
        ttl_ms=cache_ttl_ms,
        max_entries=cache_max_entries,
        clock_us=clock_us,
    )
    metrics = Metrics(registry if registry is not None else CollectorRegistry(auto_describe=True), cache)
    app.state.cache = cache
    app.state.body_timeout_ms = body_timeout_ms  # serving.online.responses.read_body
    app.state.metrics = metrics
    log = None
    if serving_log is not None:
        log = ServingLog(serving_log, serving_log_sample, metrics.registry)
        if isinstance(serving_log, KafkaSink):
            serving_log.on_failure = log.delivery_failed
    app.state.serving_log = log

    async def _refuse(request: Request, exc: Exception) -> Response:
        # The one handler: every error a route lets out becomes a problem body with its code's status, counted
        # by its code (no route: not_found; a route without the method: method_not_allowed).
        error = api_error(request, exc)
        metrics.error(error.code)
        status, body = render(error)
        headers = framework_headers(request, exc)
        return Response(body, status_code=status, headers=headers, media_type="application/json")

    for handled in (
        ApiError,
        ForbiddenError,
        UnauthenticatedError,
        UnknownFeatureError,
        UnknownFeatureServiceError,
        DefinitionConflictError,
        DefinitionError,
        StoreUnavailableError,
        RequestValidationError,
        StarletteHTTPException,
        Exception,
    ):
        app.add_exception_handler(handled, _refuse)

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:  # async: a plain def would hop to a worker thread per call
        return {"status": "ok"}

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus metrics (text format)",
        response_class=PlainTextResponse,  # documented as the text it is, not JSON
    )
    async def prometheus_metrics() -> Response:
        if log is not None:  # the serving log's delivery reports, counted before they are reported
            log.serve_reports()
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    access = access if access is not None else Access(None, enabled=False)
    app.state.access = access
    bound = EntityBound(max_entities_in_flight)
    reads = feature_routes(FeatureReads(Plans(live, services), cache, metrics, clock_us, log, access, bound), metrics)
    app.router.routes[:0] = reads  # first
    app.include_router(definitions_router(live, access, stores))
    if services is not None:
        app.include_router(services_router(live, services, access))
    if quality is not None:
        app.include_router(quality_router(live, quality, clock_us, access))
    app.add_middleware(EscapedSlash, on_refused=metrics.error)  # as routing would: behind shedding and auth
    if access.enabled:
        # Innermost: a shed or counted request needs no token check.
        app.add_middleware(Authenticate, access=access, on_refused=metrics.error)
    else:
        for method, path in route_table(app.routes):
            auth_log.warning("auth off: %s %s is open to every caller", method, path)
    app.add_middleware(ShedAtBound, bound=bound, routes=reads, on_refused=metrics.error)  # before routing
    # Inside the metrics: shed requests are counted, under their status and in fs_errors_total{class="overloaded"}.
    app.add_middleware(InFlightLimit, limit=max_in_flight, on_refused=metrics.error)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(HeadAsGet)  # outside the rest: every layer serves a HEAD as the GET, its answer loses the body
    app.add_middleware(OriginForm)  # outermost of all: an absolute-form target routed as its path
    docs = docs_router()

    def openapi() -> dict[str, Any]:
        # The read routes are plain ASGI endpoints (see serving.online.features_api); their documented twins live in ``docs``.
        if app.openapi_schema is None:
            # A malformed parameter is 400 `bad_request` (``api_error``): FastAPI's automatic 422 is never answered.
            app.openapi_schema = without_validation_errors(
                get_openapi(title=app.title, version=app.version, routes=[*docs.routes, *app.routes])
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
