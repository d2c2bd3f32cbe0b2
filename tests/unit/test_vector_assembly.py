"""The serving API's vector assembly (``serving.online.vectors``) against a brute-force reference: every
feature judged on its own by the timeline rule (``registry.core.timeline.judge``), over random stored
vectors whose window ends sit on and around each rule's thresholds, so that both the all-present fast
path and the per-feature path are exercised and must give the same values, timestamps, ages, statuses
and status counts."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.timeline import Rule, judge
from serving.online import vectors
from serving.online.plans import Plan
from serving.online.vectors import ColumnWriter, Tally, features_object, format_ms
from sinks.cassandra import layout as online_layout
from sinks.cassandra.reader import PackedVector, _vector
from tests.conftest import string_feature

NOW_US = 1_700_000_123_456_789  # not on a millisecond: the cuts' rounding matters
MIN_MS = 60_000


def _definitions() -> list[FeatureDefinition]:
    shipped = FeatureCatalog.from_folder()
    count, total = shipped.get("user", "txn_count_1h"), shipped.get("user", "txn_amount_sum_1h")
    out: list[FeatureDefinition] = []
    for i in range(24):
        base = (count, total, string_feature("s"))[i % 3]
        out.append(
            base.model_copy(
                update={
                    "name": f"f{i:02d}",
                    "version": 1 + i % 2,
                    "ttl": timedelta(minutes=(30, 120, 600)[i % 3]),
                    "freshness_slo": timedelta(minutes=(10, 20)[i % 2]),
                }
            )
        )
    return out


def _reference(
    definitions: list[FeatureDefinition], stored: dict[tuple[str, int], tuple[Any, int]], progress: dict[str, int]
) -> tuple[list[Any], list[str | None], list[float | None], list[str], Tally]:
    values: list[Any] = []
    times: list[str | None] = []
    ages: list[float | None] = []
    statuses: list[str] = []
    tally: Tally = {}
    for d in definitions:
        cut = Rule.of(d).cut(min(NOW_US, progress.get(d.stream, 0) * 1000), NOW_US, unit_us=1000)
        hit = stored.get((d.name, d.version))
        value, ts, status = judge(cut, None, None) if hit is None else judge(cut, hit[1], hit[0])
        values.append(value)
        statuses.append(status)
        times.append(None if ts is None else format_ms(ts))
        ages.append(None if ts is None else (NOW_US // 1000 - ts) / 1000)  # served_at (whole ms) - feature_timestamp
        if status != "present":
            key = ((d.entity, d.name, d.version), status)
            tally[key] = tally.get(key, 0) + 1
    return values, times, ages, statuses, tally


def _stored(
    rng: random.Random, definitions: list[FeatureDefinition], progress: dict[str, int], fresh: bool
) -> dict[tuple[str, int], tuple[Any, int]]:
    out: dict[tuple[str, int], tuple[Any, int]] = {}
    for d in definitions:
        cut = Rule.of(d).cut(min(NOW_US, progress.get(d.stream, 0) * 1000), NOW_US, unit_us=1000)
        if fresh:
            end = cut.present_from + rng.choice([0, 0, 5 * MIN_MS])
        else:
            if rng.random() < 0.15:
                continue  # never written (or its TTL ran out in the store)
            anchor = rng.choice([cut.expired_before, cut.latest_closed, cut.stale_before, cut.present_from])
            end = anchor + rng.choice([-5 * MIN_MS, -1, 0, 1, 5 * MIN_MS])
        value: Any = {"long": rng.randrange(-5, 5), "double": rng.random(), "string": f"m{rng.randrange(9)}"}[
            d.value_type
        ]
        out[(d.name, d.version)] = (None if rng.random() < 0.1 else value, end)
    return out


def _count_paths(monkeypatch: pytest.MonkeyPatch, fast_path: str) -> dict[str, int]:
    """How often ``vectors.<fast_path>`` answered (``fast``) or declined (``slow``), counted as the tests run."""
    taken = {"fast": 0, "slow": 0}
    original = getattr(vectors, fast_path)

    def counting(*args: Any) -> Any:
        out = original(*args)
        taken["slow" if out is None else "fast"] += 1
        return out

    monkeypatch.setattr(vectors, fast_path, counting)
    return taken


def test_vectors_equal_the_rule_applied_feature_by_feature(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = _count_paths(monkeypatch, "_fresh")
    rng = random.Random(19)
    definitions = _definitions()
    plan = Plan.of("user", [d.name for d in definitions], definitions)
    streams = sorted({d.stream for d in definitions})
    for case in range(300):
        progress = {s: (NOW_US // 1000 - rng.choice([0, 3, 7, 12, 40]) * MIN_MS) for s in streams}
        if case % 7 == 0:
            progress = {}  # no stream progress at all
        fresh = case % 2 == 0
        stored = _stored(rng, definitions, progress, fresh)
        values, times, ages, statuses, tally = _reference(definitions, stored, progress)
        column_tally: Tally = {}
        row = ColumnWriter(plan, NOW_US, column_tally).row("e1", stored, progress)
        assert row == {
            "entity_id": "e1",
            "values": values,
            "feature_timestamps": times,
            "age_seconds": ages,
            "statuses": statuses,
        }
        assert column_tally == tally
        object_tally: Tally = {}
        answer = features_object(plan, stored, progress, NOW_US, object_tally)
        assert tuple(answer) == plan.keys and object_tally == tally
        for i, key in enumerate(plan.keys):
            assert answer[key] == {
                "value": values[i],
                "feature_timestamp": times[i],
                "age_seconds": ages[i],
                "version": definitions[i].version,
                "status": statuses[i],
            }
    assert taken["fast"] > 100 and taken["slow"] > 100, taken  # both paths were taken (ColumnWriter.row's)


def test_rows_of_one_writer_have_lists_of_their_own() -> None:
    definitions = _definitions()
    plan = Plan.of("user", [d.name for d in definitions], definitions)
    progress = {d.stream: NOW_US // 1000 for d in definitions}
    rng = random.Random(7)
    writer = ColumnWriter(plan, NOW_US, {})
    a = writer.row("a", _stored(rng, definitions, progress, True), progress)
    b = writer.row("b", _stored(rng, definitions, progress, True), progress)
    assert a["statuses"] == b["statuses"] == ["present"] * len(definitions)
    assert a["statuses"] is not b["statuses"] and a["values"] is not b["values"]
    a["statuses"].insert(0, "error")  # as request-time features are placed into a row
    assert b["statuses"] == ["present"] * len(definitions)


def test_vectors_read_as_one_pack_equal_the_rule_applied_feature_by_feature(monkeypatch: pytest.MonkeyPatch) -> None:
    """A vector read as one pack (``PackedVector``: every value with one window end) takes its own fast path;
    its answers are the rule's, feature by feature, whether the pack holds every feature asked for, fewer or
    more, and with its end on either side of each feature's ``present_from``."""
    taken = _count_paths(monkeypatch, "_packed")
    rng = random.Random(23)
    definitions = _definitions()
    extra = string_feature("not_asked")
    plan = Plan.of("user", [d.name for d in definitions], definitions)
    streams = sorted({d.stream for d in definitions})
    for case in range(300):
        progress = {s: (NOW_US // 1000 - rng.choice([0, 3, 7, 12, 40]) * MIN_MS) for s in streams}
        if case % 11 == 0:
            progress = {}
        cuts = [
            Rule.of(d).cut(min(NOW_US, progress.get(d.stream, 0) * 1000), NOW_US, unit_us=1000) for d in definitions
        ]
        anchor = rng.choice(cuts)
        end = rng.choice([anchor.present_from, max(c.present_from for c in cuts), anchor.expired_before])
        end += rng.choice([-1, 0, 0, 1, 5 * MIN_MS])
        members = list(definitions)
        if case % 5 == 1:
            members.remove(rng.choice(members))  # a feature asked for is not in the pack
        if case % 3 == 2:
            members.append(extra)
        values = {
            (d.name, d.version, d.value_type): None
            if rng.random() < 0.1
            else {"long": rng.randrange(-5, 5), "double": rng.random(), "string": f"m{rng.randrange(9)}"}[d.value_type]
            for d in members
        }
        order = online_layout.pack_order(list(values))
        layout = online_layout.pack(tuple(order))
        stored = _vector([({layout.key: layout.encode(end * 1000 + 1, end, [values[m] for m in order])},)])
        assert isinstance(stored, PackedVector)
        expected = _reference(definitions, dict(stored.items()), progress)
        tally: Tally = {}
        row = ColumnWriter(plan, NOW_US, tally).row("e1", stored, progress)
        assert (row["values"], row["feature_timestamps"], row["age_seconds"], row["statuses"], tally) == expected
        object_tally: Tally = {}
        answer = features_object(plan, stored, progress, NOW_US, object_tally)
        assert tuple(answer) == plan.keys and object_tally == expected[4]
        for i, key in enumerate(plan.keys):
            assert answer[key] == {
                "value": expected[0][i],
                "feature_timestamp": expected[1][i],
                "age_seconds": expected[2][i],
                "version": definitions[i].version,
                "status": expected[3][i],
            }
    assert taken["fast"] > 50 and taken["slow"] > 50, taken
