"""Avro schema parsing: the text (or parsed JSON) of a schema, checked and turned into a small model
(:mod:`registry.schema_registry.avro_model`).

It accepts and refuses what Apache Avro 1.12.1 Java's ``Schema.Parser`` does, which is what Confluent's registry
runs: names, unions without duplicates, defaults of their field's type, orders, sizes, repeated definitions and
forward references. Named references become the same Python object, so recursive types are graphs and names are
compared once, at parse time. :mod:`registry.schema_registry.avro_compat` resolves two parsed schemas against
each other.

Everything here is pure: schemas come in as JSON text or parsed JSON (a ``str`` is JSON text, or else a bare
type name such as ``int``); a schema that is not valid raises :class:`InvalidSchemaError` in Avro Java's words.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from registry.core import bounded_json
from registry.core.errors import SchemaError
from registry.schema_registry.avro_model import (
    _NO_DEFAULT,
    _Array,
    _Enum,
    _Field,
    _Fixed,
    _Forward,
    _Map,
    _Named,
    _Node,
    _Primitive,
    _Record,
    _Union,
    _union_name,
    valid_default,
)
from registry.schema_registry.canonical import type_text
from registry.schema_registry.jackson import dumps, java_double

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


class InvalidSchemaError(SchemaError):
    """The text is not a valid Avro schema."""


_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

_ORDERS = frozenset({"ASCENDING", "DESCENDING", "IGNORE"})
MAX_FIXED_SIZE = 2**31 - 9
"""Avro Java's largest fixed size (``SystemLimitException.MAX_ARRAY_VM_LIMIT``, 2147483639)."""


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


