"""``/v1/features``: feature vectors of one entity (GET) or of many (POST .../batch), with freshness.

The hot path does no pydantic validation, no framework parameter resolution and no registry read:
the two routes are plain ASGI endpoints; the request's names or feature service resolve through
the plan cache (keyed by the raw query string, so a repeated request is not even parsed); the
stored vectors come from the vector cache (one single-partition read per entity on a miss,
concurrent for a batch); the body is encoded by orjson. Errors raised here (unknown feature or
service, store unavailable) go to the app's exception handlers. ``docs_router`` describes the
routes, with the pydantic models below, for the OpenAPI document only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import Route

from registry.access import ANONYMOUS, Access, Caller
from registry.core.errors import ForbiddenError, RequestFeatureError, StoreUnavailableError
from registry.core.request_features import check_json, parse_text
from serving.online.auth import caller_of, client_of
from serving.online.cache import VectorCache
from serving.online.http_errors import ApiError, ErrorCode, render
from serving.online.metrics import Metrics
from serving.online.plans import Plan, PlanKey, Plans
from serving.online.request_values import Served, request_values
from serving.online.serving_log import ServingLog, request_context
from serving.online.vectors import ColumnWriter, features_object, format_ms, iso

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

ENTITY_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,256}$")
MAX_NAMES = 1000
MAX_BATCH = 1000
MAX_BATCH_BODY_BYTES = 1024 * 1024
_JSON = "application/json"


# --- response documents (OpenAPI) ------------------------------------------------------------------

Status = Literal["present", "missing", "expired", "stale", "error"]


class FeatureValueDoc(BaseModel):
    value: Any = Field(description="null when missing or expired, or when an empty window has no value")
    feature_timestamp: str | None = Field(description="end of the window the value describes (ISO 8601, UTC)")
    age_seconds: float | None = Field(description="served_at minus feature_timestamp")
    version: int
    status: Status = Field(
        description="present; missing (no row); expired (past ttl); stale (past freshness_slo); "
        "error (a request-time feature whose function failed: see `message`)"
    )
    message: str | None = Field(None, description="why a request-time feature is `error` (only then)")


class FeatureVectorDoc(BaseModel):
    entity_type: str
    entity_id: str
    served_at: str
    features: dict[str, FeatureValueDoc]


class BatchRequestDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity_ids: list[str] = Field(min_length=1, max_length=MAX_BATCH)
    names: list[str] | None = Field(None, description="feature names; all of the entity type's if omitted")
    feature_service: str | None = Field(None, description="`name@version` (or `name` for its latest version)")
    request_data: dict[str, list[Any]] | None = Field(
        None,
        description="request-time features' fields: per field, one value (or null) per entity id; "
        "exactly the requested features' fields",
    )


class EntityColumnsDoc(BaseModel):
    entity_id: str
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


class ProblemDoc(BaseModel):
    model_config = ConfigDict(extra="allow")

    error: str = Field(description="machine-readable, e.g. unknown_feature, bad_entity_id, store_unavailable")
    message: str


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "malformed entity id, names, body or request data",
        404: "unknown entity type, feature (all named) or feature service",
        413: "body too large",
        503: "the online store failed or did not answer within the request budget",
    }
    return {code: {"model": ProblemDoc, "description": text[code]} for code in codes}


# --- routes ----------------------------------------------------------------------------------------

GET_PATH = "/v1/features/{entity_type}/{entity_id}"
BATCH_PATH = "/v1/features/{entity_type}/batch"
_HEADERS = [(b"content-type", b"application/json")]


def _names(names: list[str]) -> list[str]:
    if not names or len(names) > MAX_NAMES or not all(names):
        raise ApiError(ErrorCode.BAD_NAMES, f"`names` must list 1-{MAX_NAMES} non-empty, comma-separated names")
    return names


class FeatureReads:
    """The two read routes, as ``(status, JSON body)`` computations over plans, the cache and the clock."""

    def __init__(
        self,
        plans: Plans,
        cache: VectorCache,
        metrics: Metrics,
        clock_us: Callable[[], int],
        serving_log: ServingLog | None = None,
        access: Access | None = None,
    ) -> None:
        self._access = access if access is not None and access.enabled else None
        self._plans = plans
        self._cache = cache
        self._metrics = metrics
        self._clock_us = clock_us
        self._log = serving_log

    def _check_entity_type(self, entity_type: str) -> None:
        if entity_type not in self._plans.snapshot()[0].entity_types():
            raise ApiError(ErrorCode.UNKNOWN_ENTITY_TYPE, f"no features are registered for entity type {entity_type!r}")

    def _compile(self, key: PlanKey, entity_type: str, names: list[str] | None, service: str | None) -> Plan:
        if names is not None and service is not None:
            raise ApiError(ErrorCode.BAD_REQUEST, "give `names` or `feature_service`, not both")
        try:
            if service is None:
                return self._plans.for_names(key, entity_type, names)
            plan = self._plans.for_service(key, entity_type, service)
        except RequestFeatureError as exc:  # two request features giving one request field two types
            raise ApiError(ErrorCode.BAD_REQUEST_DATA, str(exc)) from exc
        if not plan.output_keys:
            raise ApiError(
                ErrorCode.BAD_FEATURE_SERVICE,
                f"feature service {service!r} has no features of entity type {entity_type!r}",
            )
        return plan

    def _authorize(self, plan: Plan, caller: Caller, client: str) -> None:
        """403 naming every feature above `internal` the caller has no grant for (audited either way)."""
        if self._access is not None and plan.sensitive:
            try:
                self._access.check_read(caller, plan.sensitive, action="read_features", client=client)
            except ForbiddenError as exc:
                raise ApiError(ErrorCode.FORBIDDEN, str(exc), names=exc.names) from exc

    @staticmethod
    def _log_served(
        log: ServingLog,
        headers: Sequence[tuple[bytes, bytes]],
        service: str | None,
        now_us: int,
        plan: Plan,
        vectors: Sequence[tuple[str, Sequence[Any], Sequence[str | None], Sequence[str]]],
    ) -> None:
        """A sampled request's served vectors to the serving log, with the plan's stored names and versions."""
        names = [name for name, _ in plan.row_keys]
        log.log(request_context(headers, service), now_us // 1000, plan.entity_type, names, plan.versions, vectors)

    async def get(
        self,
        entity_type: str,
        entity_id: str,
        query: bytes,
        headers: Sequence[tuple[bytes, bytes]] = (),
        caller: Caller = ANONYMOUS,
        client: str = "",
    ) -> bytes:
        key = ("get", entity_type, query.decode("latin-1"))
        plan = self._plans.cached(key)  # a plan without request-time features, under its raw query string
        if plan is None:
            self._check_entity_type(entity_type)
        if not ENTITY_ID.match(entity_id):
            raise ApiError(ErrorCode.BAD_ENTITY_ID, "entity id must be 1-256 characters of A-Z a-z 0-9 _ . : @ -")
        data: dict[str, list[Any]] = {}
        if plan is None:
            params = parse_qs(key[2], keep_blank_values=True)
            names = params.get("names", [None])[-1]
            service = params.get("feature_service", [None])[-1]
            named = ("get-names", entity_type, names, service)
            plan = self._plans.cached(named)
            if plan is None:
                requested = None if names is None else _names([n.strip() for n in names.split(",")])
                plan = self._compile(named, entity_type, requested, service)
            if plan.requests:  # request data varies per request: the plan is kept by names, not by query string
                data = _query_data(plan, params)
            else:
                self._plans.alias(key, plan)
        self._authorize(plan, caller, client)
        (snapshot,) = await self._cache.get_many(entity_type, (entity_id,))
        now_us = self._clock_us()
        features = features_object(plan, snapshot.stored, snapshot.progress, now_us, self._metrics.tally)
        if plan.requests:
            served = request_values(plan, [(snapshot.stored, snapshot.progress)], data, now_us, self._metrics.tally)
            features = _object_in_order(plan, features, [s[0] for s in served], now_us)
        body = {
            "entity_type": entity_type,
            "entity_id": entity_id,
            "served_at": format_ms(now_us // 1000),
            "features": features,
        }
        self._metrics.vectors(plan, 1)
        if self._log is not None and self._log.sampled():
            logged = [features[k] for k in plan.keys]
            vector = (
                entity_id,
                [f["value"] for f in logged],
                [f["feature_timestamp"] for f in logged],
                [f["status"] for f in logged],
            )
            service = parse_qs(key[2]).get("feature_service", [None])[-1]
            self._log_served(self._log, headers, service, now_us, plan, [vector])
        return orjson.dumps(body)

    async def batch(
        self,
        entity_type: str,
        raw: bytes,
        headers: Sequence[tuple[bytes, bytes]] = (),
        caller: Caller = ANONYMOUS,
        client: str = "",
    ) -> bytes:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ApiError(ErrorCode.BAD_JSON, f"request body is not JSON: {exc}") from exc
        if not isinstance(body, dict) or set(body) - {"entity_ids", "names", "feature_service", "request_data"}:
            raise ApiError(
                ErrorCode.BAD_REQUEST,
                "body must be an object with `entity_ids` and optional `names` or `feature_service`, "
                "and `request_data`",
            )
        ids, names, service = body.get("entity_ids"), body.get("names"), body.get("feature_service")
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_BATCH:
            raise ApiError(ErrorCode.BAD_ENTITY_IDS, f"`entity_ids` must list 1-{MAX_BATCH} entity ids")
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise ApiError(ErrorCode.BAD_NAMES, f"`names` must list 1-{MAX_NAMES} non-empty names")
        if service is not None and not isinstance(service, str):
            raise ApiError(ErrorCode.BAD_REQUEST, "`feature_service` must be a string like `name@3`")
        key = ("batch", entity_type, "\x1f".join(names) if names is not None else None, service)
        plan = self._plans.cached(key)
        if plan is None:
            self._check_entity_type(entity_type)
        bad = [i for i in ids if not isinstance(i, str) or not ENTITY_ID.match(i)]
        if bad:
            raise ApiError(
                ErrorCode.BAD_ENTITY_ID,
                "entity ids must be 1-256 characters of A-Z a-z 0-9 _ . : @ -",
                entity_ids=[str(b)[:300] for b in bad[:10]],
            )
        if plan is None:
            plan = self._compile(key, entity_type, None if names is None else _names(names), service)
        data = _body_data(plan, body.get("request_data"), len(ids))
        self._authorize(plan, caller, client)
        snapshots = await self._cache.get_each(entity_type, ids)
        failed = [s for s in snapshots if isinstance(s, StoreUnavailableError)]
        if len(failed) == len(snapshots):
            raise failed[0]  # nothing to serve: the store is down (503)
        now_us = self._clock_us()
        writer = ColumnWriter(plan, now_us, self._metrics.tally)
        self._metrics.vectors(plan, len(ids) - len(failed))
        for _ in failed:
            self._metrics.error(ErrorCode.STORE_UNAVAILABLE)
        results = [
            _unavailable(eid, snap)
            if isinstance(snap, StoreUnavailableError)
            else writer.row(eid, snap.stored, snap.progress)
            for eid, snap in zip(ids, snapshots, strict=True)
        ]
        if self._log is not None and self._log.sampled():
            vectors = [
                (r["entity_id"], r["values"], r["feature_timestamps"], r["statuses"]) for r in results if "values" in r
            ]
            self._log_served(self._log, headers, service, now_us, plan, vectors)
        if plan.requests:
            ok = [i for i, snap in enumerate(snapshots) if not isinstance(snap, StoreUnavailableError)]
            pairs = [
                (s.stored, s.progress) for s in (snapshots[i] for i in ok) if not isinstance(s, StoreUnavailableError)
            ]
            served = request_values(
                plan, pairs, {f: [column[i] for i in ok] for f, column in data.items()}, now_us, self._metrics.tally
            )
            for row, i in enumerate(ok):
                _columns_in_order(plan, results[i], [s[row] for s in served], now_us)
        return orjson.dumps(
            {
                "entity_type": entity_type,
                "served_at": format_ms(now_us // 1000),
                "names": plan.output_keys,
                "versions": plan.output_versions,
                "results": results,
            }
        )


def _query_data(plan: Plan, params: dict[str, list[str]]) -> dict[str, list[Any]]:
    """The request fields of ``plan``'s request-time features from a query string (one value each)."""
    missing = [f.name for f in plan.fields if f.name not in params]
    if missing:
        raise ApiError(
            ErrorCode.BAD_REQUEST_DATA,
            f"request-time features need query parameter(s) {missing}",
            fields=missing,
        )
    try:
        return {f.name: [parse_text(f, params[f.name][-1])] for f in plan.fields}
    except ValueError as exc:
        raise ApiError(ErrorCode.BAD_REQUEST_DATA, str(exc)) from exc


