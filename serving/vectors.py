"""Assemble a feature vector with per-feature freshness from stored values and the timeline rule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from registry.catalog import FeatureCatalog
from registry.definitions import FeatureDefinition
from registry.timeline import Status, resolve
from serving.online import StoredValue


class VectorSource(Protocol):
    def read(self, entity_type: str, entity_id: str) -> dict[tuple[str, int], StoredValue]: ...

    def progress(self) -> dict[str, int]: ...


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class FeatureValue:
    name: str
    version: int
    value: Any
    feature_ts_ms: int | None
    status: Status

    def as_json(self, now_ms: int) -> dict[str, Any]:
        return {
            "value": self.value,
            "feature_timestamp": iso(self.feature_ts_ms) if self.feature_ts_ms is not None else None,
            "age_seconds": round((now_ms - self.feature_ts_ms) / 1000, 3) if self.feature_ts_ms is not None else None,
            "version": self.version,
            "status": self.status,
        }


def feature_vector(
    source: VectorSource, definitions: list[FeatureDefinition], entity_type: str, entity_id: str, now_ms: int
) -> list[FeatureValue]:
    stored = source.read(entity_type, entity_id)
    progress = source.progress()
    out = []
    for d in definitions:
        hit = stored.get((d.name, d.version))
        closed = min(now_ms, progress.get(d.stream, 0))
        r = resolve(
            d,
            hit.feature_ts_ms if hit else None,
            hit.value if hit else None,
            closed_through_ms=closed,
            now_ms=now_ms,
        )
        out.append(FeatureValue(d.name, d.version, r.value, r.feature_ts_ms, r.status))
    return out


def select(catalog: FeatureCatalog, entity_type: str, names: list[str] | None) -> list[FeatureDefinition]:
    """Definitions for the requested names (all active features of the entity when None)."""
    return catalog.for_entity(entity_type) if names is None else catalog.resolve(entity_type, names)
