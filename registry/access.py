"""Who may define, read and change what: API tokens, ownership, read grants and the audit trail.

One SQLite store in the registry's database (``registry.access_store.AccessStore``) and one in-memory view
of it that the services check every request against (``Access``), reloaded when the store changes (checked
at most once a second, so a revoked token or grant stops working within a second).

- **Tokens** are issued to a *principal* (a team, or a service account of a team) and act for its
  *team*; an ``admin`` token may write anything. A token reads ``fs_<id>_<secret>``; only the SHA-256
  of the secret is stored, and it is compared in constant time (``hmac.compare_digest``). The text is
  shown once, when it is issued.
- **Ownership.** A feature is owned by the team in its definition's ``owner``; a feature service or a
  schema-registry subject by the team whose token first wrote it (``owners``). Writing needs the
  owning team (or admin); registering a feature needs the caller's team to be the definition's
  ``owner`` and, for a feature that exists, its current owner.
- **Grants.** Reading a feature whose ``sensitivity`` is above ``internal`` (``confidential``,
  ``restricted``) needs the owning team or a grant of that team to the caller's team; ``public`` and
  ``internal`` features are readable by every authenticated caller. The check is one set lookup per
  owning team in the request, whatever the number of definitions.
- **Audit.** Every write (allowed or refused) and every read of a feature above ``internal`` leaves a
  record: who (principal, team), what (action, target), when (UTC, µs), from where (client address)
  and the outcome (HTTP-like status). Writes are recorded before they answer; reads are buffered and
  written at least once a second (``AuditLog``), so a crash loses at most the last second of reads.

Auth is off unless switched on (``FS_AUTH=on``); with it off every caller is anonymous and allowed,
and the services say so at start-up. Pure SQLite and the standard library: the feature API imports it.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import re
import sqlite3
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from registry.access_store import TOKEN_PREFIX, AccessStore, Caller, check_team, secret_sha256, token_id
from registry.audit import AuditLog, AuditRecord
from registry.core.arguments import ArgumentParser, whole
from registry.core.catalog import FeatureCatalog
from registry.core.definitions import MAX_VERSION, FeatureDefinition
from registry.core.errors import DefinitionError, ForbiddenError, StoreUnavailableError, UnauthenticatedError
from registry.core.settings import Settings, settings_for_command
from registry.core.shown import error_line, flushed, reader_gone, shown
from registry.live import Following
from registry.sqlite_store import tables_of

log = logging.getLogger("featurestore.access")

SENSITIVITY_ORDER = ("public", "internal", "confidential", "restricted")
GRANT_ABOVE = "internal"  # reads of a sensitivity above this need the owning team or a grant


_NEEDS_GRANT = frozenset(SENSITIVITY_ORDER[SENSITIVITY_ORDER.index(GRANT_ABOVE) + 1 :])


def header_value(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The value of header ``name`` (lower case) among an ASGI scope's ``headers``, or None."""
    for key, value in headers:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def needs_grant(sensitivity: str) -> bool:
    """Whether reading a feature of this sensitivity needs the owning team or its grant."""
    return sensitivity in _NEEDS_GRANT


ANONYMOUS = Caller("anonymous", "", admin=True)


