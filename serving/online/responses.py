"""Response helpers shared by the API's routers."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from serving.online.http_errors import ApiError, ErrorCode


class JSONResponse(Response):
    """JSON encoded by orjson (several times faster than the standard library on feature vectors)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def json_object(request: Request, *, max_bytes: int, error: ErrorCode) -> dict[str, Any]:
    """The request body as a JSON object; ``ApiError`` saying what is wrong with it otherwise
    (``error`` is the code of a body that is JSON but not an object)."""
    raw = await request.body()
    if len(raw) > max_bytes:
        raise ApiError(ErrorCode.BODY_TOO_LARGE, f"request body is larger than {max_bytes} bytes")
    return parse_json_object(raw, error=error)


def parse_json_object(raw: bytes, *, error: ErrorCode = ErrorCode.BAD_REQUEST) -> dict[str, Any]:
    """``raw`` as a JSON object: 400 ``bad_json`` if it is not JSON, ``error`` if it is not an object."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(ErrorCode.BAD_JSON, f"request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(error, "request body must be a JSON object")
    return body
