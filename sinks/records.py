"""The unit every sink writes: one value of one feature version for one entity and window."""

from __future__ import annotations

from dataclasses import dataclass

from registry.definitions import FeatureDefinition

Value = int | float | str | bool | None


@dataclass(frozen=True, slots=True)
class FeatureRow:
    entity_type: str
    entity_id: str
    feature_name: str
    feature_version: int
    value: Value
    window_start_ms: int
    window_end_ms: int  # the feature timestamp: the value holds from here until the next window closes
    stream: str  # the window group that computed the value (FeatureDefinition.stream); progress is per stream

    @classmethod
    def of(cls, definition: FeatureDefinition, entity_id: str, value: Value, start_ms: int, end_ms: int) -> FeatureRow:
        return cls(
            entity_type=definition.entity,
            entity_id=entity_id,
            feature_name=definition.name,
            feature_version=definition.version,
            value=value,
            window_start_ms=start_ms,
            window_end_ms=end_ms,
            stream=definition.stream,
        )
