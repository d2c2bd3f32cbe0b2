"""Oracle checks of the stored quality results (``registry.quality``) against design §9: hours and runs
answered in ``[since, until)`` whatever offsets the times are written with, the gate's worst drift of a
span, and an hour computed again replacing the stored one, but never with a part of it."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from registry.quality import QualityStore

T0 = datetime(2026, 11, 30, 10, tzinfo=UTC)
H = timedelta(hours=1)


def _hour(hour: datetime, count: int, feature: str = "n") -> dict[str, object]:
    return {"entity_type": "user", "feature": feature, "version": 1, "hour": hour.isoformat(), "count": count}


def _counts(store: QualityStore, since: datetime, until: datetime) -> list[tuple[datetime, int]]:
    return [
        (datetime.fromisoformat(h["hour"]), h["count"]) for h in store.feature("user", "n", 1, since, until)["hourly"]
    ]


def test_a_run_whose_span_starts_inside_an_hour_does_not_replace_that_hour_with_a_part_of_it(tmp_path: Path) -> None:
    store = QualityStore(tmp_path / "q.db")
    store.put_hourly("offline", [_hour(T0, 60), _hour(T0 + H, 10)], T0 + H + H / 12, since=T0 - H / 2)
    # `--since 1d` an hour later: its span starts at T0 + 30m, so it counts half of hour T0.
    store.put_hourly("offline", [_hour(T0, 30), _hour(T0 + H, 60)], T0 + 2 * H, since=T0 + H / 2)
    assert _counts(store, T0, T0 + 2 * H) == [(T0, 60), (T0 + H, 60)]
    # A part is kept while the hour has nothing better; an hour the span covers whole replaces as before.
    store.put_hourly("offline", [_hour(T0 - H, 5)], T0 + 2 * H, since=T0 - H / 4)
    store.put_hourly("offline", [_hour(T0 - H, 20)], T0 + 2 * H, since=T0 - H / 2)
    store.put_hourly("offline", [_hour(T0 - H, 7)], T0 + 2 * H, since=T0 - H / 3)
    store.put_hourly("offline", [_hour(T0, 45)], T0 + 3 * H, since=T0)  # whole: replaces, even with fewer rows
    assert _counts(store, T0 - H, T0 + 2 * H) == [(T0 - H, 20), (T0, 45), (T0 + H, 60)]


OFFSETS = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))])
MINUTES = st.integers(-3000, 3000)


@settings(max_examples=60, deadline=None)
@given(
    hours=st.lists(st.integers(-48, 48), min_size=0, max_size=12, unique=True),
    runs=st.lists(
        st.tuples(MINUTES, st.floats(0, 5, allow_nan=False)), min_size=0, max_size=10, unique_by=lambda r: r[0]
    ),
    since=MINUTES,
    length=st.integers(0, 3000),
    offset=OFFSETS,
)
def test_every_kind_of_row_is_answered_in_since_until_by_instant(
    hours: list[int],
    runs: list[tuple[int, float]],
    since: int,
    length: int,
    offset: timezone,
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        _check_spans(QualityStore(Path(folder) / "q.db"), hours, runs, since, length, offset)


def _check_spans(
    store: QualityStore, hours: list[int], runs: list[tuple[int, float]], since: int, length: int, offset: timezone
) -> None:
    stored = [T0 + i * H for i in hours]
    store.put_hourly("offline", [_hour(h.astimezone(offset), i) for i, h in enumerate(stored)], T0 + 100 * H)
    at = [T0 + timedelta(minutes=m) for m, _ in runs]
    for (_, psi), when in zip(runs, at, strict=True):
        row = {"entity_type": "user", "feature": "n", "version": 1, "training_set": "ts", "psi": psi}
        store.put_drift("offline", [row], when - H, when, when.astimezone(offset))
    lo = T0 + timedelta(minutes=since)
    hi = lo + timedelta(minutes=length)
    got = store.feature("user", "n", 1, lo.astimezone(offset), hi.astimezone(timezone(timedelta(hours=3))))
    assert [datetime.fromisoformat(h["hour"]) for h in got["hourly"]] == sorted(h for h in stored if lo <= h < hi)
    assert [datetime.fromisoformat(d["computed_at"]) for d in got["drift"]] == sorted(w for w in at if lo <= w < hi)
    # The gate's worst drift since a time: the highest score computed at or after it.
    expected = max(((psi, w) for (_, psi), w in zip(runs, at, strict=True) if w >= lo), default=None)
    worst = store.worst_drift(lo.astimezone(offset)).get(("user", "n", 1))
    assert (worst[0] if worst else None) == (expected[0] if expected else None)


def test_statistics_store_passes_the_span_start_so_a_partial_first_hour_keeps_the_whole_one(tmp_path: Path) -> None:
    from serving.offline.statistics import store as store_report

    quality = QualityStore(tmp_path / "q.db")

    def report(since: datetime, hours: list[dict[str, object]]) -> dict[str, object]:
        return {"since": since.isoformat(), "until": (T0 + 2 * H).isoformat(), "hourly": hours, "drift": []}

    store_report(quality, report(T0 - H / 2, [{**_hour(T0, 60), "source": "offline"}]), T0 + H)
    store_report(quality, report(T0 + H / 2, [{**_hour(T0, 30), "source": "offline"}]), T0 + 2 * H)
    assert _counts(quality, T0, T0 + 2 * H) == [(T0, 60)]
