"""References to a version of a feature or feature service: one syntax, one parser.

``[entity.]name[@[v]N]``: ``name`` means the active (or latest) version, ``name@3`` and ``name@v3``
version 3; ``entity.name@3`` names the entity type where no context gives it (a backfill's
``--versions``). Versions are 1 to 2^31-1. Names follow the caller's grammar: feature names and
entity types ``[a-z][a-z0-9_]{0,62}``, feature-service names may also hold ``-``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from registry.core.definitions import MAX_VERSION, NAME_PATTERN

SERVICE_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
_VERSION = re.compile(r"^v?([1-9][0-9]{0,9})$")


@dataclass(frozen=True, slots=True)
class Ref:
    entity: str | None
    name: str
    version: int | None  # None: the active version

    def __str__(self) -> str:
        head = f"{self.entity}.{self.name}" if self.entity is not None else self.name
        return head if self.version is None else f"{head}@v{self.version}"


def parse_ref(text: str, *, name_pattern: str = NAME_PATTERN, with_entity: bool = False) -> Ref | None:
    """The reference ``text`` spells, or None if it is not one.

    ``with_entity``: the entity type is part of the reference (``entity.name@N``) and required.
    The grammar matches all of ``text``: surrounding spaces or a trailing newline make it malformed.
    """
    head, at, version_text = text.partition("@")
    version: int | None = None
    if at:
        match = _VERSION.fullmatch(version_text)
        if match is None or int(match.group(1)) > MAX_VERSION:
            return None
        version = int(match.group(1))
    entity: str | None = None
    if with_entity:
        entity, dot, head = head.partition(".")
        if not dot or not re.fullmatch(NAME_PATTERN, entity):
            return None
    if not re.fullmatch(name_pattern, head):
        return None
    return Ref(entity, head, version)
