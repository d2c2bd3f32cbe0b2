"""HTTP front of the schema store, in the REST dialect that Confluent's clients speak.

Shapes, status codes and ``error_code`` values follow Confluent Schema Registry's REST API, so
``confluent_kafka.schema_registry.SchemaRegistryClient`` and the Avro serdes work unchanged. Handlers
are plain module functions that find the store on ``request.app.state``; the store and the request
readers raise :class:`~registry.schema_registry.errors.RegistryError`, whose kind (one table in
``errors.py``) fixes the status, Confluent's ``error_code`` and the message.

Request bodies are read with a size cap and checked against the fields Confluent defines: a field it
does not define is refused by name (a typo such as ``schemaTyp`` would otherwise be silently
ignored), and a field it defines that this registry does not implement is accepted only when empty.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from registry.access import Access
from registry.core import bounded_json
from registry.core.errors import SchemaError, StoreUnavailableError
from registry.core.shown import shown
from registry.http_head import HeadAsGet, allowed_methods
from registry.http_target import OriginForm
from registry.schema_registry import avro_compat, jackson
from registry.schema_registry.auth import RegistryAuth
from registry.schema_registry.errors import (
    HTTP_ERROR_TEMPLATE,
    ConfigNotFoundError,
    InvalidCompatibilityLevelError,
    InvalidSchemaError,
    InvalidSchemaTypeError,
    InvalidSubjectError,
    ModeNotFoundError,
    RegistryError,
    RegistryErrorKind,
    SchemaNotFoundError,
    SubjectNotFoundError,
)
from registry.schema_registry.jackson import java_int
from registry.schema_registry.paths import SubjectRoute
from registry.schema_registry.schemas import RegisteredSchema, SchemaReference, StoredSchema, parse_references
from registry.schema_registry.store import SchemaStore

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
auth_log = logging.getLogger("featurestore.auth")
bug_log = logging.getLogger("featurestore.schema_registry")
MAX_BODY_BYTES = 1 << 20
DEFAULT_BODY_TIMEOUT_MS = 1_000  # FS_BODY_TIMEOUT_MS, as the feature API's: a body arrives whole within it, or 408

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
        "aliasForDeks",
        "normalize",
        "validateFields",
        "validateNewSchemas",
        "validateRules",
        "compatibilityPolicy",
        "compatibilityGroup",
        "defaultMetadata",
        "overrideMetadata",
        "defaultRuleSet",
        "overrideRuleSet",
    }
)


# --------------------------------------------------------------------------------------------------
# Replies and errors
# --------------------------------------------------------------------------------------------------


def _reply(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=CONTENT_TYPE)


async def _on_registry_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    return _reply(exc.body(), exc.status)


async def _on_schema_error(_: Request, exc: Exception) -> Response:
    """A SchemaError that is not a RegistryError is a bug here: Confluent's store error, not a 4xx."""
    return _reply(RegistryError(RegistryErrorKind.STORE_ERROR, detail=str(exc)).body(), 500)


async def _on_store_unavailable(_: Request, exc: Exception) -> Response:
    return _reply(RegistryError(RegistryErrorKind.STORE_UNAVAILABLE, detail=str(exc)).body(), 500)


async def _on_bug(request: Request, exc: Exception) -> Response:
    """Any other exception is a bug: answered in Confluent's shape (a client reads ``error_code``), never
    Starlette's plain-text page; the traceback goes to the log, not to the caller."""
    bug_log.error("%s %s failed", request.method, shown(request.url.path), exc_info=exc)  # one line, however sent
    detail = f"internal error ({type(exc).__name__}); the registry's log has its traceback"
    return _reply(RegistryError(RegistryErrorKind.STORE_ERROR, detail=detail).body(), 500)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and methods, in Confluent's (Jersey's) shape instead of FastAPI's ``{"detail": ...}``."""
    assert isinstance(exc, StarletteHTTPException)
    message = HTTP_ERROR_TEMPLATE.format(status=exc.status_code, reason=exc.detail)
    reply = _reply({"error_code": exc.status_code, "message": message}, exc.status_code)
    if exc.status_code == 405:  # HTTP requires the methods the path takes
        reply.headers["Allow"] = ", ".join(allowed_methods(request))
    return reply


