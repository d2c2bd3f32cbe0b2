"""``age_seconds`` is ``served_at`` minus ``feature_timestamp``, exactly, whatever the clock's microseconds
(``served_at`` is the clock cut to whole milliseconds); statuses are judged on the microsecond clock."""

from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from registry.live import LiveCatalog
from serving.online.app import create_app
from tests.unit.test_app import MIN, NOW, STREAM, MemorySource, T, _stored, live  # noqa: F401  (fixture)


def _client(live: LiveCatalog, source: MemorySource, now_us: int) -> TestClient:  # noqa: F811
    return TestClient(create_app(live, source, clock_us=lambda: now_us), raise_server_exceptions=False)


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("micros", [0, 1, 499, 500, 600, 999])
def test_age_is_served_at_minus_feature_timestamp(live: LiveCatalog, micros: int) -> None:  # noqa: F811
    source = MemorySource({("user", "u1"): _stored(count=(T, 7), total=(T - 5 * MIN, 2.5))}, {STREAM: T})
    client = _client(live, source, NOW * 1000 + micros)
    one = client.get("/v1/features/user/u1").json()
    batch = client.post("/v1/features/user/batch", json={"entity_ids": ["u1"], "names": ["txn_count_1h"]}).json()
    assert one["served_at"] == "2023-11-14T22:16:30.000Z"
    for feature in one["features"].values():
        assert feature["age_seconds"] == round(_seconds(one["served_at"]) - _seconds(feature["feature_timestamp"]), 3)
    assert one["features"]["txn_count_1h"]["age_seconds"] == 90.0
    assert batch["results"][0]["age_seconds"][batch["names"].index("txn_count_1h")] == 90.0


def test_a_value_one_microsecond_past_its_ttl_is_expired_at_the_ttl_s_age(live: LiveCatalog) -> None:  # noqa: F811
    source = MemorySource({("user", "u1"): _stored(count=(T, 7))}, {STREAM: T})
    past = _client(live, source, (T + 2 * 60 * MIN) * 1000 + 1).get("/v1/features/user/u1").json()
    feature = past["features"]["txn_count_1h"]
    assert (feature["status"], feature["value"], feature["age_seconds"]) == ("expired", None, 7200.0)
    assert past["served_at"] == "2023-11-15T00:15:00.000Z"


def test_an_entity_id_with_a_trailing_newline_is_refused(live: LiveCatalog) -> None:  # noqa: F811
    client = _client(live, MemorySource(), NOW * 1000)
    assert client.get("/v1/features/user/u1%0A").json()["error"] == "bad_entity_id"
    batch = client.post("/v1/features/user/batch", json={"entity_ids": ["u1\n"], "names": ["txn_count_1h"]})
    assert (batch.status_code, batch.json()["error"]) == (400, "bad_entity_id")
