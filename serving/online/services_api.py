"""``/v1/feature-services``: register, list and inspect feature services (pinned feature versions)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from registry.access import Access
from registry.access_store import Caller
from registry.core.definitions import MAX_VERSION
from registry.core.errors import ForbiddenError
from registry.feature_services import Action, FeatureService, LiveFeatureServices, RegisteredService
from registry.gate import PinnedFeature
from registry.live import LiveCatalog
from serving.online.auth import authorize_write, client_of
from serving.online.definitions_api import registration_body, validation_message
from serving.online.features_api import check_service_ref
from serving.online.features_docs import SERVICE_REF_PATTERN, VERSION_PATTERN
from serving.online.http_errors import ApiError, ErrorCode
from serving.online.refusals import audited
from serving.online.responses import BAD_PARAMETER, STORE_GONE, JSONResponse, inline_schema, problems

_VERSION = re.compile(r"[1-9][0-9]{0,9}")  # a version as `name@N` writes it: no sign, leading zero, `.0` or space


def service_json(s: FeatureService) -> dict[str, Any]:
    return {**s.model_dump(mode="json"), "ref": s.ref}


# --- the OpenAPI description of bodies (the routes read and write plain JSON) --------------------------------------


class FeatureServiceDoc(BaseModel):
    """A stored feature service version, as ``service_json`` writes it."""

    name: str
    version: int
    description: str
    features: list[PinnedFeature]
    ref: str = Field(description="`name@version`")


class FeatureServiceVersionsDoc(FeatureServiceDoc):
    versions: list[int] = Field(description="every registered version of the service, oldest first")


class RegisteredServiceDoc(BaseModel):
    result: Action
    feature_service: FeatureServiceDoc


def _request_schema() -> dict[str, Any]:
    """A service to register: ``FeatureService`` with ``version`` optional (without it the store picks the latest
    version holding the same content, or the next number)."""
    schema = inline_schema(FeatureService.model_json_schema())
    schema["required"] = [name for name in schema["required"] if name != "version"]
    schema["properties"]["features"]["uniqueItems"] = True  # (a pin twice is refused, as any feature pinned twice)
    schema["properties"]["version"]["description"] = (
        "omitted: the latest version if its content is the same, else the next number"
    )
    return schema


def services_router(live: LiveCatalog, services: LiveFeatureServices, access: Access) -> APIRouter:
    router = APIRouter(prefix="/v1/feature-services", tags=["feature services"])

    @router.get(
        "",
        summary="Every registered feature service version",
        responses={200: {"model": list[FeatureServiceDoc], "description": "by name, then version"}},
    )
    def list_services() -> JSONResponse:
        return JSONResponse([service_json(s) for s in services.current().all()])

    @router.post(
        "",
        summary="Register a feature service version (201 created, 200 unchanged, 409 conflict)",
        responses={
            200: {
                "model": RegisteredServiceDoc,
                "description": "`unchanged`: this version is registered with the same content",
            },
            201: {"model": RegisteredServiceDoc, "description": "`created` (a new service) or `new_version`"},
            **problems(
                {
                    400: "`bad_json`: the body is not JSON",
                    403: "`forbidden` (auth on): the service belongs to another team (its first registrant)",
                    404: "`unknown_feature`: a pinned feature version is not registered (`entity_type`: the first entity type, in "
                    "pin order, with an unknown pin; `names`: all of that type's unknown pins)",
                    409: "`version_conflict`: the version is registered with other features",
                    408: "`body_timeout`: the body did not arrive whole within `FS_BODY_TIMEOUT_MS`",
                    413: "`body_too_large`",
                    422: "`invalid_feature_service`: the body is not a valid service, or the catalog cannot "
                    "serve a pin as pinned",
                    503: STORE_GONE,
                }
            ),
        },
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": _request_schema()}}}
        },
    )
    async def register(request: Request) -> JSONResponse:
        body = await registration_body(request, ErrorCode.INVALID_FEATURE_SERVICE)
        # off the event loop: the store's write waits for SQLite's write lock (definitions_api's register)
        return await run_in_threadpool(_register, request, body)

    def _write(
        request: Request, caller: Caller, target: str, service: FeatureService, version_given: bool
    ) -> RegisteredService:
        # The registry's refusals once the target is known are recorded too: the catalog's cross-checks, a 409
        with audited(access, caller, "register_feature_service", target, client_of(request.scope)):
            live.invalidate()  # pins checked against the store as it is now, not as of the last reload
            mismatches = service.check(live.current())  # UnknownFeatureError (404) for a pin not registered
            if mismatches:
                raise ApiError(ErrorCode.INVALID_FEATURE_SERVICE, "; ".join(mismatches))
            return services.store.register(service, version_given=version_given)

    def _register(request: Request, body: dict[str, Any]) -> JSONResponse:
        version_given = "version" in body
        body.setdefault("version", 1)
        try:
            service = FeatureService.model_validate(body)
        except ValidationError as exc:
            raise ApiError(ErrorCode.INVALID_FEATURE_SERVICE, validation_message(exc)) from exc
        target = f"feature_service:{service.name}"
        store = access.store if access.enabled else None
        owner = store.owner("feature_service", service.name) if store is not None else None
        caller = authorize_write(access, request.scope, "register_feature_service", target, (owner,))
        if store is not None and owner is None and not caller.admin and services.store.has_versions(service.name):
            # registered while auth was off: an admin's to write, not the first team's to claim (as a schema subject)
            access.write_audited(caller, "register_feature_service", target, 403, client_of(request.scope))
            raise ForbiddenError(f"{caller.who} may not write {target}: no team owns it: needs an admin token")
        if store is None:
            result = _write(request, caller, target, service, version_given)
        else:
            # A new service is claimed before the write, atomically: of two teams registering it at once, one owns
            # it and the other is refused here. The write is recorded as under way until it ends, so no failed
            # request of the team gives the claim back meanwhile (another team then owned this write's version).
            owner, _, write_id = store.begin_write("feature_service", service.name, caller.team)
            written = False
            try:
                authorize_write(access, request.scope, "register_feature_service", target, (owner,))
                result = _write(request, caller, target, service, version_given)
                written = True
            finally:  # nothing registered by this request: nor its claim, unless a version is there by now
                store.end_write(
                    write_id,
                    "feature_service",
                    service.name,
                    wrote=written,
                    unused=lambda: not services.store.has_versions(service.name),
                )
        services.invalidate()
        status = 200 if result.action == "unchanged" else 201
        access.write_audited(
            caller, "register_feature_service", f"{target}@{result.service.version}", status, client_of(request.scope)
        )
        return JSONResponse(
            {"result": result.action, "feature_service": service_json(result.service)}, status_code=status
        )

    @router.get(
        "/{name}",
        summary="A feature service's latest version, or `?version=`",
        responses={
            200: {"model": FeatureServiceVersionsDoc, "description": "the version, and every version's number"},
            **problems(
                {
                    400: f"{BAD_PARAMETER} (`name` not `name`, `name@N` or `name@vN`; `version` not `[1-9][0-9]*` in "
                    f"1-{MAX_VERSION}, or given twice)",
                    404: "`unknown_feature_service`",
                }
            ),
        },
    )
    def get(
        request: Request,
        name: Annotated[
            str,
            Path(
                description="`name`, `name@N` or `name@vN`",
                json_schema_extra={"pattern": SERVICE_REF_PATTERN},  # documented: the route checks it (its message)
            ),
        ],
        version: Annotated[
            str | None,
            Query(
                description=f"a version as `name@N` writes it: `[1-9][0-9]*`, at most {MAX_VERSION}; not with `name@N`",
                json_schema_extra={"pattern": f"^{VERSION_PATTERN}$"},
            ),
        ] = None,
    ) -> JSONResponse:
        check_service_ref(name, "name")  # malformed: 400 naming the parameter; well-formed but unknown: 404
        if version is not None:
            if len(request.query_params.getlist("version")) > 1:  # never one of them picked, as for `names`
                raise ApiError(ErrorCode.BAD_REQUEST, "query parameter `version` is given more than once: give it once")
            if "@" in name:
                raise ApiError(ErrorCode.BAD_REQUEST, "give the version in `name` (`name@N`) or `version`, not both")
            # the path form's grammar, not int(): `01`, `+1`, `1.0`, ` 1` are refused as `name@01` is
            if _VERSION.fullmatch(version) is None or int(version) > MAX_VERSION:
                raise ApiError(ErrorCode.BAD_REQUEST, f"`version` must be in 1-{MAX_VERSION}, not {version[:300]!r}")
        index = services.current()
        found = index.get(name if version is None else f"{name}@{version}")
        body = service_json(found)
        body["versions"] = [s.version for s in index.all() if s.name == found.name]
        return JSONResponse(body)

    return router
