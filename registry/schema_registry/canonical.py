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
- Compact JSON (no spaces), non-ASCII characters as they are.

Names declared by referenced schemas (Confluent's ``references``) count as met before: they are written by
name, never inlined, as ``Schema.toString(referencedSchemas, false)`` does. The input has been validated
(``avro_compat.validate`` and fastavro) before it comes here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_RESERVED = frozenset({"doc", "fields", "items", "name", "namespace", "size", "symbols", "values", "type", "aliases"})
_ENUM_RESERVED = _RESERVED | {"default"}
_FIELD_RESERVED = frozenset({"default", "doc", "name", "order", "type", "aliases"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})


def _split(name: str, space: str | None) -> tuple[str, str | None]:
    """(short name, namespace) of a name as Avro's ``Name(name, space)`` makes it ("" is the null namespace)."""
    if "." in name:
        space, name = name.rsplit(".", 1)
    return name, space or None


def _full(short: str, space: str | None) -> str:
    return f"{space}.{short}" if space else short


def _qualified(full: str, space: str | None) -> str:
    """Avro's ``Name.getQualified(space)``: the short name within its own namespace, else the full name."""
    short, own = _split(full, None)
    return short if own is None or own == space else full


class _Writer:
    def __init__(self) -> None:
        self.declared: set[str] = set()  # full names met so far: written by name from then on

    def declare(self, node: Any, space: str | None) -> None:
        """Note the named types of a referenced schema (it is not written)."""
        if isinstance(node, list):
            for member in node:
                self.declare(member, space)
        elif isinstance(node, dict):
            kind = node.get("type")
            if isinstance(kind, str) and kind in _NAMED:
                short, own = _split(str(node["name"]), node.get("namespace", space))
                self.declared.add(_full(short, own))
                for f in node.get("fields", ()) if kind in ("record", "error") else ():
                    self.declare(f.get("type"), own)
            elif kind == "array":
                self.declare(node.get("items"), space)
            elif kind == "map":
                self.declare(node.get("values"), space)
            elif isinstance(kind, dict | list):
                self.declare(kind, space)

    def reference(self, name: str, space: str | None) -> str:
        """A named type met again: resolved as Avro's ``Names.get`` does (the enclosing namespace first)."""
        if "." not in name and space is not None and _full(name, space) in self.declared:
            return name
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
        short, own = _split(str(node["name"]), node.get("namespace", space))
        full = _full(short, own)
        if full in self.declared:
            return _qualified(full, space)
        self.declared.add(full)
        out: dict[str, Any] = {"type": kind, "name": short}
        if own is not None and own != space:
            out["namespace"] = own
        elif own is None and space is not None:
            out["namespace"] = ""
        if "doc" in node:
            out["doc"] = node["doc"]
        if kind in ("record", "error"):
            out["fields"] = [self._field(f, own) for f in node["fields"]]
            out.update(self._props(node, _RESERVED))
        elif kind == "enum":
            out["symbols"] = node["symbols"]
            if node.get("default") is not None:
                out["default"] = node["default"]
            out.update(self._props(node, _ENUM_RESERVED))
        else:
            out["size"] = node["size"]
            out.update(self._props(node, _RESERVED))
        aliases = [_qualified(_full(*_split(str(a), own)), own) for a in node.get("aliases") or ()]
        if aliases:
            out["aliases"] = aliases
        return out

    def _field(self, f: dict[str, Any], space: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"name": f["name"], "type": self.write(f["type"], space)}
        if "doc" in f:
            out["doc"] = f["doc"]
        if "default" in f:
            out["default"] = f["default"]
        order = f.get("order", "ascending")
        if isinstance(order, str) and order.lower() != "ascending":
            out["order"] = order.lower()
        if f.get("aliases"):
            out["aliases"] = list(f["aliases"])
        out.update(self._props(f, _FIELD_RESERVED))
        return out

    @staticmethod
    def _props(node: dict[str, Any], reserved: frozenset[str]) -> dict[str, Any]:
        return {k: v for k, v in node.items() if k not in reserved}


def canonical_text(schema: Any, references: Sequence[Any] = ()) -> str:
    """The text Confluent's registry would keep for ``schema`` (parsed JSON, validated), whose named types
    may be declared in ``references`` (parsed JSON of the referenced schemas, every transitive one)."""
    writer = _Writer()
    for reference in references:
        writer.declare(reference, None)
    return json.dumps(writer.write(schema, None), separators=(",", ":"), ensure_ascii=False)
