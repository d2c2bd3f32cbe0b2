"""Governance on the real services: the feature API process (``FS_AUTH=on``) over real Cassandra, a
training set over a real Iceberg table, and a schema-registry process, with tokens and grants managed
through ``python -m registry.access``.

- every route of the API answers 401 without a token; a revoked token stops working;
- a team cannot read another team's restricted feature online or in a training set (403 naming it)
  until the owning team grants it, and then reads the stored value;
- a write by a non-owner is refused and leaves no trace but its audit record;
- the schema registry takes Confluent's client credentials and refuses another team's subject writes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError

from registry.access import guard_catalog
from registry.access_store import AccessStore
from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import ForbiddenError, UnauthenticatedError
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.feature_services import FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from registry.quality import QualityStore
from serving.offline.historical import get_historical_features
from serving.online.app import create_app
from serving.online.auth import route_table
from sinks.cassandra.writer import OnlineWriter
from sinks.factory import connect_cassandra, connect_iceberg
from sinks.iceberg.writer import OfflineWriter, ensure_table
from sinks.records import FeatureRow
from tests.conftest import REPO

pytestmark = pytest.mark.integration

MIN = 60_000
SHIPPED = FeatureCatalog.from_folder()
COUNT = SHIPPED.get("user", "txn_count_1h")  # risk-team, internal
RESTRICTED = COUNT.model_copy(
    update={
        "name": "txn_amount_max_1h",
        "owner": "fraud-team",
        "sensitivity": "restricted",
        "value_type": "double",
        "aggregation": COUNT.aggregation.model_copy(update={"function": "max", "field": "amount"}),
    }
)
RESTRICTED = FeatureDefinition.model_validate(RESTRICTED.model_dump())


@dataclass
class Stack:
    settings: Settings
    url: str
    end_ms: int
    tokens: dict[str, str]  # principal -> token


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _access(settings: Settings, *args: str) -> str:
    """``python -m registry.access`` on the test's registry database; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "registry.access", "--db", str(settings.definitions_db), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def stack(it_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("governance")
    settings = it_settings.model_copy(
        update={
            "cassandra_keyspace": f"{it_settings.cassandra_keyspace}_gov",
            "definitions_db": folder / "definitions.db",
            "iceberg_namespace": f"{it_settings.iceberg_namespace}_gov",
            "auth": True,
        }
    )
    store = DefinitionStore(settings.definitions_db)
    for d in (COUNT, RESTRICTED):
        store.register(d)
    end = time.time_ns() // 1_000_000 // (5 * MIN) * 5 * MIN
    cluster, session = connect_cassandra(settings)
    try:
        writer = OnlineWriter(session, settings.cassandra_keyspace)
        writer.add(FeatureRow.of(COUNT, "alice", 3, end - 60 * MIN, end))
        writer.add(FeatureRow.of(RESTRICTED, "alice", 99.5, end - 60 * MIN, end))
        writer.flush()
    finally:
        cluster.shutdown()
    offline = OfflineWriter(ensure_table(connect_iceberg(settings), settings.iceberg_namespace))
    offline.add(FeatureRow.of(COUNT, "alice", 3, end - 60 * MIN, end))
    offline.add(FeatureRow.of(RESTRICTED, "alice", 99.5, end - 60 * MIN, end))
    offline.flush()
    tokens = {
        principal: _access(settings, "create-token", "--principal", principal, "--team", team).strip()
        for principal, team in (
            ("scorer", "ml-team"),
            ("analyst", "analytics-team"),
            ("risk-bot", "risk-team"),
            ("fraud-bot", "fraud-team"),
        )
    }
    port = _free_port()
    env = {**os.environ, **settings.to_env(), "FS_SERVING_LOG_SAMPLE": "0", "FS_API_PORT": str(port)}
    env["FS_REQUEST_BUDGET_MS"] = "5000"  # grants, not latency: a loaded CI host misses the default 100 ms
    log = (folder / "api.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "serving.online"], cwd=REPO, env=env, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 401:  # up, and refusing the anonymous
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (
                f"the API did not start: {folder / 'api.log'}"
            )
            time.sleep(0.2)
        yield Stack(settings, url, end, tokens)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        cluster, session = connect_cassandra(settings)
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
        cluster.shutdown()


def _as(stack: Stack, principal: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.tokens[principal]}"}


def _eventually(check: Callable[[], Any], timeout_s: float = 5.0) -> Any:
    """``check()`` once it stops raising AssertionError (grants and revocations apply within ~1 s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class _NoStore:
    def read(self, entity_type: str, entity_id: str) -> dict[Any, Any]:
        raise AssertionError("not read")

    def progress(self) -> dict[str, int]:
        raise AssertionError("not read")


def test_every_route_answers_401_without_a_token(stack: Stack, tmp_path: Path) -> None:
    # The routes of the app the process serves, listed from the same factory.
    app = create_app(
        LiveCatalog(DefinitionStore(stack.settings.definitions_db)),
        _NoStore(),
        services=LiveFeatureServices(FeatureServiceStore(tmp_path / "services.db")),
        quality=QualityStore(tmp_path / "quality.db"),
    )
    routes = route_table(app.routes)
    assert len(routes) >= 14
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        for method, path in [*routes, ("GET", "/no/such/route")]:
            filled = path.replace("{entity_type}", "user").replace("{entity_id}", "alice").replace("{name}", "x")
            filled = filled.replace("{entity}", "user")
            for headers in ({}, {"Authorization": "Bearer fs_000000000000_forged"}):
                response = http.request(method, filled, headers=headers)
                assert response.status_code == 401, (method, filled, response.text)
                assert response.json()["error"] == "unauthenticated"


def test_a_restricted_feature_is_read_online_only_once_granted(stack: Stack) -> None:
    path = "/v1/features/user/alice?names=txn_count_1h,txn_amount_max_1h"
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        refused = http.get(path, headers=_as(stack, "scorer"))
        assert refused.status_code == 403
        assert refused.json()["names"] == ["user/txn_amount_max_1h@1"]
        internal = http.get("/v1/features/user/alice?names=txn_count_1h", headers=_as(stack, "scorer"))
        assert internal.status_code == 200 and internal.json()["features"]["txn_count_1h"]["value"] == 3
        owner = http.get(path, headers=_as(stack, "fraud-bot"))
        assert owner.status_code == 200 and owner.json()["features"]["txn_amount_max_1h"]["value"] == 99.5
        _access(stack.settings, "grant", "--owner", "fraud-team", "--to", "ml-team")

        def granted() -> None:
            response = http.get(path, headers=_as(stack, "scorer"))
            assert response.status_code == 200, response.text
            assert response.json()["features"]["txn_amount_max_1h"]["value"] == 99.5

        _eventually(granted)

    def audited() -> None:  # the API writes read records at least once a second
        records = AccessStore(stack.settings.definitions_db).audit(
            target="user/txn_amount_max_1h@1", principal="scorer"
        )
        outcomes = [r["outcome"] for r in records]
        assert 403 in outcomes and 200 in outcomes
        assert all(r["action"] == "read_features" and r["client"] == "127.0.0.1" for r in records)

    _eventually(audited)


def test_a_training_set_refuses_a_restricted_feature_until_granted(stack: Stack) -> None:
    table = connect_iceberg(stack.settings).load_table(f"{stack.settings.iceberg_namespace}.offline_feature_values")
    labels = pa.table(
        {
            "user_id": ["alice", "bob"],
            "event_timestamp": pa.array([(stack.end_ms + MIN) * 1000] * 2, pa.timestamp("us", tz="UTC")),
        }
    )
    catalog = DefinitionStore(stack.settings.definitions_db).catalog()
    analyst = stack.settings.model_copy(update={"token": stack.tokens["analyst"]})
    features = ["txn_count_1h", "txn_amount_max_1h"]

    def join(settings: Settings) -> pa.Table:
        guarded = guard_catalog(catalog, settings, action="training_set")
        return get_historical_features(table, guarded, labels, features, entity_type="user", entity_column="user_id")

    with pytest.raises(UnauthenticatedError):
        join(stack.settings)  # auth on, no token
    with pytest.raises(ForbiddenError, match=r"user/txn_amount_max_1h@1") as refused:
        join(analyst)
    assert refused.value.names == ["user/txn_amount_max_1h@1"]
    _access(stack.settings, "grant", "--owner", "fraud-team", "--to", "analytics-team")
    joined = join(analyst)
    assert joined.column("txn_amount_max_1h").to_pylist() == [99.5, None]
    assert joined.column("txn_count_1h").to_pylist() == [3, None]
    lines = _access(stack.settings, "audit", "--feature", "user/txn_amount_max_1h", "--caller", "analyst")
    assert [('"outcome": 200' in line, '"outcome": 403' in line) for line in lines.splitlines()] == [
        (True, False),
        (False, True),
    ]


def test_a_write_by_a_non_owner_leaves_only_its_audit_record(stack: Stack) -> None:
    store = DefinitionStore(stack.settings.definitions_db)
    before = (store.change_seq(), [d.key for d in store.catalog()])
    body = {**RESTRICTED.model_dump(mode="json"), "version": 2, "ttl": "4h"}
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        refused = http.post("/v1/feature-definitions", json=body, headers=_as(stack, "risk-bot"))
        assert refused.status_code == 403
        assert "owned by team fraud-team" in refused.json()["message"]
        activate = "/v1/feature-definitions/user/txn_amount_max_1h/activate?version=1"
        assert http.post(activate, headers=_as(stack, "risk-bot")).status_code == 403
        assert (store.change_seq(), [d.key for d in store.catalog()]) == before
        records = AccessStore(stack.settings.definitions_db).audit(principal="risk-bot")
        assert [(r["action"], r["target"], r["outcome"]) for r in records] == [
            ("activate", "user/txn_amount_max_1h@1", 403),
            ("register_definition", "user/txn_amount_max_1h@2", 403),
        ]
        done = http.post("/v1/feature-definitions", json=body, headers=_as(stack, "fraud-bot"))
        assert done.status_code == 201, done.text
        assert AccessStore(stack.settings.definitions_db).audit(principal="fraud-bot")[0]["outcome"] == 201
        lineage = done.json()["definition"]["lineage"]  # the API names its own keyspace and namespace (design §9)
        assert lineage["online_table_qualified"] == f"{stack.settings.cassandra_keyspace}.online_vectors"
        assert lineage["offline_table_qualified"] == f"{stack.settings.iceberg_namespace}.offline_feature_values"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_sigterm_writes_the_buffered_read_records_before_the_api_ends(stack: Stack, workers: int) -> None:
    """The API writes read records at least once a second; the records of the last second are written at exit. On
    SIGTERM (``make down``, a supervisor) uvicorn raised the signal again after its shutdown and the default handler
    ended the process before that: 6-8 of 20 reads were recorded. Now it ends as after Ctrl-C: exit 0, all of them;
    with two worker processes too (each died of the repeated signal: 1 to 6 of 6 reads recorded in an audit)."""
    principal = f"term-bot-{workers}"
    token = _access(stack.settings, "create-token", "--principal", principal, "--team", "fraud-team").strip()
    port = _free_port()
    env = {**os.environ, **stack.settings.to_env(), "FS_SERVING_LOG_SAMPLE": "0", "FS_API_PORT": str(port)}
    env["FS_REQUEST_BUDGET_MS"] = "5000"
    env["FS_API_WORKERS"] = str(workers)
    process = subprocess.Popen([sys.executable, "-m", "serving.online"], cwd=REPO, env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 401:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "the API did not start"
            time.sleep(0.2)
        reads = 20
        with httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {token}"}) as http:
            for _ in range(reads):
                assert http.get("/v1/features/user/alice?names=txn_amount_max_1h").status_code == 200
        process.send_signal(signal.SIGTERM)  # within the second the reads' records are buffered for
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert process.returncode == 0, err
    records = AccessStore(stack.settings.definitions_db).audit(target="user/txn_amount_max_1h@1", principal=principal)
    assert sum(r["count"] for r in records) == reads and {r["outcome"] for r in records} == {200}


def test_a_revoked_token_is_refused(stack: Stack) -> None:
    token = _access(stack.settings, "create-token", "--principal", "temp", "--team", "ml-team").strip()
    path = "/v1/features/user/alice?names=txn_count_1h"
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        assert _eventually(lambda: _ok(http.get(path, headers={"Authorization": f"Bearer {token}"})))
        _access(stack.settings, "revoke-token", token)

        def refused() -> None:
            response = http.get(path, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401 and "revoked" in response.json()["message"]

        _eventually(refused)


def _ok(response: httpx.Response) -> bool:
    assert response.status_code == 200, response.text
    return True


def test_the_schema_registry_process_takes_confluent_credentials(stack: Stack, tmp_path: Path) -> None:
    env = {**os.environ, **stack.settings.to_env()}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "registry.schema_registry",
            "--port",
            "0",
            "--db",
            str(tmp_path / "schemas.db"),
            "--access-db",
            str(stack.settings.definitions_db),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "registry.log").open("wb"),
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().decode().strip().removeprefix("listening on ")
        schema = Schema('{"type": "record", "name": "T", "fields": [{"name": "id", "type": "string"}]}', "AVRO")

        def client(principal: str | None) -> SchemaRegistryClient:
            auth = {} if principal is None else {"basic.auth.user.info": f"u:{stack.tokens[principal]}"}
            return SchemaRegistryClient({"url": url, **auth})

        with pytest.raises(SchemaRegistryError) as anonymous:
            client(None).get_subjects()
        assert anonymous.value.http_status_code == 401
        assert client("risk-bot").register_schema("gov-value", schema) > 0
        with pytest.raises(SchemaRegistryError) as other:
            client("fraud-bot").delete_subject("gov-value")
        assert (other.value.http_status_code, other.value.error_code) == (403, 40301)
        assert client("fraud-bot").get_subjects() == ["gov-value"]
    finally:
        process.terminate()
        process.wait(timeout=30)
