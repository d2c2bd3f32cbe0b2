"""Audit of design §5.3 "Bad input" / §6 "Schema registry": the JVM decoder (``jobs/java/decode``) and the Python
reference (``udfs.decode``) give the same answer for the same bytes, against a registry this test plays (so it can
answer what a real one rarely does).

- A writer record whose name is neither the reader's nor one of its aliases is ``undecodable``, also when the
  writer schema is a union and the record is the branch the body was written with: Avro's Java resolver ignores
  record names there, and the JVM decoder accepted such a record that the Python decoder refuses.
- Only a 404 with error code 40403 (a number) means an unknown id; any other answer is a failure (no dead letter).
  The JVM decoder read a string ``"40403"`` as the code, the Python one does not.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import fastavro
import pytest

from jobs.registry_client import schema_lookup
from registry.core.errors import DecodeError, StoreUnavailableError
from registry.core.settings import Settings
from schemas.wire import frame
from udfs.decode import EventDecoder

pytestmark = pytest.mark.integration

READER: dict[str, Any] = {
    "type": "record",
    "name": "Ev",
    "namespace": "a",
    "aliases": ["old.ns.Legacy"],
    "fields": [
        {"name": "txn_id", "type": "string"},
        {"name": "user_id", "type": "string"},
        {"name": "amount", "type": ["null", "double"], "default": None},
        {"name": "ts", "type": "long"},
    ],
}
KEYS = ("user_id",)
NOT_FOUND = json.dumps({"error_code": 40403, "message": "Schema not found"})


class Registry:
    """Answers ``GET /schemas/ids/<id>`` from ``answers`` (id -> status, body); 404 40403 for any other id."""

    def __init__(self) -> None:
        self.answers: dict[int, tuple[int, str]] = {}
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                schema_id = int(self.path.split("/schemas/ids/")[1].split("?")[0])
                status, body = registry.answers.get(schema_id, (404, NOT_FOUND))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def schema(self, schema_id: int, schema: Any) -> None:
        self.answers[schema_id] = (200, json.dumps({"schema": json.dumps(schema)}))


class Decoders:
    def __init__(self, settings: Settings, registry: Registry) -> None:
        from pyflink.util.java_utils import add_jars_to_context_class_loader

        from jobs.decoder import decoder_jar, event_decoder

        settings = settings.model_copy(update={"schema_registry_url": registry.url, "token": None})
        avro = sorted(settings.flink_jars_dir.glob("flink-sql-avro-*.jar"))
        add_jars_to_context_class_loader([decoder_jar(settings).as_uri(), avro[0].as_uri()])
        self.python = EventDecoder(schema_lookup(registry.url), READER, timestamp_field="ts", key_fields=KEYS)
        self.java = event_decoder(settings, READER, "ts", KEYS)

    def python_answer(self, payload: bytes, record_ms: int) -> tuple[str, Any]:
        try:
            event = self.python.decode_record(payload, record_ms)
        except DecodeError as exc:
            return exc.reason, exc.detail
        except StoreUnavailableError:
            return "failure", None
        return "ok", [event[f["name"]] for f in READER["fields"]]

    def java_answer(self, payload: bytes, record_ms: int) -> tuple[str, Any]:
        try:
            values = self.java.decode(payload, record_ms)
        except Exception as exc:  # py4j's Py4JJavaError, carrying the Java exception
            java = getattr(exc, "java_exception", None)
            if java is None:
                raise
            if java.getClass().getName() == "java.io.IOException":
                return "failure", None
            assert java.getClass().getName() == "featurestore.job.Rejected", exc
            return str(java.reason()), str(java.detail())
        return "ok", list(values)

    def agree(self, payload: bytes, record_ms: int) -> str:
        py, java = self.python_answer(payload, record_ms), self.java_answer(payload, record_ms)
        assert py[0] == java[0], (payload, py, java)
        if py[0] == "undecodable":  # the libraries' own messages follow the colon
            assert java[1].split(":", 1)[0] == py[1].split(":", 1)[0], (py, java)
        else:
            assert py[1] == java[1], (py, java)
        return py[0]


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    registry = Registry()
    yield registry
    registry.server.shutdown()


@pytest.fixture(scope="module")
def decoders(it_settings: Settings, registry: Registry) -> Decoders:
    return Decoders(it_settings, registry)


def _body(record: Any, schema: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


TS = time.time_ns() // 1_000_000 - 5_000
EVENT = {"txn_id": "t1", "user_id": "u1", "amount": None, "ts": TS}


def test_a_union_writer_resolves_its_record_branch_by_name_alike(registry: Registry, decoders: Decoders) -> None:
    other = {**READER, "name": "Other", "aliases": []}
    unions: dict[int, list[Any]] = {
        101: ["null", other],  # another name: undecodable
        102: ["null", {**READER, "namespace": "elsewhere", "aliases": []}],  # another namespace: resolves
        103: ["null", {**READER, "name": "Legacy", "namespace": "x.y", "aliases": []}],  # a reader alias: resolves
        104: [{**READER, "aliases": []}, other],  # the branch written decides
    }
    for schema_id, union in unions.items():
        registry.schema(schema_id, union)
    assert decoders.agree(frame(101, _body(EVENT, unions[101])), TS) == "undecodable"
    assert decoders.agree(frame(101, _body(None, unions[101])), TS) == "undecodable"
    assert decoders.agree(frame(102, _body(EVENT, unions[102])), TS) == "ok"
    assert decoders.agree(frame(103, _body(EVENT, unions[103])), TS) == "ok"
    first = _body({"-type": "a.Ev", **EVENT}, unions[104])
    second = _body({"-type": "a.Other", **EVENT}, unions[104])
    assert first[0] == 0 and second[0] == 2  # the branch index: zigzag 0 and 1
    assert decoders.agree(frame(104, first), TS) == "ok"
    assert decoders.agree(frame(104, second), TS) == "undecodable"
    assert decoders.agree(frame(104, b"\x04" + first[1:]), TS) == "undecodable"  # no branch 2
    # A plain record of another name stays undecodable, with the same detail as before.
    registry.schema(105, other)
    assert decoders.agree(frame(105, _body(EVENT, other)), TS) == "undecodable"
    assert decoders.java_answer(frame(105, _body(EVENT, other)), TS)[1] == (
        "Avro body does not match schema id 105: its record Other is not Ev (nor one of its aliases)"
    )
    assert decoders.java_answer(frame(101, _body(EVENT, unions[101])), TS)[1] == (
        "Avro body does not match schema id 101: its record Other is not Ev (nor one of its aliases)"
    )


def test_only_a_404_with_error_code_40403_is_an_unknown_id(registry: Registry, decoders: Decoders) -> None:
    body = _body(EVENT, READER)
    answers = {
        201: (404, json.dumps({"error_code": 40401, "message": "Subject not found"})),
        202: (500, json.dumps({"error_code": 50001, "message": "boom"})),
        203: (404, "not json"),
        204: (404, json.dumps({"error_code": "40403", "message": "a string, not the code"})),
        205: (404, json.dumps({"message": "no code"})),
        206: (503, NOT_FOUND),
    }
    registry.answers.update(answers)
    for schema_id in answers:
        assert decoders.agree(frame(schema_id, body), TS) == "failure", schema_id
    assert decoders.agree(frame(299, body), TS) == "unknown_schema_id"  # 404 with 40403
