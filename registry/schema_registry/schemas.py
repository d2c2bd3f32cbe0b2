"""Schemas as the registry holds them: references, registered versions, and the text each is kept under.

A schema is kept under the text Avro's Java library writes for it (``normalize``, ``canonical``), the text
Confluent keeps and returns, so equal schemas get equal texts and one id. A version is read as a request
names it (``version_spec``: a number, ``-1`` or ``latest``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from registry.core import bounded_json
from registry.schema_registry import avro_parse
from registry.schema_registry.avro_parse import WithReferences
from registry.schema_registry.canonical import canonical_text
from registry.schema_registry.errors import InvalidSchemaError, InvalidVersionError
from registry.schema_registry.jackson import java_int

MAX_VERSION = 2**31 - 1
"""The greatest version number (Confluent's versions are Java ints)."""

VersionSpec = int | str
"""A version number, ``-1`` or ``"latest"``; also the text of a number, as it arrives in a URL."""


_JAVA_BLANKS = "".join(map(chr, range(33)))  # what Java's String.trim strips: U+0000 to the space


def version_spec(version: VersionSpec) -> int | None:
    """The version number asked for, or None for the latest one, read as Confluent's ``VersionId`` reads a path's
    version: trimmed as Java trims, ``latest`` in any case, else ``Integer.parseInt`` (an optional sign and
    digits: no ``_`` as in ``1_0``, no other blank around it), and a number of 0 or less but -1 is named as a
    number (``-0`` is ``'0'``)."""
    if isinstance(version, str):
        trimmed = version.strip(_JAVA_BLANKS)
        if trimmed.lower() == "latest":
            return None
        number = java_int(trimmed)
        if number is None:
            raise InvalidVersionError(version)
        if number <= 0 and number != -1:
            raise InvalidVersionError(number)
    elif (
        isinstance(version, bool) or not isinstance(version, int) or not (version == -1 or 1 <= version <= MAX_VERSION)
    ):
        raise InvalidVersionError(version)
    else:
        number = version
    return None if number == -1 else number


@dataclass(frozen=True)
class SchemaReference:
    """Confluent's ``{"name", "subject", "version"}``: the named type(s) of ``subject`` at ``version``.

    ``name`` is the referenced type's full name for Avro (what Confluent's serializers send); the
    registry checks only that names are unique within one schema's references.
    """

    name: str
    subject: str
    version: int

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "version": self.version}


def parse_references(raw: object) -> tuple[SchemaReference, ...]:
    """References from a request body's ``references`` (None or a list of objects).

    Raises:
        InvalidSchemaError: not a list of ``{name: str, subject: str, version: int}`` with distinct names.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidSchemaError("references must be a list")
    out: list[SchemaReference] = []
    for item in raw:
        ok = isinstance(item, dict) and set(item) <= {"name", "subject", "version"}
        name, subject, version = (
            item.get(k) if isinstance(item, dict) else None for k in ("name", "subject", "version")
        )
        if (
            not ok
            or not isinstance(name, str)
            or not isinstance(subject, str)
            or isinstance(version, bool)
            or not isinstance(version, int)
            or not (version == -1 or 1 <= version <= MAX_VERSION)
        ):
            shown = f"{{name='{name}', subject='{subject}', version={'null' if version is None else version}}}"
            raise InvalidSchemaError(f"Invalid reference: {shown[:300]}")
        out.append(SchemaReference(name, subject, version))
    names = [r.name for r in out]
    if len(set(names)) != len(names):
        raise InvalidSchemaError(f"duplicate reference names in {names}"[:300])
    return tuple(out)


def refs_json(references: Sequence[SchemaReference]) -> str:
    return json.dumps([r.as_json() for r in references], separators=(",", ":"))


def refs_from_json(text: str) -> tuple[SchemaReference, ...]:
    return tuple(SchemaReference(r["name"], r["subject"], r["version"]) for r in json.loads(text))


def sorted_references(references: Sequence[SchemaReference]) -> tuple[SchemaReference, ...]:
    """The references in the order Confluent's ``normalize=true`` puts them (``AvroSchema.normalize``
    sorts by ``SchemaReference.compareTo``: subject, then version); the name breaks what would be a tie,
    so that any order of the same references gives the same identity."""
    return tuple(sorted(references, key=lambda r: (r.subject, r.version, r.name)))


@dataclass(frozen=True)
class RegisteredSchema:
    id: int
    subject: str
    version: int
    schema: str
    references: tuple[SchemaReference, ...] = field(default=())
    deleted: bool = False  # a soft-deleted version, read with ``deleted=True``


@dataclass(frozen=True)
class StoredSchema:
    """A schema by id: its text and the references it was registered with."""

    schema: str
    references: tuple[SchemaReference, ...] = ()


def _no_constant(token: str) -> Any:
    raise ValueError(f"Non-standard token '{token}'")


def normalize(schema_text: str, dependencies: Sequence[str] = (), *, as_new: bool = True) -> str:
    """Parse, validate and write a schema as Avro's Java library writes it back (``canonical``): the text
    Confluent keeps and returns, and by which equal schemas compare equal.

    ``dependencies`` are the texts of the schemas it references (see :class:`WithReferences`). ``as_new`` False
    parses it as Confluent parses a schema to look up among those it holds (``validateAsNew`` false): its names
    and defaults are not checked, so a schema registered before the parser checked them is still found.
    """
    try:
        parsed = bounded_json.loads(schema_text)
        json.loads(schema_text, parse_constant=_no_constant)  # Avro Java's JSON reader refuses NaN and Infinity
    except (ValueError, TypeError) as exc:
        raise InvalidSchemaError(f"not JSON: {exc}") from exc
    # Our own parser accepts and refuses what Avro Java's Schema.Parser (Confluent's) does, and names what is wrong.
    try:
        avro_parse.validate(WithReferences(parsed, tuple(dependencies)), as_new=as_new)
    except avro_parse.InvalidSchemaError as exc:
        raise InvalidSchemaError(str(exc)) from exc
    return canonical_text(parsed, [json.loads(d) for d in dependencies])
