"""Authentication and write authorization of the schema registry, in Confluent's error shape.

With auth on (``FS_AUTH=on``, tokens of ``registry.access``) every request needs a token, sent the way
Confluent's clients send credentials:

- ``Authorization: Bearer <token>`` (``bearer.auth.credential.source: STATIC_TOKEN`` and
  ``bearer.auth.token``; the logical-cluster and identity-pool headers that client adds are ignored), or
- ``Authorization: Basic base64(<user>:<token>)`` (``basic.auth.user.info: "<user>:<token>"``; Java
  clients add ``basic.auth.credentials.source: USER_INFO``); the user part is not checked, the token
  names the caller.

A missing, malformed, unknown or revoked token, or more than one ``Authorization`` header, is 401 ``{"error_code": 401, "message": "Unauthorized: ..."}``
on every route. Writes need a role: registering a version (``POST /subjects/{s}/versions``) needs the
team that owns the subject (the first team to register a version of it owns it); deleting a subject or
version and setting or deleting a subject's compatibility need the owning team too (an admin token
for a subject nobody owns); the global compatibility (``PUT``/``DELETE /config``) needs an admin token.
A refusal is 403 ``{"error_code": 40301, "message": "User <principal> is denied operation Write on
Subject: <s> ..."}`` (Confluent's RBAC code) and changes nothing. Every write, allowed or refused,
leaves an audit record (target ``subject:<s>`` or ``config:global``) with its HTTP status.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import unquote

import orjson

from registry.access import Access, header_value
from registry.access_store import Caller
from registry.core.errors import UnauthenticatedError
from registry.schema_registry.errors import SubjectNotFoundError
from registry.schema_registry.paths import escaped_path

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from registry.schema_registry.store import SchemaStore

_CONTENT_TYPE = b"application/vnd.schemaregistry.v1+json"


def token_of(authorization: str | None) -> str | None:
    """The token in a Bearer or Basic ``Authorization`` value (None when there is none; an empty or blank
    header is none, as in the feature API)."""
    if authorization is None or not authorization.strip():
        return None
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return rest.strip()
    if scheme.lower() == "basic":
        try:
            user_info = base64.b64decode(rest.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise UnauthenticatedError("malformed Basic credentials: expected base64 of <user>:<token>") from exc
        _, colon, token = user_info.partition(":")
        if not colon:
            raise UnauthenticatedError("malformed Basic credentials: expected <user>:<token>")
        return token
    shown = scheme if len(scheme) <= 16 else scheme[:16] + "…"  # a bare token shows its id, never its secret
    raise UnauthenticatedError(f"unsupported Authorization scheme {shown!r}: send Bearer or Basic credentials")


def authorization_of(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The request's one ``Authorization`` value (None without one). Two or more are refused (401), whatever they
    hold, as the feature API refuses them: which one a proxy in front acted on is unknown, and the first one
    alone must not decide."""
    headers = list(headers)
    given = sum(1 for key, _ in headers if key == b"authorization")
    if given > 1:
        raise UnauthenticatedError(f"{given} Authorization headers: send one, Bearer or Basic credentials")
    return header_value(headers, b"authorization")


def write_of(method: str, path: str) -> tuple[str, str | None] | None:
    """``(action, subject)`` of a write request (subject None: the global config), None for a read; ``path`` as
    :func:`~registry.schema_registry.paths.escaped_path` gives it (a subject's ``/`` escaped in its segment)."""
    parts = [unquote(part) for part in path.strip("/").split("/")]
    if method == "POST" and len(parts) == 3 and parts[0] == "subjects" and parts[2] == "versions":
        return "register_schema", parts[1]
    if method == "DELETE" and parts[0] == "subjects" and len(parts) == 2:
        return "delete_subject", parts[1]
    if method == "DELETE" and parts[0] == "subjects" and len(parts) == 4 and parts[2] == "versions":
        return "delete_schema_version", parts[1]
    if method in ("PUT", "DELETE") and parts == ["config"]:
        return f"{method.lower()}_global_config", None
    if method in ("PUT", "DELETE") and len(parts) == 2 and parts[0] == "config":
        return f"{method.lower()}_subject_config", parts[1]
    return None