async def _on_validation_error(_: Request, exc: Exception) -> Response:
    return _reply({"error_code": 422, "message": str(exc)}, 422)


# --------------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------------


def _store(request: Request) -> SchemaStore:
    store: SchemaStore = request.app.state.schema_store
    return store


def _flag(request: Request, name: str) -> bool:
    """A boolean query parameter, read as Confluent's Java reads it (``Boolean.valueOf``): ``true`` in any case
    (Python clients send ``True``) is true, anything else (``1``, `` true``, ``yes``) false; given twice, the first
    counts (as JAX-RS takes a single-valued parameter)."""
    given = request.query_params.getlist(name)
    return bool(given) and given[0].lower() == "true"


def _param(request: Request, name: str) -> str | None:
    """A single-valued query parameter: given twice, the first counts (as JAX-RS takes it); None when absent."""
    given = request.query_params.getlist(name)
    return given[0] if given else None


def _int_param(request: Request, name: str, default: int) -> int:
    """An integer query parameter (``_param``); one that is not an integer is Jersey's 404, as in Confluent."""
    text = _param(request, name)
    if text is None:
        return default
    number = java_int(text)  # Jersey's Integer.valueOf: no blank or "_" around or inside the digits
    if number is None:
        raise StarletteHTTPException(404, "Not Found")
    return number


def _page(request: Request, items: list[Any]) -> list[Any]:
    """``items`` past ``offset``, at most ``limit`` of them when it is positive (Confluent's paging, which its
    clients send on every list: a ``limit`` of 0 or below is no cap)."""
    offset, limit = max(_int_param(request, "offset", 0), 0), _int_param(request, "limit", -1)
    return items[offset : offset + limit] if limit > 0 else items[offset:]


MAX_SCHEMA_ID = 2**31 - 1  # Confluent's ids are 32-bit


def _schema_id(text: str) -> int:
    schema_id = java_int(text)  # as Jersey reads an Integer path parameter ("1_0" is not id 10)
    if schema_id is None or not 0 <= schema_id <= MAX_SCHEMA_ID:  # no such id, and past what the store's integers hold
        raise SchemaNotFoundError(text[:100])
    return schema_id


