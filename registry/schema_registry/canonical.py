"""A schema's text as Confluent's registry stores and returns it: Apache Avro (Java)'s ``Schema.toString()``.

Confluent keeps ``AvroSchema.canonicalString()``, the parsed schema written back by Avro's Java library, and
compares schemas by that text: ``"string"`` and ``{"type": "string"}`` are one schema, so are
``{"name": "a.b.R"}`` and ``{"name": "R", "namespace": "a.b"}``, and a client reading a schema back gets
its keys in Avro's order (``type``, ``name``, ``namespace``, ``doc``, ``fields``, ...), not sorted.

What Avro's writer does, and so what this does (``Schema.toJson`` in Avro 1.11):

- A primitive without properties is its bare name; with properties (``logicalType``, ``precision``, any
  other key) an object of ``type`` and those properties in the order given. Keys Avro reserves for schemas
  (``doc``, ``fields``, ``items``, ``name``, ``namespace``, ``size``, ``symbols``, ``values``, ``type``,
  ``aliases``) are never properties: on a type that does not use them they are dropped.
- A named type (record, error, enum, fixed) is written in full where it is first met, then by name: its short
  name inside its own namespace, its full name elsewhere. ``name`` is always the short name; ``namespace``
  follows only where it differs from the enclosing one (``""`` for the null namespace inside another).
  Aliases are written relative to the type's namespace.
- Records: ``type, name, namespace, doc, fields, <properties>, aliases``; each field ``name, type, doc,
  default, order`` (only when not ``ascending``), ``aliases``, ``<properties>``. Enums: ``type, name, namespace,
  doc, symbols, default, <properties>, aliases``. Fixed: ``type, name, namespace, doc, size, <properties>,
  aliases``. Arrays ``type, items, <properties>``; maps ``type, values, <properties>``; unions a JSON array.
- Compact JSON (no spaces) as Jackson writes it: non-ASCII characters as they are, control characters as
  ``\\u001F``, doubles as Java's ``Double.toString`` (``1.0E10``; NaN as ``"NaN"``), a float's string default
  as the number Avro reads from it.

Names declared by referenced schemas (Confluent's ``references``) count as met before: they are written by
name, never inlined, as ``Schema.toString(referencedSchemas, false)`` does. The input has been validated
(``avro_parse.validate``, which accepts what Avro Java's parser accepts) before it comes here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from registry.schema_registry.jackson import dumps, java_double

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_RESERVED = frozenset({"doc", "fields", "items", "name", "namespace", "size", "symbols", "values", "type", "aliases"})
_ENUM_RESERVED = _RESERVED | {"default"}
_FIELD_RESERVED = frozenset({"default", "doc", "name", "order", "type", "aliases"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})


def _namespace(node: dict[str, Any], space: str | None) -> str | None:
    """The namespace a named type declares (Avro Java ignores one that is not a string), else ``space``."""
    declared = node.get("namespace")
    return declared if isinstance(declared, str) else space


def _split(name: str, space: str | None) -> tuple[str, str | None]:
    """(short name, namespace) of a name as Avro's ``Name(name, space)`` makes it ("" is the null namespace)."""
    if "." in name:
        space, name = name.rsplit(".", 1)
    return name, space or None


def _full(short: str, space: str | None) -> str:
    return f"{space}.{short}" if space else short


# Avro's ``Schema.Type`` names: ``Name.shouldWriteFull`` writes the full name of a type named like one of them.
_TYPE_NAMES = PRIMITIVES | {"record", "enum", "array", "map", "union", "fixed"}


def _qualified(full: str, space: str | None) -> str:
    """Avro's ``Name.getQualified(space)``: the short name within its own namespace (unless it is a type's name,
    as ``a.int`` or ``x.record``), else the full name."""
    short, own = _split(full, None)
    return short if (own is None or own == space) and short not in _TYPE_NAMES else full


