"""The stream bench's results check (``bench.stream_check``) on small synthetic stores, no services: the expected
windows equal the brute-force reference of the integration tests (``tests.integration.stream_reference``), a
correct run passes, and a dropped event, an altered value, a duplicated offline row (with one missing: the row
count unchanged), a stale online value or a refused record each fail it. Also: the sustained rate leaves out the
end-of-input burst and says so when too little is left, and a mismatch makes the bench exit non-zero."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench import stream
from bench.stream import Flush, regular_flushes, sustained_span
from bench.stream_check import (
    Feature,
    Windows,
    check_dead_letters,
    check_offline,
    check_online,
    expected_windows,
    rejected_records,
)
from bench.stream_events import generate, user_id
from bench.stream_support import FEATURES_TOML
from tests.integration.stream_reference import Record, Reference

MIN = 60_000
HOUR = 60 * MIN
SIZE, SLIDE = HOUR, 5 * MIN
START = 1_780_000_000_000 // HOUR * HOUR
USERS = 6
ENTITIES = [user_id(u) for u in range(USERS)]
FEATURES = [Feature("txn_count_1h", 1, "count", "value_long"), Feature("txn_amount_sum_1h", 1, "sum", "value_double")]
Events = tuple[np.ndarray, np.ndarray, np.ndarray]  # users, times, amounts


def _events(seed: int = 3, n: int = 400) -> Events:
    e = generate(seed, events=n, users=USERS, start_ms=START, span_ms=3 * HOUR)
    return e.users, e.times, e.amounts


def _reference(events: Events) -> dict[tuple[str, int], tuple[int, float]]:
    """The integration tests' brute force over the events: (entity, window end) -> (count, sum)."""
    users, times, amounts = events
    accepted = [
        Record(ENTITIES[u], t, str(i), a)
        for i, (u, t, a) in enumerate(zip(users.tolist(), times.tolist(), amounts.tolist(), strict=True))
    ]
    return Reference(accepted=accepted).windows(SIZE, SLIDE)


def _expected(events: Events) -> Windows:
    return expected_windows(*events, size_ms=SIZE, slide_ms=SLIDE, until_ms=2**42)


def _offline(windows: dict[tuple[str, int], tuple[int, float]]) -> list[dict[str, Any]]:
    """The rows a correct run writes offline for these windows."""
    rows = []
    for (entity, end), (count, total) in sorted(windows.items()):
        for f in FEATURES:
            rows.append(
                {
                    "entity_id": entity,
                    "feature_name": f.name,
                    "feature_version": f.version,
                    "event_time": end,
                    "revision": count,
                    "value_long": count if f.function == "count" else None,
                    "value_double": total if f.function == "sum" else None,
                }
            )
    return rows


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    schema = pa.schema(
        [
            ("entity_id", pa.large_string()),
            ("feature_name", pa.large_string()),
            ("feature_version", pa.int32()),
            ("event_time", pa.timestamp("us", tz="UTC")),
            ("revision", pa.int64()),
            ("value_long", pa.int64()),
            ("value_double", pa.float64()),
        ]
    )
    return pa.Table.from_pylist([dict(r, event_time=r["event_time"] * 1000) for r in rows], schema=schema)


def _online(windows: dict[tuple[str, int], tuple[int, float]]) -> dict[str, dict[tuple[str, int], tuple[object, int]]]:
    """What a correct run stores online: each entity's newest window."""
    out: dict[str, dict[tuple[str, int], tuple[object, int]]] = {}
    for (entity, end), (count, total) in sorted(windows.items()):
        out[entity] = {("txn_count_1h", 1): (count, end), ("txn_amount_sum_1h", 1): (total, end)}
    return out


