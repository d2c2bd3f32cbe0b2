"""The small resolved model an Avro schema is parsed into, and what is read off it.

Named references are the same Python object, so recursive types are graphs and names are compared once, at
parse time (:mod:`registry.schema_registry.avro_parse` builds the model, :mod:`registry.schema_registry.avro_compat`
resolves two of them against each other). Read off a node: the name a union tells it apart by, whether a value
is a valid default for it (Avro Java's ``Schema.isValidDefault``), and how a message describes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class _Primitive:
    name: str


_NO_DEFAULT: Any = object()  # a field without "default" (a JSON null default is None)


@dataclass(eq=False)
class _Field:
    name: str
    aliases: tuple[str, ...]
    type: _Node
    has_default: bool
    default: Any = _NO_DEFAULT
    written: Any = None  # the type as the schema writes it, and the namespace it is in: for messages
    namespace: str = ""


@dataclass(eq=False)
class _Record:
    fullname: str
    aliases: frozenset[str]
    fields: list[_Field] = field(default_factory=list)
    complete: bool = False  # its fields are parsed (Avro Java names a record only once they are)


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


@dataclass(eq=False)
class _Forward(_Record):
    """A name not defined yet where it is used (Avro 1.12 Java resolves it once the schema is parsed, by its
    name qualified with the namespace where it is used); ``field_name`` names the field whose type it is, if it is
    one. A record without fields until then, as Avro Java's placeholder is."""

    field_name: str | None = None
    written: str = ""  # the name as the schema writes it


_Named = _Record | _Enum | _Fixed
_Node = _Primitive | _Record | _Enum | _Fixed | _Array | _Map | _Union

_INT_RANGE = (-(2**31), 2**31 - 1)
_LONG_RANGE = (-(2**63), 2**63 - 1)


def _union_name(node: _Node) -> str:
    """The name a union tells its branches apart by (Avro Java's ``getFullName``)."""
    if isinstance(node, _Primitive):
        return node.name
    if isinstance(node, _Array):
        return "array"
    if isinstance(node, _Map):
        return "map"
    if isinstance(node, _Union):
        return "union"
    return node.fullname


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def valid_default(node: _Node, value: Any) -> bool:
    """Avro Java's ``Schema.isValidDefault``: whether ``value`` (parsed JSON) is a valid default for ``node``.

    A record whose fields are still being parsed (a record's own name, inside it) is refused as Avro Java refuses
    it; a name not defined yet (:class:`_Forward`) takes any object, as Avro's placeholder does, and the default
    is checked again once the name is resolved.
    """
    if value is _NO_DEFAULT:
        return False
    if isinstance(node, _Primitive):
        if node.name in ("string", "bytes"):
            return isinstance(value, str)
        if node.name in ("int", "long"):
            low, high = _INT_RANGE if node.name == "int" else _LONG_RANGE
            return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        if node.name in ("float", "double"):
            return _is_number(value)
        if node.name == "boolean":
            return isinstance(value, bool)
        return value is None
    if isinstance(node, _Enum | _Fixed):
        return isinstance(value, str)
    if isinstance(node, _Forward):  # Avro Java's placeholder, a record without fields (checked again once resolved)
        return isinstance(value, dict)
    if isinstance(node, _Array):
        return isinstance(value, list) and all(valid_default(node.items, v) for v in value)
    if isinstance(node, _Map):
        return isinstance(value, dict) and all(valid_default(node.values, v) for v in value.values())
    if isinstance(node, _Union):
        return any(valid_default(branch, value) for branch in node.branches)
    if not node.complete or not isinstance(value, dict):
        return False
    return all(valid_default(f.type, value.get(f.name, f.default)) for f in node.fields)


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
