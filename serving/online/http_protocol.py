"""The HTTP server's own refusals in the API's one error shape.

uvicorn answers a request its parser cannot read (an unknown method, a malformed or negative ``Content-Length``,
raw non-ASCII bytes in the target, a request line past the parser's limit) before the app sees it, with a
``text/plain`` 400 "Invalid HTTP request received.". This protocol answers the same 400, and closes the
connection as uvicorn does, with ``{"error": "bad_request", "message": ...}`` as ``application/json``, so that
every error of the feature API has one shape (``serving.online.http_errors``). Each such answer is counted in the
app's ``/metrics`` as any refusal is: ``fs_requests_total{route="unmatched",status="400"}`` (its
``fs_request_seconds`` observation 0: the parser refused it as it arrived) and ``fs_errors_total{class="bad_request"}``.

A request asking to change protocols (``Upgrade: h2c``, as ``curl --http2`` sends over plain HTTP, or any other) is
served as HTTP/1.1, the ``Upgrade`` header ignored as RFC 9110 §7.8 lets a server do: the parser (llhttp) treats such
a request as ending at its head and hands the rest of the bytes over as another protocol's, so the app saw an empty
body (a valid batch answered 400 ``bad_json``); the head is parsed again without ``Upgrade`` and the ``upgrade`` token
of ``Connection``, followed by the bytes after it."""

from __future__ import annotations

from typing import Any

import httptools
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

    # -- Upgrade ignored ------------------------------------------------------------------------------------------

    _replaying = False  # this request's head asked for an upgrade served as HTTP/1.1: parsed again (data_received)
    _request_line: tuple[bytes, bytes] = (b"GET", b"1.1")  # its method and HTTP version

    def _ignored_upgrade(self) -> bool:
        return bool(self.parser.should_upgrade()) and not self._should_upgrade()

    def on_headers_complete(self) -> None:
        # CONNECT is an upgrade to llhttp whatever its headers: left to uvicorn (a replay would be one again, for ever)
        if self._ignored_upgrade() and self.parser.get_method() != b"CONNECT":
            self._replaying = True  # no cycle for it: the replayed head starts the request
            self._request_line = (self.parser.get_method(), self.parser.get_http_version().encode("ascii"))
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._replaying:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._replaying:
            super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        """uvicorn's, but a request whose upgrade is ignored is parsed again (``_replay``), not left bodiless."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade as upgrade:
            if self._replaying:
                self._replay(data[upgrade.args[0] :])
            elif self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def _replay(self, rest: bytes) -> None:
        """A fresh parser fed the request's head without its upgrade, then ``rest`` (the bytes after the head); it
        parses this connection's requests from then on."""
        self._replaying = False
        method, version = self._request_line
        head = [method, b" ", self.url, b" HTTP/", version, b"\r\n"]
        for name, value in self.headers:
            if name == b"upgrade":
                continue
            if name == b"connection":
                tokens = [t.strip() for t in value.split(b",") if t.strip() and t.strip().lower() != b"upgrade"]
                if not tokens:
                    continue
                value = b", ".join(tokens)
            head.extend([name, b": ", value, b"\r\n"])
        head.append(b"\r\n")
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.data_received(b"".join(head) + rest)
