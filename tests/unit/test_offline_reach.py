"""The stream job's offline writer checks identities only for rows the table may hold already (``TableReach``): rows
at or below the highest window end of its features when it opened, or in what another writer committed since.
Each (window, revision) is still in the table once, whatever replays and racing writers do, and rows above the
reach are appended without reading the table."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from sinks.iceberg import layout as offline_layout
from sinks.iceberg.reach import END_OF_TIME_US, TableReach
from sinks.iceberg.writer import OfflineWriter, ensure_table
from sinks.records import WindowResults

MIN = 60_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, epoch ms


@pytest.fixture
def table(tmp_path: Path) -> Table:
    catalog = SqlCatalog("c", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "w").as_uri())
    return ensure_table(catalog, "ns")


@pytest.fixture
def count() -> FeatureDefinition:
    return FeatureCatalog.from_folder().get("user", "txn_count_1h")


def _results(feature: FeatureDefinition, rows: list[tuple[str, int, int]]) -> WindowResults:
    """(entity, window end ms, revision) each, the value the revision."""
    ends = np.array([end for _, end, _ in rows], dtype=np.int64)
    return WindowResults(
        (feature,),
        [entity for entity, _, _ in rows],
        ends - 60 * MIN,
        ends,
        np.array([r for _, _, r in rows], dtype=np.int64),
        [[r for _, _, r in rows]],
    )


def _write(writer: OfflineWriter, feature: FeatureDefinition, rows: list[tuple[str, int, int]]) -> None:
    writer.add_results(_results(feature, rows))
    writer.flush()


def _stored(table: Table) -> list[tuple[str, str, int, int]]:
    """(entity, feature, window end ms, revision) of every row, sorted, repeats kept."""
    data = table.refresh().scan(selected_fields=offline_layout.IDENTITY_COLUMNS).to_arrow()
    ends = (data.column("event_time").cast(pa.int64()).to_numpy() // 1000).tolist()
    return sorted(
        zip(
            data.column("entity_id").to_pylist(),
            data.column("feature_name").to_pylist(),
            ends,
            data.column("revision").to_pylist(),
            strict=True,
        )
    )


def _writer(table: Table, feature: FeatureDefinition, attempt: str | None = None) -> OfflineWriter:
    """A writer as the stream job opens one, with a table object of its own: its reach taken from the table now."""
    table = table.catalog.load_table(table.name())
    return OfflineWriter(
        table, clock_ms=lambda: T0 + 60 * MIN, reach=TableReach(table, {(feature.name, feature.version)}, attempt)
    )


def test_a_row_at_the_reach_is_checked_and_one_above_it_is_appended_unread(
    table: Table, count: FeatureDefinition
) -> None:
    _write(OfflineWriter(table), count, [("u1", T0, 3)])
    writer = _writer(table, count)
    assert writer._reach is not None and writer._reach.reach_us == T0 * 1000
    # u1 at T0 again (at the reach: checked, already held), u2 at T0 (at the reach: checked, new), u1 one ms later.
    _write(writer, count, [("u1", T0, 3), ("u2", T0, 3), ("u1", T0 + 1, 1)])
    assert (writer.checked, writer.written) == (2, 2)
    assert _stored(table) == [("u1", count.name, T0, 3), ("u1", count.name, T0 + 1, 1), ("u2", count.name, T0, 3)]
    _write(writer, count, [("u3", T0 + 5 * MIN, 1)])  # above the reach, and no one else committed: not read
    assert (writer.checked, writer.written) == (2, 3)


def test_rows_another_writer_committed_after_this_one_opened_are_not_appended_twice(
    table: Table, count: FeatureDefinition
) -> None:
    """A failover's old attempt finishing its flush while the restored one replays: the restored writer opened on an
    empty table (nothing to check), so its first append is based on a snapshot the old attempt's commit replaced; it
    loses that race, looks at what was committed, and checks its rows against it."""
    restored = _writer(table, count)
    old = _writer(table, count)
    rows = [("u1", T0, 3), ("u2", T0, 4)]
    _write(old, count, rows)
    _write(restored, count, rows)
    assert (restored.written, restored.checked) == (0, 2)
    assert restored._reach is not None and restored._reach.reach_us == T0 * 1000
    _write(restored, count, [("u1", T0 + 5 * MIN, 1)])
    assert (restored.written, restored.checked) == (1, 2)
    assert _stored(table) == sorted(
        [*[(e, count.name, end, r) for e, end, r in rows], ("u1", count.name, T0 + 5 * MIN, 1)]
    )


def test_appends_of_the_writers_own_job_attempt_do_not_move_its_reach(table: Table, count: FeatureDefinition) -> None:
    """The job's writer subtasks of one attempt hold different entities: each appends above its reach without a
    check though the other committed the same window ends. An append of another attempt (a failed one finishing its
    flush) moves it, and the rows at or below it are checked."""
    ours, sibling = _writer(table, count, "run/1"), _writer(table, count, "run/1")
    _write(sibling, count, [("u1", T0, 1)])
    _write(ours, count, [("u2", T0, 1)])
    assert (ours.checked, ours.written) == (0, 1)
    _write(_writer(table, count, "run/0"), count, [("u3", T0 + 5 * MIN, 1)])  # the failed attempt
    _write(sibling, count, [("u1", T0 + 10 * MIN, 1)])
    _write(ours, count, [("u2", T0 + 5 * MIN, 1), ("u2", T0 + 10 * MIN, 1)])
    assert (ours.checked, ours.written) == (1, 3)  # at the failed attempt's window end, not at the sibling's
    attempts = {s.summary["featurestore.attempt"] for s in table.refresh().metadata.snapshots if s.summary is not None}
    assert attempts == {"run/0", "run/1"}


def test_the_reach_counts_only_the_writers_features(table: Table, count: FeatureDefinition) -> None:
    other = count.model_copy(update={"name": "zz_other_count"})
    _write(OfflineWriter(table), count, [("u1", T0, 1)])
    _write(OfflineWriter(table), other, [("u1", T0 + 10 * MIN, 1)])
    table = table.refresh()
    assert TableReach(table, {(count.name, count.version)}).reach_us == T0 * 1000
    assert TableReach(table, {(other.name, other.version)}).reach_us == (T0 + 10 * MIN) * 1000
    assert (
        TableReach(table, {(count.name, count.version), (other.name, other.version)}).reach_us == (T0 + 10 * MIN) * 1000
    )
    assert TableReach(table, {("no_such_feature", 1)}).reach_us is None


def test_a_new_versions_writer_is_not_checked_against_the_version_before_it(
    table: Table, count: FeatureDefinition
) -> None:
    """A backfill of version 2 beside the live job's version 1: the files of version 1 alone (their version bounds
    1..1) do not move version 2's reach, so its rows are appended unread; once version 2 is in the table, a restarted
    writer of it checks its replay. A file whose version bounds span the version (1 and 3 in one file) still counts."""
    v2 = count.model_copy(update={"version": 2})
    v3_other = count.model_copy(update={"name": "zz_other_count", "version": 3})
    _write(OfflineWriter(table), count, [("u1", T0, 1), ("u1", T0 + 10 * MIN, 1)])
    backfill = _writer(table, v2)
    assert backfill._reach is not None and backfill._reach.reach_us is None
    _write(backfill, v2, [("u1", T0, 1), ("u1", T0 + 10 * MIN, 1)])
    assert (backfill.checked, backfill.written) == (0, 2)
    restarted = _writer(table, v2)
    _write(restarted, v2, [("u1", T0, 1), ("u1", T0 + 10 * MIN, 1)])
    assert (restarted.checked, restarted.written) == (2, 0)
    assert TableReach(table.refresh(), {(v2.name, 2)}).reach_us == (T0 + 10 * MIN) * 1000
    assert TableReach(table.refresh(), {(v2.name, 4)}).reach_us is None
    # one file holding count@1 and zz_other_count@3: its bounds admit count@2 (conservative), not count@4
    writer = OfflineWriter(table)
    writer.add_results(_results(count, [("u2", T0 + 20 * MIN, 1)]))
    writer.add_results(_results(v3_other, [("u2", T0 + 20 * MIN, 1)]))
    writer.flush()
    assert TableReach(table.refresh(), {(v2.name, 2)}).reach_us == (T0 + 20 * MIN) * 1000
    assert TableReach(table.refresh(), {(v2.name, 4)}).reach_us is None
    assert _stored(table).count(("u1", count.name, T0, 1)) == 2  # versions 1 and 2, each once


def test_a_lookback_that_cannot_follow_the_snapshots_plans_the_table_again(
    table: Table, count: FeatureDefinition
) -> None:
    reach = TableReach(table.refresh(), {(count.name, count.version)})
    assert (reach.reach_us, reach.plans) == (None, 1)
    _write(OfflineWriter(table), count, [("u1", T0, 1)])
    reach.looked(table.refresh())  # follows the one new snapshot back to the one it saw
    assert (reach.reach_us, reach.plans) == (T0 * 1000, 1)
    _write(OfflineWriter(table), count, [("u1", T0 + MIN, 1)])
    reach.snapshot_id = 12345  # a snapshot the table no longer has (expired, or rolled back past)
    reach.looked(table.refresh())
    assert (reach.reach_us, reach.plans) == ((T0 + MIN) * 1000, 2)


def test_a_file_without_a_time_bound_puts_the_reach_at_the_end_of_time(table: Table, count: FeatureDefinition) -> None:
    reach = TableReach(table.refresh(), {(count.name, count.version)})
    unbounded = SimpleNamespace(lower_bounds={}, upper_bounds={})
    assert reach._highest([unbounded]) == END_OF_TIME_US
    assert reach.may_hold(np.array([0, 2**62])).tolist() == [False, False]  # no rows yet: nothing held
    reach.reach_us = 5
    assert reach.may_hold(np.array([4, 5, 6])).tolist() == [True, True, False]
    with pytest.raises(ValueError, match="of the features it is about"):
        TableReach(table, set())


@pytest.mark.parametrize("seed", range(4))
def test_replays_restarts_and_late_finishing_old_attempts_leave_each_identity_once(
    table: Table, count: FeatureDefinition, seed: int
) -> None:
    """A brute-force run: one stream of results (40 batches of new identities, late revisions of earlier windows
    among them) written by attempts that each open a writer and replay from an earlier batch than the last one
    committed, while the attempt before may still finish one more flush after the next one opened. The table holds
    every identity exactly once; a writer checks no row above the reach it had when it opened unless another
    writer committed after it."""
    rnd = random.Random(seed)
    batches: list[list[tuple[str, int, int]]] = []
    revisions: dict[tuple[str, int], int] = {}
    for i in range(40):
        end = T0 + i * 5 * MIN
        batch = []
        for entity in rnd.sample([f"u{k}" for k in range(8)], 4):
            window = (entity, end if rnd.random() < 0.8 else max(T0, end - rnd.choice([5, 10]) * MIN))
            revisions[window] = revisions.get(window, 0) + 1
            batch.append((window[0], window[1], revisions[window]))
        batches.append(batch)
    done, previous, attempt = 0, None, 0
    while done < len(batches):
        start = max(0, done - rnd.randint(0, 6))  # the checkpoint restored is behind the last commit
        writer = _writer(table, count, f"run/{attempt}")
        attempt += 1
        if previous is not None and done < len(batches) and rnd.random() < 0.5:
            _write(previous, count, batches[done])  # the old attempt's last flush, after the new one opened
            done += 1
        stop = min(len(batches), max(done, start) + rnd.randint(1, 12))
        for batch in batches[start:stop]:
            _write(writer, count, batch)
        done, previous = max(done, stop), writer
    expected = sorted({(e, count.name, end, r) for batch in batches for e, end, r in batch})
    assert _stored(table) == expected


def test_a_writer_without_a_reach_checks_every_row(table: Table, count: FeatureDefinition) -> None:
    writer = OfflineWriter(table)
    _write(writer, count, [("u1", T0, 1), ("u1", T0, 1)])  # repeated within a flush: kept once
    _write(writer, count, [("u1", T0, 1), ("u2", T0 + 5 * MIN, 1)])
    assert (writer.checked, writer.written) == (4, 2)
    assert len(_stored(table)) == 2


def test_a_writer_that_opened_on_an_empty_table_counts_rows_whose_snapshot_an_erasure_expired(
    table: Table, count: FeatureDefinition
) -> None:
    """The restored writer opened before the table had a snapshot; the old attempt then committed the rows it
    replays, and an erasure of another entity expired that snapshot (its own adds no file: the entity's file is
    dropped whole). The lookback from the erasure's snapshot cannot reach the table's first one: it plans the table
    again, rather than taking the erasure's files for everything committed since the writer opened."""
    from serving.offline.erasure import erase_table

    restored = _writer(table, count)
    old = _writer(table, count)
    _write(old, count, [("u9", T0, 1)])
    rows = [("u1", T0 + 5 * MIN, 2)]
    _write(old, count, rows)
    erase_table(table.refresh(), count.entity, "u9")
    assert len(table.refresh().metadata.snapshots) == 1  # the erasure's own snapshot: its parent is gone
    _write(restored, count, rows)
    assert (restored.written, restored.checked) == (0, 1)
    assert _stored(table) == [("u1", count.name, T0 + 5 * MIN, 2)]


