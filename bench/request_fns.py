"""The request-time feature the serving bench measures (``--request-feature``): imported by the API."""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc


def amount_per_count(columns: Mapping[str, pa.Array]) -> pa.Array:
    """The request's ``amount`` over one more than the stored count ``bench_count_000``."""
    return pc.divide(columns["amount"], pc.add(pc.cast(columns["bench_count_000"], pa.float64()), 1.0))
