"""The rules of docs/design.md §9 "Governance" (tokens, read grants, ownership of writes, read audit) against a
brute-force model written from the docs only:

- a token is ``fs_<id>_<secret>``: a known live id with its own secret authenticates as its principal, team
  and admin flag; no token, a malformed one, an unknown id, a wrong secret or a revoked token does not
  (``UnauthenticatedError`` naming which); a header in another scheme than Bearer is refused as such.
  (Tokens have no expiry in the design: revocation is the only end of one.)
- values of ``public`` and ``internal`` features are readable by every authenticated caller;
  ``confidential``/``restricted`` ones by the owning team, an admin, or a team the owner granted (a grant
  covers every feature of the owner above ``internal``, and is one-way);
- a write needs the caller's team to be every owning team (an unowned name: anyone), or an admin token;
- every read of a feature above ``internal``, allowed or refused, is audited, each feature once per check,
  and the refusal names every refused ``entity/name@version`` once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.access import Access
from registry.access_store import AccessStore, Caller
from registry.core.errors import ForbiddenError, UnauthenticatedError
from tests.unit.conftest import build_definition

TEAMS = ("risk", "fraud", "ml")
SENSITIVITIES = ("public", "internal", "confidential", "restricted")
DEFINITIONS = [
    build_definition(name=f"f_{owner}_{s}", owner=owner, sensitivity=s) for owner in TEAMS for s in SENSITIVITIES
]


def _may_read(caller: Caller, owner: str, sensitivity: str, grants: set[tuple[str, str]]) -> bool:
    """The model."""
    if sensitivity in ("public", "internal"):
        return True
    return caller.admin or caller.team == owner or (owner, caller.team) in grants


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    grants=st.sets(st.tuples(st.sampled_from(TEAMS), st.sampled_from(TEAMS))),
    team=st.sampled_from(TEAMS),
    admin=st.booleans(),
    picked=st.lists(st.sampled_from(DEFINITIONS), min_size=1, max_size=8),
)
def test_read_grants_and_their_audit_follow_the_documented_rule(
    tmp_path_factory: Any, grants: set[tuple[str, str]], team: str, admin: bool, picked: list[Any]
) -> None:
    store = AccessStore(tmp_path_factory.mktemp("rules") / "d.db")
    for owner, grantee in grants:
        store.grant(owner, grantee)
    access = Access(store, enabled=True, refresh_s=0)
    caller = Caller("p", team, admin)
    distinct = list({(d.entity, d.name, d.version): d for d in picked}.values())
    refused = [
        f"{d.entity}/{d.name}@{d.version}" for d in distinct if not _may_read(caller, d.owner, d.sensitivity, grants)
    ]
    sensitive = [d for d in distinct if d.sensitivity in ("confidential", "restricted")]
    if refused:
        with pytest.raises(ForbiddenError) as raised:
            access.check_read(caller, picked, action="read_features", client="c", now=True)
        assert raised.value.names == refused
    else:
        access.check_read(caller, picked, action="read_features", client="c", now=True)
    records = sorted((r["target"], r["outcome"]) for r in store.audit())
    expected = sorted(
        (f"{d.entity}/{d.name}@{d.version}", 403 if f"{d.entity}/{d.name}@{d.version}" in refused else 200)
        for d in sensitive
    )
    assert records == expected


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> AccessStore:
    return AccessStore(tmp_path_factory.mktemp("rules") / "d.db")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    team=st.sampled_from(TEAMS),
    admin=st.booleans(),
    owners=st.lists(st.one_of(st.none(), st.sampled_from(TEAMS)), max_size=3),
)
def test_writes_follow_the_documented_ownership_rule(
    empty_store: AccessStore, team: str, admin: bool, owners: list[str | None]
) -> None:
    access = Access(None, enabled=False)
    access.check_write(Caller("p", team, admin), owners, what="x")  # auth off: every write allowed
    on = Access(empty_store, enabled=True)
    allowed = admin or all(o is None or o == team for o in owners)
    if allowed:
        on.check_write(Caller("p", team, admin), owners, what="x")
    else:
        with pytest.raises(ForbiddenError):
            on.check_write(Caller("p", team, admin), owners, what="x")


def test_tokens_authenticate_only_while_known_live_and_whole(tmp_path: Path) -> None:
    store = AccessStore(tmp_path / "d.db")
    access = Access(store, enabled=True, refresh_s=0)
    token = store.issue("scorer", "ml", admin=False)
    root = store.issue("ops", "platform", admin=True)
    token_id, secret = token.removeprefix("fs_").split("_", 1)
    assert access.authenticate(token) == Caller("scorer", "ml", False, token_id)
    assert access.authenticate(root).admin
    assert access.authenticate_header(f"Bearer {token}").principal == "scorer"
    assert access.authenticate_header(f"bearer {token}").principal == "scorer"  # the scheme is case-insensitive
    other_id = root.removeprefix("fs_").split("_", 1)[0]
    cases = {
        None: "no API token",
        "": "no API token",
        token_id: "malformed",
        f"fs_{token_id}": "malformed",
        f"fs_{token_id}_": "malformed",
        f"fs__{secret}": "malformed",
        f"xx_{token_id}_{secret}": "malformed",
        f"fs_{token_id}_{secret}x": "unknown or revoked",
        f"fs_{other_id}_{secret}": "unknown or revoked",  # another token's id with this one's secret
        f"fs_ffffffffffff_{secret}": "unknown or revoked",
    }
    for text, says in cases.items():
        with pytest.raises(UnauthenticatedError, match=says):
            access.authenticate(text)
    for header, says in [(f"Basic {token}", "unsupported Authorization scheme"), ("Bearer", "no API token")]:
        with pytest.raises(UnauthenticatedError, match=says):
            access.authenticate_header(header)
    assert store.revoke(token_id)
    with pytest.raises(UnauthenticatedError, match="unknown or revoked"):
        access.authenticate(token)
    assert not store.revoke(token_id)  # revoked once
    assert access.authenticate(root).principal == "ops"  # the others stay


def test_auth_off_allows_every_read_and_records_none(tmp_path: Path) -> None:
    access = Access(None, enabled=False)
    assert access.authenticate(None).admin
    access.check_read(Caller("p", "ml"), DEFINITIONS, action="read_features", now=True)


def test_a_feature_named_twice_in_one_check_is_one_read_named_once(tmp_path: Path) -> None:
    """A training set naming a stored feature and a request feature computed from it checks the feature twice
    in one ``check_read``: it was audited twice and named twice in the refusal."""
    store = AccessStore(tmp_path / "d.db")
    access = Access(store, enabled=True, refresh_s=0)
    secret = next(d for d in DEFINITIONS if d.owner == "fraud" and d.sensitivity == "restricted")
    with pytest.raises(ForbiddenError) as raised:
        access.check_read(Caller("p", "ml"), [secret, secret], action="training_set", client="offline", now=True)
    assert raised.value.names == ["user/f_fraud_restricted@1"]
    assert str(raised.value).count("f_fraud_restricted") == 1
    assert [(r["target"], r["outcome"]) for r in store.audit()] == [("user/f_fraud_restricted@1", 403)]
