"""``/v1/feature-definitions``: register, list, search and inspect feature definitions."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from registry.access import Access
from registry.core.catalog import validation_problems
from registry.core.definitions import FeatureDefinition, validate_registered
from registry.core.errors import UnknownFeatureError
from registry.live import LiveCatalog
from serving.online.auth import authorize_write, client_of
from serving.online.http_errors import ApiError, ErrorCode
from serving.online.keys import members_once
from serving.online.refusals import audited
from serving.online.responses import (
    BAD_PARAMETER,
    STORE_GONE,
    WRITE_REFUSED,
    JSONResponse,
    inline_schema,
    json_object,
    problems,
)
from sinks.names import OFFLINE_TABLE, ONLINE_TABLE, StoreNames

MAX_BODY_BYTES = 256 * 1024


def lineage_json(d: FeatureDefinition, stores: StoreNames | None = None) -> dict[str, str]:
    """A definition's lineage: its source topic and event subject, its transform, and the tables it is stored in;
    with ``stores`` the latter also as ``<keyspace>.<table>`` and ``<namespace>.<table>``."""
    lineage = {
        "source_topic": d.source.topic,
        "event_subject": d.source.subject,
        "transform": d.transform_ref,
        "online_table": ONLINE_TABLE,
        "offline_table": OFFLINE_TABLE,
    }
    if stores is not None:
        lineage["online_table_qualified"] = f"{stores.cassandra_keyspace}.{ONLINE_TABLE}"
        lineage["offline_table_qualified"] = f"{stores.iceberg_namespace}.{OFFLINE_TABLE}"
    return lineage


def definition_json(
    d: FeatureDefinition, active_version: int | None = None, stores: StoreNames | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = d.model_dump(mode="json")
    body.update(
        value_schema=d.value_schema,
        transform_ref=d.transform_ref,
        transform_hash=d.transform_hash,
        identity_hash=d.identity_hash,
        key_fields=list(d.source.key_fields),  # the event fields keying the entity, in key order (docs/design.md §5.8)
        lineage=lineage_json(d, stores),
    )
    if active_version is not None:
        body["active_version"] = active_version
    return body


def _matches(d: FeatureDefinition, entity: str | None, owner: str | None, tag: str | None, q: str | None) -> bool:
    if entity is not None and d.entity != entity:
        return False
    if owner is not None and d.owner != owner:
        return False
    if tag is not None and tag not in d.tags:
        return False
    if q is not None:
        text = " ".join((d.name, d.description, *d.tags, *d.aliases)).lower()
        return all(word in text for word in q.lower().split())
    return True


def query_once(request: Request, name: str) -> None:
    """400 ``bad_request`` for query parameter ``name`` given more than once: never one of its values picked (a
    ``?version=1&version=2`` activation moved the pointer to v2)."""
    given = len(request.query_params.getlist(name))
    if given > 1:
        raise ApiError(
            ErrorCode.BAD_REQUEST, f"query parameter `{name}` is given more than once ({given} times): give it once"
        )


_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")  # what a JSON integer writes: no `+`, leading zero, `.0` or space


def version_once(request: Request) -> None:
    """400 ``bad_request`` for ``?version=`` given more than once, or not written as an integer is (``1.0``, ``+1``,
    ``01`` and `` 1`` were taken as 1, as a definition's body refuses ``7.0``); a well-formed version no feature has
    (``0``, ``2147483648``) is left to answer 404, up to 4,300 digits: a longer one is refused by the parameter's
    own parsing (Python's limit on converting text to int), 400 ``bad_request``."""
    query_once(request, "version")
    raw = request.query_params.get("version")
    if raw is not None and _INTEGER.fullmatch(raw) is None:
        raise ApiError(ErrorCode.BAD_REQUEST, f"query.version: must be an integer such as 2, not {raw[:100]!r}")


def _repeated(obj: Any, where: str = "") -> list[str]:
    """The dotted paths of the members given more than once in ``obj`` (as ``keys.with_repeats`` read it)."""
    found = [f"{where}{name}" for name in getattr(obj, "repeated", ())]
    if isinstance(obj, dict):
        for name, value in obj.items():
            found += _repeated(value, f"{where}{name}.")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            found += _repeated(value, f"{where}{i}.")
    return found


async def registration_body(request: Request, error: ErrorCode) -> dict[str, Any]:
    """A definition's or feature service's body as a JSON object; a member given more than once anywhere in it is
    ``error`` (422) naming it, never one of its values kept (JSON parsers keep the last: ``"ttl"`` twice)."""
    body, raw = await json_object(request, max_bytes=MAX_BODY_BYTES, error=error)
    read = members_once(raw, body)
    if read is not body and (twice := _repeated(read)):
        raise ApiError(error, f"member(s) {twice} given more than once: give each once")
    return body


def validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{where or 'body'}: {msg}" for where, msg in validation_problems(exc))


def _owners(live: LiveCatalog, access: Access, entity: str, name: str, version: int | None = None) -> list[str | None]:
    """The teams whose role a write to the feature needs: its latest version's ``owner`` (None for a new
    feature) and, with ``version``, that version's. Read from the store, not the cached catalog; empty with auth off."""
    if not access.enabled:
        return []
    catalog = live.store.catalog()
    versions = catalog.versions(entity, name)
    owners: list[str | None] = [versions[-1].owner if versions else None]
    if version is not None:
        with contextlib.suppress(UnknownFeatureError):  # the activation itself answers 404
            owners.append(catalog.get(entity, name, version).owner)
    return owners


def _request_schema() -> dict[str, Any]:
    """A definition to register: ``FeatureDefinition`` with ``version`` optional (without it the store picks the
    latest version if its transform and TTL are the same, else the next number)."""
    schema = inline_schema(FeatureDefinition.model_json_schema(mode="validation"))
    schema["required"] = [name for name in schema.get("required", []) if name != "version"]
    schema["properties"]["version"]["description"] = (
        "omitted: the latest version if its transform and TTL are the same, else the next number"
    )
    return schema


def definitions_router(live: LiveCatalog, access: Access, stores: StoreNames | None = None) -> APIRouter:
    router = APIRouter(prefix="/v1/feature-definitions", tags=["definitions"])

    @router.get("", responses=problems({400: f"{BAD_PARAMETER} (`entity`, `owner`, `tag`, `q`: each at most once)"}))
    def search(
        request: Request,
        entity: str | None = None,
        owner: str | None = None,
        tag: str | None = None,
        q: str | None = None,
    ) -> JSONResponse:
        """Active definitions, filtered by entity, owner, tag and words in name/description/tags."""
        for parameter in ("entity", "owner", "tag", "q"):
            query_once(request, parameter)
        catalog = live.current()
        found = [d for d in catalog.active() if _matches(d, entity, owner, tag, q)]
        return JSONResponse([definition_json(d, d.version, stores) for d in sorted(found, key=lambda d: d.key)])

    @router.post(
        "",
        responses={
            200: {"description": "`unchanged` (the same content) or `metadata_updated`"},
            201: {"description": "`created` (a new feature) or `new_version`"},
            **problems(
                {
                    400: f"`bad_json`: the body is not JSON; {BAD_PARAMETER} (`activate`, at most once)",
                    409: "`version_conflict`: the version is registered with another identity (its transform or its TTL: "
                    "other fields of the same identity update the version's metadata, 200 `metadata_updated`), the "
                    "version is below the latest registered one, or what is registered refuses it (its name or a key "
                    "field taken by a request-time feature)",
                    403: WRITE_REFUSED,
                    408: "`body_timeout`: the body did not arrive whole within `FS_BODY_TIMEOUT_MS`",
                    413: "`body_too_large`",
                    422: "`invalid_definition`, naming the field",
                    503: STORE_GONE,
                }
            ),
        },
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": _request_schema()}}}
        },
    )
    async def register(request: Request, activate: bool = False) -> JSONResponse:
        query_once(request, "activate")
        body = await registration_body(request, ErrorCode.INVALID_DEFINITION)
        # The store's write waits for SQLite's write lock (up to its 30 s timeout): off the event loop, in the
        # thread pool a synchronous route runs in, so reads go on meanwhile.
        return await run_in_threadpool(_register, request, body, activate)

    def _register(request: Request, body: dict[str, Any], activate: bool) -> JSONResponse:
        version_given = "version" in body
        body.setdefault("version", 1)
        try:
            definition = validate_registered(body, live.store.holds if version_given else None)
        except ValidationError as exc:
            raise ApiError(ErrorCode.INVALID_DEFINITION, validation_message(exc)) from exc
        target = f"{definition.entity}/{definition.name}@{definition.version}"
        # a metadata update of a registered version needs that version's owner too (the store checks it again)
        rewritten = definition.version if version_given else None
        owners = [definition.owner, *_owners(live, access, definition.entity, definition.name, rewritten)]
        caller = authorize_write(access, request.scope, "register_definition", target, owners)
        with audited(access, caller, "register_definition", target, client_of(request.scope)):  # a 409 too
            result = live.store.register(
                definition,
                version_given=version_given,
                activate=activate,
                # checked again inside the write: another team may have registered the feature since ``_owners``
                owned_by=caller.team if access.enabled and not caller.admin else None,
            )
        live.invalidate()
        status = 201 if result.action in ("created", "new_version") else 200
        target = f"{definition.entity}/{definition.name}@{result.definition.version}"
        access.write_audited(caller, "register_definition", target, status, client_of(request.scope), result.action)
        return JSONResponse(
            {"result": result.action, "definition": definition_json(result.definition, result.active_version, stores)},
            status_code=status,
        )

    @router.get(
        "/{entity}/{name}",
        responses=problems(
            {400: f"{BAD_PARAMETER} (`version`, at most once)", 404: "`unknown_feature`: no such feature or version"}
        ),
    )
    def get(request: Request, entity: str, name: str, version: int | None = None) -> JSONResponse:
        version_once(request)
        catalog = live.current()
        d = catalog.get(entity, name, version)
        body = definition_json(d, catalog.get(entity, d.name).version, stores)
        body["versions"] = [v.version for v in catalog.versions(entity, d.name)]
        return JSONResponse(body)

    @router.get("/{entity}/{name}/history", responses=problems({404: "`unknown_feature`"}))
    def history(entity: str, name: str) -> JSONResponse:
        """The feature's changes, oldest first; a former name (alias) answers the feature's own history, as it
        answers the feature itself."""
        d = live.current().get(entity, name)  # 404 for an unknown feature
        return JSONResponse(live.store.history(entity, d.name))

    @router.post(
        "/{entity}/{name}/activate",
        responses=problems(
            {
                400: f"{BAD_PARAMETER} (`version`, required, given once)",
                403: WRITE_REFUSED,
                404: "`unknown_feature`: no such feature or version",
                422: "`invalid_definition`: the version would make its stream read its topic two ways",
                503: STORE_GONE,
            }
        ),
    )
    def activate_version(request: Request, entity: str, name: str, version: int) -> JSONResponse:
        version_once(request)
        target = f"{entity}/{name}@{version}"
        caller = authorize_write(
            access, request.scope, "activate", target, _owners(live, access, entity, name, version)
        )
        with audited(access, caller, "activate", target, client_of(request.scope)):  # a 404 or 422 too
            # the owners checked again inside the write: an admin may have moved the feature to another team since
            live.store.activate(
                entity, name, version, owned_by=caller.team if access.enabled and not caller.admin else None
            )
        live.invalidate()
        access.write_audited(caller, "activate", target, 200, client_of(request.scope))
        return JSONResponse({"entity": entity, "name": name, "active_version": version})

    return router
