"""Our resolution rules (registry.schema_registry.avro_compat) against Apache Avro's own checker.

``avro.compatibility.ReaderWriterCompatibilityChecker`` is the Python port of Avro Java's
``SchemaCompatibility``, the checker Confluent's registry runs. Hypothesis builds related schema pairs
(records whose fields are primitives, ``["null", T]`` unions, enums with symbols added or removed,
arrays, maps and nested records; fields added, dropped, retyped, with or without defaults; the
spec's promotions int->long->float->double and string<->bytes) and both checkers must give the same
verdict in both directions. Disagreements are listed in :data:`KNOWN_DISAGREEMENTS` with the reason,
and a test pins each one so the list cannot go stale.
"""

from __future__ import annotations

import json
from typing import Any

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.schema_registry.avro_compat import can_read

PRIMITIVE_TYPES = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"]
SYMBOLS = ["A", "B", "C", "D"]


def avro_can_read(reader: Any, writer: Any) -> bool:
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(json.dumps(reader)), avro.schema.parse(json.dumps(writer))
    )
    return result.compatibility is SchemaCompatibilityType.compatible


def _default_for(schema: Any) -> tuple[bool, Any]:
    """(has a natural default, the default) for a field of this type."""
    if isinstance(schema, list):
        return _default_for(schema[0])  # a union's default is of its first branch
    if isinstance(schema, str):
        return True, {
            "null": None,
            "boolean": False,
            "int": 0,
            "long": 0,
            "float": 0.0,
            "double": 0.0,
            "bytes": "",
            "string": "",
        }[schema]
    kind = schema["type"]
    if kind == "enum":
        return True, schema["symbols"][0]
    if kind == "array":
        return True, []
    if kind == "map":
        return True, {}
    return False, None  # records: no default generated


@st.composite
def _types(draw: st.DrawFn, path: str, depth: int) -> Any:
    """A field type; named types are named by their path, so two drawn schemas name a position alike."""
    kinds = ["primitive", "optional", "enum", "array", "map"] + (["record"] if depth < 2 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "primitive":
        return draw(st.sampled_from(PRIMITIVE_TYPES))
    if kind == "optional":
        inner = draw(_types(f"{path}_o", depth + 1))
        return inner if isinstance(inner, list) or inner == "null" else ["null", inner]
    if kind == "enum":
        symbols = sorted(draw(st.sets(st.sampled_from(SYMBOLS), min_size=1)))
        enum: dict[str, Any] = {"type": "enum", "name": f"E{path}", "symbols": symbols}
        if draw(st.booleans()):
            enum["default"] = draw(st.sampled_from(symbols))
        return enum
    if kind == "array":
        return {"type": "array", "items": draw(_types(f"{path}_i", depth + 1))}
    if kind == "map":
        return {"type": "map", "values": draw(_types(f"{path}_v", depth + 1))}
    return draw(_records(f"R{path}", depth + 1))


@st.composite
def _field(draw: st.DrawFn, name: str, path: str, depth: int) -> dict[str, Any]:
    field_type = draw(_types(path, depth))
    out = {"name": name, "type": field_type}
    has, default = _default_for(field_type)
    if has and draw(st.booleans()):
        out["default"] = default
    return out


@st.composite
def _records(draw: st.DrawFn, name: str, depth: int = 0) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), unique=True, max_size=4))
    return {
        "type": "record",
        "name": name,
        "fields": [draw(_field(n, f"{name}_{n}", depth)) for n in names],
    }


