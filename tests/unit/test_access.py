"""Tokens, grants, ownership and the audit log (``registry.access``), and the feature API with auth on.

The API runs in-process over an in-memory vector source (``tests/unit/test_app.py``'s double); the
same checks against the real API process, Cassandra, Iceberg and the schema registry are in
``tests/integration/test_governance.py``.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from registry.access import Access, guard_catalog, needs_grant
from registry.access_store import AccessStore, Caller
from registry.audit import AuditRecord
from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import ForbiddenError, UnauthenticatedError
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.feature_services import FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from serving.online.app import create_app
from serving.online.auth import route_table
from sinks.cassandra.reader import StoredValue
from tests.unit.conftest import definition_dict
from tests.unit.test_app import NOW, MemorySource, T

RISK_COUNT = FeatureDefinition.model_validate(definition_dict())
FRAUD_MAX = FeatureDefinition.model_validate(
    definition_dict(
        name="txn_amount_max_1h",
        owner="fraud-team",
        sensitivity="restricted",
        value_type="double",
        aggregation={"function": "max", "field": "amount"},
    )
)


@pytest.fixture
def store(tmp_path: Path) -> AccessStore:
    return AccessStore(tmp_path / "definitions.db")


@pytest.fixture
def live(tmp_path: Path) -> LiveCatalog:
    definitions = DefinitionStore(tmp_path / "definitions.db")
    for d in (RISK_COUNT, FRAUD_MAX):
        definitions.register(d)
    return LiveCatalog(definitions, refresh_s=0)


def _client(live: LiveCatalog, access: Access, tmp_path: Path) -> TestClient:
    source = MemorySource(
        {("user", "alice"): {("txn_count_1h", 1): StoredValue(3, T), ("txn_amount_max_1h", 1): StoredValue(99.5, T)}}
    )
    services = LiveFeatureServices(FeatureServiceStore(tmp_path / "definitions.db"))
    app = create_app(live, source, clock_us=lambda: NOW * 1000, services=services, access=access)
    return TestClient(app)  # a refusal that escaped its handler would raise here


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- tokens --------------------------------------------------------------------------------------


def test_a_token_is_stored_hashed_and_names_its_caller(store: AccessStore, tmp_path: Path) -> None:
    token = store.issue("scorer", "ml-team")
    prefix, token_id, secret = token.split("_", 2)
    assert prefix == "fs" and token_id and len(secret) >= 40
    dump = "\n".join(sqlite3.connect(tmp_path / "definitions.db").iterdump())
    assert secret not in dump  # only the SHA-256 of the secret is kept
    access = Access(store, enabled=True)
    assert access.authenticate(token) == Caller("scorer", "ml-team", False, token_id)
    assert [t["principal"] for t in store.tokens()] == ["scorer"]
    assert "secret" not in str(store.tokens())


@pytest.mark.parametrize(
    ("header", "says"),
    [
        (None, "no API token"),
        ("Basic abc", "unsupported Authorization scheme"),
        ("Bearer ", "no API token"),
        ("Bearer nope", "malformed API token"),
        ("Bearer fs__x", "malformed API token"),
        ("Bearer fs_000000000000_wrongsecret", "unknown or revoked"),
    ],
)
def test_a_bad_header_is_refused_naming_why(store: AccessStore, header: str | None, says: str) -> None:
    store.issue("scorer", "ml-team")
    with pytest.raises(UnauthenticatedError, match=says):
        Access(store, enabled=True).authenticate_header(header)


def test_a_right_id_with_a_wrong_secret_is_refused(store: AccessStore) -> None:
    token = store.issue("scorer", "ml-team")
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(UnauthenticatedError, match="unknown or revoked"):
        Access(store, enabled=True).authenticate(forged)


def test_a_revoked_token_stops_working_within_the_refresh(store: AccessStore) -> None:
    token = store.issue("scorer", "ml-team")
    access = Access(store, enabled=True, refresh_s=0.2)
    assert access.authenticate(token).principal == "scorer"
    assert store.revoke(token.split("_")[1])
    assert not store.revoke(token.split("_")[1])  # revoking twice: nothing left to revoke
    time.sleep(0.25)
    with pytest.raises(UnauthenticatedError, match="unknown or revoked"):
        access.authenticate(token)


def test_auth_off_lets_every_caller_do_everything() -> None:
    access = Access(None, enabled=False)
    caller = access.authenticate(None)
    assert caller.admin
    access.check_read(caller, [FRAUD_MAX], action="read")
    access.check_write(caller, ["someone-else"], what="x")


# --- grants and ownership ----------------------------------------------------------------------------


def test_only_sensitivities_above_internal_need_a_grant() -> None:
    assert [s for s in ("public", "internal", "confidential", "restricted") if needs_grant(s)] == [
        "confidential",
        "restricted",
    ]


def test_a_grant_opens_one_owners_features_to_one_team(store: AccessStore) -> None:
    access = Access(store, enabled=True, refresh_s=0)
    ml = Caller("scorer", "ml-team")
    assert access.refused_reads(ml, [RISK_COUNT, FRAUD_MAX]) == ["user/txn_amount_max_1h@1"]
    assert access.refused_reads(Caller("f", "fraud-team"), [FRAUD_MAX]) == []  # the owner reads its own
    store.grant("fraud-team", "ml-team")
    assert access.refused_reads(ml, [FRAUD_MAX]) == []
    assert access.refused_reads(Caller("x", "other-team"), [FRAUD_MAX]) == ["user/txn_amount_max_1h@1"]
    assert store.revoke_grant("fraud-team", "ml-team")
    assert access.refused_reads(ml, [FRAUD_MAX]) == ["user/txn_amount_max_1h@1"]


def test_writes_need_every_owning_team(store: AccessStore) -> None:
    access = Access(store, enabled=True)
    access.check_write(Caller("r", "risk-team"), ["risk-team", None], what="user/txn_count_1h@2")
    with pytest.raises(ForbiddenError, match="owned by team fraud-team"):
        access.check_write(Caller("r", "risk-team"), ["risk-team", "fraud-team"], what="user/x@2")
    access.check_write(Caller("root", "ops", admin=True), ["fraud-team"], what="user/x@2")


def test_the_first_writer_claims_an_unowned_name(store: AccessStore) -> None:
    assert store.owner("subject", "s") is None
    assert store.claim("subject", "s", "risk-team") == "risk-team"
    assert store.claim("subject", "s", "fraud-team") == "risk-team"


# --- the audit log ---------------------------------------------------------------------------------


def test_audit_records_are_found_by_feature_and_by_caller(store: AccessStore) -> None:
    access = Access(store, enabled=True, refresh_s=0)
    ml = Caller("scorer", "ml-team")
    with pytest.raises(ForbiddenError, match=r"user/txn_amount_max_1h@1"):
        access.check_read(ml, [RISK_COUNT, FRAUD_MAX], action="read_features", client="10.0.0.1:5", now=True)
    store.grant("fraud-team", "ml-team")
    access.check_read(ml, [RISK_COUNT, FRAUD_MAX], action="read_features", client="10.0.0.1:5", now=True)
    found = store.audit(target="user/txn_amount_max_1h")  # every version's records
    assert [(r["principal"], r["outcome"], r["client"]) for r in found] == [
        ("scorer", 200, "10.0.0.1:5"),
        ("scorer", 403, "10.0.0.1:5"),
    ]
    assert store.audit(target="user/txn_count_1h") == []  # internal: reads are not audited
    assert len(store.audit(principal="scorer")) == 2
    assert store.audit(principal="nobody") == []
    assert store.audit(target="user/txn_amount_max") == []  # a prefix of a name is not that feature


def _record(at: str, target: str) -> AuditRecord:
    return AuditRecord("scorer", "ml-team", "read_features", target, 200, "10.0.0.1", at=at)


def test_audit_since_is_an_instant_in_any_iso_spelling(store: AccessStore) -> None:
    store.record([_record("2026-11-30T10:00:00.500000+00:00", "user/a@1")])
    for since in ("2026-11-30T10:00:00Z", "2026-11-30T12:00:00+02:00", "2026-11-30T10:00:00", "2026-11-30T10:00:00.5Z"):
        assert [r["target"] for r in store.audit(since=since)] == ["user/a@1"], since
    for since in ("2026-11-30T10:00:00.500001Z", "2026-11-30T11:00:00.6+01:00"):
        assert store.audit(since=since) == [], since
    with pytest.raises(ValueError, match="not an ISO 8601 time: 'yesterday'"):
        store.audit(since="yesterday")


def test_audit_lists_newest_first_by_time_whatever_order_the_records_were_written_in(store: AccessStore) -> None:
    """Reads are written a second late with their first read's time: a later write may have a lower row id."""
    store.record([_record("2026-11-30T10:00:01.568901+00:00", "user/write@1")])
    store.record([_record("2026-11-30T10:00:01.532920+00:00", "user/read@1")])
    store.record([_record("2026-11-30T10:00:01.568901+00:00", "user/same_time@1")])
    assert [r["target"] for r in store.audit()] == ["user/same_time@1", "user/write@1", "user/read@1"]


