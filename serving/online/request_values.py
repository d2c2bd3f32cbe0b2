"""Request-time features' values for the vectors of one request, computed after their stored inputs.

For each request feature of a plan, the inputs are judged by the timeline rule exactly as the API
serves them (a missing or expired input is null), the function runs once over all of the request's
entities (one Arrow array per input and request field), and each entity's answer is
``(value, feature timestamp ms, status, error message)``:

- status: the least fresh of its inputs' statuses (``missing`` over ``expired`` over ``stale`` over
  ``present``; ``present`` with no stored inputs), or ``error`` with a null value when the function
  cannot run, raises or returns values that are not its type (``message`` names why);
- feature timestamp: the latest of its inputs' window ends (null with no stored input value).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from registry.core.errors import RequestFeatureError
from registry.core.value_types import arrow_type
from serving.online.plans import Plan, RequestPlan
from serving.online.vectors import Tally, _value
from sinks.cassandra.reader import Stored

Served = tuple[Any, int | None, str, str | None]
"""One entity's answer for one request feature: value, feature timestamp (epoch ms), status, error message."""

_ORDER = ("present", "stale", "expired", "missing")
_RANK = {status: rank for rank, status in enumerate(_ORDER)}


def request_values(
    plan: Plan,
    snapshots: Sequence[tuple[Stored, Mapping[str, int]]],
    request: Mapping[str, Sequence[Any]],
    now_us: int,
    tally: Tally,
) -> list[list[Served]]:
    """Per request feature of ``plan`` (in ``plan.requests`` order), one answer per snapshot.

    ``request`` maps each of ``plan.fields`` to one value per snapshot, already checked against its type.
    """
    return [_one(r, snapshots, request, now_us, tally) for r in plan.requests]


def _one(
    r: RequestPlan,
    snapshots: Sequence[tuple[Stored, Mapping[str, int]]],
    request: Mapping[str, Sequence[Any]],
    now_us: int,
    tally: Tally,
) -> list[Served]:
    n = len(snapshots)
    items = r.inputs.items
    columns: list[list[Any]] = [[None] * n for _ in items]
    ranks = [0] * n
    latest: list[int | None] = [None] * n
    scratch: Tally = {}  # the inputs' own statuses are not served values: not counted in the metrics
    for row, (stored, progress) in enumerate(snapshots):
        inputs = r.inputs.under(progress)
        cuts = inputs.cuts(progress, now_us)
        get = stored.get
        for j, (_, row_key, group, _, label) in enumerate(inputs.items):
            value, ts, judged = _value(cuts[group], get(row_key), label, scratch)
            columns[j][row] = value
            rank = _RANK[judged]
            if rank > ranks[row]:
                ranks[row] = rank
            if ts is not None and (latest[row] is None or ts > latest[row]):  # type: ignore[operator]
                latest[row] = ts
    try:
        if isinstance(r.transform, RequestFeatureError):
            raise r.transform
        import pyarrow as pa  # here, not at import: a process that serves no request feature never loads Arrow

        arrays = {
            d.name: pa.array(col, type=arrow_type(d.value_type))
            for d, col in zip(r.inputs_definitions, columns, strict=True)
        }
        for f in r.feature.request_fields:
            arrays[f.name] = pa.array(request[f.name], type=arrow_type(f.value_type))
        values = r.transform.run(arrays, n).to_pylist()
    except RequestFeatureError as exc:
        tally[(r.label, "error")] = tally.get((r.label, "error"), 0) + n
        return [(None, None, "error", exc.detail)] * n
    out: list[Served] = []
    for row in range(n):
        status: str = _ORDER[ranks[row]]
        if status != "present":
            tally[(r.label, status)] = tally.get((r.label, status), 0) + 1
        out.append((values[row], latest[row], status, None))
    return out
