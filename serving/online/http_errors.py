"""The feature API's errors: one code table shared by the server and its client, one body shape.

Every refusal is ``{"error": <code>, "message": <text naming the problem>, ...details}`` with the HTTP
status of its code below. The server raises ``ApiError`` (or a project error that maps to a code) and
one function, ``render``, turns it into a response; the client (``serving.online.client``) reads the
same codes back into the project's exceptions. Imports nothing heavy: the client needs it too.

The schema registry (``registry.schema_registry``) answers in Confluent's shape instead
(``{"error_code": 40401, "message": ...}``), because Confluent's clients match on it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import orjson


class ErrorCode(StrEnum):
    """A refusal's machine-readable code; ``status`` is its HTTP status."""

    BAD_REQUEST = "bad_request"  # a malformed path, query or body shape
    BAD_JSON = "bad_json"  # a body that is not JSON
    BAD_NAMES = "bad_names"  # `names` empty, too long, or holding an empty name
    BAD_ENTITY_ID = "bad_entity_id"  # an entity id outside the allowed characters or length
    BAD_ENTITY_IDS = "bad_entity_ids"  # `entity_ids` / `entity_keys` not a list of 1..MAX_BATCH of them
    BAD_ENTITY_KEY = "bad_entity_key"  # a composite key's field missing, extra or malformed, or the wrong key form
    BAD_FEATURE_SERVICE = "bad_feature_service"  # a feature service with no features of the entity type
    BAD_REQUEST_DATA = "bad_request_data"  # a request-time feature's request field missing or not its type
    UNAUTHENTICATED = "unauthenticated"  # no API token, or a malformed, unknown or revoked one (auth on)
    FORBIDDEN = "forbidden"  # the caller's team does not own what it writes, or has no grant to read it
    UNKNOWN_ENTITY_TYPE = "unknown_entity_type"
    UNKNOWN_FEATURE = "unknown_feature"  # names every unknown feature
    UNKNOWN_FEATURE_SERVICE = "unknown_feature_service"
    NOT_FOUND = "not_found"  # no such route
    METHOD_NOT_ALLOWED = "method_not_allowed"
    VERSION_CONFLICT = "version_conflict"  # a version number taken by a different definition or service
    BODY_TOO_LARGE = "body_too_large"
    BODY_TIMEOUT = "body_timeout"  # a request body not received whole within FS_BODY_TIMEOUT_MS of its start
    INVALID_DEFINITION = "invalid_definition"
    INVALID_FEATURE_SERVICE = "invalid_feature_service"
    INTERNAL_ERROR = "internal_error"  # a bug: the body's request_id finds the traceback in the server log
    STORE_UNAVAILABLE = "store_unavailable"  # the online store failed or did not answer within the budget
    OVERLOADED = "overloaded"  # more requests in flight in the process than it admits: retry (Retry-After)
    HTTP_ERROR = "http_error"  # any other status the web framework chose

    @property
    def status(self) -> int:
        return _STATUS[self]


_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.BAD_JSON: 400,
    ErrorCode.BAD_NAMES: 400,
    ErrorCode.BAD_ENTITY_ID: 400,
    ErrorCode.BAD_ENTITY_IDS: 400,
    ErrorCode.BAD_ENTITY_KEY: 400,
    ErrorCode.BAD_FEATURE_SERVICE: 400,
    ErrorCode.BAD_REQUEST_DATA: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.UNKNOWN_ENTITY_TYPE: 404,
    ErrorCode.UNKNOWN_FEATURE: 404,
    ErrorCode.UNKNOWN_FEATURE_SERVICE: 404,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.VERSION_CONFLICT: 409,
    ErrorCode.BODY_TOO_LARGE: 413,
    ErrorCode.BODY_TIMEOUT: 408,
    ErrorCode.INVALID_DEFINITION: 422,
    ErrorCode.INVALID_FEATURE_SERVICE: 422,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.STORE_UNAVAILABLE: 503,
    ErrorCode.OVERLOADED: 503,
    ErrorCode.HTTP_ERROR: 500,
}


class ApiError(Exception):
    """A refusal on its way to the caller: raised in a route, rendered once by ``render``.

    ``status`` defaults to the code's; only ``HTTP_ERROR`` carries the framework's own status.
    """

    def __init__(self, code: ErrorCode, message: str, *, status: int | None = None, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = code.status if status is None else status
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": self.code.value, "message": self.message, **self.details}


def render(error: ApiError) -> tuple[int, bytes]:
    """The response of a refusal: (status, JSON body)."""
    return error.status, orjson.dumps(error.body())


def code_of(body: Any, status: int) -> tuple[ErrorCode | str, str]:
    """(code, message) of an error response body as the client reads it: an ``ErrorCode`` when known,
    else the raw code string (a newer server), or ``http_<status>`` for a body not in this shape."""
    try:
        raw, message = str(body["error"]), str(body["message"])
    except (KeyError, TypeError):
        return f"http_{status}", str(body)[:500]
    try:
        return ErrorCode(raw), message
    except ValueError:
        return raw, message