# --- the feature API with auth on ----------------------------------------------------------------


@pytest.fixture
def on(store: AccessStore) -> Access:
    return Access(store, enabled=True, refresh_s=0)


def _every_route(client: TestClient) -> list[tuple[str, str]]:
    paths = [(m, p.replace("{", "").replace("}", "")) for m, p in route_table(client.app.routes)]  # type: ignore[attr-defined]
    return [*paths, ("GET", "/no/such/route")]


def test_every_route_answers_401_without_a_token(live: LiveCatalog, on: Access, tmp_path: Path) -> None:
    client = _client(live, on, tmp_path)
    routes = _every_route(client)
    assert ("GET", "/health") in routes and ("POST", "/v1/feature-definitions") in routes
    for method, path in routes:
        response = client.request(method, path)
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"] == "unauthenticated"
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_team_reads_another_teams_restricted_feature_only_once_granted(
    live: LiveCatalog, on: Access, store: AccessStore, tmp_path: Path
) -> None:
    client = _client(live, on, tmp_path)
    ml = _auth(store.issue("scorer", "ml-team"))
    both = "/v1/features/user/alice?names=txn_count_1h,txn_amount_max_1h"
    refused = client.get(both, headers=ml)
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert refused.json()["names"] == ["user/txn_amount_max_1h@1"]
    assert "fraud-team" in refused.json()["message"]
    batch = client.post(
        "/v1/features/user/batch", json={"entity_ids": ["alice"], "names": ["txn_amount_max_1h"]}, headers=ml
    )
    assert batch.status_code == 403
    assert client.get("/v1/features/user/alice?names=txn_count_1h", headers=ml).status_code == 200
    assert client.get("/v1/quality/user/txn_amount_max_1h", headers=ml).status_code == 404  # no quality store here
    store.grant("fraud-team", "ml-team")
    allowed = client.get(both, headers=ml)
    assert allowed.status_code == 200
    assert allowed.json()["features"]["txn_amount_max_1h"]["value"] == 99.5
    assert on.audit is not None
    on.audit.flush()  # the get and the batch refused (one record counting both), then the get allowed
    records = store.audit(target="user/txn_amount_max_1h@1")
    assert sorted((r["outcome"], r["count"]) for r in records) == [(200, 1), (403, 2)]


