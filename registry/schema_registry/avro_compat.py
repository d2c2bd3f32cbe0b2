"""Avro schema resolution: can a reader schema read data written with a writer schema?

The registry refuses a schema that would strand a consumer or a producer *before* it reaches a topic,
so the rules here follow the "Schema Resolution" section of the Avro specification rather than any
one library: primitives with the spec's promotions, records matched field by field (by name or by a
reader field's aliases), enums, arrays, maps, fixed, unions, and named types matched by unqualified
name or by a reader alias. Logical types are ignored, as the spec's resolution rules do.

Everything here is pure: schemas come in as JSON text or parsed JSON (a ``str`` is JSON text, or
else a bare type name such as ``int``), answers go out as lists of
human-readable messages (empty means compatible) that name the field path, for example
``field `amount`: writer type string cannot be read as double``. Paths use ``a.b`` for nested record
fields, ``tags[]`` for array items and ``attrs{}`` for map values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from registry.core import bounded_json
from registry.core.errors import SchemaError

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})

# writer type -> reader types that can read it (besides itself), from the spec.
_PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


class InvalidSchemaError(SchemaError):
    """The text is not a valid Avro schema."""


class InvalidCompatibilityLevelError(SchemaError):
    """A compatibility level that is not one of :class:`CompatibilityLevel`."""


class CompatibilityLevel(StrEnum):
    """Confluent's compatibility levels: which direction(s) must resolve, against which versions."""

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @property
    def transitive(self) -> bool:
        """Checked against every existing version, not only the latest."""
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        """The new schema must read data written with the existing one(s)."""
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        """The existing schema(s) must read data written with the new one."""
        return self.value.startswith(("FORWARD", "FULL"))


def parse_level(value: object) -> CompatibilityLevel:
    """A level from its name, case-insensitively (clients send ``backward`` as often as ``BACKWARD``)."""
    if isinstance(value, str):
        try:
            return CompatibilityLevel(value.strip().upper())
        except ValueError:
            pass
    valid = ", ".join(level.value for level in CompatibilityLevel)
    raise InvalidCompatibilityLevelError(f"Invalid compatibility level {value!r}; valid values are {valid}")


# --------------------------------------------------------------------------------------------------
# A small resolved model of a schema: named references become the same Python object, so recursive
# types are graphs and names are compared once, at parse time.
# --------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Primitive:
    name: str


@dataclass(eq=False)
class _Field:
    name: str
    aliases: tuple[str, ...]
    type: _Node
    has_default: bool


@dataclass(eq=False)
class _Record:
    fullname: str
    aliases: frozenset[str]
    fields: list[_Field] = field(default_factory=list)


@dataclass(eq=False)
class _Enum:
    fullname: str
    aliases: frozenset[str]
    symbols: tuple[str, ...]
    default: str | None


@dataclass(eq=False)
class _Fixed:
    fullname: str
    aliases: frozenset[str]
    size: int


@dataclass(eq=False)
class _Array:
    items: _Node


@dataclass(eq=False)
class _Map:
    values: _Node


@dataclass(eq=False)
class _Union:
    branches: tuple[_Node, ...]


_Named = _Record | _Enum | _Fixed
_Node = _Primitive | _Record | _Enum | _Fixed | _Array | _Map | _Union


