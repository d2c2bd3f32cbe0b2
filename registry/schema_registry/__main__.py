"""Run the schema registry: ``python -m registry.schema_registry [--host H] [--port P] [--db PATH] [--compatibility LEVEL]``.

``--port`` defaults to ``FS_REGISTRY_PORT`` (8081; a port from 1 to 65535 like every port setting, the
port the clients' default ``FS_SCHEMA_REGISTRY_URL`` names), checked before the arguments: a malformed
one ends the command with one ``error:`` line naming it, exit status 1.
``--port 0`` binds a free port; the first line on stdout is always ``listening on http://HOST:PORT``,
so a test or a supervisor can start it without guessing a port that something else may take first.
The global compatibility level defaults to BACKWARD, as in Confluent Schema Registry, until a
``PUT /config`` stores another. ``FS_AUTH=on`` makes every route need a token of ``registry.access``
(kept in the feature registry's database, ``--access-db``, default ``FS_DEFINITIONS_DB``); see
``registry.schema_registry.auth``. A request body arrives whole within ``FS_BODY_TIMEOUT_MS`` (default 1000, from 1 to
60,000, as the feature API's) of the route's first read of it, or is refused 408 (error code 40801).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import sqlite3
from pathlib import Path

import uvicorn

from registry.access import Access
from registry.core.arguments import ArgumentParser, whole
from registry.core.errors import FeatureStoreError
from registry.core.settings import int_setting, port_for_command, settings_for_command, state_folder
from registry.core.shown import error_line, shown
from registry.schema_registry.api import DEFAULT_BODY_TIMEOUT_MS, create_schema_registry_app
from registry.schema_registry.avro_compat import CompatibilityLevel
from registry.schema_registry.store import SchemaStore


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"--db: {text}" if isinstance(exc, sqlite3.Error | FeatureStoreError) else text


def _bound(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``: bound here rather than in uvicorn, so the port actually bound (for
    ``--port 0``) can be announced."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this. Without it a keep-alive client (httpx, requests, the Confluent
        # client) waits ~40 ms per request on Nagle + delayed ACK: uvicorn only sets it on sockets it binds.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(2048)  # before announcing: a client that connects on the announcement must not be refused
    except BaseException:
        sock.close()
        raise
    return sock


def main() -> None:
    settings = settings_for_command()
    port = port_for_command("FS_REGISTRY_PORT", 8081)  # --port's default (0 there binds a free port)
    try:
        body_timeout_ms = int_setting(os.environ, "FS_BODY_TIMEOUT_MS", DEFAULT_BODY_TIMEOUT_MS, 1, 60_000)
    except FeatureStoreError as exc:
        raise SystemExit(error_line(exc)) from None
    state = state_folder()
    parser = ArgumentParser(prog="python -m registry.schema_registry")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=whole(0, 65_535), default=port)
    parser.add_argument("--db", type=Path, default=state / "registry" / "schemas.db")
    parser.add_argument(
        "--compatibility",
        type=str.upper,
        choices=[level.value for level in CompatibilityLevel],
        default=CompatibilityLevel.BACKWARD.value,
        help="global compatibility level while none is set through PUT /config (default: BACKWARD)",
    )
    parser.add_argument(
        "--access-db", type=Path, default=settings.definitions_db, help="tokens and grants (FS_AUTH=on)"
    )
    args = parser.parse_args()
    try:  # what cannot start is one line naming it (exit 1), before any route is logged, never a traceback
        sock = _bound(args.host, args.port)
        store = SchemaStore(args.db, default_compatibility=args.compatibility)
    except (OSError, UnicodeError, TypeError, sqlite3.Error, FeatureStoreError) as exc:  # TypeError: a host not text
        raise SystemExit(
            error_line(f"cannot start the schema registry on {args.host!r}:{args.port}: {_one_line(exc)}")
        ) from None
    try:  # FS_AUTH=on: an --access-db that is no database (a folder, another file) is named, not a traceback
        access = Access.of(settings, args.access_db)
    except (OSError, sqlite3.Error, FeatureStoreError) as exc:
        sock.close()
        text = " ".join(str(exc).split()) or type(exc).__name__
        where = f"{args.host!r}:{args.port}: --access-db {shown(args.access_db)}"
        raise SystemExit(error_line(f"cannot start the schema registry on {where}: {text}")) from None
    atexit.register(access.close)
    app = create_schema_registry_app(store, access, body_timeout_ms=body_timeout_ms)
    port = sock.getsockname()[1]
    print(f"listening on http://{args.host}:{port}", flush=True)
    # h11 with a 1 MiB limit on the request head: a long subject in the path reaches the app and gets a
    # Confluent-shaped answer, not the HTTP parser's plain-text 400 (the registry is not a hot path).
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", http="h11", h11_max_incomplete_event_size=1 << 20)
    )
    # A stop is a normal stop, as the feature API's: uvicorn shuts down on Ctrl-C or SIGTERM, then raises the signal
    # again (``server.run``, unlike ``uvicorn.run``, does not catch the KeyboardInterrupt: a traceback; SIGTERM's
    # default handler ended the process before ``atexit``). Exit 0 either way, the audit store closed.
    signal.signal(signal.SIGTERM, lambda *_: None)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])


if __name__ == "__main__":
    main()
