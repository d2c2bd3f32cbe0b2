"""Avro event schemas (``*.avsc``) and the Confluent wire format they travel in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent


def load_schema(name: str) -> dict[str, Any]:
    """The parsed JSON of ``schemas/<name>.avsc``."""
    path = SCHEMA_DIR / f"{name}.avsc"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def schema_text(name: str) -> str:
    """The canonical (compact) text of a schema, as registered in the schema registry."""
    return json.dumps(load_schema(name), separators=(",", ":"))