async def _json_body(request: Request) -> Any:
    """The request body as JSON, refused past :data:`MAX_BODY_BYTES` without reading it all; 408 when it has not
    arrived whole within the app's body timeout (a stalled upload held its connection and handler for good), 400
    when the client closed the connection before it was whole (answered to no one: the request is not carried out,
    and not logged as the registry's bug)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RegistryError(RegistryErrorKind.BODY_TOO_LARGE, limit=MAX_BODY_BYTES)
    chunks, size = [], 0
    timeout_ms = request.app.state.body_timeout_ms
    try:
        async with asyncio.timeout(timeout_ms / 1000):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise RegistryError(RegistryErrorKind.BODY_TOO_LARGE, limit=MAX_BODY_BYTES)
                chunks.append(chunk)
    except TimeoutError:
        raise RegistryError(RegistryErrorKind.BODY_TIMEOUT, ms=timeout_ms, size=size) from None
    except ClientDisconnect:
        raise RegistryError(RegistryErrorKind.BODY_INCOMPLETE, size=size) from None
    try:
        return bounded_json.loads(b"".join(chunks))
    except bounded_json.NestingError as exc:
        raise RegistryError(RegistryErrorKind.BODY_TOO_DEEP, detail=str(exc)) from None
    except bounded_json.NotTextError as exc:
        raise RegistryError(RegistryErrorKind.BODY_NOT_TEXT, detail=str(exc)) from None
    except ValueError:
        raise RegistryError(RegistryErrorKind.BODY_NOT_JSON) from None


def _is_empty(value: Any) -> bool:
    """A field sent empty (null, false, ``""``, ``[]``, ``{}``): taken as not sent."""
    return value is None or value is False or value == "" or value == [] or value == {}


def _check_fields(body: dict[str, Any], known: frozenset[str], if_empty: frozenset[str]) -> None:
    unknown = sorted(set(body) - known - if_empty)
    if unknown:
        raise RegistryError(
            RegistryErrorKind.UNKNOWN_FIELDS, fields=", ".join(unknown)[:300], accepted=", ".join(sorted(known))
        )
    unsupported = sorted(k for k in if_empty if not _is_empty(body.get(k)))
    if unsupported:
        raise RegistryError(RegistryErrorKind.UNSUPPORTED_FIELDS, fields=", ".join(unsupported))


async def _schema_from(request: Request) -> tuple[str, tuple[SchemaReference, ...]]:
    """The schema text and references of a register / lookup / compatibility request."""
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise RegistryError(RegistryErrorKind.BODY_NOT_SCHEMA_REQUEST)
    _check_fields(body, _SCHEMA_FIELDS, _SCHEMA_FIELDS_IF_EMPTY)
    if not isinstance(body.get("schema"), str):
        raise RegistryError(RegistryErrorKind.BODY_NOT_SCHEMA_REQUEST)
    schema_type = body.get("schemaType")  # only a missing or null type is AVRO (Confluent's Schema(subject, request))
    if schema_type is not None and schema_type != "AVRO":
        raise InvalidSchemaTypeError(schema_type if isinstance(schema_type, str) else jackson.dumps(schema_type))
    return str(body["schema"]), parse_references(body.get("references"))


async def _level_from(request: Request) -> Any:
    """The level of a config update, None when the body names none (``{}``, or a null level)."""
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise RegistryError(RegistryErrorKind.BODY_NOT_CONFIG_REQUEST)
    _check_fields(body, _CONFIG_FIELDS, _CONFIG_FIELDS_IF_EMPTY)
    level = body.get("compatibility")
    return body.get("compatibilityLevel") if level is None else level


def _with_references(body: dict[str, Any], references: tuple[SchemaReference, ...]) -> dict[str, Any]:
    """``references`` is left out when empty, as Confluent's entities do (``JsonInclude.NON_EMPTY``)."""
    return {**body, "references": [r.as_json() for r in references]} if references else body


def _version_body(found: RegisteredSchema) -> dict[str, Any]:
    """Confluent's Schema entity; ``"deleted": true`` on a soft-deleted version read with ``deleted=true``
    (left out otherwise, as CP before 7.9 leaves it out; 7.9 and later also send ``"deleted": false``)."""
    body: dict[str, Any] = {"subject": found.subject, "version": found.version, "id": found.id, "schema": found.schema}
    body = _with_references(body, found.references)
    return {**body, "deleted": True} if found.deleted else body


def _schema_body(found: StoredSchema) -> dict[str, Any]:
    return _with_references({"schema": found.schema}, found.references)


# --------------------------------------------------------------------------------------------------
# Subjects and versions
# --------------------------------------------------------------------------------------------------


def health(request: Request) -> JSONResponse:
    return _reply({"status": "ok"})


def root(request: Request) -> JSONResponse:
    """Confluent's root resource (``RootResource``): a no-op answering ``{}``, which health checks written for
    Confluent (``curl -f http://registry:8081/``) probe."""
    return _reply({})


def _deleted_only(request: Request) -> bool:
    """Confluent reads ``deletedOnly`` only: the ``deleted_only`` confluent-kafka's Python client sends is ignored
    there (its live subjects or versions answered), and so it is here."""
    return _flag(request, "deletedOnly")


# Confluent's default subjectPrefix (QualifiedSubject.CONTEXT_WILDCARD): the subjects of every context.
_CONTEXT_WILDCARD = ":*:"


def _subject_prefix(request: Request) -> str:
    prefix = _param(request, "subjectPrefix") or ""
    return "" if prefix == _CONTEXT_WILDCARD else prefix


def list_subjects(request: Request) -> JSONResponse:
    prefix = _subject_prefix(request)
    store = _store(request)
    subjects = store.subjects(deleted=_flag(request, "deleted"), deleted_only=_deleted_only(request), prefix=prefix)
    return _reply(_page(request, subjects))


