"""The HTTP server's own refusals in the API's one error shape.

uvicorn answers a request its parser cannot read (an unknown method, a malformed or negative ``Content-Length``,
raw non-ASCII bytes in the target, a request line past the parser's limit) before the app sees it, with a
``text/plain`` 400 "Invalid HTTP request received.". This protocol answers the same 400, and closes the
connection as uvicorn does, with ``{"error": "bad_request", "message": ...}`` as ``application/json``, so that
every error of the feature API has one shape (``serving.online.http_errors``)."""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving.online.http_errors import ApiError, ErrorCode, render


def malformed_request_answer(msg: str) -> tuple[int, bytes]:
    """(status, JSON body) of a request the HTTP parser refused."""
    return render(ApiError(ErrorCode.BAD_REQUEST, f"malformed HTTP request: {msg}"))


class JsonErrorsHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (``http="httptools"``), its parser's 400 in the API's error shape."""

    def send_400_response(self, msg: str) -> None:
        status, body = malformed_request_answer(msg)
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