def test_restricted_reads_are_audited_with_the_caller_and_address(
    store: AccessStore, live: LiveCatalog, tmp_path: Path
) -> None:
    from registry.audit import AuditLog

    audit = AuditLog(store, flush_s=None)
    access = Access(store, enabled=True, refresh_s=0, audit=audit)
    client = _client(live, access, tmp_path)
    ml = _auth(store.issue("scorer", "ml-team"))
    client.get("/v1/features/user/alice?names=txn_amount_max_1h", headers=ml)
    store.grant("fraud-team", "ml-team")
    for _ in range(3):  # aggregated: one record of the flush interval, counting 3
        client.get("/v1/features/user/alice?names=txn_amount_max_1h", headers=ml)
    client.get("/v1/features/user/alice?names=txn_count_1h", headers=ml)
    audit.close()
    records = store.audit(target="user/txn_amount_max_1h@1")
    assert [(r["principal"], r["team"], r["action"], r["outcome"], r["count"]) for r in records] == [
        ("scorer", "ml-team", "read_features", 200, 3),
        ("scorer", "ml-team", "read_features", 403, 1),
    ]
    assert all(r["client"] == "testclient" for r in records)


def _body(d: FeatureDefinition, **changes: Any) -> dict[str, Any]:
    return {**d.model_dump(mode="json"), **changes}