_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _fullname(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _short(fullname: str) -> str:
    return fullname.rsplit(".", 1)[-1]


class _Parser:
    """Turns parsed JSON into the model above; one instance per schema (names are per schema)."""

    def __init__(self) -> None:
        self._names: dict[str, _Named] = {}

    def parse(self, node: Any, namespace: str) -> _Node:
        if isinstance(node, str):
            return self._reference(node, namespace)
        if isinstance(node, list):
            return _Union(tuple(self.parse(branch, namespace) for branch in node))
        if not isinstance(node, dict) or "type" not in node:
            raise InvalidSchemaError(f"not an Avro schema: {json.dumps(node)[:80]}")
        kind = node["type"]
        if kind in ("record", "error"):
            return self._record(node, namespace)
        if kind == "enum":
            return self._enum(node, namespace)
        if kind == "fixed":
            return self._fixed(node, namespace)
        if kind == "array":
            return _Array(self.parse(_require(node, "items"), namespace))
        if kind == "map":
            return _Map(self.parse(_require(node, "values"), namespace))
        # {"type": "string", "logicalType": ...}, {"type": "some.Named"} or {"type": {...}}
        return self.parse(kind, namespace)

    def _reference(self, name: str, namespace: str) -> _Node:
        found = self._defined(name, namespace)
        if found is None:
            raise InvalidSchemaError(f"unknown type name {name!r}")
        return found

    def _defined(self, name: str, namespace: str) -> _Node | None:
        if name in PRIMITIVES:
            return _Primitive(name)
        for candidate in (_fullname(name, namespace), name):
            if candidate in self._names:
                return self._names[candidate]
        return None

    def _declare(self, node: dict[str, Any], enclosing: str) -> tuple[str, str, frozenset[str]]:
        name = _require(node, "name")
        if not isinstance(name, str) or not name:
            raise InvalidSchemaError(f"a named type needs a non-empty string name, got {name!r}")
        if "." in name:
            namespace = name.rsplit(".", 1)[0]
        else:
            declared = node.get("namespace")
            namespace = enclosing if declared is None else str(declared)
        fullname = _fullname(name, namespace)
        if fullname in self._names or fullname in PRIMITIVES:
            raise InvalidSchemaError(f"type name {fullname!r} is defined twice")
        aliases = node.get("aliases") or []
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise InvalidSchemaError(f"aliases of {fullname!r} must be a list of strings")
        return fullname, namespace, frozenset(_fullname(a, namespace) for a in aliases)

    def _record(self, node: dict[str, Any], enclosing: str) -> _Record:
        fullname, namespace, aliases = self._declare(node, enclosing)
        record = _Record(fullname, aliases)
        self._names[fullname] = record  # before the fields: they may refer back to the record
        fields = _require(node, "fields")
        if not isinstance(fields, list):
            raise InvalidSchemaError(f"fields of record {fullname!r} must be a list")
        seen: set[str] = set()
        for raw in fields:
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise InvalidSchemaError(f"record {fullname!r} has a field without a string name")
            name = raw["name"]
            if name in seen:
                raise InvalidSchemaError(f"record {fullname!r} has field {name!r} twice")
            seen.add(name)
            aliases_raw = raw.get("aliases") or []
            if not isinstance(aliases_raw, list) or not all(isinstance(a, str) for a in aliases_raw):
                raise InvalidSchemaError(f"aliases of field {name!r} must be a list of strings")
            raw_type = _require(raw, "type", f"field {name!r}")
            if isinstance(raw_type, str) and self._defined(raw_type, namespace) is None:
                # Avro's own words (Schema.parse, a field whose type is a name it does not know)
                raise InvalidSchemaError(
                    f"{json.dumps(raw_type, ensure_ascii=False)} is not a defined name. The type of the "
                    f'"{name}" field must be a defined name or a {{"type": ...}} expression.'
                )
            field_type = self.parse(raw_type, namespace)
            record.fields.append(_Field(name, tuple(aliases_raw), field_type, "default" in raw))
        return record

    def _enum(self, node: dict[str, Any], enclosing: str) -> _Enum:
        fullname, _, aliases = self._declare(node, enclosing)
        symbols = _require(node, "symbols")
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise InvalidSchemaError(f"symbols of enum {fullname!r} must be a list of strings")
        default = node.get("default")
        if default is not None and default not in symbols:
            raise InvalidSchemaError(f"default {default!r} of enum {fullname!r} is not one of its symbols")
        enum = _Enum(fullname, aliases, tuple(symbols), default)
        self._names[fullname] = enum
        return enum

    def _fixed(self, node: dict[str, Any], enclosing: str) -> _Fixed:
        fullname, _, aliases = self._declare(node, enclosing)
        size = _require(node, "size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidSchemaError(f"size of fixed {fullname!r} must be a non-negative integer")
        fixed = _Fixed(fullname, aliases, size)
        self._names[fullname] = fixed
        return fixed


def _require(node: dict[str, Any], key: str, where: str = "") -> Any:
    if key not in node:
        owner = where or f"{node.get('type')!r} schema"
        raise InvalidSchemaError(f"{owner} has no {key!r}")
    return node[key]


@dataclass(frozen=True)
class WithReferences:
    """A schema whose named types may be declared in the schemas it references (Confluent's ``references``).

    ``references`` are the referenced schemas' texts (or parsed JSON), every transitive one included,
    each after the ones it depends on: they are parsed first, in that order, into one set of names,
    as Confluent's Avro provider does.
    """

    schema: object
    references: tuple[object, ...] = ()


def _json(schema: object) -> object:
    if isinstance(schema, str) and not _BARE_NAME.fullmatch(schema):
        try:
            return bounded_json.loads(schema)
        except ValueError as exc:
            raise InvalidSchemaError(f"not JSON: {exc}") from exc
    return schema


def _load(schema: object) -> _Node:
    parser = _Parser()
    if isinstance(schema, WithReferences):
        for referenced in schema.references:
            parser.parse(_json(referenced), "")
        schema = schema.schema
    return parser.parse(_json(schema), "")


def validate(schema: object) -> None:
    """Raise :class:`InvalidSchemaError` if ``schema`` (JSON text, parsed JSON or :class:`WithReferences`)
    cannot be resolved."""
    _load(schema)


# --------------------------------------------------------------------------------------------------
# Resolution
# --------------------------------------------------------------------------------------------------


def _describe(node: _Node) -> str:
    if isinstance(node, _Primitive):
        return node.name
    if isinstance(node, _Record):
        return f"record `{node.fullname}`"
    if isinstance(node, _Enum):
        return f"enum `{node.fullname}`"
    if isinstance(node, _Fixed):
        return f"fixed `{node.fullname}`"
    if isinstance(node, _Array):
        return f"array<{_describe(node.items)}>"
    if isinstance(node, _Map):
        return f"map<{_describe(node.values)}>"
    return "union [" + ", ".join(_describe(b) for b in node.branches) + "]"


def _where(path: str) -> str:
    return f"field `{path}`" if path else "top level"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _names_match(writer: _Named, reader: _Named) -> bool:
    return _short(writer.fullname) == _short(reader.fullname) or writer.fullname in reader.aliases


class _Resolver:
    """One reader/writer comparison. Tracks the named pairs being compared, so recursion terminates."""

    def __init__(self) -> None:
        self._in_progress: set[tuple[int, int]] = set()

    def problems(self, writer: _Node, reader: _Node, path: str) -> list[str]:
        if isinstance(writer, _Union):
            return self._from_union(writer, reader, path)
        if isinstance(reader, _Union):
            if any(not self.problems(writer, branch, path) for branch in reader.branches):
                return []
            return [
                f"{_where(path)}: writer type {_describe(writer)} cannot be read as any branch of reader {_describe(reader)}"
            ]
        if isinstance(writer, _Primitive) and isinstance(reader, _Primitive):
            if writer.name == reader.name or reader.name in _PROMOTIONS.get(writer.name, frozenset()):
                return []
        elif isinstance(writer, _Array) and isinstance(reader, _Array):
            return self.problems(writer.items, reader.items, f"{path}[]")
        elif isinstance(writer, _Map) and isinstance(reader, _Map):
            return self.problems(writer.values, reader.values, f"{path}{{}}")
        elif isinstance(writer, (_Record, _Enum, _Fixed)) and isinstance(reader, type(writer)):
            return self._named(writer, reader, path)
        return [f"{_where(path)}: writer type {_describe(writer)} cannot be read as {_describe(reader)}"]

    def _from_union(self, writer: _Union, reader: _Node, path: str) -> list[str]:
        if not isinstance(reader, _Union):
            # Every branch the writer may have used must resolve against the single reader type.
            return [message for branch in writer.branches for message in self.problems(branch, reader, path)]
        out = []
        for branch in writer.branches:
            if all(self.problems(branch, candidate, path) for candidate in reader.branches):
                out.append(
                    f"{_where(path)}: writer union branch {_describe(branch)} cannot be read by any branch "
                    f"of reader {_describe(reader)}"
                )
        return out

    def _named(self, writer: _Named, reader: _Named, path: str) -> list[str]:
        if not _names_match(writer, reader):
            kind = type(writer).__name__.lstrip("_").lower()
            return [
                f"{_where(path)}: writer {kind} `{writer.fullname}` cannot be read as {kind} `{reader.fullname}` "
                "(names differ and no reader alias matches)"
            ]
        key = (id(writer), id(reader))
        if key in self._in_progress:
            return []  # a recursive reference: assume it resolves; any mismatch shows up one level up
        self._in_progress.add(key)
        try:
            if isinstance(writer, _Record) and isinstance(reader, _Record):
                return self._record(writer, reader, path)
            if isinstance(writer, _Enum) and isinstance(reader, _Enum):
                missing = [s for s in writer.symbols if s not in reader.symbols]
                if missing and reader.default is None:
                    return [
                        f"{_where(path)}: writer enum symbol(s) {', '.join(missing)} not in reader enum "
                        f"`{reader.fullname}`, which has no default"
                    ]
                return []
            if isinstance(writer, _Fixed) and isinstance(reader, _Fixed) and writer.size != reader.size:
                return [
                    f"{_where(path)}: writer fixed `{writer.fullname}` has size {writer.size}, "
                    f"reader expects size {reader.size}"
                ]
            return []
        finally:
            self._in_progress.discard(key)

    def _record(self, writer: _Record, reader: _Record, path: str) -> list[str]:
        by_name = {f.name: f for f in writer.fields}
        out: list[str] = []
        for reader_field in reader.fields:
            field_path = _join(path, reader_field.name)
            match = next(
                (by_name[n] for n in (reader_field.name, *reader_field.aliases) if n in by_name),
                None,
            )
            if match is None:
                if not reader_field.has_default:
                    out.append(f"field `{field_path}`: not in the writer schema and has no default")
                continue
            out.extend(self.problems(match.type, reader_field.type, field_path))
        return out  # writer fields the reader does not know are skipped, as the spec says


def incompatibilities(reader: object, writer: object) -> list[str]:
    """Why ``reader`` cannot read data written with ``writer`` (JSON text or parsed JSON); empty if it can."""
    return _Resolver().problems(_load(writer), _load(reader), "")


def can_read(reader: object, writer: object) -> bool:
    """Whether ``reader`` can read data written with ``writer``."""
    return not incompatibilities(reader, writer)


def check(
    mode: str,
    new_schema: object,
    existing_versions_oldest_first: Sequence[object],
    *,
    labels: Sequence[str] | None = None,
) -> list[str]:
    """Why ``new_schema`` may not follow ``existing_versions_oldest_first`` under ``mode``; empty if it may.

    BACKWARD: the new schema reads data of the latest existing one; FORWARD: the latest reads the new;
    FULL: both. The ``_TRANSITIVE`` variants check every existing version, not only the latest. NONE
    accepts anything. Each message starts with the direction and the existing schema it concerns,
    named by ``labels`` (parallel to the versions; ``existing schema #n`` by default).

    Raises:
        InvalidCompatibilityLevelError: ``mode`` is not a level.
        InvalidSchemaError: a schema cannot be parsed.
    """
    level = parse_level(mode)
    names = (
        list(labels)
        if labels is not None
        else [f"existing schema #{i + 1}" for i in range(len(existing_versions_oldest_first))]
    )
    pairs = list(zip(names, existing_versions_oldest_first, strict=True))
    if level is CompatibilityLevel.NONE or not pairs:
        return []
    new = _load(new_schema)
    targets = pairs if level.transitive else pairs[-1:]
    out: list[str] = []
    for label, old_schema in targets:
        old = _load(old_schema)
        if level.backward:
            out.extend(f"BACKWARD check against {label}: {m}" for m in _Resolver().problems(old, new, ""))
        if level.forward:
            out.extend(f"FORWARD check against {label}: {m}" for m in _Resolver().problems(new, old, ""))
    return out