def test_a_flush_again_after_a_look_that_failed_looks_again(
    table: Table, count: FeatureDefinition, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flush refreshed the table before its append, but reading the snapshots since its last look failed
    (a manifest unreadable for a moment): StoreUnavailableError, its rows still buffered. The flush done again must
    not append on the refreshed table as if the writer had looked at it: the rows the other commit brought are not in
    its reach yet, so it looks again (and finds them) first."""
    from registry.core.errors import StoreUnavailableError
    from sinks.iceberg import reach as reach_module

    restored = _writer(table, count)
    rows = [("u1", T0, 3)]
    _write(_writer(table, count), count, rows)  # the old attempt, after the restored writer opened
    walk = reach_module._files_added_since
    failures = iter([OSError("manifest list unreadable")])

    def flaky(table: Table, snapshot_id: int | None, attempt: str | None = None) -> list[object] | None:
        for failure in failures:
            raise failure
        return walk(table, snapshot_id, attempt)

    monkeypatch.setattr(reach_module, "_files_added_since", flaky)
    restored.add_results(_results(count, rows))
    with pytest.raises(StoreUnavailableError):
        restored.flush()
    restored.flush()  # what was buffered, again
    assert (restored.written, restored.checked) == (0, 1)
    assert _stored(table) == [("u1", count.name, T0, 3)]