def _check(events: Events, rows: list[dict[str, Any]], online: dict[str, Any]) -> tuple[Any, Any]:
    expected = _expected(events)
    return (
        check_offline(expected, _table(rows), FEATURES, ENTITIES),
        check_online(expected, online, FEATURES, ENTITIES),
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_expected_windows_equal_the_brute_force_reference(seed: int) -> None:
    events = _events(seed, n=300)
    windows = _expected(events)
    got = {
        (ENTITIES[u], e): (c, s)
        for u, e, c, s in zip(
            windows.users.tolist(), windows.ends.tolist(), windows.counts.tolist(), windows.sums.tolist(), strict=True
        )
    }
    reference = _reference(events)
    assert got.keys() == reference.keys()
    for key, (count, total) in reference.items():
        assert got[key][0] == count and got[key][1] == pytest.approx(total, rel=1e-12)
    until = START + 2 * HOUR
    cut = expected_windows(*events, size_ms=SIZE, slide_ms=SLIDE, until_ms=until)
    assert len(cut) == sum(1 for _, end in reference if end <= until)


def test_the_check_computes_the_bench_features(tmp_path: Path) -> None:
    from registry.core.catalog import load_folder

    shutil.copy(FEATURES_TOML, tmp_path / FEATURES_TOML.name)
    assert [Feature.of(d) for d in load_folder(tmp_path)] == FEATURES


def test_a_correct_run_passes() -> None:
    events = _events()
    reference = _reference(events)
    offline, online = _check(events, _offline(reference), _online(reference))
    assert offline.ok and online.ok, offline.lines() + online.lines()
    assert offline.lines()[0].endswith(": OK")


def test_a_dropped_event_fails_though_the_row_count_is_unchanged() -> None:
    events = _events()
    users, times, amounts = events
    reference = _reference(events)
    # an event of the busiest user whose every window holds another event: dropping it leaves the same windows
    drop = next(
        i
        for i in range(len(times))
        if all(reference[(ENTITIES[users[i]], end)][0] > 1 for end in _ends_of(int(times[i])))
    )
    keep = np.arange(len(times)) != drop
    lost = _reference((users[keep], times[keep], amounts[keep]))
    assert len(lost) == len(reference)
    offline, _ = _check(events, _offline(lost), _online(lost))
    assert not offline.ok
    assert offline.problems["txn_count_1h@v1 wrong values"] == len(_ends_of(int(times[drop])))
    assert "txn_amount_sum_1h@v1 revisions not the window's event count" in offline.problems
    assert any("wrong values" in line for line in offline.lines()[1:])


def test_a_dropped_last_event_fails_online() -> None:
    events = _events()
    users, times, amounts = events
    last = int(np.flatnonzero(users == 0)[-1])  # user 0's newest event: its newest window changes or goes
    keep = np.arange(len(times)) != last
    lost = _reference((users[keep], times[keep], amounts[keep]))
    _, online = _check(events, _offline(_reference(events)), _online(lost))
    assert not online.ok, online.lines()


def _ends_of(t: int) -> list[int]:
    first = t // SLIDE * SLIDE + SLIDE
    return list(range(first, first + SIZE, SLIDE))


def test_an_altered_value_fails() -> None:
    events = _events()
    reference = _reference(events)
    rows = _offline(reference)
    victim = next(r for r in rows if r["feature_name"] == "txn_amount_sum_1h")
    victim["value_double"] += 0.01
    offline, _ = _check(events, rows, _online(reference))
    assert offline.problems == {"txn_amount_sum_1h@v1 wrong values": 1}
    assert f"expected {victim['value_double'] - 0.01:.6f}" in "\n".join(offline.lines())

    rows = _offline(reference)
    rows[0]["value_long"] = None  # a null where a count belongs
    offline, _ = _check(events, rows, _online(reference))
    assert offline.problems == {"txn_count_1h@v1 wrong values": 1}


def test_a_duplicated_plus_a_missing_offline_row_fails() -> None:
    events = _events()
    reference = _reference(events)
    rows = _offline(reference)
    rows[5] = dict(rows[3])  # same row count: one window twice, another not at all
    offline, _ = _check(events, rows, _online(reference))
    assert set(offline.problems) == {
        "txn_amount_sum_1h@v1 windows present more than once",
        "txn_amount_sum_1h@v1 windows missing",
    }
    assert offline.problems["txn_amount_sum_1h@v1 windows present more than once"] == 1

    rows = _offline(reference)
    rows.append(dict(rows[0], revision=rows[0]["revision"] + 1))  # a second revision of a window
    offline, _ = _check(events, rows, _online(reference))
    assert offline.problems == {
        "txn_count_1h@v1 windows present more than once": 1,
        "txn_count_1h@v1 revisions not the window's event count": 1,
    }


def test_offline_rows_nobody_asked_for_fail() -> None:
    events = _events()
    reference = _reference(events)
    rows = _offline(reference)
    rows.append(dict(rows[0], event_time=rows[0]["event_time"] + 365 * 24 * HOUR))
    rows.append(dict(rows[0], entity_id="user_99999"))
    rows.append(dict(rows[0], feature_name="something_else"))
    offline, _ = _check(events, rows, _online(reference))
    assert offline.problems == {
        "txn_count_1h@v1 rows of a window no event gives": 1,
        "txn_count_1h@v1 rows of an entity no event has": 1,
        "rows of other features": 1,
    }


def test_a_stale_online_value_fails() -> None:
    events = _events()
    reference = _reference(events)
    online = _online(reference)
    entity = ENTITIES[0]
    newest = max(end for (e, end) in reference if e == entity)
    older = max(end for (e, end) in reference if e == entity and end < newest)
    count, total = reference[(entity, older)]
    online[entity] = {("txn_count_1h", 1): (count, older), ("txn_amount_sum_1h", 1): (total, older)}
    _, check = _check(events, _offline(reference), online)
    assert check.problems == {
        "txn_count_1h@v1 stale (an older window)": 1,
        "txn_amount_sum_1h@v1 stale (an older window)": 1,
    }

    online = _online(reference)
    value, end = online[entity][("txn_count_1h", 1)]
    online[entity][("txn_count_1h", 1)] = (cast(int, value) + 1, end)
    del online[ENTITIES[1]]
    online["user_99999"] = online[entity]
    _, check = _check(events, _offline(reference), online)
    assert check.problems == {
        "txn_count_1h@v1 wrong values": 1,
        "users without an online row": 1,
        "online rows of an entity no event has": 1,
    }


def test_refused_records_of_a_batch_run_count_as_dead_letters(tmp_path: Path) -> None:
    assert rejected_records(tmp_path) == (0, [])
    assert check_dead_letters(0, "x.dlq").ok
    pq.write_table(pa.table({"reason": ["bad_key", "non_finite"]}), tmp_path / "batch-rejected-1.parquet")
    pq.write_table(pa.table({"reason": ["too_late"]}), tmp_path / "batch-rejected-2.parquet")
    count, files = rejected_records(tmp_path)
    assert count == 3 and [f.name for f in files] == ["batch-rejected-1.parquet", "batch-rejected-2.parquet"]
    assert not check_dead_letters(count, "batch-rejected-*.parquet").ok


def _flush(seen_s: float, closed_ms: int) -> Flush:
    return Flush(seen_s, closed_ms, 0, {})


def test_the_sustained_rate_leaves_out_the_end_of_input_burst() -> None:
    last_event, ooo = START + 3 * HOUR - 1, 5_000
    burst = _flush(70.0, START + 4 * HOUR)  # the final watermark closed every window left
    # the reported case: the first flush, then the burst 3.4 s later
    flushes = [_flush(66.6, START + 10 * MIN), burst]
    regular = regular_flushes(flushes, last_event_ms=last_event, ooo_ms=ooo)
    assert regular == flushes[:1]
    assert isinstance(sustained_span(regular), str)
    # regular flushes, but too short a span
    short = [_flush(60 + i, START + (i + 1) * 5 * MIN) for i in range(6)]
    assert isinstance(sustained_span(regular_flushes([*short, burst], last_event_ms=last_event, ooo_ms=ooo)), str)
    # enough of them over enough time: measured from the first to the last regular one
    steady = [_flush(60 + 3 * i, START + (i + 1) * 5 * MIN) for i in range(8)]
    regular = regular_flushes([*steady, burst], last_event_ms=last_event, ooo_ms=ooo)
    assert sustained_span(regular) == (steady[0], steady[-1])
    # a flush closing through the last event's watermark is still regular; one past it is not
    edge = [_flush(1, last_event - ooo), _flush(2, last_event - ooo + 1)]
    assert regular_flushes(edge, last_event_ms=last_event, ooo_ms=ooo) == edge[:1]


def test_a_mismatch_exits_non_zero(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(stream, "require_stack", lambda *a, **k: None)
    monkeypatch.setattr(stream, "run_throughput", lambda *a: False)
    assert stream.main(["--only", "throughput"]) == 1
    assert "MISMATCH" in capsys.readouterr().err
    monkeypatch.setattr(stream, "run_throughput", lambda *a: True)
    assert stream.main(["--only", "throughput"]) == 0