def test_a_write_by_a_non_owner_leaves_nothing_but_its_audit_record(
    live: LiveCatalog, store: AccessStore, tmp_path: Path
) -> None:
    from registry.audit import AuditLog

    access = Access(store, enabled=True, refresh_s=0, audit=AuditLog(store, flush_s=None))
    client = _client(live, access, tmp_path)
    risk = _auth(store.issue("risk-bot", "risk-team"))
    before = live.store.change_seq()
    # A new version of fraud's feature, even one claiming risk-team as its owner: refused.
    for body in (_body(FRAUD_MAX, version=2), _body(FRAUD_MAX, version=2, owner="risk-team")):
        refused = client.post("/v1/feature-definitions", json=body, headers=risk)
        assert refused.status_code == 403, refused.text
        assert "owned by team fraud-team" in refused.json()["message"]
    assert (
        client.post("/v1/feature-definitions/user/txn_amount_max_1h/activate?version=1", headers=risk).status_code
        == 403
    )
    # A new feature owned by another team: refused too.
    stranger = _body(RISK_COUNT, name="txn_count_other", owner="fraud-team")
    assert client.post("/v1/feature-definitions", json=stranger, headers=risk).status_code == 403
    assert live.store.change_seq() == before
    assert [d.key for d in live.store.catalog()] == [RISK_COUNT.key, FRAUD_MAX.key]
    refusals = store.audit(principal="risk-bot")
    assert [(r["action"], r["target"], r["outcome"]) for r in refusals] == [
        ("register_definition", "user/txn_count_other@1", 403),
        ("activate", "user/txn_amount_max_1h@1", 403),
        ("register_definition", "user/txn_amount_max_1h@2", 403),
        ("register_definition", "user/txn_amount_max_1h@2", 403),
    ]
    # The owner's write goes through and is audited with its status.
    fraud = _auth(store.issue("fraud-bot", "fraud-team"))
    done = client.post("/v1/feature-definitions", json=_body(FRAUD_MAX, version=2, ttl="4h"), headers=fraud)
    assert done.status_code == 201, done.text
    assert store.audit(principal="fraud-bot")[0]["outcome"] == 201