class Access:
    """The checks every service makes, against a snapshot of the store reloaded when it changes.

    ``enabled`` False (auth off): ``authenticate`` answers ``ANONYMOUS`` and every check passes.
    """

    def __init__(
        self, store: AccessStore | None, *, enabled: bool, refresh_s: float = 1.0, audit: AuditLog | None = None
    ) -> None:
        if enabled and store is None:
            raise ValueError("auth on needs an access store")
        self.enabled = enabled
        self.store = store
        # Without an audit log given, records are written when the check asks for it (``now``) or at ``close``.
        self.audit = audit if audit is not None or store is None else AuditLog(store, flush_s=None)
        self._snapshot = (
            Following(store, store.snapshot, refresh_s=refresh_s, clock=time.monotonic)
            if enabled and store is not None
            else None
        )

    @classmethod
    def of(cls, settings: Settings, db: Path | None = None, *, buffered_audit: bool = True) -> Access:
        """Auth as ``settings.auth`` says (``FS_AUTH``), with tokens in the registry database (or ``db``).

        ``buffered_audit`` False (one-shot commands): no flushing thread; write audit records with ``now=True``.
        """
        if not settings.auth:
            return cls(None, enabled=False)
        store = AccessStore(db if db is not None else settings.definitions_db)
        return cls(store, enabled=True, audit=AuditLog(store) if buffered_audit else AuditLog(store, flush_s=None))

    @property
    def followers(self) -> tuple[Following[Any], ...]:
        """What follows the access store (none with auth off): for a ``registry.live.Refresher``."""
        return (self._snapshot,) if self._snapshot is not None else ()

    def _current(self) -> tuple[dict[str, tuple[str, Caller]], frozenset[tuple[str, str]]]:
        assert self._snapshot is not None
        return self._snapshot.current()

    def authenticate(self, token: str | None) -> Caller:
        """The caller a token stands for; ``UnauthenticatedError`` naming what is wrong with it."""
        if not self.enabled:
            return ANONYMOUS
        if not token:
            raise UnauthenticatedError("no API token: send `Authorization: Bearer <token>`")
        parts = token.split("_", 2) if token.startswith(TOKEN_PREFIX) else []
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise UnauthenticatedError("malformed API token: expected fs_<id>_<secret>")
        found = self._current()[0].get(parts[1])
        if found is None or not hmac.compare_digest(found[0], secret_sha256(parts[2])):
            # At most 16 characters of what was sent (an id is 12): a token sent without its id would otherwise
            # have its secret quoted up to its first "_".
            shown = f"fs_{parts[1]}_" if len(parts[1]) <= 12 else f"fs_{parts[1][:12]}"
            raise UnauthenticatedError(f"unknown or revoked API token {shown}…")
        return found[1]

    def authenticate_command(self, token: str | None) -> Caller:
        """The caller of an offline command, whose token is ``FS_TOKEN`` (no header to send): as ``authenticate``."""
        if self.enabled and not token:
            raise UnauthenticatedError(
                "no API token: set FS_TOKEN to a token of `python -m registry.access create-token` (FS_AUTH is on)"
            )
        return self.authenticate(token)

    def authenticate_header(self, value: str | None) -> Caller:
        """The caller of an ``Authorization`` header value (``Bearer <token>``)."""
        if not self.enabled:
            return ANONYMOUS
        if value is None or not value.strip():
            return self.authenticate(None)
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer":
            # At most 16 characters of it: a token sent without `Bearer ` shows its id (fs_<12>_), not its secret
            shown = scheme if len(scheme) <= 16 else scheme[:16] + "…"
            raise UnauthenticatedError(f"unsupported Authorization scheme {shown!r}: send `Bearer <token>`")
        return self.authenticate(token.strip())

    def may_read(self, caller: Caller, owner_team: str) -> bool:
        """Whether ``caller`` may read features above ``internal`` owned by ``owner_team`` (a set lookup)."""
        if not self.enabled or caller.admin or caller.team == owner_team:
            return True
        return (owner_team, caller.team) in self._current()[1]

    def refused_reads(self, caller: Caller, definitions: Sequence[FeatureDefinition]) -> list[str]:
        """``entity/name@version`` of each definition above ``internal`` that ``caller`` may not read."""
        return [
            f"{d.entity}/{d.name}@{d.version}"
            for d in definitions
            if d.sensitivity in _NEEDS_GRANT and not self.may_read(caller, d.owner)
        ]

    def check_read(
        self,
        caller: Caller,
        definitions: Sequence[FeatureDefinition],
        *,
        action: str,
        client: str = "",
        now: bool = False,
    ) -> None:
        """Refuse (``ForbiddenError`` naming every feature) reads the caller has no grant for; audit
        each read of a feature above ``internal``, allowed or not (``now``: written before returning)."""
        if not self.enabled:
            return
        # Once each: a feature named twice (a stored one and a request feature's input) is one read, one record.
        definitions = list({(d.entity, d.name, d.version): d for d in definitions}.values())
        refused = self.refused_reads(caller, definitions)
        audit = self.audit
        if audit is not None:
            at = time.time()
            for d in definitions:
                if d.sensitivity in _NEEDS_GRANT:
                    ref = f"{d.entity}/{d.name}@{d.version}"
                    status = 403 if ref in refused else 200
                    if now:
                        audit.add(AuditRecord(caller.principal, caller.team, action, ref, status, client), now=True)
                    else:
                        audit.count((caller.principal, caller.team, action, ref, status, client, ""), at)
        if refused:
            owners = sorted({d.owner for d in definitions if f"{d.entity}/{d.name}@{d.version}" in refused})
            raise ForbiddenError(
                f"{caller.who} has no grant to read {', '.join(refused)} "
                f"(owned by {', '.join(owners)}; sensitivity above {GRANT_ABOVE})",
                names=refused,
            )

    def check_write(self, caller: Caller, owners: Iterable[str | None], *, what: str) -> None:
        """Refuse a write to ``what`` unless the caller is admin or of every owning team (None: unowned)."""
        if not self.enabled or caller.admin:
            return
        wrong = sorted({o for o in owners if o is not None and o != caller.team})
        if wrong:
            raise ForbiddenError(f"{caller.who} may not write {what}: it is owned by team {', '.join(wrong)}")

    def write_audited(
        self, caller: Caller, action: str, target: str, outcome: int, client: str, detail: str = ""
    ) -> None:
        if self.enabled and self.audit is not None:
            self.audit.add(
                AuditRecord(caller.principal, caller.team, action, target, outcome, client, detail), now=True
            )

    def command_audited(self, caller: Caller | None, action: str, target: str, outcome: int, detail: str = "") -> str:
        """``write_audited`` for a one-shot offline command (client ``offline``), which must answer whatever
        happens: "" once recorded (or with nothing to record: auth off, or no caller known yet), else a note
        naming why the record could not be written, for the command to add to its answer."""
        if caller is None:
            return ""
        try:
            self.write_audited(caller, action, target, outcome, "offline", detail[:_DETAIL_CHARS])
        except sqlite3.Error as exc:
            return f" (its audit record could not be written: {type(exc).__name__}: {exc})"
        return ""

    def close(self) -> None:
        if self.audit is not None:
            self.audit.close()