def _body_data(plan: Plan, raw: Any, n: int) -> dict[str, list[Any]]:
    """``request_data`` of a batch body: per request field, one value (or null) per entity id."""
    if raw is None and not plan.fields:
        return {}
    if not isinstance(raw, dict):
        raise ApiError(
            ErrorCode.BAD_REQUEST_DATA,
            "`request_data` must be an object of request fields, each a list with one value per entity id",
        )
    wanted = {f.name: f for f in plan.fields}
    missing = sorted(set(wanted) - set(raw))
    extra = sorted(set(raw) - set(wanted))
    if missing or extra:
        raise ApiError(
            ErrorCode.BAD_REQUEST_DATA,
            f"`request_data` must hold exactly the requested features' request fields: missing {missing}, "
            f"not taken {extra[:20]}",
            fields=missing,
        )
    out: dict[str, list[Any]] = {}
    for name, values in raw.items():
        if not isinstance(values, list) or len(values) != n:
            raise ApiError(
                ErrorCode.BAD_REQUEST_DATA, f"`request_data.{name}` must list {n} values (one per entity id)"
            )
        try:
            out[name] = [check_json(wanted[name], v) for v in values]
        except ValueError as exc:
            raise ApiError(ErrorCode.BAD_REQUEST_DATA, str(exc)) from exc
    return out