def _named_types(node: Any, space: str | None) -> Iterator[tuple[str, dict[str, Any], str | None]]:
    """Each named type defined in ``node`` (full name, its JSON, its own namespace), outermost first."""
    if isinstance(node, list):
        for member in node:
            yield from _named_types(member, space)
    elif isinstance(node, dict):
        kind = node.get("type")
        if isinstance(kind, str) and kind in _NAMED:
            short, own = _split(str(node["name"]), _namespace(node, space))
            yield _full(short, own), node, own
            for f in node.get("fields", ()) if kind in ("record", "error") else ():
                yield from _named_types(f.get("type"), own)
        elif kind == "array":
            yield from _named_types(node.get("items"), space)
        elif kind == "map":
            yield from _named_types(node.get("values"), space)
        elif isinstance(kind, dict | list):
            yield from _named_types(kind, space)


class _Writer:
    def __init__(self) -> None:
        self.declared: set[str] = set()  # full names met so far: written by name from then on
        self.definitions: dict[str, tuple[dict[str, Any], str | None]] = {}  # full name -> (JSON, own namespace)

    def collect(self, node: Any, space: str | None) -> None:
        """Note where each named type of the schema is defined, for a name used before its definition."""
        for full, definition, own in _named_types(node, space):
            self.definitions.setdefault(full, (definition, own))

    def declare(self, node: Any, space: str | None) -> None:
        """Note the named types of a referenced schema (it is not written)."""
        self.declared.update(full for full, _, _ in _named_types(node, space))

    def reference(self, name: str, space: str | None) -> str:
        """A named type met again: resolved as Avro's ``Names.get`` does (the enclosing namespace first)."""
        if "." not in name and space is not None and _full(name, space) in self.declared:
            return _qualified(_full(name, space), space)  # "record" in namespace x is written "x.record", as in full
        if name not in self.declared:
            # not written yet (used before its definition, or defined inside a type written later): written in
            # full here, as Avro writes a type where it first meets it, and by name at its definition
            found = self.definitions.get(_full(name, space) if "." not in name else name) or self.definitions.get(name)
            if found is not None:
                node, own = found
                return self.write({**node, "name": _split(str(node["name"]), own)[0], "namespace": own or ""}, space)
        return _qualified(name, space)

    def write(self, node: Any, space: str | None) -> Any:
        if isinstance(node, str):
            return node if node in PRIMITIVES else self.reference(node, space)
        if isinstance(node, list):
            return [self.write(member, space) for member in node]
        kind = node["type"]
        if isinstance(kind, dict | list):  # {"type": {...}}: the schema it wraps
            return self.write(kind, space)
        if kind in PRIMITIVES:
            props = {k: v for k, v in node.items() if k not in _RESERVED}
            return {"type": kind, **props} if props else kind
        if kind == "array":
            return {"type": "array", "items": self.write(node["items"], space), **self._props(node, _RESERVED)}
        if kind == "map":
            return {"type": "map", "values": self.write(node["values"], space), **self._props(node, _RESERVED)}
        if kind not in _NAMED:  # {"type": "SomeRecord"}: a reference
            return self.reference(kind, space)
        short, own = _split(str(node["name"]), _namespace(node, space))
        full = _full(short, own)
        if full in self.declared:
            return _qualified(full, space)
        self.declared.add(full)
        out: dict[str, Any] = {"type": kind, "name": short}
        if own is not None and own != space:
            out["namespace"] = own
        elif own is None and space is not None:
            out["namespace"] = ""
        if isinstance(node.get("doc"), str):  # Avro Java reads a string doc only
            out["doc"] = node["doc"]
        if kind in ("record", "error"):
            out["fields"] = [self._field(f, own) for f in node["fields"]]
            out.update(self._props(node, _RESERVED))
        elif kind == "enum":
            out["symbols"] = node["symbols"]
            if isinstance(node.get("default"), str):  # Avro Java reads a string default only
                out["default"] = node["default"]
            out.update(self._props(node, _ENUM_RESERVED))
        else:
            out["size"] = node["size"]
            out.update(self._props(node, _RESERVED))
        # a set in Avro Java: "Old" and "n.Old" in namespace n are one alias, written once
        aliases = list(dict.fromkeys(_qualified(_full(*_split(str(a), own)), own) for a in node.get("aliases") or ()))
        if aliases:
            out["aliases"] = aliases
        return out

    def _field(self, f: dict[str, Any], space: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"name": f["name"], "type": self.write(f["type"], space)}
        if isinstance(f.get("doc"), str):
            out["doc"] = f["doc"]
        if "default" in f:
            default, kind = f["default"], out["type"]
            if isinstance(kind, dict):
                kind = kind["type"]
            if isinstance(default, str) and kind in ("float", "double"):
                # Avro Java reads a float's string default as a number (Double.parseDouble) and writes that
                default = java_double(default)
            out["default"] = default
        order = f.get("order", "ascending")
        if isinstance(order, str) and order.lower() != "ascending":
            out["order"] = order.lower()
        if f.get("aliases"):
            out["aliases"] = list(dict.fromkeys(f["aliases"]))
        out.update(self._props(f, _FIELD_RESERVED))
        return out

    @staticmethod
    def _props(node: dict[str, Any], reserved: frozenset[str]) -> dict[str, Any]:
        return {k: v for k, v in node.items() if k not in reserved}


