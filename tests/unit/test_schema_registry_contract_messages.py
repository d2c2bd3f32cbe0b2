"""The parser's detail in a 42201 is Avro Java's own text: where Avro quotes JSON (the schema, a field, a default,
the field's type) it is Jackson's compact JSON, with no space after ``:`` or ``,``, doubles as Java writes them and
nothing cut short. A client that compares Confluent's message reads the same one here.

Each expected message was printed by Avro 1.12.1 Java (``new Schema.Parser().parse(text)``, the exception's
``getMessage()``), which Confluent runs and quotes after ``Invalid schema of type AVRO, details: ``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry.schema_registry.api import create_schema_registry_app
from registry.schema_registry.avro_parse import InvalidSchemaError, validate
from registry.schema_registry.store import SchemaStore

_LONG_DOC = "d" * 200

# (schema text, Avro 1.12.1 Java's message)
JAVA_MESSAGES = [
    ('{"type": "record"}', 'No name in schema: {"type":"record"}'),
    ('{"type": "record", "name": "R"}', 'Record has no fields: {"type":"record","name":"R"}'),
    ('{"name": "R", "x": [1, 2.5, 1e10]}', 'No type: {"name":"R","x":[1,2.5,1.0E10]}'),
    ('{"name": "R", "type": ["int"]}', 'No type: {"name":"R","type":["int"]}'),
    ("5", "Schema not yet supported: 5"),
    (
        '{"type": "enum", "name": "E", "doc": "é\\u0001"}',
        'Enum has no symbols: {"type":"enum","name":"E","doc":"é\\u0001"}',
    ),
    ('{"type": "enum", "name": "E", "symbols": "A"}', 'Enum has no symbols: {"type":"enum","name":"E","symbols":"A"}'),
    ('{"type": "fixed", "name": "F", "size": "3"}', 'Invalid or no size: {"type":"fixed","name":"F","size":"3"}'),
    ('{"type": "record", "name": "R", "fields": [{"type": "int"}]}', 'No field name: {"type":"int"}'),
    ('{"type": "record", "name": "R", "fields": [{"name": "a"}]}', 'No field type: {"name":"a"}'),
    ('{"type": "array"}', 'Array has no items type: {"type":"array"}'),
    ('{"type": "map"}', 'Map has no values type: {"type":"map"}'),
    ('["null", ["null", "int"]]', 'Nested union: ["null",["null","int"]]'),
    ('["int", {"type": "map", "values": ["null", ["null"]]}]', 'Nested union: ["null",["null"]]'),
    (
        '{"type": "record", "name": "R", "aliases": "x", "fields": []}',
        'aliases not an array: {"type":"record","name":"R","aliases":"x","fields":[]}',
    ),
    ('{"type": "record", "name": "R", "aliases": [1], "fields": []}', "alias not a string: 1"),
    (
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int", "aliases": "a"}]}',
        'aliases not an array: {"name":"a","type":"int","aliases":"a"}',
    ),
    (
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int", "aliases": [null]}]}',
        "alias not a string: null",
    ),
    (
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int", "default": "x y"}]}',
        'Invalid default for field a: "x y" not a "int"',
    ),
    (
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int", "default": [1, 2]}]}',
        'Invalid default for field a: [1,2] not a "int"',
    ),
    (
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "float", "default": true}]}',
        'Invalid default for field a: true not a "float"',
    ),
    (
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "string", "default": 1.0e10}]}',
        'Invalid default for field a: 1.0E10 not a "string"',
    ),
    (
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int", "default": 12345678.5}]}',
        'Invalid default for field a: 1.23456785E7 not a "int"',
    ),
    (
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int", "default": -0.0}]}',
        'Invalid default for field a: -0.0 not a "int"',
    ),
    (
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int", "default": "x\\u0001é\\"/"}]}',
        'Invalid default for field a: "x\\u0001é\\"/" not a "int"',
    ),
    (
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int", "default": {"b": [true, null, 1.5e-7]}}]}',
        'Invalid default for field a: {"b":[true,null,1.5E-7]} not a "int"',
    ),
    (
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": {"type": "array", "items": "int"}, '
        '"default": ["x", 1.5]}]}',
        'Invalid default for field a: ["x",1.5] not a {"type":"array","items":"int"}',
    ),
    (
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": ["null", "int"], "default": {"k": 1}}]}',
        'Invalid default for field a: {"k":1} not a ["null","int"]',
    ),
    (
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": {"type": "int", "logicalType": "date"}, '
        '"default": "x"}]}',
        'Invalid default for field a: "x" not a {"type":"int","logicalType":"date"}',
    ),
    (  # a type inside a namespace is quoted with it, as Schema.toString() writes that type alone
        '{"type": "record", "name": "R", "namespace": "n", "fields": [{"name": "a", "type": {"type": "record", '
        '"name": "S", "fields": [{"name": "x", "type": "int"}]}, "default": {"x": "no"}}]}',
        'Invalid default for field a: {"x":"no"} not a '
        '{"type":"record","name":"S","namespace":"n","fields":[{"name":"x","type":"int"}]}',
    ),
    (
        '{"type": "record", "name": "R", "namespace": "n", "fields": [{"name": "a", "type": {"type": "array", '
        '"items": {"type": "fixed", "name": "F", "namespace": "m", "size": 1}}, "default": [1]}]}',
        'Invalid default for field a: [1] not a {"type":"array","items":{"type":"fixed","name":"F","namespace":"m",'
        '"size":1}}',
    ),
    (  # a Java list, not JSON
        '{"type": "enum", "name": "E", "symbols": ["A", "C"], "default": "B"}',
        "The Enum Default: B is not in the enum symbol set: [A, C]",
    ),
    (  # the same name defined again, with a default that is not a symbol
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": {"type": "enum", "name": "E", "symbols": '
        '["A"]}}, {"name": "b", "type": {"type": "enum", "name": "E", "symbols": ["A"], "default": "Z"}}]}',
        "The Enum Default: Z is not in the enum symbol set: [A]",
    ),
    (  # nothing cut short: Avro quotes the whole node
        json.dumps({"type": "fixed", "name": "F", "doc": _LONG_DOC}),
        f'Invalid or no size: {{"type":"fixed","name":"F","doc":"{_LONG_DOC}"}}',
    ),
]


@pytest.mark.parametrize(("schema", "java_message"), JAVA_MESSAGES)
def test_the_parser_says_what_avro_java_says(schema: str, java_message: str) -> None:
    with pytest.raises(InvalidSchemaError) as refused:
        validate(schema)
    assert str(refused.value) == java_message


def test_aliases_null_is_refused_as_avro_java_refuses_it() -> None:
    """Jackson's ``get("aliases")`` is a NullNode, not Java's null, for ``"aliases": null``: not an array."""
    with pytest.raises(InvalidSchemaError) as refused:
        validate('{"type": "record", "name": "R", "aliases": null, "fields": []}')
    assert str(refused.value) == 'aliases not an array: {"type":"record","name":"R","aliases":null,"fields":[]}'
    with pytest.raises(InvalidSchemaError, match="aliases not an array"):
        validate('{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int", "aliases": null}]}')


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    store = SchemaStore(tmp_path / "schemas.db", default_compatibility="BACKWARD")
    return TestClient(create_schema_registry_app(store), raise_server_exceptions=False)


@pytest.mark.parametrize(("schema", "java_message"), JAVA_MESSAGES[:3] + JAVA_MESSAGES[-3:])
def test_a_42201_quotes_avro_javas_detail_as_confluent_does(client: TestClient, schema: str, java_message: str) -> None:
    expected = {"error_code": 42201, "message": f"Invalid schema of type AVRO, details: {java_message}"}
    answer = client.post("/subjects/s/versions", json={"schema": schema})
    assert (answer.status_code, answer.json()) == (422, expected)
    answer = client.post("/compatibility/subjects/s/versions/latest?verbose=true", json={"schema": schema})
    assert answer.json() == {"is_compatible": False, "messages": [expected["message"]]}