def _stamp(ts: int | None, now_us: int) -> tuple[str | None, float | None]:
    return (None, None) if ts is None else (iso(ts), round((now_us - ts * 1000) / 1e6, 3))


def _object_in_order(
    plan: Plan, stored: dict[str, dict[str, Any]], served: list[Served], now_us: int
) -> dict[str, dict[str, Any]]:
    """One entity's features object with its request-time features, in request order."""
    entries: list[tuple[str, dict[str, Any]]] = [("", {})] * len(plan.output_keys)
    for i, key in zip(plan.stored_at, plan.keys, strict=True):
        entries[i] = (key, stored[key])
    for r, (value, ts, status, message) in zip(plan.requests, served, strict=True):
        at, age = _stamp(ts, now_us)
        entry = {"value": value, "feature_timestamp": at, "age_seconds": age, "version": r.feature.version}
        entry["status"] = status
        if message is not None:
            entry["message"] = message
        entries[r.position] = (r.key, entry)
    return dict(entries)


def _columns_in_order(plan: Plan, result: dict[str, Any], served: list[Served], now_us: int) -> None:
    """One entity's batch columns with its request-time features put in request order (in place)."""
    width = len(plan.output_keys)
    columns: dict[str, list[Any]] = {
        k: [None] * width for k in ("values", "feature_timestamps", "age_seconds", "statuses")
    }
    for j, i in enumerate(plan.stored_at):
        for name, column in columns.items():
            column[i] = result[name][j]
    errors: dict[str, str] = {}
    for r, (value, ts, status, message) in zip(plan.requests, served, strict=True):
        at, age = _stamp(ts, now_us)
        columns["values"][r.position] = value
        columns["feature_timestamps"][r.position] = at
        columns["age_seconds"][r.position] = age
        columns["statuses"][r.position] = status
        if message is not None:
            errors[r.key] = message
    result.update(columns)
    if errors:
        result["errors"] = errors


