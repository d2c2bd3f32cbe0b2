"""The registry against Apache Avro Java, what Confluent's registry runs (``new Schema.Parser().parse`` with defaults
validated, as Confluent parses a schema being registered; ``Schema.toString(references, false)``;
``SchemaCompatibility.checkReaderWriterCompatibility``).

Every verdict and text below was checked against Avro 1.12.1 and 1.12.2 Java (a differential run over hand-made
edge cases and ~30,000 generated schemas and reader/writer pairs; the Java program is not part of the suite, CI
has no Avro jar). Each case is one where the registry disagreed with Java before: it accepted what Java refuses,
refused what Java accepts, or wrote another text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from registry.schema_registry import avro_compat
from registry.schema_registry.errors import InvalidSchemaError
from registry.schema_registry.schemas import SchemaReference, normalize
from registry.schema_registry.store import SchemaStore


def _record(fields: list[dict[str, Any]], name: str = "R", **extra: Any) -> str:
    return json.dumps({"type": "record", "name": name, "fields": fields, **extra}, ensure_ascii=False)


def _field(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


_ENUM = {"type": "enum", "name": "E", "symbols": ["A"]}

# (schema, Avro Java 1.12.1's error): Java refuses each; the registry accepted each before.
REFUSED_BY_JAVA = [
    (_record([], name="1r"), "Illegal initial character: 1r"),
    (_record([], name="a-b"), "Illegal character in: a-b"),
    (_record([_field("a.b", "int")]), "Illegal character in: a.b"),
    (_record([], namespace="a..b"), 'Namespace part "" is invalid: Empty name'),
    (_record([], aliases=["x.1Foo"]), "Illegal initial character: 1Foo"),
    ('["int", "int"]', "Duplicate in union:int"),
    ('["null", ["null", "int"]]', 'Nested union: ["null",["null","int"]]'),
    ('["int", {"type": "int", "logicalType": "date"}]', "Duplicate in union:int"),
    ('[{"type": "array", "items": "int"}, {"type": "array", "items": "long"}]', "Duplicate in union:array"),
    (_record([_field("next", ["null", "R", "R"])]), "Duplicate in union:R"),
    (_record([_field("a", "int", order="bogus")]), "No enum constant org.apache.avro.Schema.Field.Order.BOGUS"),
    (_record([_field("a", "int", order=None)]), "NullPointerException (order is not a string)"),
    ('{"type": "fixed", "name": "F", "size": 2147483640}', "Cannot read arrays longer than 2147483639 bytes"),
    ('{"type": "fixed", "name": "F", "size": 2147483648}', "Invalid or no size"),
    (_record([_field("a", "int", default=2**31)]), 'Invalid default for field a: 2147483648 not a "int"'),
    (_record([_field("a", "int", default=True)]), 'Invalid default for field a: true not a "int"'),
    (_record([_field("a", "long", default=2**63)]), 'Invalid default for field a: 9223372036854775808 not a "long"'),
    (_record([_field("a", {"type": "array", "items": "int"}, default=["x"])]), "Invalid default for field a"),
    (_record([_field("a", {"type": "map", "values": "int"}, default={"k": "x"})]), "Invalid default for field a"),
    (  # a record default must give every field without a default of its own
        _record([_field("a", {"type": "record", "name": "S", "fields": [_field("x", "int")]}, default={})]),
        "Invalid default for field a",
    ),
    (_record([_field("a", ["float", "null"], default="NaN")]), "Invalid default for field a"),
    (_record([_field("a", "double", default="inf")]), 'NumberFormatException: For input string: "inf"'),
    (_record([_field("next", "R", default=None)]), "Invalid default for field next"),
    (
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "double", "default": NaN}]}',
        "Non-standard token 'NaN'",
    ),
]


@pytest.mark.parametrize(("schema", "java_error"), REFUSED_BY_JAVA)
def test_what_avro_java_refuses_is_an_invalid_schema(schema: str, java_error: str) -> None:
    with pytest.raises(InvalidSchemaError):
        normalize(schema)


# (schema, the text Avro Java 1.12.1 writes for it): Java accepts each; the registry refused each, or wrote
# another text, before.
ACCEPTED_BY_JAVA = [
    ('{"type": "enum", "name": "E", "symbols": ["é", "_1"]}', '{"type":"enum","name":"E","symbols":["é","_1"]}'),
    ('{"type": "enum", "name": "E", "symbols": ["A"], "default": null}', '{"type":"enum","name":"E","symbols":["A"]}'),
    ('{"type": "enum", "name": "E", "symbols": ["A"], "default": 1}', '{"type":"enum","name":"E","symbols":["A"]}'),
    (_record([], namespace=5, doc=5), '{"type":"record","name":"R","fields":[]}'),
    (_record([_field("a", "int", doc=None)]), '{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}'),
    (  # a type of the null namespace named by its short name from inside a namespace
        json.dumps(
            {
                "type": "record",
                "name": "R",
                "namespace": "a",
                "fields": [
                    _field("e", {"type": "enum", "name": "E", "namespace": "", "symbols": ["A"]}),
                    _field("f", "E"),
                ],
            }
        ),
        '{"type":"record","name":"R","namespace":"a","fields":[{"name":"e","type":{"type":"enum","name":"E",'
        '"namespace":"","symbols":["A"]}},{"name":"f","type":"E"}]}',
    ),
    (  # an invalid logical type is ignored, not refused
        '{"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 5}',
        '{"type":"bytes","logicalType":"decimal","precision":4,"scale":5}',
    ),
    (
        '{"type": "fixed", "name": "D", "size": 2, "logicalType": "decimal", "precision": 5}',
        '{"type":"fixed","name":"D","size":2,"logicalType":"decimal","precision":5}',
    ),
    (_record([], name=".a"), '{"type":"record","name":"a","fields":[]}'),
    (
        _record([], namespace="n", aliases=["Old", "n.Old"]),
        '{"type":"record","name":"R","namespace":"n","fields":[],"aliases":["Old"]}',
    ),
    (
        _record(
            [
                _field("a", "float", default=" 1.5f "),
                _field("b", "double", default="0x1p3"),
                _field("c", "double", default="-0"),
            ]
        ),
        '{"type":"record","name":"R","fields":[{"name":"a","type":"float","default":1.5},'
        '{"name":"b","type":"double","default":8.0},{"name":"c","type":"double","default":-0.0}]}',
    ),
    (
        _record([_field("a", "double", default="NaN")]),
        '{"type":"record","name":"R","fields":[{"name":"a","type":"double","default":"NaN"}]}',
    ),
    (
        _record([_field("a", "double", default=1e10, x=1e-5, y=123456789.123)]),
        '{"type":"record","name":"R","fields":[{"name":"a","type":"double","default":1.0E10,"x":1.0E-5,"y":1.23456789123E8}]}',
    ),
    (_record([], doc="a\u0001b\u001fc"), '{"type":"record","name":"R","doc":"a\\u0001b\\u001Fc","fields":[]}'),
    (  # a repeated definition equal to the first (docs and aliases do not count) is the first, by name
        _record([_field("a", _ENUM), _field("b", {**_ENUM, "doc": "other"})]),
        '{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"enum","name":"E","symbols":["A"]}},'
        '{"name":"b","type":"E"}]}',
    ),
    (
        _record(
            [
                _field("a", {"type": "record", "name": "S", "fields": [_field("x", {"type": "string"})]}),
                _field("b", {"type": "record", "name": "S", "fields": [_field("x", "string")]}),
            ]
        ),
        '{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"record","name":"S","fields":'
        '[{"name":"x","type":"string"}]}},{"name":"b","type":"S"}]}',
    ),
    (  # a named type whose short name is a primitive's is always written in full
        _record([_field("a", {"type": "fixed", "name": "int", "size": 1}), _field("b", "a.int")], namespace="a"),
        '{"type":"record","name":"R","namespace":"a","fields":[{"name":"a","type":{"type":"fixed","name":"int",'
        '"size":1}},{"name":"b","type":"a.int"}]}',
    ),
]


@pytest.mark.parametrize(("schema", "java_text"), ACCEPTED_BY_JAVA)
def test_what_avro_java_accepts_is_kept_under_javas_text(schema: str, java_text: str) -> None:
    assert normalize(schema) == java_text


def test_a_different_repeated_definition_is_refused() -> None:
    """Avro Java 1.12.1: ``Can't redefine: E`` (the symbols differ)."""
    other = {"type": "enum", "name": "E", "symbols": ["A", "B"]}
    with pytest.raises(InvalidSchemaError, match="Can't redefine: E"):
        normalize(_record([_field("a", _ENUM), _field("b", other)]))


