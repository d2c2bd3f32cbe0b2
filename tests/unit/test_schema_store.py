from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry.schema_registry.api import create_schema_registry_app
from registry.schema_registry.store import InvalidSchemaError, SchemaNotFoundError, SchemaStore, normalize
from schemas import schema_text

CARD = schema_text("card_transaction")


def schema_for(i: int) -> str:
    return json.dumps({"type": "record", "name": f"Event{i}", "fields": [{"name": f"f{i}", "type": "long"}]})


def register_many(path: str, indices: list[int], own_subject: str, barrier: Any, results: Any) -> None:
    """Runs in a spawned child process: registers schemas in the shared SQLite store."""
    store = SchemaStore(Path(path))
    barrier.wait(timeout=60)
    out = []
    for i in indices:
        shared = store.register("shared", schema_for(i))
        own = store.register(own_subject, schema_for(i))
        out.append((i, shared.id, shared.version, own.id, own.version))
    results.put(out)


@pytest.fixture
def store(tmp_path: Path) -> SchemaStore:
    return SchemaStore(tmp_path / "registry" / "schemas.db")


def test_register_same_schema_twice(store: SchemaStore) -> None:
    first = store.register("card_transactions-value", CARD)
    second = store.register("card_transactions-value", CARD)
    assert (first.id, first.version) == (1, 1)
    assert second == first
    assert store.versions("card_transactions-value") == [1]


def test_whitespace_and_key_order_normalise_to_same_id(store: SchemaStore) -> None:
    parsed = json.loads(CARD)
    pretty = json.dumps(parsed, indent=4)
    reordered = json.dumps(dict(reversed(list(parsed.items()))))
    first = store.register("s", CARD)
    assert store.register("s", pretty) == first
    assert store.register("s", reordered) == first
    assert normalize(pretty) == normalize(reordered) == first.schema
    assert store.versions("s") == [1]


def test_field_order_is_significant(store: SchemaStore) -> None:
    a = json.dumps(
        {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}, {"name": "b", "type": "int"}]}
    )
    b = json.dumps(
        {"type": "record", "name": "R", "fields": [{"name": "b", "type": "int"}, {"name": "a", "type": "int"}]}
    )
    assert store.register("s", a).id != store.register("s", b).id
    assert store.versions("s") == [1, 2]


def test_second_subject_shares_id_gets_version_one(store: SchemaStore) -> None:
    store.register("other", schema_for(0))  # id 1
    first = store.register("a-value", CARD)
    shared = store.register("b-value", CARD)
    assert first.id == shared.id == 2
    assert (first.version, shared.version) == (1, 1)
    assert store.subjects() == ["a-value", "b-value", "other"]


def test_versions_increase_and_old_schema_keeps_its_version(store: SchemaStore) -> None:
    ids = [store.register("s", schema_for(i)).id for i in range(3)]
    assert ids == [1, 2, 3]
    assert store.versions("s") == [1, 2, 3]
    again = store.register("s", schema_for(0))
    assert (again.id, again.version) == (1, 1)
    assert store.version("s", "latest").version == 3
    assert store.version("s", -1).id == 3
    assert store.version("s", 2).schema == normalize(schema_for(1))
    assert store.lookup("s", schema_for(1)).version == 2


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "",
        "null",
        "123",
        '{"type": "nonexistent"}',
        '{"type": "record"}',
        '{"type": "record", "name": "X", "fields": [{"name": "a"}]}',
        '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "Missing"}]}',
    ],
)
def test_invalid_avro(store: SchemaStore, text: str) -> None:
    with pytest.raises(InvalidSchemaError, match=r"^Invalid schema of type AVRO, details: "):
        store.register("s", text)
    assert store.subjects() == []


@pytest.mark.parametrize("text", ["{}", '{"type": "enum", "name": "E"}'])  # fastavro raises KeyError for these
def test_invalid_avro_that_fastavro_rejects_with_key_error(store: SchemaStore, text: str) -> None:
    with pytest.raises(InvalidSchemaError):
        store.register("s", text)


def test_not_found(store: SchemaStore) -> None:
    store.register("s", CARD)
    with pytest.raises(SchemaNotFoundError, match=r"^Schema 2 not found$"):
        store.by_id(2)
    with pytest.raises(SchemaNotFoundError, match=r"^Subject 'nope' not found\.$"):
        store.versions("nope")
    with pytest.raises(SchemaNotFoundError, match=r"^Version 2 not found\.$"):
        store.version("s", 2)
    with pytest.raises(SchemaNotFoundError, match=r"^Schema not found$"):
        store.lookup("s", schema_for(5))


def test_state_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "schemas.db"
    first = SchemaStore(path)
    registered = [first.register("s", schema_for(i)) for i in range(3)]
    first.register("t", schema_for(1))
    del first
    reopened = SchemaStore(path)
    assert reopened.subjects() == ["s", "t"]
    assert reopened.versions("s") == [1, 2, 3]
    assert reopened.version("t", 1).id == registered[1].id
    assert reopened.by_id(3) == registered[2].schema
    assert reopened.register("s", schema_for(3)).id == 4  # ids continue, not restart


