"""Schema references in the schema registry's REST API (Confluent's ``references: [{name, subject, version}]``)."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from registry.schema_registry.api import create_schema_registry_app
from registry.schema_registry.store import SchemaStore, normalize
from tests.unit.test_schema_registry_api import body, client, db, error, store

__all__ = ["client", "db", "store"]  # the fixtures, used by name


# ---------------------------------------------------------------------------------------------
# Schema references (Confluent's `references: [{name, subject, version}]`)
# ---------------------------------------------------------------------------------------------

MONEY = json.dumps(
    {
        "type": "record",
        "name": "Money",
        "namespace": "fs.common",
        "fields": [{"name": "amount", "type": "double"}, {"name": "currency", "type": "string"}],
    }
)
MONEY_V2 = json.dumps(
    {
        "type": "record",
        "name": "Money",
        "namespace": "fs.common",
        "fields": [
            {"name": "amount", "type": "double"},
            {"name": "currency", "type": "string"},
            {"name": "scale", "type": "int", "default": 2},
        ],
    }
)
PAYMENT = json.dumps(
    {
        "type": "record",
        "name": "Payment",
        "fields": [{"name": "id", "type": "string"}, {"name": "price", "type": "fs.common.Money"}],
    }
)
MONEY_REF = {"name": "fs.common.Money", "subject": "money-value", "version": 1}


def test_references_register_resolve_and_read_back(client: TestClient) -> None:
    assert client.post("/subjects/money-value/versions", json=body(MONEY)).json() == {"id": 1}
    # without its reference the named type is unknown
    unresolved = client.post("/subjects/payments-value/versions", json=body(PAYMENT))
    assert error(unresolved) == (422, 42201)
    assert unresolved.json()["message"] == (
        'Invalid schema of type AVRO, details: "fs.common.Money" is not a defined name. '
        'The type of the "price" field must be a defined name or a {"type": ...} expression.'
    )

    assert client.post("/subjects/payments-value/versions", json=body(PAYMENT, references=[MONEY_REF])).json() == {
        "id": 2
    }
    expected = {"schema": normalize(PAYMENT, [MONEY]), "references": [MONEY_REF]}
    assert client.get("/schemas/ids/2").json() == expected
    assert client.get("/schemas/ids/1").json() == {"schema": normalize(MONEY)}  # no empty `references`
    version = client.get("/subjects/payments-value/versions/1").json()
    assert version == {"subject": "payments-value", "version": 1, "id": 2, **expected}
    assert client.get("/subjects/payments-value/versions/latest").json() == version
    assert client.post("/subjects/payments-value", json=body(PAYMENT, references=[MONEY_REF])).json() == version
    # the same text without the reference is not the same schema
    assert error(client.post("/subjects/payments-value", json=body(PAYMENT))) == (422, 42201)
    assert client.get("/subjects/money-value/versions/1/referencedby").json() == [2]
    assert client.get("/subjects/money-value/versions/latest/referencedby").json() == [2]
    assert error(client.get("/subjects/money-value/versions/2/referencedby")) == (404, 40402)
    assert error(client.get("/subjects/nope/versions/1/referencedby")) == (404, 40401)


def test_reference_identity_follows_confluent(client: TestClient) -> None:
    """Same text and same references: same id, in any subject. Same text, other references: a new id."""
    client.post("/subjects/money-value/versions", json=body(MONEY))
    client.put("/config/money-value", json={"compatibility": "NONE"})
    client.post("/subjects/money-value/versions", json=body(MONEY_V2))
    first = client.post("/subjects/a-value/versions", json=body(PAYMENT, references=[MONEY_REF])).json()
    assert client.post("/subjects/b-value/versions", json=body(PAYMENT, references=[MONEY_REF])).json() == first
    assert client.post("/subjects/a-value/versions", json=body(PAYMENT, references=[MONEY_REF])).json() == first
    assert client.get("/subjects/a-value/versions").json() == [1]
    on_v2 = {**MONEY_REF, "version": 2}
    second = client.post("/subjects/a-value/versions", json=body(PAYMENT, references=[on_v2])).json()
    assert second["id"] != first["id"]
    assert client.get(f"/schemas/ids/{second['id']}").json()["references"] == [on_v2]
    # version -1 is resolved to the latest version when registering, and stored resolved
    latest = client.post("/subjects/c-value/versions", json=body(PAYMENT, references=[{**MONEY_REF, "version": -1}]))
    assert latest.json() == second
    assert sorted(client.get("/subjects/money-value/versions/1/referencedby").json()) == [first["id"]]
    assert client.get("/subjects/money-value/versions/2/referencedby").json() == [second["id"]]


def test_referenced_version_cannot_be_deleted(client: TestClient) -> None:
    client.post("/subjects/money-value/versions", json=body(MONEY))
    client.post("/subjects/payments-value/versions", json=body(PAYMENT, references=[MONEY_REF]))
    refused = client.delete("/subjects/money-value/versions/1")
    assert error(refused) == (422, 42206)
    assert refused.json()["message"] == (
        "One or more references exist to the schema {magic=1,keytype=SCHEMA,subject=money-value,version=1}."
    )
    assert error(client.delete("/subjects/money-value")) == (422, 42206)
    assert client.get("/subjects/money-value/versions").json() == [1]

    # once the referrer is only soft-deleted, a soft delete of the target is allowed, a permanent one is not
    assert client.delete("/subjects/payments-value").json() == [1]
    assert client.get("/subjects/money-value/versions/1/referencedby").json() == []
    assert client.get("/subjects/money-value/versions/1/referencedby?deleted=true").json() == [2]
    assert client.delete("/subjects/money-value/versions/1").json() == 1
    assert error(client.delete("/subjects/money-value/versions/1?permanent=true")) == (422, 42206)
    # the referrer still parses (its reference resolves to the soft-deleted version) and still decodes
    assert client.get("/schemas/ids/2").json()["references"] == [MONEY_REF]
    assert client.delete("/subjects/payments-value?permanent=true").json() == [1]
    assert client.delete("/subjects/money-value/versions/1?permanent=true").json() == 1


def test_compatibility_resolves_referenced_types(client: TestClient) -> None:
    """A change inside a referenced type is checked like an inline one: BACKWARD refuses a reference to a
    Money whose `amount` became a string, and accepts one that gained a defaulted field."""
    client.put("/config/money-value", json={"compatibility": "NONE"})
    client.post("/subjects/money-value/versions", json=body(MONEY))
    client.post("/subjects/money-value/versions", json=body(MONEY_V2))
    broken = json.loads(MONEY)
    broken["fields"][0]["type"] = "string"
    client.post("/subjects/money-value/versions", json=body(json.dumps(broken)))
    assert client.post("/subjects/payments-value/versions", json=body(PAYMENT, references=[MONEY_REF])).json() == {
        "id": 4
    }

    url = "/compatibility/subjects/payments-value/versions/latest?verbose=true"
    ok = client.post(url, json=body(PAYMENT, references=[{**MONEY_REF, "version": 2}])).json()
    assert ok == {"is_compatible": True, "messages": []}
    bad = client.post(url, json=body(PAYMENT, references=[{**MONEY_REF, "version": 3}])).json()
    assert bad["is_compatible"] is False
    assert bad["messages"] == [
        "BACKWARD check against version 1: field `price.amount`: writer type double cannot be read as string"
    ]
    refused = client.post(
        "/subjects/payments-value/versions", json=body(PAYMENT, references=[{**MONEY_REF, "version": 3}])
    )
    assert error(refused) == (409, 409)
    assert client.post(
        "/subjects/payments-value/versions", json=body(PAYMENT, references=[{**MONEY_REF, "version": 2}])
    ).json() == {"id": 5}


def test_references_nest_and_survive_a_reopen(client: TestClient, db: Path) -> None:
    """A reference's own references are resolved too (depth first), and the store keeps them across a restart."""
    client.post("/subjects/money-value/versions", json=body(MONEY))
    client.post("/subjects/payments-value/versions", json=body(PAYMENT, references=[MONEY_REF]))
    refund = json.dumps({"type": "record", "name": "Refund", "fields": [{"name": "of", "type": "Payment"}]})
    payment_ref = {"name": "Payment", "subject": "payments-value", "version": 1}
    assert client.post("/subjects/refunds-value/versions", json=body(refund, references=[payment_ref])).json() == {
        "id": 3
    }
    reopened = TestClient(create_schema_registry_app(SchemaStore(db, default_compatibility="BACKWARD")))
    assert reopened.get("/schemas/ids/3").json() == {
        "schema": normalize(refund, [MONEY, PAYMENT]),
        "references": [payment_ref],
    }
    assert reopened.get("/subjects/payments-value/versions/1/referencedby").json() == [3]