def list_versions(request: Request, subject: str) -> JSONResponse:
    store = _store(request)
    versions = store.versions(subject, deleted=_flag(request, "deleted"), deleted_only=_deleted_only(request))
    return _reply(_page(request, versions))


def get_version(request: Request, subject: str, version: str) -> JSONResponse:
    return _reply(_version_body(_store(request).version(subject, version, deleted=_flag(request, "deleted"))))


def get_version_schema(request: Request, subject: str, version: str) -> Response:
    found = _store(request).version(subject, version, deleted=_flag(request, "deleted"))
    return Response(found.schema, media_type=CONTENT_TYPE)


def get_latest_with_metadata(request: Request, subject: str) -> JSONResponse:
    """Confluent's ``GET /subjects/{s}/metadata?key=..&value=..``, the latest version whose metadata holds the pairs
    (serializers with ``use.latest.with.metadata`` ask it). This registry keeps no metadata (a schema sent with some is
    refused, 422), and Confluent matches no version without metadata, even for no pair: 40403 when the subject has a
    version (a soft-deleted one counted with ``?deleted=true``), else 40401, as Confluent answers then."""
    _store(request).versions(subject, deleted=_flag(request, "deleted"))
    raise SchemaNotFoundError()


def get_referenced_by(request: Request, subject: str, version: str) -> JSONResponse:
    return _reply(_page(request, _store(request).referenced_by(subject, version, deleted=_flag(request, "deleted"))))


# Subjects Confluent refuses to register under (QualifiedSubject.isValidSubject): a Java ISO control
# character anywhere (U+0000-U+001F, U+007F-U+009F), or a name it reserves for its global and empty contexts.
_RESERVED_SUBJECTS = frozenset({"__GLOBAL", "__EMPTY"})


def _is_valid_subject(subject: str) -> bool:
    return subject not in _RESERVED_SUBJECTS and not any(ord(c) <= 0x1F or 0x7F <= ord(c) <= 0x9F for c in subject)


async def register(request: Request, subject: str) -> JSONResponse:
    """As Confluent's ``SubjectVersionsResource.register``: the body is read, then the subject checked, then
    the schema parsed; ``normalize=true`` sorts the references (:meth:`SchemaStore.register`)."""
    schema, references = await _schema_from(request)
    if not _is_valid_subject(subject):
        raise InvalidSubjectError(subject)
    store, normal = _store(request), _flag(request, "normalize")
    registered = await run_in_threadpool(
        lambda: store.register(subject, schema, references, normalize_references=normal)
    )
    return _reply({"id": registered.id})


async def lookup(request: Request, subject: str) -> JSONResponse:
    schema, references = await _schema_from(request)
    store, deleted, normal = _store(request), _flag(request, "deleted"), _flag(request, "normalize")
    found = await run_in_threadpool(
        lambda: store.lookup(subject, schema, references, deleted=deleted, normalize_references=normal)
    )
    return _reply(_version_body(found))


def delete_subject(request: Request, subject: str) -> JSONResponse:
    return _reply(_store(request).delete_subject(subject, permanent=_flag(request, "permanent")))


def delete_version(request: Request, subject: str, version: str) -> JSONResponse:
    return _reply(_store(request).delete_version(subject, version, permanent=_flag(request, "permanent")))


# --------------------------------------------------------------------------------------------------
# Schemas by id
# --------------------------------------------------------------------------------------------------


def list_schemas(request: Request) -> JSONResponse:
    """Confluent's ``GET /schemas``: Schema entities by subject then version; ``offset`` skips, a positive
    ``limit`` caps (``limit`` not positive: no cap)."""
    found = _store(request).all_versions(
        prefix=_subject_prefix(request),
        deleted=_flag(request, "deleted"),
        latest_only=_flag(request, "latestOnly"),
    )
    return _reply([_version_body(f) for f in _page(request, found)])


def _resolved(request: Request) -> bool:
    """``?format=resolved`` (any case), as Confluent's ``AvroSchema.formattedString`` reads it; ``default``, an empty
    or an unknown format is the stored text (Confluent logs an unknown one and answers the same)."""
    return (_param(request, "format") or "").lower() == "resolved"


