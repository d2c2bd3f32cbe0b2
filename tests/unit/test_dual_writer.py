"""The dual commit order, encoded once: offline first, and online only after offline succeeded."""

from __future__ import annotations

import dataclasses

import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.errors import StoreUnavailableError
from sinks.dual import DualWriter
from sinks.records import FeatureRow
from tests.recording_writer import RecordingWriter


def _row(shipped_catalog: FeatureCatalog) -> FeatureRow:
    return FeatureRow.of(shipped_catalog.get("user", "txn_count_1h"), "u1", 3, 0, 3_600_000)


def test_offline_commits_before_online(shipped_catalog: FeatureCatalog) -> None:
    log: list[str] = []
    offline, online = RecordingWriter("offline", log), RecordingWriter("online", log)
    writer = DualWriter(offline, online)
    writer.add(_row(shipped_catalog))
    writer.flush()
    assert log == ["offline", "online"]
    assert offline.rows == online.rows == [_row(shipped_catalog)]


def test_online_is_not_written_when_offline_fails(shipped_catalog: FeatureCatalog) -> None:
    log: list[str] = []
    writer = DualWriter(RecordingWriter("offline", log, fail=True), RecordingWriter("online", log))
    writer.add(_row(shipped_catalog))
    with pytest.raises(StoreUnavailableError):
        writer.flush()
    assert log == []


def test_a_row_carries_its_definition(shipped_catalog: FeatureCatalog) -> None:
    row = _row(shipped_catalog)
    assert row.defined_by is shipped_catalog.get("user", "txn_count_1h")
    bare = FeatureRow("user", "u1", "txn_count_1h", 1, 3, 0, 1, "s")
    with pytest.raises(ValueError, match="without its definition"):
        _ = bare.defined_by
    assert dataclasses.replace(row, definition=None) == row  # the definition is not part of a row's identity


def test_a_row_given_its_stream_is_the_row_that_computes_it(shipped_catalog: FeatureCatalog) -> None:
    """The writer passes each definition's stream once per flush (``FeatureRow.of(..., stream=)``) and each
    definition's revision cap once (``write_timestamp_us(..., cap)``): the same rows and write times."""
    from sinks.cassandra.writer import revision_cap, write_timestamp_us

    for definition in shipped_catalog.active():
        computed = FeatureRow.of(definition, "u1", 3, 0, 3_600_000, 7)
        given = FeatureRow.of(definition, "u1", 3, 0, 3_600_000, 7, stream=definition.stream)
        assert dataclasses.astuple(given) == dataclasses.astuple(computed) and given.stream == definition.stream
        late = dataclasses.replace(computed, revision=10**9)  # beyond any cap
        assert write_timestamp_us(definition, late, revision_cap(definition)) == write_timestamp_us(definition, late)
        assert write_timestamp_us(definition, late) == late.window_end_ms * 1000 + revision_cap(definition)
    sliding = shipped_catalog.get("user", "txn_count_1h")  # 1 h sliding by 5 min: 1 µs below the next window's end
    assert revision_cap(sliding) == 5 * 60 * 1_000_000 - 1
    session = sliding.model_copy(
        update={
            "window": sliding.window.model_copy(
                update={"kind": "session", "gap": sliding.window.slide, "size": None, "slide": None}
            )
        }
    )
    assert revision_cap(session) == 999  # no grid: the revision stays within the window end's millisecond
