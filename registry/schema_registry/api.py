"""HTTP front of the schema store, in the REST dialect that Confluent's clients speak.

Shapes, status codes and ``error_code`` values follow Confluent Schema Registry's REST API, so
``confluent_kafka.schema_registry.SchemaRegistryClient`` and the Avro serdes work unchanged. Handlers
are plain module functions that find the store on ``request.app.state``; the store raises typed
errors and :func:`_error_for` is the one place that turns them into status codes.

Request bodies are read with a size cap and checked against the fields Confluent defines: a field it
does not define is refused by name (a typo such as ``schemaTyp`` would otherwise be silently
ignored), and a field it defines that this registry does not implement is accepted only when empty.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry.core import bounded_json
from registry.core.errors import SchemaError, StoreUnavailableError
from registry.schema_registry.avro_compat import InvalidCompatibilityLevelError
from registry.schema_registry.store import (
    AlreadySoftDeletedError,
    ConfigNotFoundError,
    IncompatibleSchemaError,
    InvalidSchemaError,
    InvalidVersionError,
    NotSoftDeletedError,
    SchemaNotFoundError,
    SchemaStore,
    SubjectNotFoundError,
    VersionNotFoundError,
)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
MAX_BODY_BYTES = 1 << 20

# Fields of Confluent's RegisterSchemaRequest. The first set is implemented; the second is accepted
# only when null or empty (they carry data-contract metadata, rules, import-mode ids and tags).
_SCHEMA_FIELDS = frozenset({"schema", "schemaType", "references"})
_SCHEMA_FIELDS_IF_EMPTY = frozenset(
    {"metadata", "ruleSet", "version", "id", "schemaTagsToAdd", "schemaTagsToRemove", "propagateSchemaTags"}
)
# Fields of Confluent's ConfigUpdateRequest, split the same way.
_CONFIG_FIELDS = frozenset({"compatibility", "compatibilityLevel"})
_CONFIG_FIELDS_IF_EMPTY = frozenset(
    {
        "alias",
        "normalize",
        "validateFields",
        "validateRules",
        "compatibilityGroup",
        "defaultMetadata",
        "overrideMetadata",
        "defaultRuleSet",
        "overrideRuleSet",
    }
)


class RequestRejectedError(SchemaError):
    """A request this registry will not act on; carries Confluent's status and error code."""

    def __init__(self, status: int, code: int, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


# --------------------------------------------------------------------------------------------------
# Replies and errors
# --------------------------------------------------------------------------------------------------


def _reply(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=CONTENT_TYPE)


def _error(status: int, code: int, message: str) -> JSONResponse:
    return _reply({"error_code": code, "message": message}, status)


def _error_for(exc: SchemaError) -> tuple[int, int]:
    """(HTTP status, Confluent error code) of a store error; subclasses before their bases."""
    if isinstance(exc, RequestRejectedError):
        return exc.status, exc.code
    if isinstance(exc, AlreadySoftDeletedError):
        return 404, 40404 if exc.version is None else 40406
    if isinstance(exc, NotSoftDeletedError):
        return 404, 40405 if exc.version is None else 40407
    table: list[tuple[type[SchemaError], int, int]] = [
        (SubjectNotFoundError, 404, 40401),
        (VersionNotFoundError, 404, 40402),
        (ConfigNotFoundError, 404, 40408),
        (SchemaNotFoundError, 404, 40403),
        (IncompatibleSchemaError, 409, 409),
        (InvalidSchemaError, 422, 42201),
        (InvalidVersionError, 422, 42202),
        (InvalidCompatibilityLevelError, 422, 42203),
    ]
    return next(((status, code) for kind, status, code in table if isinstance(exc, kind)), (500, 50001))


async def _on_schema_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, SchemaError)
    status, code = _error_for(exc)
    return _error(status, code, str(exc))


async def _on_store_unavailable(_: Request, exc: Exception) -> Response:
    return _error(500, 50002, str(exc))


async def _on_http_error(_: Request, exc: Exception) -> Response:
    """Unknown routes and methods, in Confluent's error shape instead of FastAPI's ``{"detail": ...}``."""
    assert isinstance(exc, StarletteHTTPException)
    return _error(exc.status_code, exc.status_code, f"HTTP {exc.status_code} {exc.detail}")


async def _on_validation_error(_: Request, exc: Exception) -> Response:
    return _error(422, 422, str(exc))


# --------------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------------


def _store(request: Request) -> SchemaStore:
    store: SchemaStore = request.app.state.schema_store
    return store


def _flag(request: Request, name: str) -> bool:
    """A boolean query parameter; Python clients send ``True``/``False``."""
    return request.query_params.get(name, "false").strip().lower() in ("true", "1")


MAX_SCHEMA_ID = 2**31 - 1  # Confluent's ids are 32-bit


def _schema_id(text: str) -> int:
    try:
        schema_id = int(text)
    except ValueError:
        raise SchemaNotFoundError(f"schema id {text[:100]} not found") from None
    if not 0 <= schema_id <= MAX_SCHEMA_ID:  # no such id, and past what the store's integers hold
        raise SchemaNotFoundError(f"schema id {text[:100]} not found")
    return schema_id