def canonical_text(schema: Any, references: Sequence[Any] = ()) -> str:
    """The text Confluent's registry would keep for ``schema`` (parsed JSON, validated), whose named types
    may be declared in ``references`` (parsed JSON of the referenced schemas, every transitive one)."""
    writer = _Writer()
    writer.collect(schema, None)
    for reference in references:
        writer.declare(reference, None)
    return dumps(writer.write(schema, None))


def resolved_text(schema: Any, references: Sequence[Any] = ()) -> str:
    """Confluent's ``?format=resolved`` of an Avro schema (``AvroSchema.formattedString("resolved")``: Avro Java's
    ``Schema.toString()`` of the schema parsed after its references): as :func:`canonical_text`, but a named type a
    referenced schema declares is written in full where it is first met, then by name, as any other."""
    writer = _Writer()
    writer.collect(schema, None)
    for reference in references:
        writer.collect(reference, None)
    return dumps(writer.write(schema, None))


def type_text(node: Any, space: str) -> str:
    """``node``, a type met inside namespace ``space`` (``""``: none) of a schema being parsed, as Avro Java's
    ``Schema.toString()`` writes that type alone, which its parser's messages quote (``Invalid default for field a:
    "x" not a "int"``): its outermost named types carry their namespace. A named type defined elsewhere in the
    schema is written by name, where Avro writes it in full."""
    writer = _Writer()
    writer.collect(node, space or None)
    return dumps(_with_namespace(writer.write(node, space or None), space or None))


def _with_namespace(written: Any, space: str | None) -> Any:
    """``written`` (relative to ``space``) made relative to the null namespace: the named types reached without
    entering another named type get their namespace written (``space``'s if they omit it; none if ``""``)."""
    if isinstance(written, list):
        return [_with_namespace(member, space) for member in written]
    if not isinstance(written, dict):
        return written
    kind = written.get("type")
    if kind == "array":
        return {**written, "items": _with_namespace(written["items"], space)}
    if kind == "map":
        return {**written, "values": _with_namespace(written["values"], space)}
    if kind not in _NAMED:
        return written
    own = written.get("namespace", space)
    out = {k: v for k, v in written.items() if k != "namespace"}
    if own:
        keys = list(out)
        at = keys.index("name") + 1
        out = {**dict(list(out.items())[:at]), "namespace": own, **dict(list(out.items())[at:])}
    return out
