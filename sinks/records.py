"""What the sinks write: one value of one feature version for one entity and window (``FeatureRow``), or a
window group's results as columns (``WindowResults``, the stream job's flush: no object per value)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

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


@dataclass(frozen=True)
class WindowResults:
    """Window results of one window group as columns: result ``i`` is entity ``entity_ids[i]``'s window
    ``[starts_ms[i], ends_ms[i])`` at revision ``revisions[i]``, with value ``values[f][i]`` of ``features[f]``.

    The same values as one ``FeatureRow.of(features[f], entity_ids[i], values[f][i], starts_ms[i], ends_ms[i],
    revisions[i])`` per feature and result (``rows`` makes them), for the writers to take as columns. The
    features of a window group share one entity type and one stream."""

    features: tuple[FeatureDefinition, ...]
    entity_ids: Sequence[str]
    starts_ms: npt.NDArray[np.int64]  # int64, epoch ms
    ends_ms: npt.NDArray[np.int64]  # int64, epoch ms: the feature timestamp
    revisions: npt.NDArray[np.int64]  # int64
    values: Sequence[Sequence[Value]]  # per feature, per result

    def __post_init__(self) -> None:
        n = len(self.entity_ids)
        if not self.features or len(self.values) != len(self.features):
            raise ValueError(f"{len(self.features)} features and {len(self.values)} value columns")
        if {d.entity for d in self.features} != {self.entity_type} or len({d.stream for d in self.features}) != 1:
            raise ValueError("the features of window results share one entity type and one stream")
        if any(len(column) != n for column in (self.starts_ms, self.ends_ms, self.revisions, *self.values)):
            raise ValueError(f"window results' columns differ in length from their {n} entity ids")

    @property
    def entity_type(self) -> str:
        return self.features[0].entity

    @property
    def stream(self) -> str:
        return self.features[0].stream

    def __len__(self) -> int:
        return len(self.entity_ids)

    def take(self, keep: npt.NDArray[np.bool_]) -> WindowResults:
        """The results where the boolean mask ``keep`` is true."""
        at = np.flatnonzero(keep).tolist()
        return WindowResults(
            self.features,
            [self.entity_ids[i] for i in at],
            self.starts_ms[keep],
            self.ends_ms[keep],
            self.revisions[keep],
            [[column[i] for i in at] for column in self.values],
        )

    def rows(self) -> list[FeatureRow]:
        """The same values as rows, result by result, feature by feature."""
        stream = self.stream
        return [
            FeatureRow.of(d, entity_id, column[i], int(start), int(end), int(revision), stream=stream)
            for i, (entity_id, start, end, revision) in enumerate(
                zip(
                    self.entity_ids,
                    self.starts_ms.tolist(),
                    self.ends_ms.tolist(),
                    self.revisions.tolist(),
                    strict=True,
                )
            )
            for d, column in zip(self.features, self.values, strict=True)
        ]
