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


_NO_DEFAULT: Any = object()  # a field without "default" (a JSON null default is None)


@dataclass(eq=False)
class _Field:
    name: str
    aliases: tuple[str, ...]
    type: _Node
    has_default: bool
    default: Any = _NO_DEFAULT


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


_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

_ORDERS = frozenset({"ASCENDING", "DESCENDING", "IGNORE"})
_INT_RANGE = (-(2**31), 2**31 - 1)
_LONG_RANGE = (-(2**63), 2**63 - 1)
MAX_FIXED_SIZE = 2**31 - 9
"""Avro Java's largest fixed size (``SystemLimitException.MAX_ARRAY_VM_LIMIT``, 2147483639)."""

# What Java's Double.parseDouble reads (FloatingDecimal): optional sign, NaN, Infinity, a decimal with an
# optional exponent, or a hexadecimal float (exponent required), each with an optional f/F/d/D suffix.
_JAVA_DOUBLE = re.compile(
    r"[+-]?(NaN|Infinity|((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|0[xX]([0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)"
    r"[pP][+-]?\d+)[fFdD]?)"
)


def java_name_error(name: object) -> str | None:
    """What Avro Java's name check (``NameValidator.UTF_VALIDATOR``, the ``Schema.Parser`` default) says
    about ``name``, or None if it is valid: a letter or ``_``, then letters, digits or ``_`` (Unicode
    letters and digits, one UTF-16 unit each)."""
    if not isinstance(name, str):
        return "Null name"
    if not name:
        return "Empty name"
    if not (name[0] == "_" or (name[0].isalpha() and ord(name[0]) <= 0xFFFF)):
        return f"Illegal initial character: {name}"
    if any(not (c == "_" or ((c.isalpha() or c.isdecimal()) and ord(c) <= 0xFFFF)) for c in name[1:]):
        return f"Illegal character in: {name}"
    return None


def java_double(text: str) -> float | None:
    """``Double.parseDouble(text)`` as Avro Java applies it to a float or double field's string default,
    None where Java throws NumberFormatException."""
    stripped = text.strip(
        " \t\n\r\x0b\x0c\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f"
    )
    if not _JAVA_DOUBLE.fullmatch(stripped):
        return None
    body = stripped.rstrip("fFdD") if not stripped.endswith(("NaN", "Infinity")) else stripped
    sign = -1.0 if body.startswith("-") else 1.0
    unsigned = body.lstrip("+-")
    if unsigned == "NaN":
        return float("nan")
    if unsigned == "Infinity":
        return sign * float("inf")
    if unsigned[:2] in ("0x", "0X"):
        mantissa, exponent = unsigned[2:].lower().split("p")
        whole, _, frac = mantissa.partition(".")
        value = int(whole or "0", 16) + (int(frac, 16) / 16 ** len(frac) if frac else 0.0)
        return sign * value * 2.0 ** int(exponent)
    return sign * float(unsigned)


