"""The OpenAPI description of the feature read routes (``serving.online.features_api`` serves them).

The routes are plain ASGI endpoints for speed; these pydantic models and this router exist only so
that ``/openapi.json`` and ``/docs`` describe their requests, answers and refusals.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonDict, SkipJsonSchema

from registry.core.definitions import MAX_VERSION
from registry.core.entity_keys import MAX_KEY_CHARS
from serving.online.features_api import (
    BATCH_PATH,
    GET_PATH,
    KEY_PATH,
    MAX_BATCH,
    MAX_NAMES,
    MAX_VECTOR_PARTS,
    VECTORS_PATH,
)
from serving.online.responses import FORBIDDEN_READ, problems

# --- what the routes accept, as patterns (OpenAPI; the routes check these themselves) ----------------

# 1 to MAX_VERSION (2^31-1) written without sign or leading zero: the versions a reference may name.
VERSION_PATTERN = (
    "(?:[1-9][0-9]{0,8}|1[0-9]{9}|20[0-9]{8}|21[0-3][0-9]{7}|214[0-6][0-9]{6}|2147[0-3][0-9]{5}|21474[0-7][0-9]{4}"
    "|214748[0-2][0-9]{3}|2147483[0-5][0-9]{2}|21474836[0-3][0-9]|214748364[0-7])"
)
assert MAX_VERSION == 2_147_483_647, "VERSION_PATTERN spells 1-2147483647"
SERVICE_NAME = "[a-z][a-z0-9_-]{0,62}"
SERVICE_REF_PATTERN = f"^{SERVICE_NAME}(?:@v?{VERSION_PATTERN})?$"  # `name`, `name@N`, `name@vN` (registry.core.refs)
ENTITY_ID_PATTERN = f"^[A-Za-z0-9_.:@-]{{1,{MAX_KEY_CHARS}}}$"  # serving.online.keys.ENTITY_ID
NAMES_PATTERN = f"^[^,]+(?:,[^,]+){{0,{MAX_NAMES - 1}}}$"  # 1-1,000 non-empty names (an unknown one is a 404)
_NAMES = (
    f"comma-separated feature names (1-{MAX_NAMES}, none empty); all of the entity's stored features if omitted; "
    "not with `feature_service`"
)
_SERVICE = "`name@version` or `name` (its latest version): the versions it pins; not with `names`"

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


EntityId = Annotated[str, Field(pattern=ENTITY_ID_PATTERN)]
Name = Annotated[str, Field(min_length=1)]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # a member that may be left out but is never null (null is refused)


# A value given for the member (null counts as not given where the member may be null).
_GIVEN_NAMES: JsonDict = {"required": ["names"], "properties": {"names": {"type": "array"}}}
_GIVEN_SERVICE: JsonDict = {"required": ["feature_service"], "properties": {"feature_service": {"type": "string"}}}


class BatchRequestDoc(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [{"required": ["entity_ids"]}, {"required": ["entity_keys"]}],
            # not both `names` and `feature_service` (each may be left out or null)
            "anyOf": [
                {"properties": {"names": {"type": "null"}}},
                {"properties": {"feature_service": {"type": "null"}}},
            ],
        },
    )

    entity_ids: Annotated[list[EntityId], Field(min_length=1, max_length=MAX_BATCH)] | SkipJsonSchema[None] = Field(
        None,
        description="a single-key entity type's ids (give this or `entity_keys`, as the entity type's key is)",
        json_schema_extra=_no_default,
    )
    entity_keys: (
        Annotated[list[dict[str, EntityId]], Field(min_length=1, max_length=MAX_BATCH)] | SkipJsonSchema[None]
    ) = Field(
        None,
        description="a composite-keyed entity type's keys: objects of exactly its key fields",
        json_schema_extra=_no_default,
    )
    names: list[Name] | None = Field(
        None,
        min_length=1,
        max_length=MAX_NAMES,
        description="feature names (one column each, duplicates included); all of the entity type's stored "
        "features if omitted or null; not with `feature_service`",
    )
    feature_service: Annotated[str, Field(pattern=SERVICE_REF_PATTERN)] | None = Field(
        None, description="`name@version` (or `name` for its latest version); not with `names`"
    )
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
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "allOf": [
                {"oneOf": [{"required": ["entity_id"]}, {"required": ["entity_key"]}]},
                {"oneOf": [_GIVEN_NAMES, _GIVEN_SERVICE]},
            ]
        },
    )

    entity_type: str
    entity_id: EntityId | SkipJsonSchema[None] = Field(
        None, description="a single-key entity type's id", json_schema_extra=_no_default
    )
    entity_key: dict[str, EntityId] | SkipJsonSchema[None] = Field(
        None, description="a composite-keyed entity type's key fields", json_schema_extra=_no_default
    )
    names: list[Name] | None = Field(
        None, min_length=1, max_length=MAX_NAMES, description="give this or `feature_service`"
    )
    feature_service: Annotated[str, Field(pattern=SERVICE_REF_PATTERN)] | None = Field(
        None, description="its pins of this entity type (give this or `names`)"
    )
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
        403: FORBIDDEN_READ,
        408: "`body_timeout`: the body did not arrive whole within `FS_BODY_TIMEOUT_MS`",
        413: "body too large",
        503: "`store_unavailable`: the online store failed or did not answer within the request budget; "
        "`overloaded` (with `Retry-After: 1`): the process had `FS_MAX_IN_FLIGHT` requests or "
        "`FS_MAX_ENTITIES_IN_FLIGHT` entities in flight",
    }
    documented = problems({code: text[code] for code in codes})
    documented[503]["headers"] = {
        "Retry-After": {"description": "`1`, on `overloaded` only", "schema": {"type": "integer"}}
    }
    return documented


def docs_router() -> APIRouter:
    """The read routes as FastAPI sees them, for the OpenAPI document only (``feature_routes`` serves them)."""
    router = APIRouter(tags=["features"])

    @router.get(
        GET_PATH,
        summary="One entity's feature vector, with per-feature freshness",
        description="A request-time feature among the names (or the service's pins) takes each of its request "
        "fields as a query parameter of that field's name, e.g. `?names=amount_vs_mean_1h&amount=12.5`; a "
        "missing or malformed one is 400 `bad_request_data`.",
        responses={200: {"model": FeatureVectorDoc, "description": "the vector"}, **_errors(400, 403, 404, 503)},
    )
    async def get_features(
        entity_type: str,
        entity_id: str = Path(
            description=f"the entity's id: 1-{MAX_KEY_CHARS} characters of A-Z a-z 0-9 _ . : @ -",
            pattern=ENTITY_ID_PATTERN,
        ),
        names: str | None = Query(None, description=_NAMES, pattern=NAMES_PATTERN),
        feature_service: str | None = Query(None, description=_SERVICE, pattern=SERVICE_REF_PATTERN),
    ) -> None:
        raise NotImplementedError

    @router.get(
        BATCH_PATH,
        summary="The feature vector of the entity whose id is `batch`",
        description=f"The single-key route (`GET {GET_PATH}`) with the id `batch`: the path of the batch route "
        "takes `GET` as any entity's path does, and answers the same.",
        responses={200: {"model": FeatureVectorDoc, "description": "the vector"}, **_errors(400, 403, 404, 503)},
    )
    async def get_features_of_batch(
        entity_type: str,
        names: str | None = Query(None, description=_NAMES, pattern=NAMES_PATTERN),
        feature_service: str | None = Query(None, description=_SERVICE, pattern=SERVICE_REF_PATTERN),
    ) -> None:
        raise NotImplementedError

    @router.post(
        BATCH_PATH,
        summary="Many entities' feature vectors, as columns aligned with `names`",
        responses={
            200: {"model": BatchDoc, "description": "one result per entity id"},
            **_errors(400, 403, 404, 408, 413, 503),
        },
    )
    async def get_features_batch(entity_type: str, body: BatchRequestDoc) -> None:
        raise NotImplementedError

    @router.get(
        KEY_PATH,
        summary="One composite-keyed entity's feature vector (a query parameter per key field)",
        description="For an entity type keyed by several fields, e.g. `?user_id=u1&merchant_id=m7&names=...`: "
        "every key field exactly once; a missing, repeated or malformed one, or a single-key entity type, is "
        "400 `bad_entity_key`. Names, feature services and request data as on the single-key route.",
        responses={200: {"model": FeatureVectorDoc, "description": "the vector"}, **_errors(400, 403, 404, 503)},
    )
    async def get_features_by_key(
        entity_type: str,
        names: str | None = Query(None, description=_NAMES, pattern=NAMES_PATTERN),
        feature_service: str | None = Query(None, description=_SERVICE, pattern=SERVICE_REF_PATTERN),
    ) -> None:
        raise NotImplementedError

    @router.post(
        VECTORS_PATH,
        summary="One vector from several entities' features (e.g. a user's and the user x merchant pair's)",
        responses={
            200: {"model": VectorsDoc, "description": "one vector per entity"},
            **_errors(400, 403, 404, 408, 413, 503),
        },
    )
    async def get_vectors(body: VectorsRequestDoc) -> None:
        raise NotImplementedError

    return router
