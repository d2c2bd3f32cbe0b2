"""``GET /v1/quality/{entity_type}/{name}``: stored statistics, drift and parity of a feature over a
half-open span, with 404 for unknown features and 400 for malformed spans; and the plots drawn from
the same store (``serving.offline.plots``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry.core.catalog import FeatureCatalog
from registry.definition_store import DefinitionStore
from registry.live import LiveCatalog
from registry.quality import QualityStore
from serving.online.app import create_app
from sinks.cassandra.reader import Stored

T0 = datetime(2026, 11, 30, 10, tzinfo=UTC)
H = timedelta(hours=1)
NOW_US = int((T0 + 5 * H).timestamp() * 1_000_000)


class NoSource:
    def read(self, entity_type: str, entity_id: str) -> Stored:
        return {}

    def progress(self) -> dict[str, int]:
        return {}


def _hour(hour: datetime, source: str, null_rate: float, lag_ms: float) -> dict[str, object]:
    return {
        "entity_type": "user",
        "feature": "txn_count_1h",
        "version": 1,
        "hour": hour.isoformat(),
        "count": 100,
        "nulls": int(100 * null_rate),
        "zeros": 3,
        "null_rate": null_rate,
        "zero_rate": 0.03,
        "mean": 4.2,
        "stddev": 1.1,
        "p01": 0.0,
        "p50": 4.0,
        "p99": 9.0,
        "lag_p50_ms": lag_ms / 2,
        "lag_p99_ms": lag_ms,
    }


@pytest.fixture
def quality(tmp_path: Path) -> QualityStore:
    store = QualityStore(tmp_path / "definitions.db")
    for i in range(5):
        hour = T0 + i * H
        store.put_hourly("offline", [_hour(hour, "offline", 0.0, 60_000 + i * 1000)], hour + H)
        store.put_hourly("serving_log", [_hour(hour, "serving_log", 0.01 * i, 120_000)], hour + H)
        score = {"entity_type": "user", "feature": "txn_count_1h", "version": 1, "training_set": "ts1", "psi": 0.1 * i}
        store.put_drift("offline", [score], hour, hour + H, hour + H)
        run = {"entity_type": "user", "feature": "txn_count_1h", "version": 1, "checked": 10, "mismatched": i}
        run |= {"missing_offline": 0, "mismatch_ratio": i / 10, "missing_ratio": 0.0, "served": 10, "stale": 0}
        store.put_parity([run], hour, hour + H, hour + H)
    return store


@pytest.fixture
def client(tmp_path: Path, shipped_catalog: FeatureCatalog, quality: QualityStore) -> TestClient:
    store = DefinitionStore(tmp_path / "definitions.db")
    for d in shipped_catalog:
        store.register(d)
    return TestClient(create_app(LiveCatalog(store), NoSource(), clock_us=lambda: NOW_US, quality=quality))


def test_the_stored_results_of_a_span(client: TestClient) -> None:
    body = client.get(
        "/v1/quality/user/txn_count_1h", params={"since": "2026-11-30T11:00:00Z", "until": "2026-11-30T13:00:00+00:00"}
    ).json()
    assert (body["entity_type"], body["feature"]) == ("user", "txn_count_1h")
    assert (body["since"], body["until"]) == ("2026-11-30T11:00:00.000000+00:00", "2026-11-30T13:00:00.000000+00:00")
    # Hours 11:00 and 12:00 (13:00 is `until`: out), both sources.
    assert [(h["hour"][11:16], h["source"]) for h in body["hourly"]] == [
        ("11:00", "offline"),
        ("11:00", "serving_log"),
        ("12:00", "offline"),
        ("12:00", "serving_log"),
    ]
    assert body["hourly"][1]["null_rate"] == 0.01 and body["hourly"][0]["count"] == 100
    # Runs computed at 11:00 and 12:00 (the run of 10:00's hour was computed at 11:00).
    assert [d["psi"] for d in body["drift"]] == [pytest.approx(0.0), pytest.approx(0.1)]
    assert [p["mismatched"] for p in body["parity"]] == [0, 1]


def test_the_default_span_is_the_24_hours_before_now(client: TestClient) -> None:
    body = client.get("/v1/quality/user/txn_count_1h?version=1").json()
    assert body["until"] == "2026-11-30T15:00:00.000000+00:00" and body["since"] == "2026-11-29T15:00:00.000000+00:00"
    assert len(body["hourly"]) == 10 and len(body["drift"]) == 4  # the run computed at 15:00 is `until`: out
    assert client.get("/v1/quality/user/txn_count_1h?version=2").status_code == 404


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ("/v1/quality/user/no_such_feature", 404, "no_such_feature"),
        ("/v1/quality/merchant/txn_count_1h", 404, "merchant"),
        ("/v1/quality/user/txn_count_1h?since=yesterday", 400, "since: not an ISO-8601 instant"),
        # ISO's basic form, as Python reads it: epoch milliseconds and a zone were the year 1796
        ("/v1/quality/user/txn_count_1h?since=1796032800000Z", 400, "since: not an ISO-8601 instant"),
        ("/v1/quality/user/txn_count_1h?since=2026-11-30T10:00:00", 400, "since: give a UTC offset"),
        ("/v1/quality/user/txn_count_1h?since=2026-11-30T10:00:00Z&until=2026-11-30T10:00:00Z", 400, "before until"),
        ("/v1/quality/user/txn_count_1h?version=x", 400, "version"),
        ("/v1/quality/user/txn_count_1h?since=0001-01-01T00:00:00%2B01:00", 400, "since: out of range in UTC"),
        ("/v1/quality/user/txn_count_1h?until=9999-12-31T23:59:59-01:00", 400, "until: out of range in UTC"),
        ("/v1/quality/user/txn_count_1h?until=0001-01-01T00:00:00Z", 400, "since: must be before until"),
        # given twice: never the last value picked quietly; a version written as a JSON integer is
        ("/v1/quality/user/txn_count_1h?version=1&version=1", 400, "`version` is given more than once"),
        (
            "/v1/quality/user/txn_count_1h?since=2026-11-30T10:00:00Z&since=2026-11-30T11:00:00Z",
            400,
            "`since` is given",
        ),
        (
            "/v1/quality/user/txn_count_1h?until=2026-11-30T10:00:00Z&until=2026-11-30T11:00:00Z",
            400,
            "`until` is given",
        ),
        ("/v1/quality/user/txn_count_1h?version=%2B1", 400, "version"),
        ("/v1/quality/user/txn_count_1h?version=01", 400, "version"),
        # read as 14:00:00.000000, the hour `since` falls inside was answered
        ("/v1/quality/user/txn_count_1h?since=2026-11-30T10:00:00.000000001Z", 400, "since: give at most microseconds"),
        # an offset's fraction of a second was dropped (Python's ISO reader), moving the edge: read as 14:00 and 10:00
        (
            "/v1/quality/user/txn_count_1h?since=2026-11-30T14:00:00%2B00:00:00.5",
            400,
            "since: give an offset to the second",
        ),
        (
            "/v1/quality/user/txn_count_1h?until=2026-11-30T10:00:00-00:00:01.000001",
            400,
            "until: give an offset to the second",
        ),
    ],
)
def test_bad_requests_are_named(client: TestClient, query: str, status: int, says: str) -> None:
    response = client.get(query)
    assert response.status_code == status
    assert says in response.text


def test_an_offset_to_the_second_is_read_as_written(client: TestClient) -> None:
    body = client.get("/v1/quality/user/txn_count_1h?version=1&since=2026-11-30T14:00:00%2B00:00:01.000").json()
    assert body["since"] == "2026-11-30T13:59:59.000000+00:00"


def test_the_default_since_reaches_the_first_instant_of_year_1(client: TestClient) -> None:
    """`until` exactly a day after 0001-01-01T00:00:00Z: the default `since` is that instant, representable; it
    was refused (`since: must be before until`, a parameter the caller never sent)."""
    body = client.get("/v1/quality/user/txn_count_1h?version=1&until=0001-01-02T00:00:00Z").json()
    assert body["since"] == "0001-01-01T00:00:00.000000+00:00"


def test_plots_draw_four_panels_per_feature_version(quality: QualityStore, tmp_path: Path) -> None:
    import numpy as np
    from matplotlib.image import imread

    from serving.offline.plots import render_all

    paths = render_all(quality, T0, T0 + 6 * H, tmp_path / "plots")
    assert [p.name for p in paths] == ["user.txn_count_1h.v1.png"]
    image = imread(paths[0])
    assert image.shape[:2] == (880, 800)  # 10 x 11 inches at 80 dpi
    # Each quarter of the page (one panel) has lines drawn in it: coloured pixels, not only grey and white.
    colour = np.ptp(image[:, :, :3], axis=2) > 0.2
    for panel in np.array_split(colour[60:], 4):
        assert panel.sum() > 200
    assert render_all(quality, T0 + 24 * H, T0 + 25 * H, tmp_path / "none") == []  # nothing stored then
    assert render_all(quality, T0, T0 + 6 * H, tmp_path / "x", features=["other"]) == []


def test_plots_command_says_when_nothing_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from serving.offline.plots import main

    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "empty.db"))
    assert main(["--since", "1d", "--out", str(tmp_path / "out")]) == 1
    assert "nothing stored in the last 1d" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # argparse's usage error, usage lines and exit 2
        main(["--since", "soon", "--out", str(tmp_path / "out")])
    assert refused.value.code == 2
    assert "argument --since: duration 'soon'" in capsys.readouterr().err


def test_without_a_version_every_version_in_the_answer_needs_the_grant(tmp_path: Path) -> None:
    """The active version internal, an older one restricted with stored statistics: asking without `version`
    is 403 naming the older one (it answered its rows), as asking for it by version is."""
    from registry.access import Access
    from registry.access_store import AccessStore
    from registry.core.definitions import FeatureDefinition
    from tests.unit.conftest import definition_dict

    db = tmp_path / "definitions.db"
    store = DefinitionStore(db)
    store.register(FeatureDefinition.model_validate(definition_dict(owner="fraud-team", sensitivity="restricted")))
    v2 = definition_dict(owner="fraud-team", sensitivity="internal", version=2, ttl="4h")
    store.register(FeatureDefinition.model_validate(v2))
    store.activate("user", "txn_count_1h", 2)
    quality = QualityStore(db)
    quality.put_hourly("offline", [_hour(T0, "offline", 0.0, 60_000)], T0 + H)  # version 1's statistics
    tokens = AccessStore(db)
    access = Access(tokens, enabled=True, refresh_s=0)
    client = TestClient(
        create_app(LiveCatalog(store), NoSource(), clock_us=lambda: NOW_US, quality=quality, access=access)
    )
    headers = {"Authorization": "Bearer " + tokens.issue("scorer", "ml-team")}
    since = "since=2026-11-30T00:00:00Z"
    for path in (f"/v1/quality/user/txn_count_1h?version=1&{since}", f"/v1/quality/user/txn_count_1h?{since}"):
        answer = client.get(path, headers=headers)
        assert (answer.status_code, answer.json()["names"]) == (403, ["user/txn_count_1h@1"]), answer.text
    assert client.get(f"/v1/quality/user/txn_count_1h?version=2&{since}", headers=headers).status_code == 200
    tokens.grant("fraud-team", "ml-team")
    granted = client.get(f"/v1/quality/user/txn_count_1h?{since}", headers=headers)
    assert granted.status_code == 200 and [row["version"] for row in granted.json()["hourly"]] == [1]