_DETAIL_CHARS = 1000  # an audited failure's detail: its error line, cut to this length


INTERRUPTED_STATUS = 499
"""The outcome an offline command's run is audited with when it was stopped half way (Ctrl-C, SIGTERM) once its
caller was known: nginx's "client closed request", as the run may have changed some stores already."""


def interruption_line(command: str, exc: KeyboardInterrupt | SystemExit) -> str:
    """An audit record's detail for a run stopped by ``exc``: ``erasure interrupted (Ctrl-C)``, or ``... terminated
    (exit 143)`` (a SIGTERM, ``registry.core.interrupt.run_command``)."""
    if isinstance(exc, KeyboardInterrupt):
        return f"{command} interrupted (Ctrl-C)"
    return f"{command} terminated (exit {exc.code})"


def failure_status(exc: BaseException) -> int:
    """The outcome a write that failed once its caller was known is audited with, as the feature API would
    answer it: 403 refused, 422 an argument the registry refuses (a field outside a composite key, an empty
    id), 503 a store that failed or refused (a table missing, a commit refused, a file unreadable), 500
    anything else."""
    if isinstance(exc, ForbiddenError):
        return 403
    if isinstance(exc, ValueError | DefinitionError):
        return 422
    if isinstance(exc, StoreUnavailableError | OSError | EOFError | sqlite3.Error):
        return 503
    if type(exc).__module__ == "pyiceberg.exceptions" and type(exc).__name__ == "ValidationError":
        return 503  # a table's metadata file cut short (not imported here: the API never loads pyiceberg)
    return 500


