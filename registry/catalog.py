"""An in-memory index of feature definitions, loaded from a folder of TOML files.

The folder is reviewed like code; each file holds ``[[feature]]`` tables and optional ``[defaults]``.
Lookups are dictionary reads, so serving cost does not grow with the number of definitions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import tomllib
from pydantic import ValidationError

from registry.definitions import FeatureDefinition
from registry.errors import DefinitionError, UnknownFeatureError

DEFAULT_FOLDER = Path(__file__).resolve().parent / "features"


def _merge(defaults: Mapping[str, Any], feature: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(defaults)
    for key, value in feature.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def parse_file(path: Path) -> list[FeatureDefinition]:
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DefinitionError(f"{path}: cannot read definitions: {exc}") from exc
    unknown = set(doc) - {"defaults", "feature"}
    if unknown:
        raise DefinitionError(
            f"{path}: unknown top-level key(s) {sorted(unknown)}; expected [defaults] and [[feature]]"
        )
    defaults = doc.get("defaults", {})
    out = []
    for i, raw in enumerate(doc.get("feature", [])):
        try:
            out.append(FeatureDefinition.model_validate(_merge(defaults, raw)))
        except ValidationError as exc:
            label = raw.get("name", f"#{i + 1}")
            raise DefinitionError(f"{path}: feature {label}: {exc}") from exc
    return out


class FeatureCatalog:
    """Definitions indexed by (entity, name, version), with the active version of each feature."""

    def __init__(self, definitions: Iterable[FeatureDefinition]) -> None:
        self._by_key: dict[tuple[str, str, int], FeatureDefinition] = {}
        self._active: dict[tuple[str, str], FeatureDefinition] = {}
        for d in definitions:
            if d.key in self._by_key and self._by_key[d.key] != d:
                raise DefinitionError(f"{d.entity}.{d.name} v{d.version} is defined twice, differently")
            self._by_key[d.key] = d
            current = self._active.get((d.entity, d.name))
            if current is None or d.version > current.version:
                self._active[(d.entity, d.name)] = d

    @classmethod
    def from_folder(cls, folder: Path = DEFAULT_FOLDER) -> FeatureCatalog:
        files = sorted(folder.glob("*.toml"))
        if not files:
            raise DefinitionError(f"no *.toml feature definitions in {folder}")
        return cls(d for f in files for d in parse_file(f))

    def __iter__(self) -> Iterator[FeatureDefinition]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def active(self) -> list[FeatureDefinition]:
        return list(self._active.values())

    def entity_types(self) -> set[str]:
        return {entity for entity, _ in self._active}

    def get(self, entity: str, name: str, version: int | None = None) -> FeatureDefinition:
        found = self._active.get((entity, name)) if version is None else self._by_key.get((entity, name, version))
        if found is None:
            raise UnknownFeatureError(entity, [name if version is None else f"{name}@v{version}"])
        return found

    def resolve(self, entity: str, names: Iterable[str]) -> list[FeatureDefinition]:
        """Active definitions for names (order kept); UnknownFeatureError lists every unknown name."""
        names = list(names)
        missing = [n for n in names if (entity, n) not in self._active]
        if missing:
            raise UnknownFeatureError(entity, missing)
        return [self._active[(entity, n)] for n in names]

    def for_entity(self, entity: str) -> list[FeatureDefinition]:
        return [d for (e, _), d in self._active.items() if e == entity]
