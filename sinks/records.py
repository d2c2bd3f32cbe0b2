"""The unit every sink writes: one value of one feature version for one entity and window."""

from __future__ import annotations

from dataclasses import dataclass, field

from registry.core.definitions import FeatureDefinition

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
    revision: int = 0  # events in the window when this value was computed: grows with each late update
    definition: FeatureDefinition | None = field(default=None, compare=False, repr=False)
    """The definition that computed it (``of`` sets it): writers read its value type and TTL here instead of
    looking the row's name and version up again."""

    @property
    def identity(self) -> tuple[str, str, str, int, int, int]:
        """What makes two rows the same result: a replay of a result repeats its identity."""
        return (
            self.entity_type,
            self.entity_id,
            self.feature_name,
            self.feature_version,
            self.window_end_ms,
            self.revision,
        )

    @classmethod
    def of(
        cls,
        definition: FeatureDefinition,
        entity_id: str,
        value: Value,
        start_ms: int,
        end_ms: int,
        revision: int = 0,
        *,
        stream: str | None = None,
    ) -> FeatureRow:
        """``stream``: ``definition.stream``, when the caller has it (it is computed on each call, and a writer
        makes many rows of one definition)."""
        return cls(
            entity_type=definition.entity,
            entity_id=entity_id,
            feature_name=definition.name,
            feature_version=definition.version,
            value=value,
            window_start_ms=start_ms,
            window_end_ms=end_ms,
            stream=definition.stream if stream is None else stream,
            revision=revision,
            definition=definition,
        )

    @property
    def defined_by(self) -> FeatureDefinition:
        """The computing definition; a row built without one (not through ``of``) is a programming error."""
        if self.definition is None:
            raise ValueError(
                f"{self.entity_type}.{self.feature_name} v{self.feature_version}: row without its definition"
            )
        return self.definition