def test_a_write_the_registry_refuses_after_authorizing_it_is_audited_with_its_status(
    live: LiveCatalog, store: AccessStore, tmp_path: Path
) -> None:
    """Not only a 403: a version conflict (409) or an unknown version to activate (404) is recorded too."""
    from registry.audit import AuditLog

    access = Access(store, enabled=True, refresh_s=0, audit=AuditLog(store, flush_s=None))
    client = _client(live, access, tmp_path)
    fraud = _auth(store.issue("fraud-bot", "fraud-team"))
    conflict = client.post("/v1/feature-definitions", json=_body(FRAUD_MAX, version=1, ttl="9h"), headers=fraud)
    assert conflict.status_code == 409, conflict.text
    unknown = client.post("/v1/feature-definitions/user/txn_amount_max_1h/activate?version=7", headers=fraud)
    assert unknown.status_code == 404, unknown.text
    service = {"name": "fraud_model", "features": [{"entity": "user", "name": "txn_count_1h", "version": 1}]}
    assert client.post("/v1/feature-services", json=service, headers=fraud).status_code == 201
    clash = client.post("/v1/feature-services", json={**service, "version": 1, "description": "x"}, headers=fraud)
    assert clash.status_code == 409, clash.text
    records = store.audit(principal="fraud-bot")
    assert [(r["action"], r["target"], r["outcome"], r["detail"]) for r in records] == [
        ("register_feature_service", "feature_service:fraud_model", 409, "version_conflict"),
        ("register_feature_service", "feature_service:fraud_model@1", 201, ""),
        ("activate", "user/txn_amount_max_1h@7", 404, "unknown_feature"),
        ("register_definition", "user/txn_amount_max_1h@1", 409, "version_conflict"),
    ]


def test_a_feature_service_belongs_to_the_team_that_registered_it(
    live: LiveCatalog, store: AccessStore, on: Access, tmp_path: Path
) -> None:
    client = _client(live, on, tmp_path)
    risk, ml = _auth(store.issue("risk-bot", "risk-team")), _auth(store.issue("scorer", "ml-team"))
    service = {"name": "fraud_model", "features": [{"entity": "user", "name": "txn_count_1h", "version": 1}]}
    assert client.post("/v1/feature-services", json=service, headers=ml).status_code == 201
    taken = client.post("/v1/feature-services", json={**service, "version": 2, "description": "x"}, headers=risk)
    assert taken.status_code == 403
    assert "owned by team ml-team" in taken.json()["message"]
    assert client.post("/v1/feature-services", json={**service, "version": 2}, headers=ml).status_code == 201


# --- offline ------------------------------------------------------------------------------------------


def test_offline_reads_refuse_restricted_features_without_a_grant(tmp_path: Path) -> None:
    from serving.offline.feature_resolution import resolve_features

    settings = Settings(definitions_db=tmp_path / "definitions.db", auth=True)
    store = AccessStore(settings.definitions_db)
    catalog = FeatureCatalog([RISK_COUNT, FRAUD_MAX])
    with pytest.raises(UnauthenticatedError, match="no API token"):
        guard_catalog(catalog, settings, action="training_set")
    ml = settings.model_copy(update={"token": store.issue("scorer", "ml-team")})
    guarded = guard_catalog(catalog, ml, action="training_set")
    assert resolve_features(guarded, "user", ["txn_count_1h"]) == [RISK_COUNT]
    with pytest.raises(ForbiddenError, match=r"user/txn_amount_max_1h@1") as refused:
        resolve_features(guarded, "user", ["txn_count_1h", "txn_amount_max_1h@1"])
    assert refused.value.names == ["user/txn_amount_max_1h@1"]
    store.grant("fraud-team", "ml-team")
    assert resolve_features(guard_catalog(catalog, ml, action="training_set"), "user", ["txn_amount_max_1h"]) == [
        FRAUD_MAX
    ]
    assert [r["outcome"] for r in store.audit(target="user/txn_amount_max_1h@1")] == [200, 403]
    off = Settings(definitions_db=tmp_path / "definitions.db")  # auth off: the catalog is not guarded
    assert resolve_features(guard_catalog(catalog, off, action="x"), "user", ["txn_amount_max_1h"]) == [FRAUD_MAX]


