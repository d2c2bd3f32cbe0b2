"""Avro schema resolution: can a reader schema read data written with a writer schema?

The registry refuses a schema that would strand a consumer or a producer *before* it reaches a topic,
so the rules here follow the "Schema Resolution" section of the Avro specification rather than any
one library: primitives with the spec's promotions, records matched field by field (by name or by a
reader field's aliases; a reader field that so matches writer fields more than once is refused, as Avro Java's
checker refuses it, in a reader union when met before a branch that reads),
enums, arrays, maps, fixed, unions, and named types matched by unqualified name or by a reader alias. Logical
types are ignored, as Avro Java's checker (and so Confluent's registry) ignores them: the specification's rule
that decimals match only with the same scale and precision is not checked (a deviation kept with Confluent).

Everything here is pure: schemas come in as JSON text or parsed JSON (a ``str`` is JSON text, or
else a bare type name such as ``int``), answers go out as lists of
human-readable messages (empty means compatible) that name the field path, for example
``field `amount`: writer type string cannot be read as double``. Paths use ``a.b`` for nested record
fields, ``tags[]`` for array items and ``attrs{}`` for map values. Schemas are parsed (and refused, as Avro
Java refuses them) by :mod:`registry.schema_registry.avro_parse`; ``validate``, ``InvalidSchemaError`` and
``WithReferences`` are re-exported from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from registry.core.errors import SchemaError
from registry.schema_registry.avro_model import (
    _Array,
    _describe,
    _Enum,
    _Fixed,
    _Map,
    _Named,
    _Node,
    _Primitive,
    _Record,
    _Union,
)
from registry.schema_registry.avro_parse import InvalidSchemaError, WithReferences, _load, _short, validate

__all__ = [
    "CompatibilityLevel",
    "InvalidCompatibilityLevelError",
    "InvalidSchemaError",
    "WithReferences",
    "can_read",
    "check",
    "incompatibilities",
    "parse_level",
    "validate",
]

# writer type -> reader types that can read it (besides itself), from the spec.
_PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


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
    """A level from its name, case-insensitively (clients send ``backward`` as often as ``BACKWARD``), and nothing
    around it: Confluent's ``CompatibilityLevel.forName`` upper-cases but does not trim (``" FULL "`` is no level)."""
    if isinstance(value, str):
        try:
            return CompatibilityLevel(value.upper())
        except ValueError:
            pass
    valid = ", ".join(level.value for level in CompatibilityLevel)
    raise InvalidCompatibilityLevelError(f"Invalid compatibility level {value!r}; valid values are {valid}")


# --------------------------------------------------------------------------------------------------
# Resolution
# --------------------------------------------------------------------------------------------------


def _where(path: str) -> str:
    return f"field `{path}`" if path else "top level"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _names_match(writer: _Named, reader: _Named) -> bool:
    return _short(writer.fullname) == _short(reader.fullname) or writer.fullname in reader.aliases


class _Resolver:
    """One reader/writer comparison. Tracks the named pairs being compared, so recursion terminates, and
    remembers each named pair compared (with the path it was first compared at), so that a type reached by many
    paths is compared once: without it, records nested as a field and again as a union branch took time
    doubling with each level (20 levels, 2 KiB of schema: 15 s of the registry's write lock). A pair met
    again answers as the first time: compatible, or one problem pointing at the first place's."""

    def __init__(self) -> None:
        self._in_progress: set[tuple[int, int]] = set()
        self._done: dict[tuple[int, int], tuple[str, bool]] = {}

    def problems(self, writer: _Node, reader: _Node, path: str) -> list[str]:
        if isinstance(writer, _Union):
            return self._from_union(writer, reader, path)
        if isinstance(reader, _Union):
            reading = self._first_reading(writer, reader, path)
            if reading is not None:
                return reading
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
            reading = self._first_reading(branch, reader, path)
            if reading:
                out.extend(reading)
            elif reading is None:
                out.append(
                    f"{_where(path)}: writer union branch {_describe(branch)} cannot be read by any branch "
                    f"of reader {_describe(reader)}"
                )
        return out

    def _first_reading(self, writer: _Node, reader: _Union, path: str) -> list[str] | None:
        """The reader union's branches tried in order, as Avro Java's checker tries them: ``[]`` at the first that
        reads ``writer``; a field matching several writer fields met before it, that problem (Java's checker throws
        there, whatever later branches say); None when no branch reads it."""
        for branch in reader.branches:
            found = self.problems(writer, branch, path)
            if not found:
                return []
            several = [message for message in found if _SEVERAL in message]
            if several:
                return several
        return None

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
        done = self._done.get(key)
        if done is not None:
            first, compatible = done
            if compatible:
                return []
            kind = type(writer).__name__.lstrip("_").lower()
            return [
                f"{_where(path)}: writer {kind} `{writer.fullname}` cannot be read as {kind} `{reader.fullname}` "
                f"(as at {_where(first)})"
            ]
        self._in_progress.add(key)
        try:
            found = self._named_pair(writer, reader, path)
        finally:
            self._in_progress.discard(key)
        self._done[key] = (path, not found)
        return found

    def _named_pair(self, writer: _Named, reader: _Named, path: str) -> list[str]:
        if isinstance(writer, _Record) and isinstance(reader, _Record):
            return self._record(writer, reader, path)
        if isinstance(writer, _Enum) and isinstance(reader, _Enum):
            known = set(reader.symbols)  # a set: a tuple's membership test made long enums quadratic
            missing = [s for s in writer.symbols if s not in known]
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

    def _record(self, writer: _Record, reader: _Record, path: str) -> list[str]:
        by_name = {f.name: f for f in writer.fields}
        out: list[str] = []
        for reader_field in reader.fields:
            field_path = _join(path, reader_field.name)
            # Its name, then each alias (once), as Avro Java's ``lookupWriterField``, which throws on more than one
            # match (an alias equal to the name counts twice): Confluent refuses the pair, and with two writer
            # fields matched neither decoder reads a record (Java: a duplicate field; fastavro: a KeyError).
            names = [reader_field.name, *dict.fromkeys(reader_field.aliases)]
            matches = [by_name[n] for n in names if n in by_name]
            if len(matches) > 1:
                shown = ", ".join(dict.fromkeys(f"`{m.name}`" for m in matches))
                out.append(f"field `{field_path}`: {_SEVERAL} ({shown}) more than once by its name and aliases")
                continue
            match = matches[0] if matches else None
            if match is None:
                if not reader_field.has_default:
                    out.append(f"field `{field_path}`: not in the writer schema and has no default")
                continue
            out.extend(self.problems(match.type, reader_field.type, field_path))
        return out  # writer fields the reader does not know are skipped, as the spec says


_SEVERAL = "matches writer fields"


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
        InvalidSchemaError: a schema cannot be parsed (an existing one as Confluent parses a schema it holds, its
            names and defaults unchecked; the message then starts with its label).
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
        try:  # as Confluent parses a schema it already holds: names and defaults are not checked
            old = _load(old_schema, validate_names=False)
        except InvalidSchemaError as exc:
            raise InvalidSchemaError(f"{label} (already registered) does not parse: {exc}") from exc
        if level.backward:
            out.extend(f"BACKWARD check against {label}: {m}" for m in _Resolver().problems(old, new, ""))
        if level.forward:
            out.extend(f"FORWARD check against {label}: {m}" for m in _Resolver().problems(new, old, ""))
    return out