def _unavailable(entity_id: str, error: StoreUnavailableError) -> dict[str, Any]:
    """A batch result for an entity whose read failed while others succeeded: its error, no columns."""
    return {"entity_id": entity_id, "error": ErrorCode.STORE_UNAVAILABLE.value, "message": str(error)}


async def _send(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_HEADERS, (b"content-length", str(len(body)).encode())],
        }
    )
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
            await _send(send, *render(refused))
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


class _Batch(_Endpoint):
    route_path = BATCH_PATH

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        chunks = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BATCH_BODY_BYTES:
                raise ApiError(ErrorCode.BODY_TOO_LARGE, f"request body is larger than {MAX_BATCH_BODY_BYTES} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return await self._reads.batch(
            scope["path_params"]["entity_type"],
            b"".join(chunks),
            scope.get("headers", ()),
            caller_of(scope),
            client_of(scope),
        )


def feature_routes(
    plans: Plans,
    cache: VectorCache,
    metrics: Metrics,
    clock_us: Callable[[], int],
    serving_log: ServingLog | None = None,
    access: Access | None = None,
) -> list[Route]:
    reads = FeatureReads(plans, cache, metrics, clock_us, serving_log, access)
    # The hot GET first; a POST to .../batch only partly matches it (method) and goes on to the batch route.
    return [
        Route(GET_PATH, _Get(reads, metrics), methods=["GET"]),
        Route(BATCH_PATH, _Batch(reads, metrics), methods=["POST"]),
    ]


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

    return router