async def _json_body(request: Request) -> Any:
    """The request body as JSON, refused past :data:`MAX_BODY_BYTES` without reading it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestRejectedError(413, 41301, f"request body larger than {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestRejectedError(413, 41301, f"request body larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    try:
        return bounded_json.loads(b"".join(chunks))
    except bounded_json.NestingError as exc:
        raise RequestRejectedError(422, 42201, f"request body is {exc}") from None
    except ValueError:
        raise RequestRejectedError(422, 42201, "request body is not JSON") from None


def _is_empty(value: Any) -> bool:
    return value is None or value is False or value == [] or value == {}


def _check_fields(body: dict[str, Any], known: frozenset[str], if_empty: frozenset[str]) -> None:
    unknown = sorted(set(body) - known - if_empty)
    if unknown:
        raise RequestRejectedError(
            422, 422, f"unknown field(s) in request body: {', '.join(unknown)}; accepted: {', '.join(sorted(known))}"
        )
    unsupported = sorted(k for k in if_empty if not _is_empty(body.get(k)))
    if unsupported:
        raise RequestRejectedError(
            422, 422, f"field(s) {', '.join(unsupported)} are not supported by this registry; send null or omit them"
        )


async def _schema_from(request: Request) -> str:
    """The schema text of a register / lookup / compatibility request."""
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise RequestRejectedError(422, 42201, "request body needs a string field `schema`")
    _check_fields(body, _SCHEMA_FIELDS, _SCHEMA_FIELDS_IF_EMPTY)
    if not isinstance(body.get("schema"), str):
        raise RequestRejectedError(422, 42201, "request body needs a string field `schema`")
    schema_type = body.get("schemaType") or "AVRO"
    if schema_type != "AVRO":
        raise RequestRejectedError(422, 42201, f"schemaType {schema_type!r} is not supported; only AVRO")
    if not _is_empty(body.get("references")):
        raise RequestRejectedError(
            422, 42201, "schema references are not supported yet; inline the referenced named types in the schema"
        )
    return str(body["schema"])


async def _level_from(request: Request) -> Any:
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise RequestRejectedError(422, 422, 'request body must be a JSON object such as {"compatibility": "BACKWARD"}')
    _check_fields(body, _CONFIG_FIELDS, _CONFIG_FIELDS_IF_EMPTY)
    return body.get("compatibility") or body.get("compatibilityLevel")


def _version_body(found: Any) -> dict[str, Any]:
    return {"subject": found.subject, "version": found.version, "id": found.id, "schema": found.schema}


# --------------------------------------------------------------------------------------------------
# Subjects and versions
# --------------------------------------------------------------------------------------------------


def health(request: Request) -> JSONResponse:
    return _reply({"status": "ok"})


def list_subjects(request: Request) -> JSONResponse:
    deleted_only = _flag(request, "deleted_only") or _flag(request, "deletedOnly")
    return _reply(_store(request).subjects(deleted=_flag(request, "deleted"), deleted_only=deleted_only))


def list_versions(request: Request, subject: str) -> JSONResponse:
    return _reply(_store(request).versions(subject, deleted=_flag(request, "deleted")))


def get_version(request: Request, subject: str, version: str) -> JSONResponse:
    return _reply(_version_body(_store(request).version(subject, version, deleted=_flag(request, "deleted"))))


def get_version_schema(request: Request, subject: str, version: str) -> Response:
    found = _store(request).version(subject, version, deleted=_flag(request, "deleted"))
    return Response(found.schema, media_type=CONTENT_TYPE)


async def register(request: Request, subject: str) -> JSONResponse:
    schema = await _schema_from(request)
    registered = await run_in_threadpool(_store(request).register, subject, schema)
    return _reply({"id": registered.id})


async def lookup(request: Request, subject: str) -> JSONResponse:
    schema = await _schema_from(request)
    store, deleted = _store(request), _flag(request, "deleted")
    found = await run_in_threadpool(lambda: store.lookup(subject, schema, deleted=deleted))
    return _reply(_version_body(found))


def delete_subject(request: Request, subject: str) -> JSONResponse:
    return _reply(_store(request).delete_subject(subject, permanent=_flag(request, "permanent")))


def delete_version(request: Request, subject: str, version: str) -> JSONResponse:
    return _reply(_store(request).delete_version(subject, version, permanent=_flag(request, "permanent")))


# --------------------------------------------------------------------------------------------------
# Schemas by id
# --------------------------------------------------------------------------------------------------


def get_schema(request: Request, schema_id: str) -> JSONResponse:
    return _reply({"schema": _store(request).by_id(_schema_id(schema_id))})


def get_raw_schema(request: Request, schema_id: str) -> Response:
    return Response(_store(request).by_id(_schema_id(schema_id)), media_type=CONTENT_TYPE)


def get_schema_subjects(request: Request, schema_id: str) -> JSONResponse:
    return _reply(_store(request).subjects_of_id(_schema_id(schema_id), deleted=_flag(request, "deleted")))


def get_schema_versions(request: Request, schema_id: str) -> JSONResponse:
    pairs = _store(request).versions_of_id(_schema_id(schema_id), deleted=_flag(request, "deleted"))
    return _reply([{"subject": subject, "version": version} for subject, version in pairs])


def schema_types(request: Request) -> JSONResponse:
    return _reply(["AVRO"])


# --------------------------------------------------------------------------------------------------
# Compatibility, config, mode
# --------------------------------------------------------------------------------------------------


async def _compatibility(request: Request, subject: str, version: str | None) -> JSONResponse:
    schema = await _schema_from(request)
    store = _store(request)
    problems = await run_in_threadpool(store.check_compatibility, subject, schema, version)
    return _reply({"is_compatible": not problems, "messages": problems if _flag(request, "verbose") else []})


async def check_against_version(request: Request, subject: str, version: str) -> JSONResponse:
    return await _compatibility(request, subject, version)


async def check_against_all(request: Request, subject: str) -> JSONResponse:
    return await _compatibility(request, subject, None)


def get_global_config(request: Request) -> JSONResponse:
    return _reply({"compatibilityLevel": _store(request).compatibility().value})


async def put_global_config(request: Request) -> JSONResponse:
    level = await _level_from(request)
    store = _store(request)
    return _reply({"compatibility": (await run_in_threadpool(store.set_compatibility, level)).value})


def delete_global_config(request: Request) -> JSONResponse:
    return _reply({"compatibilityLevel": _store(request).delete_compatibility().value})


def get_subject_config(request: Request, subject: str) -> JSONResponse:
    store = _store(request)
    level = store.compatibility(subject) if _flag(request, "defaultToGlobal") else store.subject_compatibility(subject)
    if level is None:
        raise ConfigNotFoundError(f"subject {subject!r} does not have subject-level compatibility configured")
    return _reply({"compatibilityLevel": level.value})


async def put_subject_config(request: Request, subject: str) -> JSONResponse:
    level = await _level_from(request)
    store = _store(request)
    return _reply({"compatibility": (await run_in_threadpool(store.set_compatibility, level, subject)).value})


def delete_subject_config(request: Request, subject: str) -> JSONResponse:
    try:
        level = _store(request).delete_compatibility(subject)
    except ConfigNotFoundError as exc:  # Confluent answers "subject not found" here
        raise SubjectNotFoundError(str(exc)) from exc
    return _reply({"compatibilityLevel": level.value})


def get_mode(request: Request) -> JSONResponse:
    return _reply({"mode": "READWRITE"})


def get_subject_mode(request: Request, subject: str) -> JSONResponse:
    return _reply({"mode": "READWRITE"})


_Handler = Callable[..., Any]
_ROUTES: list[tuple[str, str, _Handler]] = [
    ("GET", "/health", health),
    ("GET", "/subjects", list_subjects),
    ("GET", "/subjects/{subject}/versions", list_versions),
    ("POST", "/subjects/{subject}/versions", register),
    ("GET", "/subjects/{subject}/versions/{version}", get_version),
    ("DELETE", "/subjects/{subject}/versions/{version}", delete_version),
    ("GET", "/subjects/{subject}/versions/{version}/schema", get_version_schema),
    ("POST", "/subjects/{subject}", lookup),
    ("DELETE", "/subjects/{subject}", delete_subject),
    ("GET", "/schemas/types", schema_types),
    ("GET", "/schemas/ids/{schema_id}", get_schema),
    ("GET", "/schemas/ids/{schema_id}/schema", get_raw_schema),
    ("GET", "/schemas/ids/{schema_id}/subjects", get_schema_subjects),
    ("GET", "/schemas/ids/{schema_id}/versions", get_schema_versions),
    ("POST", "/compatibility/subjects/{subject}/versions/{version}", check_against_version),
    ("POST", "/compatibility/subjects/{subject}/versions", check_against_all),
    ("GET", "/config", get_global_config),
    ("PUT", "/config", put_global_config),
    ("DELETE", "/config", delete_global_config),
    ("GET", "/config/{subject}", get_subject_config),
    ("PUT", "/config/{subject}", put_subject_config),
    ("DELETE", "/config/{subject}", delete_subject_config),
    ("GET", "/mode", get_mode),
    ("GET", "/mode/{subject}", get_subject_mode),
]

_ERROR_HANDLERS: list[tuple[type[Exception], Callable[[Request, Exception], Awaitable[Response]]]] = [
    (SchemaError, _on_schema_error),
    (StoreUnavailableError, _on_store_unavailable),
    (StarletteHTTPException, _on_http_error),
    (RequestValidationError, _on_validation_error),
]


def create_schema_registry_app(store: SchemaStore) -> FastAPI:
    """The registry's ASGI app over ``store``; nothing is shared between apps."""
    app = FastAPI(title="feature-store schema registry", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.schema_store = store
    for method, path, handler in _ROUTES:
        app.add_api_route(path, handler, methods=[method], response_class=JSONResponse)
    for kind, on_error in _ERROR_HANDLERS:
        app.add_exception_handler(kind, on_error)
    return app
