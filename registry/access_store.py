"""The SQLite side of access control: API tokens, read grants, owners and the audit log in the registry's database.

``AccessStore`` keeps them in the registry's SQLite file (only the SHA-256 of a token's secret, never the
secret); ``registry.access`` checks requests against a snapshot of it. A ``Caller`` is what a live token
stands for (a principal acting for a team); a team's or principal's name is checked as a definition's
``owner`` is (``check_team``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from registry.audit import AuditRecord, now_iso, stored_instant
from registry.core.shown import shown
from registry.sqlite_store import SqliteStore

OwnedKind = Literal["feature_service", "subject"]
TOKEN_PREFIX = "fs_"


def token_id(text: str) -> str:
    """The id part of a token ``fs_<id>_<secret>``, or of an id given as ``fs_<id>`` or ``<id>``."""
    return text.removeprefix(TOKEN_PREFIX).split("_")[0]


_SQLITE_MAX_INT = 2**63 - 1

# A write under way (``begin_write``) older than this is taken to be one whose process died before it ended: it no
# longer keeps a failed write's claim (a registration's longest wait, the store's 30 s lock timeout, is far below).
WRITE_HELD_S = 600.0

# Unicode category Cc, which a definition's owner may not hold, and lone surrogates (bytes of an argument that were
# not UTF-8), which no store can hold
_NOT_A_NAME = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


_DDL = """
CREATE TABLE IF NOT EXISTS access_tokens (
    token_id TEXT PRIMARY KEY, secret_sha256 TEXT NOT NULL, principal TEXT NOT NULL, team TEXT NOT NULL,
    admin INTEGER NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS access_grants (
    owner_team TEXT NOT NULL, grantee_team TEXT NOT NULL, granted_at TEXT NOT NULL,
    PRIMARY KEY (owner_team, grantee_team)
);
CREATE TABLE IF NOT EXISTS access_owners (
    kind TEXT NOT NULL, name TEXT NOT NULL, team TEXT NOT NULL, claimed_at TEXT NOT NULL,
    PRIMARY KEY (kind, name)
);
CREATE TABLE IF NOT EXISTS access_writes (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, team TEXT NOT NULL, since_s REAL NOT NULL,
    claim_team TEXT
);
CREATE INDEX IF NOT EXISTS access_writes_by_name ON access_writes (kind, name);
CREATE TABLE IF NOT EXISTS access_seq (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
INSERT OR IGNORE INTO access_seq VALUES (1, 0);
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, principal TEXT NOT NULL, team TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT NOT NULL, outcome INTEGER NOT NULL, client TEXT NOT NULL, detail TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS audit_by_target ON audit_log (target, at);
CREATE INDEX IF NOT EXISTS audit_by_principal ON audit_log (principal, at);
"""


def _text(value: str) -> str:
    """``value`` as SQLite stores text (UTF-8): a command's argument that was not UTF-8 (read with surrogate escapes,
    e.g. an entity id in a target) kept with its bytes escaped (``\\udcff``) rather than failing the record."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode()
    return value


def secret_sha256(secret: str) -> str:
    # surrogateescape: FS_TOKEN holding bytes that are not UTF-8 is an unknown token, not a UnicodeEncodeError
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: who (``principal``), for which team, and whether it may write anything."""

    principal: str
    team: str
    admin: bool = False
    token_id: str = ""

    @property
    def who(self) -> str:
        return f"{self.principal} (team {self.team})"


def check_team(value: str, what: str) -> None:
    """A team's (or principal's) name: 1-256 printable characters, as a definition's ``owner`` may be (no control
    character, Unicode category Cc; spaces of any script and slashes included): every owner a definition may name
    is a team a token can act for and a grant can name. ValueError naming ``what`` otherwise."""
    if not value or len(value) > 256 or _NOT_A_NAME.search(value):
        raise ValueError(f"{what} must be 1-256 printable characters, not {shown(value, quoted=True)}")


class AccessStore(SqliteStore):
    """Tokens, grants, owners and the audit log in the registry's SQLite file."""

    DDL = _DDL

    # -- tokens --------------------------------------------------------------------------------------
    def issue(self, principal: str, team: str, *, admin: bool = False) -> str:
        """A new token for ``principal`` acting for ``team``; the returned text is never stored."""
        check_team(principal, "principal")
        check_team(team, "team")
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO access_tokens VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (token_id, secret_sha256(secret), principal, team, int(admin), now_iso()),
            )
            self._bump(conn)
        return f"{TOKEN_PREFIX}{token_id}_{secret}"

    def revoke(self, token_id: str) -> bool:
        """Revoke a token by its id (the part after ``fs_``); False if no live token has that id."""
        with self._tx() as conn:
            done = conn.execute(
                "UPDATE access_tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
                (now_iso(), token_id),
            ).rowcount
            self._bump(conn)
        return bool(done)

    def tokens(self) -> list[dict[str, Any]]:
        """Every token's id, principal, team, admin flag and times (never a secret or its hash)."""
        conn = self._connect()
        try:
            rows = conn.execute(
                "SELECT token_id, principal, team, admin, created_at, revoked_at FROM access_tokens ORDER BY created_at"
            ).fetchall()
        finally:
            conn.close()
        keys = ("token_id", "principal", "team", "admin", "created_at", "revoked_at")
        return [dict(zip(keys, (*r[:3], bool(r[3]), *r[4:]), strict=True)) for r in rows]

    # -- grants and owners -------------------------------------------------------------------------
    def grant(self, owner_team: str, grantee_team: str) -> None:
        check_team(owner_team, "owner team")
        check_team(grantee_team, "grantee team")
        with self._tx() as conn:
            conn.execute("INSERT OR IGNORE INTO access_grants VALUES (?, ?, ?)", (owner_team, grantee_team, now_iso()))
            self._bump(conn)

    def revoke_grant(self, owner_team: str, grantee_team: str) -> bool:
        with self._tx() as conn:
            done = conn.execute(
                "DELETE FROM access_grants WHERE owner_team = ? AND grantee_team = ?", (owner_team, grantee_team)
            ).rowcount
            self._bump(conn)
        return bool(done)

    def grants(self) -> list[tuple[str, str]]:
        conn = self._connect()
        try:
            return [tuple(r) for r in conn.execute("SELECT owner_team, grantee_team FROM access_grants ORDER BY 1, 2")]  # type: ignore[misc]
        finally:
            conn.close()

    def owner(self, kind: OwnedKind, name: str) -> str | None:
        conn = self._connect()
        try:
            row = conn.execute("SELECT team FROM access_owners WHERE kind = ? AND name = ?", (kind, name)).fetchone()
        finally:
            conn.close()
        return None if row is None else str(row[0])

    def claim(self, kind: OwnedKind, name: str, team: str) -> str:
        """The owning team of ``kind:name``, which becomes ``team`` if nobody owned it."""
        return self.claim_new(kind, name, team)[0]

    def claim_new(self, kind: OwnedKind, name: str, team: str) -> tuple[str, bool]:
        """(the owning team of ``kind:name``, whether this call made ``team`` its owner), in one transaction:
        of two teams claiming at once, one owns it and the other sees that team."""
        with self._tx() as conn:
            inserted = conn.execute(
                "INSERT OR IGNORE INTO access_owners VALUES (?, ?, ?, ?)", (kind, name, team, now_iso())
            ).rowcount
            row = conn.execute("SELECT team FROM access_owners WHERE kind = ? AND name = ?", (kind, name)).fetchone()
        return str(row[0]), inserted == 1

    def release(self, kind: OwnedKind, name: str, team: str, *, unused: Callable[[], bool]) -> None:
        """Undo ``claim_new``'s claim when the write it was for did not happen, if ``unused()`` (asked inside this
        store's write transaction) says nothing holds a version under the name: a write of the same team that
        began before the claim and committed meanwhile (the reason this one failed, with a 409) keeps its owner.
        Releasing whatever happened left such a subject or service ownerless, for another team to take. A write
        begun with ``begin_write`` and not yet ended keeps the claim too (``end_write``)."""
        with self._tx() as conn:
            self._release(conn, kind, name, {team}, unused)

    def _release(
        self, conn: sqlite3.Connection, kind: OwnedKind, name: str, teams: set[str], unused: Callable[[], bool]
    ) -> None:
        """Give the claims of ``teams`` back if ``unused()``, and those a write whose process died (under way for
        more than ``WRITE_HELD_S``) was handed; while other writes of the name are under way they are theirs to give
        back instead: the last of them to end without writing gives them back (``end_write``)."""
        stale_s = time.time() - WRITE_HELD_S
        stale = conn.execute(
            "SELECT claim_team FROM access_writes WHERE kind = ? AND name = ? AND since_s < ? AND claim_team IS NOT NULL",
            (kind, name, stale_s),
        ).fetchall()
        conn.execute("DELETE FROM access_writes WHERE kind = ? AND name = ? AND since_s < ?", (kind, name, stale_s))
        teams = teams | {str(team) for (team,) in stale}
        if not teams:
            return
        writing = conn.execute("SELECT 1 FROM access_writes WHERE kind = ? AND name = ? LIMIT 1", (kind, name))
        if writing.fetchone() is not None:  # one owner per name: the teams are one team
            conn.execute(
                "UPDATE access_writes SET claim_team = ? WHERE kind = ? AND name = ?", (min(teams), kind, name)
            )
        elif unused():
            for team in teams:
                conn.execute("DELETE FROM access_owners WHERE kind = ? AND name = ? AND team = ?", (kind, name, team))

    def begin_write(self, kind: OwnedKind, name: str, team: str) -> tuple[str, bool, str]:
        """``claim_new`` (the owner, whether this call claimed it) and, in the same transaction, a record that a write
        of ``kind:name`` is under way (its id, for ``end_write``). While it is, no claim of the name is given back: a
        request of the team whose claim let a second one through, and which then failed, gave the claim back before
        the second wrote, and another team claimed the name and owned the second's version."""
        write_id = uuid.uuid4().hex
        with self._tx() as conn:
            inserted = conn.execute(
                "INSERT OR IGNORE INTO access_owners VALUES (?, ?, ?, ?)", (kind, name, team, now_iso())
            ).rowcount
            (owner,) = conn.execute(
                "SELECT team FROM access_owners WHERE kind = ? AND name = ?", (kind, name)
            ).fetchone()
            conn.execute(
                "INSERT INTO access_writes VALUES (?, ?, ?, ?, ?, ?)",
                (write_id, kind, name, team, time.time(), team if inserted == 1 else None),
            )
        return str(owner), inserted == 1, write_id

    def end_write(self, write_id: str, kind: OwnedKind, name: str, *, wrote: bool, unused: Callable[[], bool]) -> None:
        """The write ``begin_write`` began is over. One that wrote nothing and holds a claim (its own, or one handed to
        it by a write that failed before it) gives it back as ``release`` does: at once if no other write of the name
        is under way and ``unused()``, else it hands it on, so the last write to fail gives it back (two failing
        writes of one team left the name owned by a team that never registered it)."""
        with self._tx() as conn:
            row = conn.execute("SELECT claim_team FROM access_writes WHERE id = ?", (write_id,)).fetchone()
            conn.execute("DELETE FROM access_writes WHERE id = ?", (write_id,))
            held = {str(row[0])} if not wrote and row is not None and row[0] is not None else set()
            self._release(conn, kind, name, held, unused)  # with the claims of writes whose process died

    # -- snapshot ------------------------------------------------------------------------------------
    def change_seq(self) -> int:
        conn = self._connect()
        try:
            return int(conn.execute("SELECT seq FROM access_seq WHERE id = 1").fetchone()[0])
        finally:
            conn.close()

    @staticmethod
    def _bump(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE access_seq SET seq = seq + 1 WHERE id = 1")

    def snapshot(self) -> tuple[dict[str, tuple[str, Caller]], frozenset[tuple[str, str]]]:
        """Live tokens by id (hash, caller) and grants as (owner team, grantee team) pairs."""
        conn = self._connect()
        try:
            tokens = {
                token_id: (digest, Caller(principal, team, bool(admin), token_id))
                for token_id, digest, principal, team, admin in conn.execute(
                    "SELECT token_id, secret_sha256, principal, team, admin FROM access_tokens WHERE revoked_at IS NULL"
                )
            }
            grants = frozenset((o, g) for o, g in conn.execute("SELECT owner_team, grantee_team FROM access_grants"))
        finally:
            conn.close()
        return tokens, grants

    # -- audit ---------------------------------------------------------------------------------------
    def record(self, records: Iterable[AuditRecord]) -> int:
        rows = [
            (
                r.at or now_iso(),
                r.principal,
                r.team,
                r.action,
                _text(r.target),
                r.outcome,
                r.client,
                _text(r.detail),
                r.count,
            )
            for r in records
        ]
        if not rows:
            return 0
        with self._tx() as conn:
            conn.executemany(
                "INSERT INTO audit_log (at, principal, team, action, target, outcome, client, detail, count) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def audit(
        self, *, target: str | None = None, principal: str | None = None, since: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Audit records, newest first (by their time; ties newest written first). ``target`` matches exactly
        or as a prefix ending in ``@`` (``user/txn_count_1h`` finds every version's records); ``since`` is an
        ISO 8601 time with a zone (``Z`` or an offset; without one, UTC), inclusive, compared as an instant."""
        terms, args = [], []
        if target is not None:
            target = _text(target)  # as ``record`` stored it: a target given in bytes that are not UTF-8 is found
            terms.append("(target = ? OR substr(target, 1, ?) = ?)")
            args += [target, len(target) + 1, target + "@"]
        if principal is not None:
            terms.append("principal = ?")
            args.append(_text(principal))
        if since is not None:
            terms.append("at >= ?")
            args.append(stored_instant(since))
        where = f"WHERE {' AND '.join(terms)}" if terms else ""
        conn = self._connect()
        try:
            rows = conn.execute(
                f"SELECT at, principal, team, action, target, outcome, client, detail, count FROM audit_log {where} "
                "ORDER BY at DESC, id DESC LIMIT ?",  # by time: a second's reads are written after it, with its start
                (*args, min(limit, _SQLITE_MAX_INT)),  # any --limit: past SQLite's integers is "all of them"
            ).fetchall()
        finally:
            conn.close()
        keys = ("at", "principal", "team", "action", "target", "outcome", "client", "detail", "count")
        return [dict(zip(keys, r, strict=True)) for r in rows]