def guard_catalog(catalog: FeatureCatalog, settings: Settings, *, action: str) -> FeatureCatalog:
    """``catalog`` as the caller of ``settings.token`` may read it offline (training sets, batch scoring,
    backfills): with auth on, ``UnauthenticatedError`` without a known token, and every read of values
    refuses (``ForbiddenError``, naming them) the features above ``internal`` it has no grant for."""
    access = Access.of(settings, buffered_audit=False)
    if not access.enabled:
        return catalog
    caller = access.authenticate_command(settings.token)

    def check(definitions: Sequence[FeatureDefinition]) -> None:
        # Audit records written at once: an offline command may exit right after.
        access.check_read(caller, definitions, action=action, client="offline", now=True)

    return catalog.guarded(check)


# --- CLI -------------------------------------------------------------------------------------------


# Commands that only read or undo: a store that is not there yet is a wrong --db, not a new registry.
_NEEDS_STORE = frozenset({"list-tokens", "revoke-token", "revoke-grant", "list-grants", "audit"})


_FEATURE_TARGET = re.compile(r"[a-z][a-z0-9_]{0,62}/[a-z][a-z0-9_]{0,62}(@[1-9][0-9]{0,9})?")


def _feature_target(raw: str) -> str:
    """``audit --feature``: a feature's audit target, ``entity/name`` (every version) or ``entity/name@version``;
    anything else would match no record and print nothing, so it is a usage error (exit 2)."""
    if not _FEATURE_TARGET.fullmatch(raw) or ("@" in raw and int(raw.split("@")[1]) > MAX_VERSION):
        raise argparse.ArgumentTypeError(
            f"must be entity/name or entity/name@version, like user/txn_count_1h@2, not {shown(raw, quoted=True)}"
        )
    return raw


# A registry's SQLite file holds at least one of these (its definitions, training sets, tokens or erasures);
# an empty file or another program's database holds none of them.
REGISTRY_TABLES = frozenset({"feature_versions", "training_sets", "access_tokens", "erasures"})


def _check_db(db: Path, command: str, default: Path) -> None:
    """Refuse a ``--db`` that cannot be, or (for a command that only reads or undoes) is not yet, the store: read
    without writing anything (``sqlite3.DatabaseError`` for a file that is not SQLite). As ``registry.cli apply``,
    a command that creates the store creates the configured location's folders too (``default``: a fresh
    ``FS_STATE_DIR`` has none), while an explicit ``--db`` elsewhere needs an existing folder."""
    if db.is_dir():
        raise ValueError(f"--db {db} is a directory, not the registry's store (SQLite file)")
    if command not in _NEEDS_STORE:
        if not db.exists() and db != default and not db.parent.is_dir():
            raise ValueError(f"--db {db}: folder {db.parent} does not exist")
        return
    if not db.exists():
        raise ValueError(f"--db {db}: no registry store there (create-token or grant creates it)")
    tables = tables_of(db)
    if tables is not None and not tables & REGISTRY_TABLES:
        raise ValueError(
            f"--db {db}: no registry store there (an empty file, or another program's database; "
            "create-token or grant creates it)"
        )


def main(argv: list[str] | None = None) -> int:
    """The command; a reader that stopped reading (``list | head -1``) is one ``error:`` line, exit 1."""
    return flushed(_command, argv)