def _fullname(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _qualified(name: str, namespace: str) -> str:
    """Avro Java's ``Name(name, namespace).full``: a dotted name carries its own namespace (``.A`` is A)."""
    if "." in name:
        namespace, name = name.rsplit(".", 1)
    return f"{namespace}.{name}" if namespace else name


def _short(fullname: str) -> str:
    return fullname.rsplit(".", 1)[-1]


class _Parser:
    """Turns parsed JSON into the model above; one instance per schema (names are per schema).

    It accepts and refuses what Apache Avro Java's ``Schema.Parser`` (1.12) does, which is what Confluent's
    registry runs: names checked, unions without duplicates or nested unions, orders and sizes checked,
    defaults checked against their type when ``validate_defaults`` (Confluent parses a schema being
    registered so). Logical types are not checked: Avro Java ignores one it finds invalid. Without
    ``validate_names`` no name, namespace, symbol or alias is checked (Avro's ``NameValidator.NO_VALIDATION``,
    with which Confluent parses a schema it already holds).
    """

    def __init__(self, *, validate_defaults: bool = True, validate_names: bool = True) -> None:
        self._names: dict[str, _Named] = {}
        self._raw: dict[str, tuple[dict[str, Any], str]] = {}  # full name -> (its JSON, enclosing namespace)
        self._forwards: list[_Forward] = []
        self._records: list[_Record] = []
        self._validate_defaults = validate_defaults
        self._validate_names = validate_names

    def _check_name(self, name: object) -> None:
        """Avro Java's name check (when names are validated)."""
        error = java_name_error(name) if self._validate_names else None
        if error is not None:
            raise InvalidSchemaError(error)

    def parse(self, node: Any, namespace: str) -> _Node:
        if isinstance(node, str):
            return self._reference(node, namespace)
        if isinstance(node, list):
            return self._union(node, namespace)
        if not isinstance(node, dict):
            raise InvalidSchemaError(f"Schema not yet supported: {dumps(node)}")
        kind = node.get("type")
        if not isinstance(kind, str):
            raise InvalidSchemaError(f"No type: {dumps(node)}")
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
            return _Array(self.parse(_require(node, "items", "Array has no items type"), namespace))
        if kind == "map":
            return _Map(self.parse(_require(node, "values", "Map has no values type"), namespace))
        return self._reference(kind, namespace)  # {"type": "some.Named"}

    def _union(self, node: list[Any], namespace: str) -> _Union:
        branches = tuple(self.parse(branch, namespace) for branch in node)
        seen: set[str] = set()
        for branch in branches:
            if isinstance(branch, _Union):
                raise InvalidSchemaError(f"Nested union: {type_text(node, namespace)}")
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
                        raise InvalidSchemaError(_invalid_default(f.name, f.default, f.written, f.namespace))
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

    def _check_repeated(self, node: dict[str, Any], fullname: str) -> None:
        """What Avro Java checks on a repeated definition that equality does not: aliases, the enum default."""
        for alias in _aliases(node):
            self._check_name(_short(alias))
        for f in node.get("fields") or ():
            if isinstance(f, dict):
                _aliases(f)
        default = node.get("default")
        if node.get("type") == "enum" and isinstance(default, str) and default not in (node.get("symbols") or ()):
            raise InvalidSchemaError(_enum_default_error(default, node.get("symbols") or ()))

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
            raise InvalidSchemaError(f"No name in schema: {dumps(node)}")
        if "." in name:
            namespace, name = name.rsplit(".", 1)  # ".R" is R in the null namespace
        else:
            declared = node.get("namespace")  # not a string: ignored, as Avro Java ignores it
            namespace = declared if isinstance(declared, str) else enclosing
        fullname = _fullname(name, namespace)
        for i, part in enumerate(parts := fullname.split(".")):
            error = java_name_error(part) if self._validate_names else None
            if error is not None:
                what = "Name" if i == len(parts) - 1 else "Namespace part"
                raise InvalidSchemaError(f'{what} "{part}" is invalid: {error}')
        if fullname in PRIMITIVES:
            raise InvalidSchemaError(f"Schemas may not be named after primitives: {fullname}")
        if fullname in self._names:
            raise InvalidSchemaError(f"Can't redefine: {fullname}")
        self._raw[fullname] = (node, enclosing)
        aliases = _aliases(node)
        for alias in aliases:  # Avro Java checks an alias's last part only
            self._check_name(_short(alias))
        return fullname, namespace, frozenset(_qualified(a, namespace) for a in aliases)

    def _record(self, node: dict[str, Any], enclosing: str) -> _Record:
        fullname, namespace, aliases = self._declare(node, enclosing)
        record = _Record(fullname, aliases)
        self._names[fullname] = record  # before the fields: they may refer back to the record
        self._records.append(record)
        fields = node.get("fields")
        if not isinstance(fields, list):
            raise InvalidSchemaError(f"Record has no fields: {dumps(node)}")
        seen: set[str] = set()
        for raw in fields:
            name = raw.get("name") if isinstance(raw, dict) else None
            if not isinstance(name, str):
                raise InvalidSchemaError(f"No field name: {dumps(raw)}")
            self._check_name(name)
            if name in seen:
                raise InvalidSchemaError(f"Duplicate field {name} in record {fullname}")
            seen.add(name)
            field_aliases = _aliases(raw)
            raw_type = _require(raw, "type", "No field type")
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
                raise InvalidSchemaError(_invalid_default(name, default, raw_type, namespace))
            record.fields.append(
                _Field(name, field_aliases, field_type, "default" in raw, default, raw_type, namespace)
            )
        record.complete = True
        return record

    def _enum(self, node: dict[str, Any], enclosing: str) -> _Enum:
        fullname, _, aliases = self._declare(node, enclosing)
        symbols = node.get("symbols")
        if not isinstance(symbols, list):
            raise InvalidSchemaError(f"Enum has no symbols: {dumps(node)}")
        for symbol in symbols:
            self._check_name(symbol)
        symbols = [s if isinstance(s, str) else None for s in symbols]  # Java's textValue(), without name checks
        seen: set[str | None] = set()
        for symbol in symbols:  # the first symbol met again (one pass: a long list was quadratic)
            if symbol in seen:
                raise InvalidSchemaError(f"Duplicate enum symbol: {_java_string(symbol)}")
            seen.add(symbol)
        default = node.get("default")
        default = default if isinstance(default, str) else None  # Avro Java reads a string default only
        if default is not None and default not in symbols:
            raise InvalidSchemaError(_enum_default_error(default, symbols))
        enum = _Enum(fullname, aliases, tuple(symbols), default)
        self._names[fullname] = enum
        return enum

    def _fixed(self, node: dict[str, Any], enclosing: str) -> _Fixed:
        fullname, _, aliases = self._declare(node, enclosing)
        size = node.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_FIXED_SIZE:
            raise InvalidSchemaError(f"Invalid or no size: {dumps(node)}")
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


def _aliases(node: dict[str, Any]) -> tuple[str, ...]:
    if "aliases" not in node:
        return ()
    aliases = node["aliases"]
    if not isinstance(aliases, list):
        raise InvalidSchemaError(f"aliases not an array: {dumps(node)}")  # Avro Java's words
    for alias in aliases:
        if not isinstance(alias, str):
            raise InvalidSchemaError(f"alias not a string: {dumps(alias)}")
    return tuple(aliases)


def _enum_default_error(default: str, symbols: Any) -> str:
    """Avro Java's message for an enum default that is not a symbol; the symbols as Java prints a list."""
    return f"The Enum Default: {default} is not in the enum symbol set: [{', '.join(map(_java_string, symbols))}]"


def _java_string(value: object) -> str:
    """``String.valueOf`` of a symbol as Java holds it: the text, or ``null``."""
    return "null" if value is None else str(value)


def _invalid_default(name: str, default: Any, written: Any, namespace: str) -> str:
    """Avro Java's message for a default that is not of its field's type, the default and the type in Java's
    compact JSON: ``Invalid default for field a: "x" not a "int"``."""
    return f"Invalid default for field {name}: {dumps(default)} not a {type_text(written, namespace)}"


def _require(node: dict[str, Any], key: str, message: str) -> Any:
    """``node[key]``, else Avro Java's ``message`` with ``node`` in its compact JSON (``No field type: {"name":"a"}``)."""
    if key not in node:
        raise InvalidSchemaError(f"{message}: {dumps(node)}")
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


def _load(schema: object, *, validate_defaults: bool = False, validate_names: bool = True) -> _Node:
    """The model of a schema; defaults are checked only with ``validate_defaults`` (Confluent checks them
    on a schema being registered, not on the versions it compares it with), names only with ``validate_names``."""
    parser = _Parser(validate_defaults=validate_defaults, validate_names=validate_names)
    if isinstance(schema, WithReferences):
        for referenced in schema.references:
            parser.parse_schema(_json(referenced))
        schema = schema.schema
    return parser.parse_schema(_json(schema))


def validate(schema: object, *, as_new: bool = True) -> None:
    """Raise :class:`InvalidSchemaError` if ``schema`` (JSON text, parsed JSON or :class:`WithReferences`)
    is not one Avro Java's ``Schema.Parser`` accepts with its names and defaults checked; with ``as_new`` False
    as Confluent parses a schema it already holds (``validateAsNew`` false: neither names nor defaults checked)."""
    _load(schema, validate_defaults=as_new, validate_names=as_new)