def test_an_offline_read_of_a_feature_and_of_a_request_feature_over_it_is_one_audited_read(tmp_path: Path) -> None:
    from registry.core.request_features import RequestFeature
    from serving.offline.feature_resolution import resolve_columns

    over_max = RequestFeature.model_validate(
        {
            "name": "max_times_amount",
            "entity": "user",
            "version": 1,
            "owner": "ml-team",
            "value_type": "double",
            "function": "tests.request_fns:sum_times_amount",
            "inputs": ["txn_amount_max_1h@v1"],
            "request_fields": [{"name": "amount", "value_type": "double"}],
        }
    ).with_function_hash()
    settings = Settings(definitions_db=tmp_path / "definitions.db", auth=True)
    store = AccessStore(settings.definitions_db)
    catalog = FeatureCatalog([RISK_COUNT, FRAUD_MAX], request_features=[over_max])
    ml = settings.model_copy(update={"token": store.issue("scorer", "ml-team")})
    guarded = guard_catalog(catalog, ml, action="training_set")
    with pytest.raises(ForbiddenError) as refused:
        resolve_columns(guarded, "user", ["txn_amount_max_1h", "max_times_amount"])
    assert refused.value.names == ["user/txn_amount_max_1h@1"]
    store.grant("fraud-team", "ml-team")
    columns = resolve_columns(guard_catalog(catalog, ml, action="training_set"), "user", ["max_times_amount"])
    assert [c.name for c in columns] == ["max_times_amount"]  # the input alone is a read of it too
    both = resolve_columns(
        guard_catalog(catalog, ml, action="training_set"), "user", ["txn_amount_max_1h", "max_times_amount"]
    )
    assert [c.name for c in both] == ["txn_amount_max_1h", "max_times_amount"]
    # one record per read, however many of the request's columns reach the feature
    assert [r["outcome"] for r in store.audit(target="user/txn_amount_max_1h@1")] == [200, 200, 403]


def test_an_offline_read_of_several_entity_parts_is_checked_together(tmp_path: Path) -> None:
    """``get_historical_vectors`` checked part by part: a refusal named only the first refused part's features,
    and the parts before it were audited as reads that never happened."""
    from serving.offline.historical import EntityFeatures, get_historical_vectors

    fraud_min = FRAUD_MAX.model_copy(update={"name": "txn_amount_min_1h"})
    settings = Settings(definitions_db=tmp_path / "definitions.db", auth=True)
    store = AccessStore(settings.definitions_db)
    catalog = FeatureCatalog([RISK_COUNT, FRAUD_MAX, fraud_min])
    ml = settings.model_copy(update={"token": store.issue("scorer", "ml-team")})
    parts = [
        EntityFeatures("user", "user_id", ["txn_amount_max_1h"]),
        EntityFeatures("user", "user_id", ["txn_amount_min_1h"]),
    ]
    labels = pa.table({"user_id": ["u1"], "event_timestamp": pa.array([0], pa.timestamp("ms", "UTC"))})
    with pytest.raises(ForbiddenError) as refused:
        get_historical_vectors(None, guard_catalog(catalog, ml, action="historical_features"), labels, parts)  # type: ignore[arg-type]
    assert refused.value.names == ["user/txn_amount_max_1h@1", "user/txn_amount_min_1h@1"]
    assert sorted((r["target"], r["outcome"]) for r in store.audit(principal="scorer")) == [
        ("user/txn_amount_max_1h@1", 403),
        ("user/txn_amount_min_1h@1", 403),
    ]


@pytest.mark.parametrize(
    ("owner", "grantee", "message"),
    [
        ("", "risk", "error: --owner must be 1-256 printable characters, not ''"),
        ("fraud", "", "error: --to must be 1-256 printable characters, not ''"),
        ("fraud", "a\tb", "error: --to must be 1-256 printable characters, not 'a\\tb'"),
        ("x" * 257, "risk", "error: --owner must be 1-256 printable characters"),
    ],
)
def test_cli_grant_refuses_a_team_name_that_is_not_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], owner: str, grantee: str, message: str
) -> None:
    from registry import access

    db = tmp_path / "d.db"
    assert access.main(["--db", str(db), "grant", "--owner", owner, "--to", grantee]) == 1
    assert capsys.readouterr().err.startswith(message)
    assert AccessStore(db).grants() == []


