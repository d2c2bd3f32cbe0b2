"""Avro event schemas (``*.avsc``) and the Confluent wire format they travel in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from registry.core.errors import SchemaError

SCHEMA_DIR = Path(__file__).resolve().parent


def load_schema(name: str) -> dict[str, Any]:
    """The parsed JSON of ``schemas/<name>.avsc``."""
    path = SCHEMA_DIR / f"{name}.avsc"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def schema_text(name: str) -> str:
    """The canonical (compact) text of a schema, as registered in the schema registry."""
    return json.dumps(load_schema(name), separators=(",", ":"))


def field_type(field: dict[str, Any]) -> str:
    """The primitive type of an event field: ``"long"``, ``{"type": "long", ...}``, or an optional field's
    ``["null", T]`` (a field added to a schema later: null from producers on the earlier version).

    SchemaError for any other union."""
    avro_type = field["type"]
    if isinstance(avro_type, list):
        branches = [b for b in avro_type if b != "null"]
        if len(branches) != 1 or len(avro_type) != 2:
            raise SchemaError(
                f'event field {field["name"]!r}: union {avro_type!r} is not supported; only ["null", <type>]'
            )
        avro_type = branches[0]
    return str(avro_type["type"] if isinstance(avro_type, dict) else avro_type)
