"""Response helpers shared by the API's routers."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import Request
from fastapi.responses import JSONResponse as _StarletteJSONResponse
from pydantic import BaseModel, ConfigDict, Field

from serving.online.http_errors import ApiError, ErrorCode

if TYPE_CHECKING:
    from starlette.types import Receive, Scope


class JSONResponse(_StarletteJSONResponse):
    """JSON encoded by orjson (several times faster than the standard library on feature vectors).

    A JSON response class to FastAPI too: a route answering it is documented as JSON (its ``response_model``, or any
    JSON value), not as the plain string FastAPI assumes of other response classes."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


DEFAULT_BODY_TIMEOUT_MS = 1_000  # FS_BODY_TIMEOUT_MS: a request body arrives whole within it, or 408


def _declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length`` (None without one, or when it is not digits: the server answers that)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


async def read_body(scope: Scope, receive: Receive, *, max_bytes: int) -> bytes:
    """The request body, at most ``max_bytes`` of it, received whole within the app's body timeout
    (``app.state.body_timeout_ms``). 413 ``body_too_large`` at once when its ``Content-Length`` says more than
    ``max_bytes``, or as soon as more than that has arrived, so nothing past the limit is held in memory; 408
    ``body_timeout`` when the body has not arrived whole in time, so a slow or stalled sender holds neither the
    request nor its in-flight slot longer than that; 400 ``bad_request`` (answered to no one, counted) when the client
    closes the connection before its body arrived whole: a request cut short is never carried out."""
    if (declared := _declared_length(scope)) is not None and declared > max_bytes:
        raise ApiError(ErrorCode.BODY_TOO_LARGE, f"request body is larger than {max_bytes} bytes")
    timeout_ms = scope["app"].state.body_timeout_ms
    chunks = []
    size = 0
    try:
        async with asyncio.timeout(timeout_ms / 1000):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":  # the client went before its body was whole: nothing done
                    raise ApiError(
                        ErrorCode.BAD_REQUEST,
                        f"request body incomplete: the client closed the connection after {size} bytes",
                    )
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > max_bytes:
                    raise ApiError(ErrorCode.BODY_TOO_LARGE, f"request body is larger than {max_bytes} bytes")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        raise ApiError(
            ErrorCode.BODY_TIMEOUT, f"request body not received whole within {timeout_ms} ms ({size} bytes came)"
        ) from None


async def json_object(request: Request, *, max_bytes: int, error: ErrorCode) -> tuple[dict[str, Any], bytes]:
    """The request body as a JSON object, and the bytes it was read from (``read_body``'s limits); ``ApiError``
    saying what is wrong with it otherwise (``error`` is the code of a body that is JSON but not an object)."""
    raw = await read_body(request.scope, request.receive, max_bytes=max_bytes)
    return parse_json_object(raw, error=error), raw


def parse_json_object(raw: bytes, *, error: ErrorCode = ErrorCode.BAD_REQUEST) -> dict[str, Any]:
    """``raw`` as a JSON object: 400 ``bad_json`` if it is not JSON, ``error`` if it is not an object."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        body = _past_the_doubles(raw, exc)
    if not isinstance(body, dict):
        raise ApiError(error, "request body must be a JSON object")
    return body


def _past_the_doubles(raw: bytes, exc: orjson.JSONDecodeError) -> Any:
    """``raw`` read by the standard library when orjson refused it only for a number past the doubles' range
    (``1e400``, an integer of 400 digits: JSON all the same), so that the member holding it is refused with its
    own code (a request field's ``bad_request_data``, an id's ``bad_entity_id``, ...) as the same value in a
    query string is; 400 ``bad_json`` for anything else orjson refuses, ``NaN`` and ``Infinity`` (not JSON)
    and strings holding a lone surrogate (not UTF-8) included."""
    not_json = ApiError(ErrorCode.BAD_JSON, f"request body is not JSON: {exc}")
    if "number is infinity" not in str(exc):
        raise not_json from exc
    try:
        body = json.loads(raw, parse_constant=_not_a_json_number, parse_int=json_int)
        _utf8_strings(body)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeError are ValueErrors
        raise not_json from exc
    return body


def json_int(literal: str) -> int | float:
    """A JSON integer literal; one longer than Python converts (4,300 digits) is far past the doubles' range: its
    signed infinity, as ``1e400`` is read (converting it costs time quadratic in its length: a 1 MiB body of digits
    would take seconds, which is why Python refuses), so its member is refused with its own code, not ``bad_json``."""
    try:
        return int(literal)
    except ValueError:
        return float("-inf") if literal.startswith("-") else float("inf")


def _not_a_json_number(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _utf8_strings(value: Any) -> None:
    """``UnicodeEncodeError`` (a ValueError) for a string (member names included) holding a lone surrogate."""
    if isinstance(value, str):
        value.encode()
    elif isinstance(value, dict):
        for name, member in value.items():
            name.encode()
            _utf8_strings(member)
    elif isinstance(value, list):
        for item in value:
            _utf8_strings(item)


class ProblemDoc(BaseModel):
    """Every refusal's body (``serving.online.http_errors``), for the OpenAPI document."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="machine-readable, e.g. unknown_feature, bad_entity_id, store_unavailable")
    message: str


FORBIDDEN_READ = "`forbidden` (auth on): a read of a feature above `internal` without a grant (with `names`)"


def problems(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of refusals: per status, the project's error body and what answers it."""
    return {status: {"model": ProblemDoc, "description": text} for status, text in descriptions.items()}


BAD_PARAMETER = "`bad_request`: a malformed path or query parameter, named in `message`"
WRITE_REFUSED = "`forbidden` (auth on): the caller's team does not own what it writes (an admin token may)"
STORE_GONE = "`store_unavailable`: the registry's SQLite file gone or unreadable under the running process"


def without_validation_errors(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without FastAPI's automatic 422 ``HTTPValidationError``: the app answers a malformed parameter
    400 ``bad_request`` in its own error body (``serving.online.app``), so no route answers that 422. A route
    that can refuse a parameter declares its 400 (``problems``); a 422 a route declares itself stays."""
    paths = doc.get("paths", {})
    for operations in paths.values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if b"/HTTPValidationError" in orjson.dumps(responses.get("422", {})):
                del responses["422"]
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):  # the first refers to the second
        others = {k: v for k, v in schemas.items() if k != name}
        if f'/{name}"'.encode() not in orjson.dumps(paths) + orjson.dumps(others):
            schemas.pop(name, None)
    return doc


def inline_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its ``$defs`` put in place of each ``$ref`` to them, for an OpenAPI document
    written by hand (``openapi_extra``): there a ``#/$defs/...`` would point into the document's root, which holds
    no such thing. The models inlined must not refer to themselves."""
    defs = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