@pytest.mark.parametrize(
    ("db", "argv", "message"),
    [
        ("dir", ["list-tokens"], "is a directory, not the registry's store (SQLite file)"),
        ("missing.db", ["audit"], ": no registry store there (create-token or grant creates it)"),
        ("missing.db", ["revoke-token", "abc"], ": no registry store there"),
        ("missing.db", ["list-grants"], ": no registry store there"),
        ("no/such/folder.db", ["create-token", "--principal", "fraud"], ": folder "),
        ("junk.db", ["audit"], ": not a usable registry store (SQLite): file is not a database"),
    ],
)
def test_cli_refuses_a_db_that_is_not_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db: str, argv: list[str], message: str
) -> None:
    """Reading commands never create an empty store at a mistyped --db; no traceback for a wrong file."""
    from registry import access

    (tmp_path / "dir").mkdir()
    (tmp_path / "junk.db").write_text("not sqlite\n" * 100)
    path = tmp_path / db
    assert access.main(["--db", str(path), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: --db {path}") and message in err and err.count("\n") == 1
    assert not (tmp_path / "missing.db").exists()


def test_cli_create_token_creates_the_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from registry import access

    db = tmp_path / "new.db"
    assert access.main(["--db", str(db), "create-token", "--principal", "fraud"]) == 0
    assert capsys.readouterr().out.startswith("fs_")
    assert access.main(["--db", str(db), "list-tokens"]) == 0


def test_a_request_feature_is_read_through_its_inputs_grants_by_name_and_through_a_service(tmp_path: Path) -> None:
    """docs/design.md §9: a request-time feature has no sensitivity of its own; reading it reads its stored inputs,
    so a refusal's `names` and the audit records name the inputs (the request feature has no record)."""
    from registry.core.request_features import RequestFeature
    from registry.feature_services import FeatureService

    over_max = RequestFeature.model_validate(
        {
            "name": "max_times_amount",
            "entity": "user",
            "version": 1,
            "owner": "ml-team",
            "value_type": "double",
            "function": "tests.request_fns:sum_times_amount",
            "inputs": ["txn_amount_max_1h@v1"],
            "request_fields": [{"name": "amount", "value_type": "double"}],
        }
    )
    db = tmp_path / "definitions.db"
    definitions = DefinitionStore(db)
    definitions.register_all([RISK_COUNT, FRAUD_MAX], [over_max])
    FeatureServiceStore(db).register(
        FeatureService.model_validate(
            {"name": "svc", "version": 1, "features": [{"entity": "user", "name": "max_times_amount", "version": 1}]}
        )
    )
    store = AccessStore(db)
    access = Access(store, enabled=True, refresh_s=0)
    headers = _auth(store.issue("scorer", "ml-team"))
    client = _client(LiveCatalog(definitions, refresh_s=0), access, tmp_path)
    for query in ("names=max_times_amount&amount=2", "feature_service=svc@1&amount=2"):
        refused = client.get(f"/v1/features/user/alice?{query}", headers=headers)
        assert refused.status_code == 403, refused.text
        assert refused.json()["names"] == ["user/txn_amount_max_1h@1"]  # the input, not the request feature
    store.grant("fraud-team", "ml-team")
    for query in ("names=max_times_amount&amount=2", "feature_service=svc@1&amount=2"):
        assert client.get(f"/v1/features/user/alice?{query}", headers=headers).status_code == 200
    access.close()
    assert [(r["outcome"], r["count"]) for r in store.audit(target="user/txn_amount_max_1h@1")] == [(200, 2), (403, 2)]
    assert store.audit(target="user/max_times_amount") == []
