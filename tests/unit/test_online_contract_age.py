"""docs/design.md §3.3 step 6: ``age_seconds`` is exactly ``served_at - feature_timestamp``, on every route and
for request-time features too, also when the feature timestamp is ahead of the API's clock (hosts' clocks apart,
or events accepted up to 1 h ahead, §5.3): then it is negative, the skew itself, never a made-up 0."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from tests.unit.test_request_features import NOW, Source, client_for, store_with, vector

AHEAD_MS = 5_000
NAMES = ["txn_count_1h", "txn_amount_sum_1h", "amount_vs_mean_1h"]


def _s(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def client(tmp_path: Path, shipped_catalog: FeatureCatalog) -> TestClient:
    ahead = NOW + AHEAD_MS
    return client_for(
        store_with(tmp_path / "d.db", shipped_catalog),
        Source({"u1": vector(4, 10.0, at=ahead), "u2": vector(4, None, at=ahead)}, progress=ahead),
    )


def _served(client: TestClient) -> list[tuple[str, str | None, float | None]]:
    """(served_at, feature_timestamp, age_seconds) of every feature every route served."""
    out: list[tuple[str, str | None, float | None]] = []
    for eid in ("u1", "u2"):
        r = client.get(f"/v1/features/user/{eid}?names={','.join(NAMES)}&amount=5")
        assert r.status_code == 200, r.text
        out += [
            (r.json()["served_at"], f["feature_timestamp"], f["age_seconds"]) for f in r.json()["features"].values()
        ]
    batch = client.post(
        "/v1/features/user/batch",
        json={"entity_ids": ["u1", "u2"], "names": NAMES, "request_data": {"amount": [5, 5]}},
    )
    assert batch.status_code == 200, batch.text
    for result in batch.json()["results"]:
        out += [
            (batch.json()["served_at"], *pair)
            for pair in zip(result["feature_timestamps"], result["age_seconds"], strict=True)
        ]
    part = {"entity_type": "user", "entity_id": "u1", "names": NAMES, "request_data": {"amount": 5}}
    vectors = client.post("/v1/vectors", json={"entities": [part]})
    assert vectors.status_code == 200, vectors.text
    one = vectors.json()["vectors"][0]
    out += [(one["served_at"], f["feature_timestamp"], f["age_seconds"]) for f in one["features"].values()]
    return out


def test_a_feature_timestamp_ahead_of_the_clock_is_a_negative_age_exactly(client: TestClient) -> None:
    served = _served(client)
    stamped = [(at, ts, age) for at, ts, age in served if ts is not None]
    assert len(stamped) >= 8, served
    for at, ts, age in served:
        assert (ts is None) == (age is None)
        if ts is not None:
            assert age == round(_s(at) - _s(ts), 3) == -AHEAD_MS / 1000
