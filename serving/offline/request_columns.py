"""Request-time features in the training-set join: computed from the joined inputs and the label frame.

A request feature's stored inputs are joined like any feature (requested or not: an input that is not
requested is joined and dropped), its request fields are the label frame's columns of those names
(cast to their types), and its function runs once per chunk of labels over those columns: the same
function, on the same values, as the online API (``registry.core.request_features``). A function that
cannot run or fails fails the join with ``RequestFeatureError`` naming the feature (offline there is
no per-value error status: a training set with a silently missing column would be worse).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DefinitionError, RequestFeatureError
from registry.core.request_features import MAX_STRING, RequestFeature, Transform, request_fields
from registry.core.value_types import ValueType, arrow_type


@dataclass(frozen=True, slots=True)
class RequestColumn:
    """One request feature of a join: its checked function and the stored feature versions it reads."""

    feature: RequestFeature
    transform: Transform
    inputs: tuple[FeatureDefinition, ...]

    @classmethod
    def of(cls, catalog: FeatureCatalog, feature: RequestFeature) -> RequestColumn:
        """RequestFeatureError if the function cannot be imported or differs from its registered source."""
        return cls(feature, Transform.of(feature), tuple(catalog.inputs_of(feature)))

    @property
    def name(self) -> str:
        return self.feature.name

    @property
    def value_type(self) -> ValueType:
        return self.feature.value_type

    @property
    def version(self) -> int:
        return self.feature.version

    def compute(
        self,
        joined: Mapping[tuple[str, str, int], pa.Array],
        labels: pa.Table | pa.RecordBatch,
    ) -> pa.Array:
        """The feature's values for ``labels``' rows from its joined inputs (aligned with the labels)."""
        columns = {d.name: joined[d.key] for d in self.inputs}
        for f in self.feature.request_fields:
            column = labels.column(f.name)
            if isinstance(column, pa.ChunkedArray):
                column = column.combine_chunks()
            if pa.types.is_dictionary(column.type):  # judged and converted by its values, as check_request_fields
                column = column.dictionary_decode()
            want = arrow_type(f.value_type)
            # An integer for a double is rounded to the nearest double, as online (JSON's numbers, Python's
            # float()); any other conversion must be exact.
            exact = not (pa.types.is_integer(column.type) and pa.types.is_floating(want))
            try:
                columns[f.name] = column.cast(want, safe=exact)
            except pa.ArrowException as exc:  # e.g. an unsigned value past int64
                raise DefinitionError(
                    f"{self.name}: label column {f.name!r} does not convert to {f.value_type}: {exc}"
                ) from exc
            _check_values(self.name, f.name, f.value_type, columns[f.name])
        return self.transform.run(columns, labels.num_rows)


Column = FeatureDefinition | RequestColumn
"""An output column of a join: a stored feature version, or a request-time feature."""


def stored_of(columns: Iterable[Column]) -> list[FeatureDefinition]:
    """The stored feature versions a join reads for ``columns``: requested ones, then inputs, each once."""
    found: dict[tuple[str, str, int], FeatureDefinition] = {}
    for c in columns:
        if isinstance(c, FeatureDefinition):
            found.setdefault(c.key, c)
    for c in columns:
        if isinstance(c, RequestColumn):
            for d in c.inputs:
                found.setdefault(d.key, d)
    return list(found.values())


def check_request_fields(schema: pa.Schema, columns: Sequence[Column]) -> None:
    """DefinitionError naming every request field the label frame lacks or holds in a type that does not cast, or
    one that two of the request features give two types (online no single read can ask for both: 400)."""
    try:
        request_fields([c.feature for c in columns if isinstance(c, RequestColumn)])
    except RequestFeatureError as exc:
        raise DefinitionError(str(exc)) from exc
    problems: list[str] = []
    for c in columns:
        if not isinstance(c, RequestColumn):
            continue
        for f in c.feature.request_fields:
            if f.name not in schema.names:
                problems.append(f"{c.name} needs label column {f.name!r} ({f.value_type})")
                continue
            if (n := schema.names.count(f.name)) > 1:  # schema.field raised a bare KeyError ("does not exist")
                problems.append(f"label frame has {n} columns named {f.name!r}: which one is meant?")
                continue
            have = schema.field(f.name).type
            want = arrow_type(f.value_type)
            if have != want and not _castable(have, want):
                problems.append(f"{c.name}: label column {f.name!r} is {have}, not {f.value_type}")
    if problems:
        raise DefinitionError("; ".join(problems))


def _check_values(feature: str, field: str, value_type: ValueType, column: pa.Array) -> None:
    """DefinitionError for label values the online API would refuse (non-finite doubles, strings over
    ``MAX_STRING`` characters): the function must see what it can see online."""
    import pyarrow.compute as pc

    if value_type == "double" and pc.any(pc.invert(pc.is_finite(column))).as_py():
        raise DefinitionError(f"{feature}: label column {field!r} holds NaN or infinite values (online: 400)")
    if value_type == "string" and len(column) and (pc.max(pc.utf8_length(column)).as_py() or 0) > MAX_STRING:
        raise DefinitionError(f"{feature}: label column {field!r} holds strings over {MAX_STRING} characters")


def _castable(have: pa.DataType, want: pa.DataType) -> bool:
    if pa.types.is_dictionary(have):  # an encoding, not a kind: its values decide (dictionary<int64> is no string)
        return _castable(have.value_type, want)
    if pa.types.is_integer(want):
        return pa.types.is_integer(have)  # a float column would lose its fractions
    if pa.types.is_floating(want):  # not float32: its values are not the doubles a client would send
        return pa.types.is_integer(have) or have == pa.float64()
    if pa.types.is_string(want):
        return pa.types.is_string(have) or pa.types.is_large_string(have)
    return pa.types.is_boolean(have)


def assemble(
    columns: Sequence[Column],
    stored: Sequence[FeatureDefinition],
    arrays: Sequence[pa.Array],
    labels: pa.Table | pa.RecordBatch,
) -> list[pa.Array]:
    """The output arrays in ``columns`` order from the joined ``arrays`` (aligned with ``stored``)."""
    joined = {d.key: a for d, a in zip(stored, arrays, strict=True)}
    return [joined[c.key] if isinstance(c, FeatureDefinition) else c.compute(joined, labels) for c in columns]
