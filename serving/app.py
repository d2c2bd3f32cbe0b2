"""The feature API: an app factory, so tests and servers build it with the clients they choose.

HTTP status codes are chosen in ``serving/`` and only here: an unknown entity type or feature is
404 (naming what is unknown), a malformed id or name list is 400, an invalid definition 422, a
version conflict 409, and a store that fails or times out 503.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from fastapi import FastAPI, Query, Request

from registry.errors import StoreUnavailableError, UnknownFeatureError
from registry.live import LiveCatalog
from serving.definitions_api import definitions_router
from serving.responses import JSONResponse, problem
from serving.vectors import VectorSource, feature_vector, iso, select

_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,256}$")
MAX_NAMES = 1000


def create_app(
    live: LiveCatalog,
    source: VectorSource,
    *,
    clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
) -> FastAPI:
    app = FastAPI(title="feature store", version="0.1.0", default_response_class=JSONResponse)

    @app.exception_handler(UnknownFeatureError)
    async def _unknown(_: Request, exc: UnknownFeatureError) -> JSONResponse:
        return problem(404, "unknown_feature", str(exc), entity_type=exc.entity_type, names=exc.names)

    @app.exception_handler(StoreUnavailableError)
    async def _unavailable(_: Request, exc: StoreUnavailableError) -> JSONResponse:
        return problem(503, "store_unavailable", str(exc))

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/features/{entity_type}/{entity_id}")
    def get_features(
        entity_type: str,
        entity_id: str,
        names: str | None = Query(None, description="comma-separated feature names; all of the entity's if omitted"),
    ) -> JSONResponse:
        catalog = live.current()
        if entity_type not in catalog.entity_types():
            return problem(404, "unknown_entity_type", f"no features are registered for entity type {entity_type!r}")
        if not _ID.match(entity_id):
            return problem(400, "bad_entity_id", "entity id must be 1-256 characters of A-Z a-z 0-9 _ . : @ -")
        requested = None
        if names is not None:
            requested = [n.strip() for n in names.split(",")]
            if not all(requested) or len(requested) > MAX_NAMES:
                return problem(400, "bad_names", f"`names` must list 1-{MAX_NAMES} non-empty, comma-separated names")
        definitions = select(catalog, entity_type, requested)
        now_ms = clock_ms()
        values = feature_vector(source, definitions, entity_type, entity_id, now_ms)
        keys = (
            requested if requested is not None else [v.name for v in values]
        )  # a renamed feature answers to its old name
        return JSONResponse(
            {
                "entity_type": entity_type,
                "entity_id": entity_id,
                "served_at": iso(now_ms),
                "features": {key: v.as_json(now_ms) for key, v in zip(keys, values, strict=True)},
            }
        )

    app.include_router(definitions_router(live))
    return app