def test_concurrent_registration_from_two_processes(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "schemas.db"  # neither process finds the file: both create it
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=register_many, args=(str(path), list(range(k, 50, 2)), f"own-{k}", barrier, results))
        for k in range(2)
    ]
    for w in workers:
        w.start()
    outputs = [results.get(timeout=90) for _ in workers]
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0

    rows = [row for out in outputs for row in out]
    assert sorted(i for i, *_ in rows) == list(range(50))
    shared_ids = [shared_id for _, shared_id, _, _, _ in rows]
    assert len(set(shared_ids)) == 50
    assert sorted(v for _, _, v, _, _ in rows) == list(range(1, 51))
    for _, shared_id, _, own_id, _ in rows:
        assert own_id == shared_id  # the same schema has one id in every subject
    for out in outputs:
        assert [own_version for *_, own_version in out] == list(range(1, 26))

    store = SchemaStore(path)
    assert store.versions("shared") == list(range(1, 51))
    assert store.versions("own-0") == list(range(1, 26))
    assert store.versions("own-1") == list(range(1, 26))
    assert sorted(store.version("shared", v).id for v in range(1, 51)) == sorted(shared_ids)
    for i, shared_id, version, _, _ in rows:
        assert store.by_id(shared_id) == normalize(schema_for(i))
        assert store.version("shared", version).id == shared_id


# ---------------------------------------------------------------------------------------------
# The HTTP API (Confluent's REST dialect)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def client(store: SchemaStore) -> TestClient:
    return TestClient(create_schema_registry_app(store), raise_server_exceptions=False)


def test_api_register_and_fetch(client: TestClient) -> None:
    response = client.post("/subjects/s/versions", json={"schema": CARD})
    assert response.status_code == 200
    assert response.json() == {"id": 1}
    assert response.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
    assert client.post("/subjects/s/versions", json={"schema": CARD, "schemaType": "AVRO"}).json() == {"id": 1}
    assert client.post("/subjects/s/versions", json={"schema": schema_for(1)}).json() == {"id": 2}

    response = client.get("/schemas/ids/1")
    assert response.status_code == 200
    assert response.json() == {"schema": normalize(CARD)}
    assert client.get("/subjects").json() == ["s"]
    assert client.get("/subjects/s/versions").json() == [1, 2]
    assert client.get("/subjects/s/versions/latest").json() == {
        "subject": "s",
        "version": 2,
        "id": 2,
        "schema": normalize(schema_for(1)),
    }
    assert client.get("/subjects/s/versions/1").json()["id"] == 1
    response = client.post("/subjects/s", json={"schema": json.dumps(json.loads(CARD), indent=2)})
    assert response.json() == {"subject": "s", "version": 1, "id": 1, "schema": normalize(CARD)}
    assert client.get("/health").json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"schema": "not json"}, "Invalid schema of type AVRO, details: not JSON"),
        (
            {"schema": '{"type": "nonexistent"}'},
            "Invalid schema of type AVRO, details: unknown type name 'nonexistent'",
        ),
        ({"schema": {"type": "string"}}, "request body needs a string field `schema`"),
        ({"schemaType": "AVRO"}, "request body needs a string field `schema`"),
        ({"schema": '"string"', "schemaType": "PROTOBUF"}, "Invalid schema type PROTOBUF"),
        (["schema"], "request body needs a string field `schema`"),
    ],
)
def test_api_invalid_schema_is_422(client: TestClient, body: object, message: str) -> None:
    response = client.post("/subjects/s/versions", json=body)
    assert response.status_code == 422
    assert response.json()["error_code"] == 42201
    assert response.json()["message"].startswith(message)
    assert client.get("/subjects").json() == []


def test_api_non_json_body_is_422(client: TestClient) -> None:
    response = client.post("/subjects/s/versions", content=b"{nope")
    assert response.status_code == 422
    assert response.json() == {"error_code": 42201, "message": "request body is not JSON"}


def test_api_oversized_body_is_413(client: TestClient) -> None:
    response = client.post("/subjects/s/versions", content=b" " * ((1 << 20) + 1))
    assert response.status_code == 413
    assert response.json()["error_code"] == 41301


def test_api_not_found(client: TestClient) -> None:
    response = client.get("/subjects/nope/versions")
    assert response.status_code == 404
    assert response.json() == {"error_code": 40401, "message": "Subject 'nope' not found."}
    response = client.get("/subjects/nope/versions/latest")
    assert response.status_code == 404
    assert response.json()["error_code"] == 40401
    client.post("/subjects/s/versions", json={"schema": CARD})
    response = client.get("/subjects/s/versions/7")
    assert response.status_code == 404
    assert response.json()["error_code"] == 40402
    response = client.get("/schemas/ids/99")
    assert response.status_code == 404
    assert response.json() == {"error_code": 40403, "message": "Schema 99 not found"}
    response = client.post("/subjects/s", json={"schema": schema_for(3)})
    assert response.status_code == 404
    assert response.json()["error_code"] == 40403
    response = client.get("/subjects/s/versions/abc")
    assert response.status_code == 422
    assert response.json()["error_code"] == 42202


def test_api_empty_object_schema_is_422(client: TestClient) -> None:
    response = client.post("/subjects/s/versions", json={"schema": "{}"})
    assert response.status_code == 422
    assert response.json()["error_code"] == 42201


def test_api_unknown_subject_is_40401_for_any_version(client: TestClient) -> None:
    response = client.get("/subjects/nope/versions/1")
    assert (response.status_code, response.json()["error_code"]) == (404, 40401)
    response = client.get("/subjects/versioned-value/versions/latest")
    assert (response.status_code, response.json()["error_code"]) == (404, 40401)


def test_api_version_minus_one_is_latest(client: TestClient) -> None:
    client.post("/subjects/s/versions", json={"schema": CARD})
    client.post("/subjects/s/versions", json={"schema": schema_for(1)})
    response = client.get("/subjects/s/versions/-1")
    assert response.status_code == 200
    assert response.json()["version"] == 2
