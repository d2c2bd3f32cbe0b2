"""Retention holds for rows written after it ran: a replay (a bounded run over the topic, a backfill) wrote back
window results older than their feature version's ``offline_retention``, which stayed in the offline table until
retention's next run. ``sinks.dual.DualWriter`` given a clock keeps them out of the offline table, with retention's
own boundary (a window that ended exactly at ``now - offline_retention`` is kept); online judges its TTL itself."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

from registry.core.catalog import FeatureCatalog
from sinks.dual import DualWriter
from sinks.records import FeatureRow
from tests.recording_writer import RecordingWriter
from tests.unit.test_columnar_writes import MIN, T0, _group, _results

NOW_US = (T0 + 15 * MIN) * 1000


def _identity(row: FeatureRow) -> tuple[object, ...]:
    return (row.entity_id, row.feature_name, row.window_end_ms, row.revision, repr(row.value))


def test_values_past_their_offline_retention_are_kept_out_of_the_offline_table(
    shipped_catalog: FeatureCatalog,
) -> None:
    count, short, last, flag = _group(shipped_catalog)
    features = (  # one window group, three retentions: windows end at T0, T0+5m and T0+10m; now is T0+15m
        count.model_copy(update={"offline_retention": timedelta(minutes=10)}),  # keeps T0+5m (exactly) and on
        short.model_copy(update={"offline_retention": timedelta(minutes=10)}),
        last.model_copy(update={"offline_retention": timedelta(minutes=5)}),  # keeps T0+10m (exactly)
        flag,  # the default, 3 years: keeps every window
    )
    results = _results(random.Random(5), features, 80)
    every = results.rows()
    expected = Counter(
        _identity(r)
        for r in every
        if r.window_end_ms * 1000 >= NOW_US - r.defined_by.offline_retention // timedelta(microseconds=1)
    )
    assert 0 < sum(expected.values()) < len(every), "the scenario must keep some values and drop others"
    assert {r.window_end_ms for r in every if _identity(r) in expected and r.feature_name == count.name} == {
        T0 + 5 * MIN,
        T0 + 10 * MIN,
    }

    by_results = DualWriter(RecordingWriter(), RecordingWriter(), retention_clock_us=lambda: NOW_US)
    by_results.add_results(results)
    by_rows = DualWriter(RecordingWriter(), RecordingWriter(), retention_clock_us=lambda: NOW_US)
    for row in every:
        by_rows.add(row)
    for writer in (by_results, by_rows):
        assert Counter(_identity(r) for r in writer.offline.rows) == expected  # type: ignore[attr-defined]
        assert Counter(_identity(r) for r in writer.online.rows) == Counter(map(_identity, every))  # type: ignore[attr-defined]
        assert writer.dropped_retained == len(every) - sum(expected.values())


def test_without_a_clock_every_value_reaches_both_stores(shipped_catalog: FeatureCatalog) -> None:
    results = _results(random.Random(6), _group(shipped_catalog), 20)
    writer = DualWriter(RecordingWriter(), RecordingWriter())
    writer.add_results(results)
    assert writer.offline.rows == writer.online.rows == results.rows()  # type: ignore[attr-defined]
    assert writer.dropped_retained == 0