def _command(argv: list[str] | None) -> int:
    settings = settings_for_command()
    parser = ArgumentParser(prog="python -m registry.access", description="API tokens, grants and the audit log")
    parser.add_argument("--db", type=Path, default=settings.definitions_db, help="the registry's SQLite file")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-token", help="issue a token (printed once; only its hash is stored)")
    create.add_argument("--principal", required=True, help="the team, or a service account's name")
    create.add_argument("--team", help="the team it acts for (default: the principal)")
    create.add_argument("--admin", action="store_true", help="may write anything and read every feature")
    sub.add_parser("list-tokens", help="every token's id, principal, team and state (no secrets)")
    revoke = sub.add_parser("revoke-token", help="revoke a token by its id (fs_<id> or <id>) or the token itself")
    revoke.add_argument("token_id")
    grant = sub.add_parser("grant", help="let a team read another team's features above internal")
    grant.add_argument("--owner", required=True)
    grant.add_argument("--to", required=True, dest="grantee")
    ungrant = sub.add_parser("revoke-grant")
    ungrant.add_argument("--owner", required=True)
    ungrant.add_argument("--to", required=True, dest="grantee")
    sub.add_parser("list-grants")
    audit = sub.add_parser("audit", help="audit records, newest first, as JSON lines")
    about = audit.add_mutually_exclusive_group()
    about.add_argument("--feature", type=_feature_target, help="entity/name or entity/name@version")
    about.add_argument("--target", help="any target, e.g. subject:card_transactions-value")
    audit.add_argument("--caller", help="a principal")
    audit.add_argument(
        "--since",
        help="ISO 8601 time (Z or an offset; none: UTC) or epoch milliseconds, inclusive, e.g. 2026-11-30T10:00:00Z",
    )
    audit.add_argument("--limit", type=whole(1), default=1000)
    args = parser.parse_args(argv)
    try:
        # Names first: a refused one creates no store.
        if args.command == "create-token":
            check_team(args.principal, "principal")
            if args.team is not None:
                check_team(args.team, "team")
        elif args.command in ("grant", "revoke-grant"):
            check_team(args.owner, "--owner")
            check_team(args.grantee, "--to")
        _check_db(args.db, args.command, settings.definitions_db)
        store = AccessStore(args.db)
        if args.command == "create-token":
            token = store.issue(args.principal, args.principal if args.team is None else args.team, admin=args.admin)
            try:
                print(token, flush=True)
            except OSError as exc:  # nobody received the secret (a reader gone, a full disk): no live token left
                store.revoke(token_id(token))
                note = f"the new token could not be written out, so it was revoked: {exc}"
                if isinstance(exc, BrokenPipeError):
                    reader_gone(exc, note)
                else:
                    print(error_line(note), file=sys.stderr)
                return 1
        elif args.command == "list-tokens":
            for row in store.tokens():
                print(json.dumps(row))
        elif args.command == "revoke-token":
            revoked = token_id(args.token_id)
            if not store.revoke(revoked):
                print(error_line(f"no live token with id {shown(revoked, quoted=True)}"), file=sys.stderr)
                return 1
            print(f"revoked {revoked}")
        elif args.command == "grant":
            store.grant(args.owner, args.grantee)
        elif args.command == "revoke-grant":
            if not store.revoke_grant(args.owner, args.grantee):
                print(error_line(f"{shown(args.owner)} had granted nothing to {shown(args.grantee)}"), file=sys.stderr)
                return 1
        elif args.command == "list-grants":
            for owner, grantee in store.grants():
                print(json.dumps({"owner_team": owner, "grantee_team": grantee}))
        else:
            target = args.target if args.feature is None else args.feature
            rows = store.audit(target=target, principal=args.caller, since=args.since, limit=args.limit + 1)
            for row in rows[: args.limit]:
                print(json.dumps(row))
            if len(rows) > args.limit:  # never a silently partial trail
                print(
                    f"note: the newest {args.limit} records shown, older ones match too "
                    f"(--limit to show more, --since to narrow)",
                    file=sys.stderr,
                )
    except ValueError as exc:
        print(error_line(exc), file=sys.stderr)
        return 1
    except sqlite3.DatabaseError as exc:  # a file that is not SQLite, or one that cannot be opened
        print(error_line(f"--db {shown(args.db)}: not a usable registry store (SQLite): {exc}"), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
