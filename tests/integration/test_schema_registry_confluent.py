"""Two ``python -m registry.schema_registry`` server processes sharing one SQLite file: ids and versions stay unique and
gap-free under concurrent registration, compatibility holds across processes, and a restart keeps it all;
then confluent-kafka's own client and Avro serdes against a server process: schema references, and the
error statuses, codes and messages Confluent's registry answers with.

Needs no Kafka or Cassandra (so no ``integration`` marker): each server binds a free loopback port
(``--port 0``) and announces it on its first stdout line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from registry.schema_registry.store import normalize

REPO = Path(__file__).resolve().parent.parent.parent
HEADERS = {"Content-Type": "application/vnd.schemaregistry.v1+json"}


class Server:
    """One registry process on a free port; ``url`` is where it listens."""

    def __init__(self, db: Path, log: Path) -> None:
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "registry.schema_registry", "--host", "127.0.0.1", "--port", "0", "--db", str(db)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().strip()  # "listening on http://127.0.0.1:PORT"
        if not line.startswith("listening on "):
            self.stop()
            pytest.fail(f"registry did not start: {line!r}; see {log}")
        self.url = line.removeprefix("listening on ")
        self.http = httpx.Client(base_url=self.url, headers=HEADERS, timeout=30)
        for _ in range(200):
            try:
                if self.http.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        pytest.fail(f"registry at {self.url} never became healthy; see {log}")

    def stop(self) -> None:
        if hasattr(self, "http"):
            self.http.close()
        self.process.terminate()
        self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[[Path], Server]]:
    started: list[Server] = []

    def start(db: Path) -> Server:
        server = Server(db, tmp_path / f"server-{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()


def schema_for(i: int) -> str:
    """Distinct schemas that are all mutually compatible: one defaulted field each."""
    return json.dumps({"type": "record", "name": "Event", "fields": [{"name": f"f{i}", "type": "long", "default": 0}]})


def subject_for(i: int) -> str:
    return f"events-{'even' if i % 2 == 0 else 'odd'}-value"


def register_all(server: Server, indices: list[int], barrier: threading.Barrier, out: dict[int, Any]) -> None:
    barrier.wait(timeout=30)
    for i in indices:
        response = server.http.post(f"/subjects/{subject_for(i)}/versions", json={"schema": schema_for(i)})
        out[i] = response.json() if response.status_code == 200 else response.text


def test_two_processes_share_one_store(tmp_path: Path, start_server: Callable[[Path], Server]) -> None:
    db = tmp_path / "shared" / "schemas.db"
    a, b = start_server(db), start_server(db)
    assert a.url != b.url

    results: dict[int, Any] = {}
    barrier = threading.Barrier(2)
    workers = [
        threading.Thread(target=register_all, args=(a, list(range(0, 25)), barrier, results)),
        threading.Thread(target=register_all, args=(b, list(range(25, 50)), barrier, results)),
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert sorted(results) == list(range(50))
    ids = {i: r["id"] for i, r in results.items()}
    assert sorted(ids.values()) == list(range(1, 51))  # unique, and no id burnt

    def snapshot(server: Server) -> dict[str, list[tuple[int, int]]]:
        out = {}
        for subject in server.http.get("/subjects").json():
            versions = server.http.get(f"/subjects/{subject}/versions").json()
            out[subject] = [(v, server.http.get(f"/subjects/{subject}/versions/{v}").json()["id"]) for v in versions]
        return out

    seen = snapshot(a)
    assert seen == snapshot(b)
    for subject in ("events-even-value", "events-odd-value"):
        assert [v for v, _ in seen[subject]] == list(range(1, 26))  # gap-free per subject
        assert sorted(schema_id for _, schema_id in seen[subject]) == sorted(
            ids[i] for i in range(50) if subject_for(i) == subject
        )
    for i in (0, 17, 49):
        assert b.http.get(f"/schemas/ids/{ids[i]}").json() == {"schema": normalize(schema_for(i))}

    # a restart of either process (and of both) loses nothing
    a.stop()
    b.stop()
    again = start_server(db)
    assert snapshot(again) == seen
    assert again.http.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    assert again.http.post("/subjects/events-even-value/versions", json={"schema": schema_for(50)}).json() == {"id": 51}


def _post(server: Server, subject: str, schema: str, barrier: threading.Barrier, statuses: list[int]) -> None:
    barrier.wait(timeout=30)
    statuses.append(server.http.post(f"/subjects/{subject}/versions", json={"schema": schema}).status_code)


def test_two_processes_cannot_both_extend_a_subject_incompatibly(
    tmp_path: Path, start_server: Callable[[Path], Server]
) -> None:
    """Each candidate is compatible with v1 but not with the other; exactly one may win each race."""
    db = tmp_path / "schemas.db"
    a, b = start_server(db), start_server(db)

    def record(*fields: dict[str, Any]) -> str:
        return json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}, *fields]})

    as_string = record({"name": "b", "type": "string", "default": ""})
    as_int = record({"name": "b", "type": "int", "default": 0})
    outcomes: list[list[int]] = []
    for race in range(8):
        subject = f"race-{race}"
        assert a.http.post(f"/subjects/{subject}/versions", json={"schema": record()}).status_code == 200
        barrier = threading.Barrier(2)
        statuses: list[int] = []
        racers = [
            threading.Thread(target=_post, args=(server, subject, schema, barrier, statuses))
            for server, schema in ((a, as_string), (b, as_int))
        ]
        for t in racers:
            t.start()
        for t in racers:
            t.join(timeout=60)
        outcomes.append(sorted(statuses))
        assert a.http.get(f"/subjects/{subject}/versions").json() == [1, 2]
    assert outcomes == [[200, 409]] * 8


# ---------------------------------------------------------------------------------------------
# confluent-kafka's SchemaRegistryClient and Avro serdes against the server process
# ---------------------------------------------------------------------------------------------

MONEY = json.dumps(
    {
        "type": "record",
        "name": "Money",
        "namespace": "fs.common",
        "fields": [{"name": "amount", "type": "double"}, {"name": "currency", "type": "string"}],
    }
)
PAYMENT = json.dumps(
    {
        "type": "record",
        "name": "Payment",
        "namespace": "fs.events",
        "fields": [{"name": "id", "type": "string"}, {"name": "price", "type": "fs.common.Money"}],
    }
)


def test_confluent_serdes_with_schema_references(tmp_path: Path, start_server: Callable[[Path], Server]) -> None:
    """A referenced schema registered first, a schema using it registered by the serializer itself; the
    deserializer resolves the reference from the writer id alone, as against Confluent's registry."""
    server = start_server(tmp_path / "schemas.db")
    client = SchemaRegistryClient({"url": server.url})
    assert client.register_schema("money-value", Schema(MONEY, "AVRO")) == 1

    ref = SchemaReference("fs.common.Money", "money-value", 1)
    ctx = SerializationContext("payments", MessageField.VALUE)
    record = {"id": "p-1", "price": {"amount": 9.99, "currency": "EUR"}}
    written = AvroSerializer(client, Schema(PAYMENT, "AVRO", [ref]))(record, ctx)
    assert written is not None and written[:5] == b"\x00\x00\x00\x00\x02"

    fresh = SchemaRegistryClient({"url": server.url})  # no cache: everything comes from the server
    assert AvroDeserializer(fresh)(written, ctx) == record
    registered = fresh.get_latest_version("payments-value")
    assert (registered.schema_id, registered.version) == (2, 1)
    assert [(r.name, r.subject, r.version) for r in registered.schema.references or []] == [
        ("fs.common.Money", "money-value", 1)
    ]
    assert [(r.name, r.subject, r.version) for r in fresh.get_schema(2).references or []] == [
        ("fs.common.Money", "money-value", 1)
    ]
    assert fresh.lookup_schema("payments-value", Schema(PAYMENT, "AVRO", [ref])).version == 1
    assert fresh.get_referenced_by("money-value", 1) == [2]
    # the same schema and reference, registered again, is the same id: no new version
    assert fresh.register_schema("payments-value", Schema(PAYMENT, "AVRO", [ref])) == 2
    assert fresh.get_versions("payments-value") == [1]

    with pytest.raises(SchemaRegistryError) as referenced:
        fresh.delete_version("money-value", 1)
    assert (referenced.value.http_status_code, referenced.value.error_code) == (422, 42206)
    assert referenced.value.error_message == (
        "One or more references exist to the schema {magic=1,keytype=SCHEMA,subject=money-value,version=1}."
    )