def get_schema(request: Request, schema_id: str) -> JSONResponse:
    return _reply(_schema_body(_store(request).stored(_schema_id(schema_id), resolved=_resolved(request))))


def get_raw_schema(request: Request, schema_id: str) -> Response:
    found = _store(request).stored(_schema_id(schema_id), resolved=_resolved(request))
    return Response(found.schema, media_type=CONTENT_TYPE)


# `?subject=` on the two routes below is accepted and, as in Confluent, does not filter: Confluent's
# listVersionsForId uses it only to pick the schema context of the id (getSchemaKeyUsingContexts), and
# this registry has the default context only.
def _versions_of_id(request: Request, schema_id: str) -> list[tuple[str, int]]:
    """The (subject, version) pairs of an id; an unknown id is Confluent's bare "Schema not found" here
    (``SchemasResource.getSubjects`` / ``getVersions`` throw ``schemaNotFoundException()``, without the id)."""
    try:
        return _store(request).versions_of_id(_schema_id(schema_id), deleted=_flag(request, "deleted"))
    except SchemaNotFoundError:
        raise SchemaNotFoundError() from None


def get_schema_subjects(request: Request, schema_id: str) -> JSONResponse:
    return _reply(_page(request, sorted({subject for subject, _ in _versions_of_id(request, schema_id)})))


def get_schema_versions(request: Request, schema_id: str) -> JSONResponse:
    pairs = _page(request, _versions_of_id(request, schema_id))
    return _reply([{"subject": subject, "version": version} for subject, version in pairs])


def list_contexts(request: Request) -> JSONResponse:
    """Confluent's ``GET /contexts``: its default context, ``"."``, the only one here."""
    return _reply(_page(request, ["."]))


def schema_types(request: Request) -> JSONResponse:
    return _reply(["AVRO"])


# --------------------------------------------------------------------------------------------------
# Compatibility, config, mode
# --------------------------------------------------------------------------------------------------


async def _compatibility(request: Request, subject: str, version: str | None) -> JSONResponse:
    """Confluent's CompatibilityCheckResponse: ``messages`` only with ``verbose=true`` (the entity is
    NON_NULL); with it an invalid schema is an answer, ``is_compatible: false`` with the parse error,
    without it a 42201 error."""
    schema, references = await _schema_from(request)
    store, verbose = _store(request), _flag(request, "verbose")
    try:
        problems = await run_in_threadpool(store.check_compatibility, subject, schema, version, references)
    except InvalidSchemaError as exc:
        if not verbose:
            raise
        problems = [str(exc)]
    return _reply({"is_compatible": not problems, "messages": problems} if verbose else {"is_compatible": not problems})


async def check_against_version(request: Request, subject: str, version: str) -> JSONResponse:
    return await _compatibility(request, subject, version)


async def check_against_all(request: Request, subject: str) -> JSONResponse:
    return await _compatibility(request, subject, None)


def get_global_config(request: Request) -> JSONResponse:
    return _reply({"compatibilityLevel": _store(request).compatibility().value})


async def _put_config(request: Request, subject: str | None) -> JSONResponse:
    """Set a level; a body without one changes nothing and answers the level stored for that scope, or
    ``{}`` where none is (Confluent keeps the old level and answers the stored config, NON_NULL)."""
    level = await _level_from(request)
    store = _store(request)
    if level is None:
        stored = store.configured_compatibility(subject)
        return _reply({} if stored is None else {"compatibility": stored.value})
    return _reply({"compatibility": (await run_in_threadpool(store.set_compatibility, level, subject)).value})


async def put_global_config(request: Request) -> JSONResponse:
    return await _put_config(request, None)


def delete_global_config(request: Request) -> JSONResponse:
    return _reply({"compatibilityLevel": _store(request).delete_compatibility().value})


def get_subject_config(request: Request, subject: str) -> JSONResponse:
    store = _store(request)
    level = store.compatibility(subject) if _flag(request, "defaultToGlobal") else store.subject_compatibility(subject)
    if level is None:
        raise ConfigNotFoundError(subject)
    return _reply({"compatibilityLevel": level.value})