def test_a_store_from_before_references_is_migrated(tmp_path: Path) -> None:
    """A database whose `schemas` table has `normalized` unique on its own keeps its ids and accepts references."""
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE schemas (id INTEGER PRIMARY KEY AUTOINCREMENT, normalized TEXT NOT NULL UNIQUE,
                                  schema_type TEXT NOT NULL DEFAULT 'AVRO');
            CREATE TABLE subject_versions (subject TEXT NOT NULL, version INTEGER NOT NULL,
                                           schema_id INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,
                                           PRIMARY KEY (subject, version));
            """
        )
        conn.execute("INSERT INTO schemas (id, normalized) VALUES (7, ?)", (normalize(MONEY),))
        conn.execute("INSERT INTO subject_versions VALUES ('money-value', 1, 7, 0)")
    client = TestClient(create_schema_registry_app(SchemaStore(path)))
    assert client.get("/schemas/ids/7").json() == {"schema": normalize(MONEY)}
    assert client.post("/subjects/money-value/versions", json=body(MONEY)).json() == {"id": 7}
    ref = {**MONEY_REF, "version": 1}
    assert client.post("/subjects/p-value/versions", json=body(PAYMENT, references=[ref])).json() == {"id": 8}


def test_format_resolved_writes_the_referenced_types_in_full(client: TestClient) -> None:
    """Confluent's ``GET /schemas/ids/{id}?format=resolved`` (and ``/schema``): the schema with its references' named
    types written in full where first met, the references still listed; ``default``, empty or an unknown format: the
    stored text (it was the stored text always; found by running confluent-kafka's suites against the registry)."""
    assert client.post("/subjects/money-value/versions", json=body(MONEY)).json() == {"id": 1}
    registered = client.post("/subjects/payments-value/versions", json={"schema": PAYMENT, "references": [MONEY_REF]})
    schema_id = registered.json()["id"]
    stored = normalize(PAYMENT, [MONEY])
    inlined = json.loads(stored)
    inlined["fields"][1]["type"] = json.loads(normalize(MONEY))
    resolved = json.dumps(inlined, separators=(",", ":"))
    for fmt in ("resolved", "RESOLVED"):
        answer = client.get(f"/schemas/ids/{schema_id}?format={fmt}").json()
        assert answer == {"schema": resolved, "references": [MONEY_REF]}
        assert client.get(f"/schemas/ids/{schema_id}/schema?format={fmt}").text == resolved
    for fmt in ("", "default", "serialized"):
        assert client.get(f"/schemas/ids/{schema_id}?format={fmt}").json()["schema"] == stored
        assert client.get(f"/schemas/ids/{schema_id}/schema?format={fmt}").text == stored
    assert client.get("/schemas/ids/1?format=resolved").json() == {"schema": normalize(MONEY)}  # no references


def test_a_version_referenced_under_several_names_is_read_once(client: TestClient, db: Path) -> None:
    """Each name is its own reference (listed, stored and returned), but the referenced version's text is brought in
    once: 200 names of one version parsed it 200 times, 8 s inside the store's write lock (found by a fuzzer)."""
    import sqlite3

    from registry.schema_registry.schemas import SchemaReference
    from registry.schema_registry.store_tables import resolve

    assert client.post("/subjects/money-value/versions", json=body(MONEY)).json() == {"id": 1}
    refs = [{"name": name, "subject": "money-value", "version": 1} for name in ("fs.common.Money", "a", "b")]
    registered = client.post("/subjects/payments-value/versions", json={"schema": PAYMENT, "references": refs})
    assert registered.status_code == 200, registered.text
    assert client.get("/subjects/payments-value/versions/1").json()["references"] == refs
    with sqlite3.connect(db) as conn:
        resolved, texts = resolve(conn, [SchemaReference(str(r["name"]), "money-value", 1) for r in refs])
    assert [r.name for r in resolved] == ["fs.common.Money", "a", "b"] and texts == [normalize(MONEY)]
