"""A seeded, synthetic stream of card transactions: the same seed gives the same events."""

from __future__ import annotations

import random
from itertools import accumulate
from typing import Any

CURRENCIES = ("EUR", "USD", "GBP")


def synthetic_transactions(seed: int, *, users: int, events: int, start_ms: int, span_ms: int) -> list[dict[str, Any]]:
    """``events`` transactions by ``users`` users, uniformly over [start_ms, start_ms + span_ms), time-ordered.

    User activity is skewed (a few users are hot), as in real payment traffic. Transaction ids hold the seed and
    ``start_ms``: a second run of the producer (a later ``start_ms``) makes new transactions, not resends that the
    job's de-duplication would drop.
    """
    rng = random.Random(seed)
    # Cumulative weights once: ``choices(..., weights)`` would sum them again on every call, O(users) an event;
    # with them each draw is one bisection, O(log users), and the same draw (``choices`` accumulates the same way).
    cum_weights = list(accumulate(1.0 / (rank + 1) for rank in range(users)))
    user_ids = [f"user_{i:05d}" for i in range(users)]
    out = []
    for i in range(events):
        out.append(
            {
                "transaction_id": f"txn_{seed}_{start_ms}_{i:08d}",
                "user_id": rng.choices(user_ids, cum_weights=cum_weights)[0],
                "merchant_id": f"merchant_{rng.randrange(200):04d}",
                "amount": round(rng.lognormvariate(3.0, 1.0), 2),
                "currency": rng.choice(CURRENCIES),
                "event_time": start_ms + rng.randrange(span_ms),
            }
        )
    out.sort(key=lambda e: (e["event_time"], e["transaction_id"]))
    return out
