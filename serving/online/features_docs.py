"""The OpenAPI description of the feature read routes (``serving.online.features_api`` serves them).

The routes are plain ASGI endpoints for speed; these pydantic models and this router exist only so
that ``/openapi.json`` and ``/docs`` describe their requests, answers and refusals.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from serving.online.features_api import (
    BATCH_PATH,
    GET_PATH,
    KEY_PATH,
    MAX_BATCH,
    MAX_VECTOR_PARTS,
    VECTORS_PATH,
)
from serving.online.responses import problems

# --- response documents (OpenAPI) ------------------------------------------------------------------

Status = Literal["present", "missing", "expired", "stale", "error"]


class FeatureValueDoc(BaseModel):
    value: Any = Field(description="null when missing or expired, or when an empty window has no value")
    feature_timestamp: str | None = Field(description="end of the window the value describes (ISO 8601, UTC)")
    age_seconds: float | None = Field(
        description="served_at minus feature_timestamp, exactly (served_at is the clock cut to whole milliseconds); "
        "negative when the feature timestamp is ahead of the API's clock"
    )
    version: int
    status: Status = Field(
        description="present; missing (no row); expired (past ttl); stale (past freshness_slo); "
        "error (a request-time feature whose function failed: see `message`)"
    )
    message: str | None = Field(None, description="why a request-time feature is `error` (only then)")


class FeatureVectorDoc(BaseModel):
    entity_type: str
    entity_id: str = Field(description="the id; for a composite key, its encoded form (registry.core.entity_keys)")
    entity_key: dict[str, str] | None = Field(None, description="a composite key's value per key field (only then)")
    served_at: str
    features: dict[str, FeatureValueDoc]


class BatchRequestDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity_ids: list[str] | None = Field(
        None, min_length=1, max_length=MAX_BATCH, description="a single-key entity type's ids"
    )
    entity_keys: list[dict[str, str]] | None = Field(
        None,
        min_length=1,
        max_length=MAX_BATCH,
        description="a composite-keyed entity type's keys: objects of exactly its key fields",
    )
    names: list[str] | None = Field(None, description="feature names; all of the entity type's if omitted")
    feature_service: str | None = Field(None, description="`name@version` (or `name` for its latest version)")
    request_data: dict[str, list[Any]] | None = Field(
        None,
        description="request-time features' fields: per field, one value (or null) per entity id; "
        "exactly the requested features' fields",
    )


class EntityColumnsDoc(BaseModel):
    entity_id: str
    entity_key: dict[str, str] | None = Field(None, description="a composite key's value per key field (only then)")
    values: list[Any] | None = Field(None, description="absent when this entity's read failed (see `error`)")
    feature_timestamps: list[str | None] | None = None
    age_seconds: list[float | None] | None = None
    statuses: list[Status] | None = None
    error: Literal["store_unavailable"] | None = Field(
        None, description="this entity's read failed or missed the batch budget while others succeeded"
    )
    message: str | None = None
    errors: dict[str, str] | None = Field(
        None, description="request-time features whose function failed for this request: name -> message"
    )


class BatchDoc(BaseModel):
    entity_type: str
    served_at: str
    names: list[str] = Field(description="column order of every result's lists")
    versions: list[int]
    results: list[EntityColumnsDoc] = Field(description="one per requested entity id, in request order")


class VectorPartDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity_type: str
    entity_id: str | None = Field(None, description="a single-key entity type's id")
    entity_key: dict[str, str] | None = Field(None, description="a composite-keyed entity type's key fields")
    names: list[str] | None = None
    feature_service: str | None = Field(None, description="its pins of this entity type (give this or `names`)")
    request_data: dict[str, Any] | None = Field(None, description="request-time features' fields, one value each")


class VectorsRequestDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entities: list[VectorPartDoc] = Field(min_length=1, max_length=MAX_VECTOR_PARTS)


class VectorsDoc(BaseModel):
    served_at: str
    vectors: list[FeatureVectorDoc] = Field(description="one per `entities` item, in request order")


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "malformed entity id, names, feature service reference, body or request data; a query parameter or "
        "a body member given more than once (with that parameter's or member's code)",
        404: "unknown entity type, feature (all named) or feature service; `not_found` for a path holding an escaped "
        "`/` (`%2F`)",
        413: "body too large",
        503: "`store_unavailable`: the online store failed or did not answer within the request budget; "
        "`overloaded` (with `Retry-After: 1`): the process had `FS_MAX_IN_FLIGHT` requests or "
        "`FS_MAX_ENTITIES_IN_FLIGHT` entities in flight",
    }
    return problems({code: text[code] for code in codes})


def docs_router() -> APIRouter:
    """The read routes as FastAPI sees them, for the OpenAPI document only (``feature_routes`` serves them)."""
    router = APIRouter(tags=["features"])

    @router.get(
        GET_PATH,
        summary="One entity's feature vector, with per-feature freshness",
        description="A request-time feature among the names (or the service's pins) takes each of its request "
        "fields as a query parameter of that field's name, e.g. `?names=amount_vs_mean_1h&amount=12.5`; a "
        "missing or malformed one is 400 `bad_request_data`.",
        responses={200: {"model": FeatureVectorDoc, "description": "the vector"}, **_errors(400, 404, 503)},
    )
    async def get_features(
        entity_type: str,
        entity_id: str,
        names: str | None = Query(None, description="comma-separated feature names; all of the entity's if omitted"),
        feature_service: str | None = Query(None, description="`name@version` or `name`: the versions it pins"),
    ) -> None:
        raise NotImplementedError

    @router.post(
        BATCH_PATH,
        summary="Many entities' feature vectors, as columns aligned with `names`",
        responses={200: {"model": BatchDoc, "description": "one result per entity id"}, **_errors(400, 404, 413, 503)},
    )
    async def get_features_batch(entity_type: str, body: BatchRequestDoc) -> None:
        raise NotImplementedError

    @router.get(
        KEY_PATH,
        summary="One composite-keyed entity's feature vector (a query parameter per key field)",
        description="For an entity type keyed by several fields, e.g. `?user_id=u1&merchant_id=m7&names=...`: "
        "every key field exactly once; a missing, repeated or malformed one, or a single-key entity type, is "
        "400 `bad_entity_key`. Names, feature services and request data as on the single-key route.",
        responses={200: {"model": FeatureVectorDoc, "description": "the vector"}, **_errors(400, 404, 503)},
    )
    async def get_features_by_key(
        entity_type: str,
        names: str | None = Query(None, description="comma-separated feature names; all of the entity's if omitted"),
        feature_service: str | None = Query(None, description="`name@version` or `name`: the versions it pins"),
    ) -> None:
        raise NotImplementedError

    @router.post(
        VECTORS_PATH,
        summary="One vector from several entities' features (e.g. a user's and the user x merchant pair's)",
        responses={200: {"model": VectorsDoc, "description": "one vector per entity"}, **_errors(400, 404, 413, 503)},
    )
    async def get_vectors(body: VectorsRequestDoc) -> None:
        raise NotImplementedError

    return router