def _fullname(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _qualified(name: str, namespace: str) -> str:
    """Avro Java's ``Name(name, namespace).full``: a dotted name carries its own namespace (``.A`` is A)."""
    if "." in name:
        namespace, name = name.rsplit(".", 1)
    return f"{namespace}.{name}" if namespace else name


def _short(fullname: str) -> str:
    return fullname.rsplit(".", 1)[-1]


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


class _Parser:
    """Turns parsed JSON into the model above; one instance per schema (names are per schema).

    It accepts and refuses what Apache Avro Java's ``Schema.Parser`` (1.12) does, which is what Confluent's
    registry runs: names checked, unions without duplicates or nested unions, orders and sizes checked,
    defaults checked against their type when ``validate_defaults`` (Confluent parses a schema being
    registered so). Logical types are not checked: Avro Java ignores one it finds invalid.
    """

    def __init__(self, *, validate_defaults: bool = True) -> None:
        self._names: dict[str, _Named] = {}
        self._raw: dict[str, tuple[dict[str, Any], str]] = {}  # full name -> (its JSON, enclosing namespace)
        self._forwards: list[_Forward] = []
        self._records: list[_Record] = []
        self._validate_defaults = validate_defaults

    def parse(self, node: Any, namespace: str) -> _Node:
        if isinstance(node, str):
            return self._reference(node, namespace)
        if isinstance(node, list):
            return self._union(node, namespace)
        if not isinstance(node, dict):
            raise InvalidSchemaError(f"Schema not yet supported: {json.dumps(node)[:80]}")
        kind = node.get("type")
        if not isinstance(kind, str):
            raise InvalidSchemaError(f"No type: {json.dumps(node)[:80]}")
        if kind in PRIMITIVES:
            return _Primitive(kind)
        if kind in ("record", "error", "enum", "fixed"):
            again = self._defined_again(node, namespace)
            if again is not None:
                return again
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
        return self._reference(kind, namespace)  # {"type": "some.Named"}

    def _union(self, node: list[Any], namespace: str) -> _Union:
        branches = tuple(self.parse(branch, namespace) for branch in node)
        seen: set[str] = set()
        for branch in branches:
            if isinstance(branch, _Union):
                raise InvalidSchemaError(f"Nested union: {json.dumps(node)[:200]}")
            if isinstance(branch, _Forward):
                continue  # told apart once resolved
            name = _union_name(branch)
            if name in seen:
                raise InvalidSchemaError(f"Duplicate in union:{name}")
            seen.add(name)
        return _Union(branches)

    def _reference(self, name: str, namespace: str, field_name: str | None = None) -> _Node:
        found = self._defined(name, namespace)
        if found is None:
            forward = _Forward(_fullname(name, namespace), frozenset(), field_name=field_name, written=name)
            self._forwards.append(forward)
            return forward
        return found

    def parse_schema(self, node: Any) -> _Node:
        """A whole schema (or one of its references): parsed, then its forward references resolved."""
        self._forwards = []
        self._records = []
        root = self.parse(node, "")
        if not self._forwards:
            return root
        resolved = self._resolve(root, set())
        if self._validate_defaults:  # Avro Java checks the defaults again against the resolved types
            for record in self._records:
                for f in record.fields:
                    if f.default is not _NO_DEFAULT and not valid_default(f.type, f.default):
                        raise InvalidSchemaError(f"Invalid default for field {f.name}: not a {_describe(f.type)}")
        return resolved

    def _resolve(self, node: _Node, seen: set[int]) -> _Node:
        if isinstance(node, _Forward):
            found = self._names.get(node.fullname)
            if found is None:
                if node.field_name is not None:  # Avro's own words, as before 1.12
                    raise InvalidSchemaError(
                        f"{json.dumps(node.written, ensure_ascii=False)} is not a "
                        f'defined name. The type of the "{node.field_name}" field must be a defined name or a '
                        '{"type": ...} expression.'
                    )
                # Avro 1.12 says "Undefined schema: <the name qualified where it is used>"
                raise InvalidSchemaError(f"unknown type name {node.written!r}")
            return self._resolve(found, seen)
        if id(node) in seen:
            return node
        seen.add(id(node))
        if isinstance(node, _Record):
            for f in node.fields:
                f.type = self._resolve(f.type, seen)
        elif isinstance(node, _Array):
            node.items = self._resolve(node.items, seen)
        elif isinstance(node, _Map):
            node.values = self._resolve(node.values, seen)
        elif isinstance(node, _Union):
            node.branches = tuple(self._resolve(b, seen) for b in node.branches)
            names = [_union_name(b) for b in node.branches]
            for i, name in enumerate(names):
                if name in names[:i]:
                    raise InvalidSchemaError(f"Duplicate in union:{name}")
        return node

    def _defined(self, name: str, namespace: str) -> _Node | None:
        if name in PRIMITIVES:
            return _Primitive(name)
        for candidate in (_fullname(name, namespace), name):
            if candidate in self._names:
                return self._names[candidate]
        return None

    def _defined_again(self, node: dict[str, Any], enclosing: str) -> _Named | None:
        """The type ``node`` defines if it was defined before in this schema (or its references) and equals
        that definition as Avro Java compares schemas (1.12 accepts such a repetition, ``ParseContext.put``).

        Raises:
            InvalidSchemaError: defined before, differently ("Can't redefine").
        """
        name = node.get("name")
        if not isinstance(name, str):
            return None
        declared = node.get("namespace")
        fullname = _qualified(name, declared if isinstance(declared, str) and "." not in name else enclosing)
        existing = self._names.get(fullname)
        if existing is None:
            return None
        self._check_repeated(node, fullname)
        if not (isinstance(existing, _Record) and not existing.complete) and self._same_definition(
            (node, enclosing), self._raw[fullname]
        ):
            return existing
        raise InvalidSchemaError(f"Can't redefine: {fullname}")

    def _same_definition(self, new: tuple[dict[str, Any], str], old: tuple[dict[str, Any], str]) -> bool:
        """Avro Java's ``Schema.equals`` between two definitions of one name: names, symbols, size, fields
        (name, type, default, order, properties) and properties; docs and aliases do not count. A named type
        inside is compared by name, and an inline one against its own earlier definition."""
        inline: list[tuple[dict[str, Any], str]] = []
        if self._identity(*new, inline, top=True) != self._identity(*old, [], top=True):
            return False
        for node, space in inline:
            name = _qualified(str(node["name"]), _own_namespace(node, space))
            self._check_repeated(node, name)
            earlier = self._raw.get(name)
            if earlier is not None and earlier[0] is not node and not self._same_definition((node, space), earlier):
                return False
        return True

    @staticmethod
    def _check_repeated(node: dict[str, Any], fullname: str) -> None:
        """What Avro Java checks on a repeated definition that equality does not: aliases, the enum default."""
        for alias in _aliases(node, fullname):
            error = java_name_error(_short(alias))
            if error is not None:
                raise InvalidSchemaError(error)
        for f in node.get("fields") or ():
            if isinstance(f, dict):
                _aliases(f, str(f.get("name")))
        default = node.get("default")
        if node.get("type") == "enum" and isinstance(default, str) and default not in (node.get("symbols") or ()):
            raise InvalidSchemaError(f"The Enum Default: {default} is not in the enum symbol set")

    def _identity(self, node: Any, space: str, inline: list[tuple[dict[str, Any], str]], *, top: bool = False) -> Any:
        if isinstance(node, str):
            if node in PRIMITIVES:
                return node
            found = self._defined(node, space)
            return ("named", found.fullname if isinstance(found, _Record | _Enum | _Fixed) else node)
        if isinstance(node, list):
            return ("union", tuple(self._identity(b, space, inline) for b in node))
        if not isinstance(node, dict):
            return ("?", json.dumps(node, sort_keys=True))
        kind = node.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            own = _own_namespace(node, space)
            fullname = _qualified(str(node.get("name")), own)
            if not top:
                inline.append((node, space))
                return ("named", fullname)
            reserved = _ENUM_RESERVED if kind == "enum" else _SCHEMA_RESERVED
            fields = tuple(
                (
                    f.get("name"),
                    self._identity(f.get("type"), own, inline),
                    json.dumps(f.get("default", "<none>"), sort_keys=True),
                    str(f.get("order", "ascending")).upper(),
                    _props(f, _FIELD_RESERVED),
                )
                for f in node.get("fields") or ()
                if isinstance(f, dict)
            )
            return (
                kind == "error",
                kind,
                fullname,
                node.get("symbols"),
                node.get("size"),
                fields,
                _props(node, reserved),
            )
        if kind == "array":
            return ("array", self._identity(node.get("items"), space, inline), _props(node, _SCHEMA_RESERVED))
        if kind == "map":
            return ("map", self._identity(node.get("values"), space, inline), _props(node, _SCHEMA_RESERVED))
        if kind in PRIMITIVES:
            props = _props(node, _SCHEMA_RESERVED)
            return kind if props == "{}" else (kind, props)  # {"type": "int"} is "int"
        return self._identity(kind, space, inline)

    def _declare(self, node: dict[str, Any], enclosing: str) -> tuple[str, str, frozenset[str]]:
        name = node.get("name")
        if not isinstance(name, str):
            raise InvalidSchemaError(f"No name in schema: {json.dumps(node)[:80]}")
        if "." in name:
            namespace, name = name.rsplit(".", 1)  # ".R" is R in the null namespace
        else:
            declared = node.get("namespace")  # not a string: ignored, as Avro Java ignores it
            namespace = declared if isinstance(declared, str) else enclosing
        fullname = _fullname(name, namespace)
        for i, part in enumerate(parts := fullname.split(".")):
            error = java_name_error(part)
            if error is not None:
                what = "Name" if i == len(parts) - 1 else "Namespace part"
                raise InvalidSchemaError(f'{what} "{part}" is invalid: {error}')
        if fullname in PRIMITIVES:
            raise InvalidSchemaError(f"Schemas may not be named after primitives: {fullname}")
        if fullname in self._names:
            raise InvalidSchemaError(f"Can't redefine: {fullname}")
        self._raw[fullname] = (node, enclosing)
        aliases = _aliases(node, fullname)
        for alias in aliases:  # Avro Java checks an alias's last part only
            error = java_name_error(_short(alias))
            if error is not None:
                raise InvalidSchemaError(error)
        return fullname, namespace, frozenset(_qualified(a, namespace) for a in aliases)

    def _record(self, node: dict[str, Any], enclosing: str) -> _Record:
        fullname, namespace, aliases = self._declare(node, enclosing)
        record = _Record(fullname, aliases)
        self._names[fullname] = record  # before the fields: they may refer back to the record
        self._records.append(record)
        fields = node.get("fields")
        if not isinstance(fields, list):
            raise InvalidSchemaError(f"Record has no fields: {json.dumps(node)[:80]}")
        seen: set[str] = set()
        for raw in fields:
            name = raw.get("name") if isinstance(raw, dict) else None
            if not isinstance(name, str):
                raise InvalidSchemaError(f"No field name: {json.dumps(raw)[:80]}")
            error = java_name_error(name)
            if error is not None:
                raise InvalidSchemaError(error)
            if name in seen:
                raise InvalidSchemaError(f"Duplicate field {name} in record {fullname}")
            seen.add(name)
            field_aliases = _aliases(raw, name)
            raw_type = _require(raw, "type", f"field {name!r}")
            if isinstance(raw_type, str):  # a name not defined (yet) is refused in Avro's words if it stays so
                field_type = self._reference(raw_type, namespace, field_name=name)
            else:
                field_type = self.parse(raw_type, namespace)
            if "order" in raw:
                order = raw["order"]
                if not isinstance(order, str) or order.upper() not in _ORDERS:
                    raise InvalidSchemaError(f"field {name!r}: order must be ascending, descending or ignore")
            default = raw.get("default", _NO_DEFAULT)
            if (
                isinstance(default, str)
                and isinstance(field_type, _Primitive)
                and field_type.name in ("float", "double")
            ):
                converted = java_double(default)  # Avro Java reads a string default of a float as a number
                if converted is None:
                    raise InvalidSchemaError(f'NumberFormatException: For input string: "{default}"')
                default = converted
            if self._validate_defaults and default is not _NO_DEFAULT and not valid_default(field_type, default):
                raise InvalidSchemaError(
                    f"Invalid default for field {name}: {json.dumps(raw['default'], ensure_ascii=False)[:80]} "
                    f"not a {_describe(field_type)}"
                )
            record.fields.append(_Field(name, field_aliases, field_type, "default" in raw, default))
        record.complete = True
        return record

    def _enum(self, node: dict[str, Any], enclosing: str) -> _Enum:
        fullname, _, aliases = self._declare(node, enclosing)
        symbols = node.get("symbols")
        if not isinstance(symbols, list):
            raise InvalidSchemaError(f"Enum has no symbols: {json.dumps(node)[:80]}")
        for symbol in symbols:
            error = java_name_error(symbol)
            if error is not None:
                raise InvalidSchemaError(error)
        if len(set(symbols)) != len(symbols):
            duplicate = next(s for i, s in enumerate(symbols) if s in symbols[:i])
            raise InvalidSchemaError(f"Duplicate enum symbol: {duplicate}")
        default = node.get("default")
        default = default if isinstance(default, str) else None  # Avro Java reads a string default only
        if default is not None and default not in symbols:
            raise InvalidSchemaError(f"The Enum Default: {default} is not in the enum symbol set: {symbols}")
        enum = _Enum(fullname, aliases, tuple(symbols), default)
        self._names[fullname] = enum
        return enum

    def _fixed(self, node: dict[str, Any], enclosing: str) -> _Fixed:
        fullname, _, aliases = self._declare(node, enclosing)
        size = node.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_FIXED_SIZE:
            raise InvalidSchemaError(f"Invalid or no size: {json.dumps(node)[:80]}")
        fixed = _Fixed(fullname, aliases, size)
        self._names[fullname] = fixed
        return fixed


_SCHEMA_RESERVED = frozenset(
    {"doc", "fields", "items", "name", "namespace", "size", "symbols", "values", "type", "aliases"}
)
_ENUM_RESERVED = _SCHEMA_RESERVED | {"default"}
_FIELD_RESERVED = frozenset({"default", "doc", "name", "order", "type", "aliases"})


def _props(node: dict[str, Any], reserved: frozenset[str]) -> str:
    return json.dumps({k: v for k, v in node.items() if k not in reserved}, sort_keys=True)


def _own_namespace(node: dict[str, Any], enclosing: str) -> str:
    """The namespace of the named type ``node`` declares: its dotted name's, its own, else the enclosing one."""
    name = node.get("name")
    if isinstance(name, str) and "." in name:
        return name.rsplit(".", 1)[0]
    declared = node.get("namespace")
    return declared if isinstance(declared, str) else enclosing


def _aliases(node: dict[str, Any], owner: str) -> tuple[str, ...]:
    aliases = node.get("aliases")
    if aliases is None:
        return ()
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise InvalidSchemaError(f"aliases of {owner!r} must be a list of strings")
    return tuple(aliases)


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


def _load(schema: object, *, validate_defaults: bool = False) -> _Node:
    """The model of a schema; defaults are checked only with ``validate_defaults`` (Confluent checks them
    on a schema being registered, not on the versions it compares it with)."""
    parser = _Parser(validate_defaults=validate_defaults)
    if isinstance(schema, WithReferences):
        for referenced in schema.references:
            parser.parse_schema(_json(referenced))
        schema = schema.schema
    return parser.parse_schema(_json(schema))


def validate(schema: object) -> None:
    """Raise :class:`InvalidSchemaError` if ``schema`` (JSON text, parsed JSON or :class:`WithReferences`)
    is not one Avro Java's ``Schema.Parser`` accepts with its defaults checked."""
    _load(schema, validate_defaults=True)


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