def test_confluent_client_sees_confluents_errors(tmp_path: Path, start_server: Callable[[Path], Server]) -> None:
    """``SchemaRegistryError`` carries the status, code and message Confluent's registry answers with."""
    server = start_server(tmp_path / "schemas.db")
    client = SchemaRegistryClient({"url": server.url})

    def refused(call: Callable[[], object]) -> tuple[int, int, str]:
        with pytest.raises(SchemaRegistryError) as caught:
            call()
        return caught.value.http_status_code, caught.value.error_code, caught.value.error_message

    assert refused(lambda: client.get_latest_version("nope")) == (404, 40401, "Subject 'nope' not found.")
    assert refused(lambda: client.get_versions("nope")) == (404, 40401, "Subject 'nope' not found.")
    assert refused(lambda: client.get_schema(42)) == (404, 40403, "Schema 42 not found")

    v1 = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "double"}]})
    assert client.register_schema("s", Schema(v1, "AVRO")) == 1
    assert refused(lambda: client.get_version("s", 7)) == (404, 40402, "Version 7 not found.")
    assert refused(lambda: client.lookup_schema("s", Schema(MONEY, "AVRO"))) == (404, 40403, "Schema not found")

    v2 = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]})
    status, code, message = refused(lambda: client.register_schema("s", Schema(v2, "AVRO")))
    assert (status, code) == (409, 409)
    prefix = 'Schema being registered is incompatible with an earlier schema for subject "s", details: ['
    assert message.startswith(prefix)
    assert message.endswith(
        f"{{oldSchemaVersion: 1}}, {{oldSchema: '{normalize(v1)}'}}, "
        "{validateFields: 'false', compatibility: 'BACKWARD'}]"
    )

    status, code, message = refused(lambda: client.register_schema("s", Schema('{"type": "record"}', "AVRO")))
    assert (status, code, message) == (
        422,
        42201,
        'Invalid schema of type AVRO, details: No name in schema: {"type":"record"}',  # Avro Java's words
    )
    assert refused(lambda: client.register_schema("s", Schema("{}", "JSON"))) == (
        422,
        42201,
        "Invalid schema type JSON",
    )
    assert refused(lambda: client.get_version("s", 0)) == (
        422,
        42202,
        "The specified version '0' is not a valid version id. "
        'Allowed values are between [1, 2^31-1] and the string "latest"',
    )
    assert refused(lambda: client.set_compatibility("s", "SIDEWAYS")) == (
        422,
        42203,
        "Invalid compatibility level. Valid values are none, backward, forward, full, "
        "backward_transitive, forward_transitive, and full_transitive",
    )
    assert client.delete_version("s", 1) == 1
    assert refused(lambda: client.delete_version("s", 1)) == (
        404,
        40406,
        "Subject 's' Version 1 was soft deleted.Set permanent=true to delete permanently",
    )
