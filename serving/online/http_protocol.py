"""The HTTP server's own refusals in the API's one error shape.

uvicorn answers a request its parser cannot read (an unknown method, a malformed or negative ``Content-Length``,
raw non-ASCII bytes in the target, a request line past the parser's limit) before the app sees it, with a
``text/plain`` 400 "Invalid HTTP request received.". This protocol answers the same 400, and closes the
connection as uvicorn does, with ``{"error": "bad_request", "message": ...}`` as ``application/json``, so that
every error of the feature API has one shape (``serving.online.http_errors``). Each such answer is counted in the
app's ``/metrics`` as any refusal is: ``fs_requests_total{route="unmatched",status="400"}`` (its
``fs_request_seconds`` observation 0: the parser refused it as it arrived) and ``fs_errors_total{class="bad_request"}``."""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving.online.http_errors import ApiError, ErrorCode, render
from serving.online.metrics import Metrics


def malformed_request_answer(msg: str) -> tuple[int, bytes]:
    """(status, JSON body) of a request the HTTP parser refused."""
    return render(ApiError(ErrorCode.BAD_REQUEST, f"malformed HTTP request: {msg}"))


def app_metrics(app: Any) -> Metrics | None:
    """The ``Metrics`` of the app uvicorn serves (``app.state.metrics``), through the middleware uvicorn wraps it in."""
    for _ in range(8):
        metrics = getattr(getattr(app, "state", None), "metrics", None)
        if isinstance(metrics, Metrics):
            return metrics
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


class JsonErrorsHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (``http="httptools"``), its parser's 400 in the API's error shape."""

    def send_400_response(self, msg: str) -> None:
        status, body = malformed_request_answer(msg)
        metrics = app_metrics(self.app)
        if metrics is not None:
            metrics.request("unmatched", status, 0.0)
            metrics.error(ErrorCode.BAD_REQUEST.value)
        content = [f"HTTP/1.1 {status} Bad Request\r\n".encode()]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()
