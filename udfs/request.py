"""Request-time feature functions: registered by ``[[request_feature]]`` definitions, run on Arrow columns.

Each function takes ``{input or request field name: pyarrow.Array}`` (all of one length) and returns
that many values; the online API and the training-set join call it the same way
(``registry.core.request_features``). Changing a function's source needs a new version of every
request feature that names it: a process whose code differs from the registered hash refuses to run it.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc


def amount_vs_mean_1h(columns: Mapping[str, pa.Array]) -> pa.Array:
    """This transaction's amount over the user's mean amount in the last hour; null without a mean.

    The mean is ``txn_amount_sum_1h / txn_count_1h``; no transactions (count 0 or null), a zero mean or
    no amount give null.
    """
    count = pc.cast(columns["txn_count_1h"], pa.float64())
    positive = pc.greater(count, 0.0)
    mean = pc.if_else(positive, pc.divide(columns["txn_amount_sum_1h"], count), pa.scalar(None, pa.float64()))
    usable = pc.and_(positive, pc.not_equal(mean, 0.0))
    return pc.if_else(usable, pc.divide(columns["amount"], mean), pa.scalar(None, pa.float64()))
