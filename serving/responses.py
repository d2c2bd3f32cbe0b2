"""Response helpers shared by the API's routers."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response


class JSONResponse(Response):
    """JSON encoded by orjson (several times faster than the standard library on feature vectors)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def problem(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    """An error body: a stable machine-readable ``error`` and a message that names the problem."""
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status)