def test_a_referenced_type_defined_again_inline_is_the_referenced_one(tmp_path: Path) -> None:
    """Avro Java accepts a schema that repeats, unchanged, a type its references define, and writes it by name:
    Confluent gives it the id of the schema that names the type."""
    store = SchemaStore(tmp_path / "s.db")
    money = {"type": "record", "name": "Money", "fields": [_field("cents", "long")]}
    store.register("money", json.dumps(money))
    ref = (SchemaReference("Money", "money", 1),)
    by_name = store.register("order", _record([_field("total", "Money")], name="Order"), ref)
    inline = store.register("order2", _record([_field("total", money)], name="Order"), ref)
    assert inline.id == by_name.id
    assert inline.schema == '{"type":"record","name":"Order","fields":[{"name":"total","type":"Money"}]}'


def test_a_reader_alias_with_a_leading_dot_names_the_null_namespace() -> None:
    """SchemaCompatibility (1.12.1): a reader record ``.R1X`` with alias ``.R1`` reads a writer record ``R1``."""
    reader = {"type": "record", "name": ".R1X", "fields": [], "aliases": [".R1"]}
    writer = {"type": "record", "name": "R1", "fields": []}
    assert avro_compat.can_read(reader, writer)
    assert not avro_compat.can_read({**reader, "aliases": [".R2"]}, writer)


