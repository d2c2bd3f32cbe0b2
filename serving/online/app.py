"""The feature API: an app factory, so tests and servers build it with the clients they choose.

HTTP status codes are chosen in ``serving/`` and only here and in its routers: an unknown entity
type, feature or feature service is 404 (naming what is unknown), a malformed id or name list is
400, an invalid definition 422, a version conflict 409, and a store that fails or does not answer
within the request budget 503.

Routes: ``/v1/features/...`` (vectors), ``/v1/feature-definitions``, ``/v1/feature-services``,
``/metrics`` (Prometheus text format), ``/health``, and FastAPI's ``/openapi.json`` and ``/docs``.
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
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry.core.errors import StoreUnavailableError, UnknownFeatureError, UnknownFeatureServiceError
from registry.feature_services import LiveFeatureServices
from registry.live import LiveCatalog
from serving.online.cache import DEFAULT_MAX_ENTRIES, VectorCache
from serving.online.definitions_api import definitions_router
from serving.online.features_api import MAX_NAMES, docs_router, feature_routes
from serving.online.metrics import Metrics, MetricsMiddleware
from serving.online.plans import Plans
from serving.online.responses import JSONResponse, problem
from serving.online.services_api import services_router
from serving.online.vectors import AsyncVectorSource, VectorSource, as_async

__all__ = ["MAX_NAMES", "create_app"]
log = logging.getLogger("featurestore.api")


def create_app(
    live: LiveCatalog,
    source: VectorSource | AsyncVectorSource,
    *,
    clock_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    services: LiveFeatureServices | None = None,
    cache_ttl_ms: int = 0,
    cache_max_entries: int = DEFAULT_MAX_ENTRIES,
    registry: CollectorRegistry | None = None,
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
    """
    app = FastAPI(title="feature store", version="0.2.0", default_response_class=JSONResponse)
    cache = VectorCache(
        as_async(source), clock_ms=lambda: clock_us() // 1000, ttl_ms=cache_ttl_ms, max_entries=cache_max_entries
    )
    metrics = Metrics(registry if registry is not None else CollectorRegistry(auto_describe=True), cache)
    app.state.cache = cache
    app.state.metrics = metrics

    @app.exception_handler(UnknownFeatureError)
    async def _unknown(_: Request, exc: UnknownFeatureError) -> JSONResponse:
        metrics.error("unknown_feature")
        return problem(404, "unknown_feature", str(exc), entity_type=exc.entity_type, names=exc.names)

    @app.exception_handler(UnknownFeatureServiceError)
    async def _unknown_service(_: Request, exc: UnknownFeatureServiceError) -> JSONResponse:
        metrics.error("unknown_feature_service")
        return problem(404, "unknown_feature_service", str(exc), feature_service=exc.ref)

    @app.exception_handler(StoreUnavailableError)
    async def _unavailable(_: Request, exc: StoreUnavailableError) -> JSONResponse:
        metrics.error("store_unavailable")
        return problem(503, "store_unavailable", str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug, not a store that is down (that is StoreUnavailableError, a 503): a 500 whose request id
        # finds the traceback in the log.
        request_id = uuid.uuid4().hex[:16]
        log.error("unexpected error (request id %s) on %s %s", request_id, request.method, request.url.path,
                  exc_info=exc)  # fmt: skip
        metrics.error("internal_error")
        return problem(500, "internal_error", f"unexpected error; request id {request_id} in the server log",
                       request_id=request_id)  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # A malformed path or query parameter (``?version=x``): the service's own error shape, not FastAPI's.
        metrics.error("bad_request")
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:10])
        return problem(400, "bad_request", f"invalid request: {where}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Unknown routes (404) and methods (405), in the service's own error shape.
        error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, error, f"{exc.status_code}: {exc.detail}")

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics (text format)")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.router.routes[:0] = feature_routes(Plans(live, services), cache, metrics, clock_us)  # matched first
    app.include_router(definitions_router(live))
    if services is not None:
        app.include_router(services_router(live, services))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    docs = docs_router()

    def openapi() -> dict[str, Any]:
        # The read routes are plain ASGI endpoints (see serving.online.features_api); their documented twins live in ``docs``.
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(title=app.title, version=app.version, routes=[*docs.routes, *app.routes])
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