@st.composite
def _evolved(draw: st.DrawFn, schema: Any, path: str, depth: int) -> Any:
    """A successor of ``schema``: mostly the same, with some positions changed the ways schemas evolve."""
    if isinstance(schema, dict) and schema["type"] == "record":
        fields = []
        for field in schema["fields"]:
            action = draw(st.sampled_from(["keep", "keep", "evolve", "drop", "toggle_default"]))
            if action == "drop":
                continue
            if action == "evolve":
                field = {
                    **{k: v for k, v in field.items() if k != "default"},
                    "type": draw(_evolved(field["type"], f"{schema['name']}_{field['name']}", depth + 1)),
                }
                has, default = _default_for(field["type"])
                if has and draw(st.booleans()):
                    field["default"] = default
            if action == "toggle_default":
                has, default = _default_for(field["type"])
                if "default" in field:
                    field = {k: v for k, v in field.items() if k != "default"}
                elif has:
                    field = {**field, "default": default}
            fields.append(field)
        taken = {f["name"] for f in fields} | {f["name"] for f in schema["fields"]}
        for extra in [n for n in ["e", "f"] if n not in taken][: draw(st.integers(0, 2))]:
            fields.append(draw(_field(extra, f"{schema['name']}_{extra}", depth + 1)))
        return {**schema, "fields": fields}
    choice = draw(st.sampled_from(["same", "promote", "other", "wrap"]))
    if choice == "same":
        if isinstance(schema, dict) and schema["type"] == "enum":
            symbols = sorted(draw(st.sets(st.sampled_from(SYMBOLS), min_size=1)))
            evolved = {**schema, "symbols": symbols}
            evolved.pop("default", None)
            if draw(st.booleans()):
                evolved["default"] = draw(st.sampled_from(symbols))
            return evolved
        if isinstance(schema, dict) and schema["type"] == "array":
            return {**schema, "items": draw(_evolved(schema["items"], f"{path}_i", depth + 1))}
        if isinstance(schema, dict) and schema["type"] == "map":
            return {**schema, "values": draw(_evolved(schema["values"], f"{path}_v", depth + 1))}
        return schema
    if choice == "promote" and isinstance(schema, str):
        ladder = {"int": ["long", "float", "double"], "long": ["float", "double", "int"], "float": ["double", "long"]}
        ladder |= {"double": ["float"], "string": ["bytes"], "bytes": ["string"]}
        return draw(st.sampled_from(ladder.get(schema, PRIMITIVE_TYPES)))
    if choice == "wrap":
        if isinstance(schema, list):
            return next(b for b in schema if b != "null")  # ["null", T] -> T
        return schema if schema == "null" else ["null", schema]
    return draw(_types(path, depth))


@st.composite
def _pairs(draw: st.DrawFn) -> tuple[Any, Any]:
    old = draw(_records("R"))
    return old, draw(_evolved(old, "R", 0))


# Each entry: (id, reader, writer, our verdict, avro's verdict, why they differ).
KNOWN_DISAGREEMENTS: list[tuple[str, Any, Any, bool, bool, str]] = [
    (
        "reader alias not namespace-qualified by avro",
        {"type": "record", "name": "New", "namespace": "ns", "aliases": ["Old"], "fields": []},
        {"type": "record", "name": "Old", "namespace": "ns", "fields": []},
        True,
        False,
        "The spec resolves a named type's aliases against its namespace, so alias `Old` of `ns.New` is "
        "`ns.Old` and matches the writer (Avro Java does this); avro's Python checker compares the "
        "writer's full name `ns.Old` with the raw alias `Old` and reports NAME_MISMATCH.",
    ),
]


def _verdicts(reader: Any, writer: Any) -> tuple[bool, bool]:
    return can_read(reader, writer), avro_can_read(reader, writer)


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(_pairs())
def test_both_checkers_agree_on_generated_pairs(pair: tuple[Any, Any]) -> None:
    old, new = pair
    for reader, writer in ((new, old), (old, new)):
        ours, theirs = _verdicts(reader, writer)
        assert ours == theirs, f"ours={ours} avro={theirs}\nreader={json.dumps(reader)}\nwriter={json.dumps(writer)}"


@pytest.mark.parametrize(
    ("reader", "writer", "ours", "theirs"),
    [pytest.param(r, w, o, t, id=i) for i, r, w, o, t, _ in KNOWN_DISAGREEMENTS],
)
def test_known_disagreements_still_hold(reader: Any, writer: Any, ours: bool, theirs: bool) -> None:
    assert _verdicts(reader, writer) == (ours, theirs)


def test_the_generator_reaches_both_verdicts() -> None:
    """A cross-check that only ever saw compatible (or incompatible) pairs would prove nothing."""
    seen: set[bool] = set()

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_pairs())
    def collect(pair: tuple[Any, Any]) -> None:
        seen.add(can_read(pair[1], pair[0]))

    collect()
    assert seen == {True, False}