def test_stored_versions_are_compared_without_their_defaults_checked() -> None:
    """Confluent parses the versions it compares a new schema with without validating their defaults, so an
    old version with a default Avro 1.12 refuses still takes part in the check (and the new one is refused)."""
    old = _record([_field("a", "int", default=2**31)])
    with pytest.raises(avro_compat.InvalidSchemaError):
        avro_compat.validate(old)
    assert avro_compat.check("BACKWARD", _record([_field("a", "long")]), [old]) == []
    assert avro_compat.check("BACKWARD", _record([_field("a", "string")]), [old]) != []


# A name used before the type it names is defined (Avro 1.12 Java resolves it once the schema is parsed, by the name
# qualified with the namespace where it is used) is accepted; Java writes the type in full where it is first met.
FORWARD_REFERENCES = [
    (
        _record([_field("a", "S"), _field("b", {"type": "record", "name": "S", "fields": [_field("x", "int")]})]),
        '{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"record","name":"S","fields":'
        '[{"name":"x","type":"int"}]}},{"name":"b","type":"S"}]}',
    ),
    (
        _record([_field("a", ["S", "T"]), _field("b", {**_ENUM, "name": "S"}), _field("c", {**_ENUM, "name": "T"})]),
        '{"type":"record","name":"R","fields":[{"name":"a","type":[{"type":"enum","name":"S","symbols":["A"]},'
        '{"type":"enum","name":"T","symbols":["A"]}]},{"name":"b","type":"S"},{"name":"c","type":"T"}]}',
    ),
    (
        _record(
            [
                _field("a", {"type": "array", "items": "x.S"}),
                _field("b", {"type": "record", "name": "S", "namespace": "x", "fields": [_field("t", "T")]}),
                _field("c", {"type": "fixed", "name": "T", "namespace": "", "size": 1}),
            ],
            namespace="m",
        ),
        None,  # T is used inside S before its definition, from namespace x: Java looks for x.T, which is not defined
    ),
]


@pytest.mark.parametrize(("schema", "java_text"), FORWARD_REFERENCES)
def test_a_name_used_before_its_definition(schema: str, java_text: str | None) -> None:
    if java_text is None:
        with pytest.raises(InvalidSchemaError):
            normalize(schema)
    else:
        assert normalize(schema) == java_text


def test_a_forward_reference_is_refused_where_java_refuses_it() -> None:
    """Avro 1.12.1 Java: ``Undefined schema: m.S`` (a forward reference is looked up only in the namespace where it
    is used), ``Duplicate in union:S`` (the union is checked once its names are resolved), and the default of a
    field is checked against the type the name resolves to."""
    s_elsewhere = {"type": "record", "name": "S", "namespace": "n", "fields": [_field("x", "int")]}
    with pytest.raises(InvalidSchemaError, match='"S" is not a defined name'):
        normalize(_record([_field("a", "S"), _field("b", s_elsewhere)], namespace="m"))
    with pytest.raises(InvalidSchemaError, match="Duplicate in union:S"):
        normalize(_record([_field("a", ["S", {**_ENUM, "name": "S"}])]))
    with pytest.raises(InvalidSchemaError, match="Invalid default for field a"):
        normalize(_record([_field("a", "S", default={}), _field("b", {**_ENUM, "name": "S"})]))


def test_forward_references_resolve_for_compatibility() -> None:
    """SchemaCompatibility (1.12.1): the same record written with its definition first or last is one type."""
    inner = {"type": "record", "name": "S", "fields": [_field("x", "int")]}
    first = _record([_field("b", inner), _field("a", "S")])
    last = _record([_field("a", "S"), _field("b", inner)])
    assert avro_compat.can_read(first, last) and avro_compat.can_read(last, first)
    wider = _record([_field("a", "S"), _field("b", {**inner, "fields": [_field("x", "long")]})])
    assert avro_compat.can_read(wider, first)
    assert not avro_compat.can_read(first, wider)