async def put_subject_config(request: Request, subject: str) -> JSONResponse:
    """As Confluent's ``updateSubjectLevelConfig``: the level is checked (42203), then the subject, which may not
    be one it refuses to register under (42208, ``QualifiedSubject.isValidSubject``), then the level is set."""
    if not _is_valid_subject(subject):
        level = await _level_from(request)
        try:
            if level is not None:
                avro_compat.parse_level(level)
        except avro_compat.InvalidCompatibilityLevelError:
            raise InvalidCompatibilityLevelError() from None
        raise InvalidSubjectError(subject)
    return await _put_config(request, subject)


def delete_subject_config(request: Request, subject: str) -> JSONResponse:
    try:
        level = _store(request).delete_compatibility(subject)
    except ConfigNotFoundError as exc:  # Confluent answers "subject not found" here
        raise SubjectNotFoundError(subject) from exc
    return _reply({"compatibilityLevel": level.value})


def get_mode(request: Request) -> JSONResponse:
    return _reply({"mode": "READWRITE"})


def get_subject_mode(request: Request, subject: str) -> JSONResponse:
    """No subject has a mode of its own: 40409 as Confluent answers then, unless ``defaultToGlobal=true``."""
    if not _flag(request, "defaultToGlobal"):
        raise ModeNotFoundError(subject)
    return _reply({"mode": "READWRITE"})


_Handler = Callable[..., Any]
_ROUTES: list[tuple[str, str, _Handler]] = [
    ("GET", "/", root),
    ("GET", "/health", health),
    ("GET", "/subjects", list_subjects),
    ("GET", "/subjects/{subject}/versions", list_versions),
    ("POST", "/subjects/{subject}/versions", register),
    ("GET", "/subjects/{subject}/versions/{version}", get_version),
    ("DELETE", "/subjects/{subject}/versions/{version}", delete_version),
    ("GET", "/subjects/{subject}/versions/{version}/schema", get_version_schema),
    ("GET", "/subjects/{subject}/versions/{version}/referencedby", get_referenced_by),
    ("POST", "/subjects/{subject}", lookup),
    ("GET", "/subjects/{subject}/metadata", get_latest_with_metadata),
    ("DELETE", "/subjects/{subject}", delete_subject),
    ("GET", "/contexts", list_contexts),
    ("GET", "/schemas", list_schemas),
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
    (RegistryError, _on_registry_error),
    (SchemaError, _on_schema_error),
    (StoreUnavailableError, _on_store_unavailable),
    (StarletteHTTPException, _on_http_error),
    (RequestValidationError, _on_validation_error),
    (Exception, _on_bug),
]


def create_schema_registry_app(
    store: SchemaStore, access: Access | None = None, *, body_timeout_ms: int = DEFAULT_BODY_TIMEOUT_MS
) -> FastAPI:
    """The registry's ASGI app over ``store``; nothing is shared between apps. A request body arrives whole within
    ``body_timeout_ms`` of the route's first read of it, or is refused 408.

    ``access`` enabled: every route needs a token and writes the owning team's role
    (``registry.schema_registry.auth``); None or disabled: every route is open, logged once per route.
    """
    app = FastAPI(title="feature-store schema registry", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.schema_store = store
    app.state.body_timeout_ms = body_timeout_ms
    for method, path, handler in _ROUTES:
        app.router.add_api_route(
            path, handler, methods=[method], response_class=JSONResponse, route_class_override=SubjectRoute
        )
    for kind, on_error in _ERROR_HANDLERS:
        app.add_exception_handler(kind, on_error)
    if access is not None and access.enabled:
        app.add_middleware(RegistryAuth, access=access)
    else:
        for method, path, _ in _ROUTES:
            auth_log.warning("auth off: %s %s is open to every caller", method, path)
    app.add_middleware(HeadAsGet)  # outside the rest: HEAD on every GET route, as the GET without its body
    app.add_middleware(OriginForm)  # outermost of all: an absolute-form target routed as its path
    return app