async def _answer(send: Send, status: int, error_code: int, message: str) -> None:
    body = orjson.dumps({"error_code": error_code, "message": message})
    headers = [(b"content-type", _CONTENT_TYPE), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Basic realm="schema-registry", Bearer'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _has_versions(schemas: SchemaStore, subject: str) -> bool:
    """Whether the subject holds any version, soft-deleted ones included."""
    try:
        return bool(schemas.versions(subject, deleted=True))
    except SubjectNotFoundError:
        return False


class RegistryAuth:
    """ASGI middleware: 401 without a known token, 403 for a write without the owning team's role."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            caller = self.access.authenticate(token_of(authorization_of(scope.get("headers", ()))))
        except UnauthenticatedError as exc:
            await _answer(send, 401, 401, f"Unauthorized: {exc}")
            return
        write = write_of(scope["method"], escaped_path(scope))
        if write is None:
            await self.app(scope, receive, send)
            return
        action, subject = write
        target = "config:global" if subject is None else f"subject:{subject}"
        client = scope.get("client")
        where = str(client[0]) if client else ""

        def has_versions() -> bool:  # Starlette sets scope["app"] before its middleware runs
            return subject is not None and _has_versions(scope["app"].state.schema_store, subject)

        refusal = self._refusal(caller, action, subject, has_versions)
        if refusal is not None:
            self.access.write_audited(caller, action, target, 403, where, refusal)
            await _answer(send, 403, 40301, f"User {caller.principal} is denied operation Write on {refusal}")
            return
        store = self.access.store
        # A new subject is claimed for the caller's team before the write, atomically, and the write is recorded as
        # under way until it ends: no failed request of the team gives the claim back meanwhile (another team then
        # claimed the subject and owned this write's version).
        write_id = None
        if action == "register_schema" and subject is not None and store is not None:
            owner, _, write_id = store.begin_write("subject", subject, caller.team)
            if owner != caller.team and not caller.admin:  # another team claimed it since ``_refusal`` looked
                store.end_write(write_id, "subject", subject, wrote=False, unused=lambda: not has_versions())
                why = f"Subject: {subject} (owned by team {owner}; caller's team is {caller.team})"
                self.access.write_audited(caller, action, target, 403, where, why)
                await _answer(send, 403, 40301, f"User {caller.principal} is denied operation Write on {why}")
                return
        status = 500
        held: list[Message] = []  # the answer, sent once its audit record is written

        async def holding(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            held.append(message)

        try:
            await self.app(scope, receive, holding)
        finally:
            if store is not None and subject is not None and write_id is not None:
                # nothing registered by this request: its claim goes too, unless a request of the same team
                # registered a version meanwhile (this one's 409 may be that version's) or is writing one
                store.end_write(write_id, "subject", subject, wrote=status == 200, unused=lambda: not has_versions())
            self.access.write_audited(caller, action, target, status, where)
        for message in held:
            await send(message)

    def _refusal(
        self, caller: Caller, action: str, subject: str | None, has_versions: Callable[[], bool] = lambda: False
    ) -> str | None:
        """Why ``caller`` may not do ``action`` (Confluent's "... on <resource>" wording), or None. ``has_versions``: whether
        the subject holds versions already (soft-deleted ones included): one nobody owns (registered with auth
        off) is an admin's to write, a new version included, not the first team's to claim by posting to it."""
        if caller.admin:
            return None
        if subject is None:
            return "Cluster: global compatibility config (needs an admin token)"
        owner = self.access.store.owner("subject", subject) if self.access.store is not None else None
        if owner is None:
            new_subject = action == "register_schema" and not has_versions()
            return None if new_subject else f"Subject: {subject} (no team owns it: needs an admin token)"
        if owner != caller.team:
            return f"Subject: {subject} (owned by team {owner}; caller's team is {caller.team})"
        return None
