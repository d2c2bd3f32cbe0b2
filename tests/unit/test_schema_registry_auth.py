"""The schema registry with auth on: tokens from Confluent's own client settings, subject ownership, audit.

Served by uvicorn on a loopback port (``tests.http_server``), so Confluent's ``SchemaRegistryClient``
sends its credentials exactly as it would to Confluent's registry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError

from registry.access import Access
from registry.access_store import AccessStore
from registry.schema_registry.api import _ROUTES, create_schema_registry_app
from registry.schema_registry.auth import token_of, write_of
from registry.schema_registry.store import SchemaStore
from tests.http_server import serving

SCHEMA = json.dumps({"type": "record", "name": "Txn", "fields": [{"name": "id", "type": "string"}]})
SCHEMA_2 = json.dumps(
    {
        "type": "record",
        "name": "Txn",
        "fields": [{"name": "id", "type": "string"}, {"name": "note", "type": ["null", "string"], "default": None}],
    }
)


@pytest.fixture
def access_store(tmp_path: Path) -> AccessStore:
    return AccessStore(tmp_path / "definitions.db")


@pytest.fixture
def url(tmp_path: Path, access_store: AccessStore) -> Iterator[str]:
    access = Access(access_store, enabled=True, refresh_s=0)
    with serving(create_schema_registry_app(SchemaStore(tmp_path / "schemas.db"), access)) as base:
        yield base
    access.close()


def _basic(token: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": _url[0], "basic.auth.user.info": f"anyone:{token}"})


_url: list[str] = []


@pytest.fixture(autouse=True)
def _remember(url: str) -> Iterator[None]:
    _url[:] = [url]
    yield
    _url.clear()


def _bearer(token: str) -> SchemaRegistryClient:
    return SchemaRegistryClient(
        {
            "url": _url[0],
            "bearer.auth.credentials.source": "STATIC_TOKEN",
            "bearer.auth.token": token,
            "bearer.auth.logical.cluster": "lsrc-local",
        }
    )


def _refused(call: Any) -> tuple[int, int, str]:
    with pytest.raises(SchemaRegistryError) as caught:
        call()
    return caught.value.http_status_code, caught.value.error_code, caught.value.error_message


def test_every_route_answers_401_without_a_known_token(url: str, access_store: AccessStore) -> None:
    access_store.issue("risk-bot", "risk-team")
    with httpx.Client(base_url=url) as http:
        for method, path in [*((m, p) for m, p, _ in _ROUTES), ("GET", "/no/such/route")]:
            filled = path.replace("{subject}", "s").replace("{version}", "1").replace("{schema_id}", "1")
            for headers in ({}, {"Authorization": "Bearer fs_000000000000_nope"}, {"Authorization": "Basic !!"}):
                response = http.request(method, filled, headers=headers)
                assert response.status_code == 401, (method, filled, headers, response.text)
                assert response.json()["error_code"] == 401
                assert response.json()["message"].startswith("Unauthorized: ")
    # Confluent's client without credentials sees the 401 as a SchemaRegistryError.
    status, code, _ = _refused(lambda: SchemaRegistryClient({"url": url}).get_subjects())
    assert (status, code) == (401, 401)


def test_confluent_clients_authenticate_with_basic_or_bearer_credentials(access_store: AccessStore) -> None:
    token = access_store.issue("risk-bot", "risk-team")
    schema_id = _basic(token).register_schema("txn-value", Schema(SCHEMA, "AVRO"))
    assert json.loads(str(_bearer(token).get_schema(schema_id).schema_str)) == json.loads(SCHEMA)
    assert _bearer(token).get_subjects() == ["txn-value"]


def test_a_subject_belongs_to_the_team_that_registered_it_first(access_store: AccessStore) -> None:
    risk = _basic(access_store.issue("risk-bot", "risk-team"))
    fraud = _basic(access_store.issue("fraud-bot", "fraud-team"))
    risk.register_schema("txn-value", Schema(SCHEMA, "AVRO"))
    status, code, message = _refused(lambda: fraud.register_schema("txn-value", Schema(SCHEMA_2, "AVRO")))
    assert (status, code) == (403, 40301)
    assert "fraud-bot is denied operation Write on Subject: txn-value" in message
    assert "owned by team risk-team" in message
    for call in (
        lambda: fraud.delete_subject("txn-value"),
        lambda: fraud.delete_version("txn-value", 1),
        lambda: fraud.set_compatibility("txn-value", "NONE"),
    ):
        assert _refused(call)[:2] == (403, 40301)
    assert fraud.get_versions("txn-value") == [1]  # nothing changed; reads are open to any token
    assert risk.register_schema("txn-value", Schema(SCHEMA_2, "AVRO")) > 0  # the owner evolves it
    assert risk.get_versions("txn-value") == [1, 2]


@pytest.mark.parametrize("deleted", [False, True], ids=["live versions", "soft-deleted versions only"])
def test_a_subject_registered_before_auth_is_an_admins_to_write_not_the_first_posters(
    tmp_path: Path, access_store: AccessStore, deleted: bool
) -> None:
    """Design §9: writing a subject nobody owns needs an admin token, a new version included. A subject registered
    with auth off (by a producer, say) was claimed by the first team posting a version to it, even the same schema,
    which could then delete it."""
    held = SchemaStore(tmp_path / "schemas.db")  # the served registry's own file, written as with auth off
    held.register("old-value", SCHEMA)
    if deleted:
        held.delete_subject("old-value")
    fraud = _basic(access_store.issue("fraud-bot", "fraud-team"))
    for schema in (SCHEMA, SCHEMA_2):
        status, code, message = _refused(lambda s=schema: fraud.register_schema("old-value", Schema(s, "AVRO")))
        assert (status, code) == (403, 40301)
        assert message.endswith("Write on Subject: old-value (no team owns it: needs an admin token)")
    assert access_store.owner("subject", "old-value") is None
    admin = _basic(access_store.issue("platform", "platform-team", admin=True))
    assert admin.register_schema("old-value", Schema(SCHEMA_2, "AVRO")) > 0
    assert fraud.register_schema("brand-new-value", Schema(SCHEMA, "AVRO")) > 0  # a new subject is still claimed
    assert access_store.owner("subject", "brand-new-value") == "fraud-team"


def test_the_global_compatibility_needs_an_admin_token(access_store: AccessStore) -> None:
    risk = _basic(access_store.issue("risk-bot", "risk-team"))
    admin = _basic(access_store.issue("platform", "platform-team", admin=True))
    status, code, message = _refused(lambda: risk.set_compatibility(level="NONE"))
    assert (status, code) == (403, 40301)
    assert "admin" in message
    assert admin.set_compatibility(level="FULL") == {"compatibility": "FULL"}


def test_every_write_is_audited_allowed_or_refused(access_store: AccessStore) -> None:
    risk = _basic(access_store.issue("risk-bot", "risk-team"))
    fraud = _basic(access_store.issue("fraud-bot", "fraud-team"))
    risk.register_schema("txn-value", Schema(SCHEMA, "AVRO"))
    _refused(lambda: fraud.delete_subject("txn-value"))
    records = access_store.audit(target="subject:txn-value")
    assert [(r["principal"], r["action"], r["outcome"]) for r in records] == [
        ("fraud-bot", "delete_subject", 403),
        ("risk-bot", "register_schema", 200),
    ]
    assert all(r["client"] == "127.0.0.1" for r in records)


@pytest.mark.parametrize(
    ("method", "path", "write"),
    [
        ("POST", "/subjects/s/versions", ("register_schema", "s")),
        ("POST", "/subjects/s", None),  # lookup
        ("POST", "/compatibility/subjects/s/versions", None),
        ("DELETE", "/subjects/s", ("delete_subject", "s")),
        ("DELETE", "/subjects/s/versions/3", ("delete_schema_version", "s")),
        ("PUT", "/config", ("put_global_config", None)),
        ("DELETE", "/config/s", ("delete_subject_config", "s")),
        ("GET", "/config/s", None),
    ],
)
def test_writes_are_told_from_reads(method: str, path: str, write: tuple[str, str | None] | None) -> None:
    assert write_of(method, path) == write


def test_tokens_come_from_bearer_or_basic_credentials() -> None:
    import base64

    assert token_of("Bearer fs_a_b") == "fs_a_b"
    assert token_of("Basic " + base64.b64encode(b"user:fs_a_b:c").decode()) == "fs_a_b:c"
    assert token_of(None) is None


async def _post_register(app: Any, token: str, subject: str, schema: str) -> tuple[int, list[str]]:
    """POST one registration through the ASGI app; (status, the audit records' actions when the answer began)."""
    body = json.dumps({"schema": schema}).encode()
    seen: list[str] = []
    status = 0
    store: AccessStore = app.state.access_store

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            seen.extend(f"{r['action']}:{r['outcome']}" for r in store.audit(target=f"subject:{subject}"))

    scope = {
        "type": "http",
        "method": "POST",
        "path": f"/subjects/{subject}/versions",
        "raw_path": f"/subjects/{subject}/versions".encode(),
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {token}".encode()), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8081),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
    }
    await app(scope, receive, send)
    return status, seen


@pytest.fixture
def asgi(tmp_path: Path, access_store: AccessStore) -> Iterator[Any]:
    access = Access(access_store, enabled=True, refresh_s=0)
    app = create_schema_registry_app(SchemaStore(tmp_path / "asgi-schemas.db"), access)
    app.state.access_store = access_store
    yield app
    access.close()


def test_an_allowed_write_is_audited_and_its_subject_claimed_before_the_answer(
    asgi: Any, access_store: AccessStore
) -> None:
    import asyncio

    status, seen = asyncio.run(_post_register(asgi, access_store.issue("risk-bot", "risk-team"), "new-value", SCHEMA))
    assert (status, seen) == (200, ["register_schema:200"])
    assert access_store.owner("subject", "new-value") == "risk-team"


def test_a_refused_registration_leaves_its_new_subject_unclaimed(asgi: Any, access_store: AccessStore) -> None:
    import asyncio

    risk, fraud = access_store.issue("risk-bot", "risk-team"), access_store.issue("fraud-bot", "fraud-team")
    status, _ = asyncio.run(_post_register(asgi, risk, "bad-value", '{"type": "record"}'))
    assert status == 422
    assert access_store.owner("subject", "bad-value") is None
    assert asyncio.run(_post_register(asgi, fraud, "bad-value", SCHEMA))[0] == 200
    assert access_store.owner("subject", "bad-value") == "fraud-team"


def test_of_two_teams_registering_a_new_subject_at_once_one_owns_it(
    asgi: Any, access_store: AccessStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both pass the ownership check while the subject is unowned; the claim before the write lets one in."""
    import asyncio

    from registry.schema_registry.auth import RegistryAuth

    monkeypatch.setattr(RegistryAuth, "_refusal", lambda self, *args: None)  # both looked first
    access_store.claim("subject", "race-value", "risk-team")  # the other team's claim landed in between
    status, seen = asyncio.run(
        _post_register(asgi, access_store.issue("fraud-bot", "fraud-team"), "race-value", SCHEMA)
    )
    assert (status, seen) == (403, ["register_schema:403"])
    assert access_store.owner("subject", "race-value") == "risk-team"


def test_a_failed_registration_keeps_the_claim_when_its_team_registered_a_version_meanwhile(
    asgi: Any, access_store: AccessStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deploys of one team register incompatible schemas into a new subject at once: the first claims it, the
    second (seeing the team own it) commits version 1, and the first's 409 gave the claim back, leaving a subject
    with a version and no owner, for another team to take. The claim now goes only from a subject without one."""
    import asyncio

    other = json.dumps({"type": "record", "name": "Txn", "fields": [{"name": "id", "type": "long"}]})
    real = SchemaStore.register

    def the_other_deploy_commits_first(self: SchemaStore, subject: str, schema_text: str, *args: Any, **kw: Any) -> Any:
        try:
            self.versions(subject, deleted=True)
        except Exception:  # a new subject: the other deploy's schema lands first
            real(self, subject, other)
        return real(self, subject, schema_text, *args, **kw)  # 409: incompatible with version 1

    asgi.state.schema_store.set_compatibility("BACKWARD")  # the server's default: a long is no string
    monkeypatch.setattr(SchemaStore, "register", the_other_deploy_commits_first)
    risk, fraud = access_store.issue("risk-bot", "risk-team"), access_store.issue("fraud-bot", "fraud-team")
    assert asyncio.run(_post_register(asgi, risk, "race2-value", SCHEMA))[0] == 409
    assert access_store.owner("subject", "race2-value") == "risk-team"
    monkeypatch.setattr(SchemaStore, "register", real)
    assert asyncio.run(_post_register(asgi, fraud, "race2-value", other))[0] == 403


def test_a_claim_is_not_given_back_while_a_write_of_the_subject_is_under_way(
    asgi: Any, access_store: AccessStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another request of the team, failing, gives the claim back while this one is writing its version: the claim
    stays (a subject with versions and no owner would be an admin's alone)."""
    import asyncio

    risk = access_store.issue("risk-bot", "risk-team")
    assert asyncio.run(_post_register(asgi, risk, "back-value", SCHEMA))[0] == 200
    real = SchemaStore.register

    def the_claim_given_back_meanwhile(self: SchemaStore, *args: Any, **kw: Any) -> Any:
        access_store.release("subject", "back-value", "risk-team", unused=lambda: True)
        return real(self, *args, **kw)

    monkeypatch.setattr(SchemaStore, "register", the_claim_given_back_meanwhile)
    assert asyncio.run(_post_register(asgi, risk, "back-value", SCHEMA_2))[0] == 200
    assert access_store.owner("subject", "back-value") == "risk-team"


def test_a_request_that_claimed_and_failed_keeps_the_claim_while_its_teams_other_write_is_under_way(
    asgi: Any, access_store: AccessStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Team A's first request claims a new subject and fails (a 408: its body came too slowly); its second, let in
    because A owned the subject, is still writing. The first gave the claim back, team B claimed the subject, and
    A's second request then wrote its version into B's subject: both teams were answered 200, A was locked out of
    the subject it wrote. The claim now stays while a write of the subject is under way: B is refused."""
    import asyncio

    risk, fraud = access_store.issue("risk-bot", "risk-team"), access_store.issue("fraud-bot", "fraud-team")
    first_owner, first_claimed, first = access_store.begin_write("subject", "slow-value", "risk-team")
    assert (first_owner, first_claimed) == ("risk-team", True)
    real = SchemaStore.register
    seen: list[tuple[int, list[str]]] = []

    def the_first_fails_and_the_other_team_posts(self: SchemaStore, *args: Any, **kw: Any) -> Any:
        access_store.end_write(first, "subject", "slow-value", wrote=False, unused=lambda: True)
        monkeypatch.setattr(SchemaStore, "register", real)
        seen.append(asyncio.run(_post_register(asgi, fraud, "slow-value", SCHEMA)))
        return real(self, *args, **kw)

    monkeypatch.setattr(SchemaStore, "register", the_first_fails_and_the_other_team_posts)
    assert asyncio.run(_post_register(asgi, risk, "slow-value", SCHEMA))[0] == 200
    assert seen and seen[0][0] == 403
    assert access_store.owner("subject", "slow-value") == "risk-team"
    assert asyncio.run(_post_register(asgi, risk, "slow-value", SCHEMA_2))[0] == 200  # A writes on


def test_a_failed_claim_is_given_back_by_the_last_write_of_the_subject_to_fail(
    asgi: Any, access_store: AccessStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim stays while another write is under way (begun within ``WRITE_HELD_S``: one whose process died
    never ends its record) and goes with the last one to fail: two failed writes of one team left the name owned
    by a team that never registered it."""
    import time

    from registry.access_store import WRITE_HELD_S

    owner = lambda: access_store.owner("subject", "gone-value")  # noqa: E731
    _, claimed, first = access_store.begin_write("subject", "gone-value", "risk-team")
    _, second_claimed, second = access_store.begin_write("subject", "gone-value", "risk-team")
    assert (claimed, second_claimed) == (True, False)
    access_store.end_write(first, "subject", "gone-value", wrote=False, unused=lambda: True)
    assert owner() == "risk-team"  # the second is under way
    access_store.end_write(second, "subject", "gone-value", wrote=False, unused=lambda: True)
    assert owner() is None  # the second failed too: nobody registered it
    _, _, third = access_store.begin_write("subject", "gone-value", "risk-team")
    _, _, fourth = access_store.begin_write("subject", "gone-value", "risk-team")
    access_store.end_write(third, "subject", "gone-value", wrote=False, unused=lambda: True)
    access_store.end_write(fourth, "subject", "gone-value", wrote=True, unused=lambda: False)
    assert owner() == "risk-team"  # the second wrote its version
    _, _, fifth = access_store.begin_write("subject", "other-value", "risk-team")
    _, _, dead = access_store.begin_write("subject", "other-value", "risk-team")
    later_s = time.time() + WRITE_HELD_S + 1
    monkeypatch.setattr(time, "time", lambda: later_s)
    access_store.end_write(fifth, "subject", "other-value", wrote=False, unused=lambda: True)
    monkeypatch.undo()
    assert access_store.owner("subject", "other-value") is None  # ``dead``'s record is too old to keep it
    assert dead


def test_a_refused_write_handed_a_claim_gives_it_back(
    asgi: Any, access_store: AccessStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Team B's request, refused (team A claimed the new subject since B looked), is handed A's claim when A's
    request fails while B's is under way: as the last write to end without writing it gives the claim back, or the
    subject stayed A's, which registered nothing, and every other team was refused for good."""
    import asyncio

    from registry.schema_registry.auth import RegistryAuth

    monkeypatch.setattr(RegistryAuth, "_refusal", lambda self, *args: None)  # B looked before A claimed
    _, claimed, first = access_store.begin_write("subject", "handed-value", "risk-team")
    assert claimed
    real_end = AccessStore.end_write

    def a_fails_while_b_is_refused(self: AccessStore, write_id: str, *args: Any, **kw: Any) -> None:
        if write_id != first:
            real_end(self, first, "subject", "handed-value", wrote=False, unused=lambda: True)
        real_end(self, write_id, *args, **kw)

    monkeypatch.setattr(AccessStore, "end_write", a_fails_while_b_is_refused)
    fraud = access_store.issue("fraud-bot", "fraud-team")
    assert asyncio.run(_post_register(asgi, fraud, "handed-value", SCHEMA))[0] == 403
    assert access_store.owner("subject", "handed-value") is None


def test_a_claim_handed_to_a_write_whose_process_died_is_given_back(
    access_store: AccessStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from registry.access_store import WRITE_HELD_S

    _, _, first = access_store.begin_write("subject", "orphan-value", "risk-team")
    _, _, dead = access_store.begin_write("subject", "orphan-value", "risk-team")
    access_store.end_write(first, "subject", "orphan-value", wrote=False, unused=lambda: True)  # handed to ``dead``
    assert access_store.owner("subject", "orphan-value") == "risk-team"
    later_s = time.time() + WRITE_HELD_S + 1
    monkeypatch.setattr(time, "time", lambda: later_s)
    _, claimed, again = access_store.begin_write("subject", "orphan-value", "risk-team")
    assert not claimed
    access_store.end_write(again, "subject", "orphan-value", wrote=False, unused=lambda: True)
    assert access_store.owner("subject", "orphan-value") is None and dead
