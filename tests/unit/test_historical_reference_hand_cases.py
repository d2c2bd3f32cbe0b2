"""get_historical_features on hand-computed cases: exact values, sub-ms and ns labels, units, snapshots, replays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from registry.core.catalog import FeatureCatalog
from serving.offline.historical import get_historical_features
from sinks.iceberg.writer import OfflineWriter
from sinks.records import FeatureRow
from tests.unit.test_historical_reference import (
    CLOCK0,
    GHOST,
    HOUR,
    MIN,
    T0,
    Written,
    _us,
    catalog,
    hand_table,
    iceberg_table,
    label_table,
    reference,
    write,
)

__all__ = ["catalog", "hand_table"]  # the fixtures, used by name


# ---------------------------------------------------------------------------------------------
# Hand-computed cases: exact values that do not depend on registry.core.timeline being right
# ---------------------------------------------------------------------------------------------


HAND_CASES = [
    # (entity, label µs, txn_count_1h, txn_amount_sum_1h, amount_max_15m)
    ("u1", _us(T0), 6, 11.25, 42.0),  # a window ending exactly at the label is visible; latest ingestion wins
    ("u1", _us(T0, -1), None, None, None),  # 1 µs before the first window end
    ("u1", _us(T0, 999), 6, 11.25, 42.0),  # 999 µs after the window end: the same rows
    ("u1", _us(T0 + 5 * MIN - 1), 6, 11.25, 42.0),  # next 5-minute window not closed yet
    ("u1", _us(T0 + 5 * MIN), 0, 0.0, 42.0),  # it closed with no row: empty (the 15-minute one has not)
    ("u1", _us(T0 + 10 * MIN), 9, 0.0, 42.0),
    ("u1", _us(T0 + 15 * MIN), 0, 0.0, None),  # max of an empty tumbling window has no value
    ("u1", _us(T0 + 10 * MIN + 2 * HOUR), 0, None, None),  # count: exactly ttl old, not expired; sum: expired
    ("u1", _us(T0 + 10 * MIN + 2 * HOUR + 1), None, None, None),  # 1 ms past ttl: expired
    ("u1", _us(T0 + 10 * MIN + 2 * HOUR, 999), None, None, None),  # 999 µs past the ttl: expired, not "same ms"
    ("u2", _us(T0 + 10 * MIN), None, None, None),  # only a merchant row has this id
    (GHOST, _us(T0 + 10 * MIN), None, None, None),
    ("u1", _us(T0 - HOUR), None, None, None),
    ("u1", _us(T0), 6, 11.25, 42.0),  # duplicate of the first row
    ("u0", _us(T0 + 30 * MIN), 3, 4.5, 7.0),
    ("u0", _us(T0 + 45 * MIN), 3, 4.5, 7.0),  # beyond the data's reach: later windows are not known closed
    ("u1", _us(T0 + 45 * MIN), 0, 0.0, None),  # windows up to the reach closed empty; max: 45m > 35m ttl
]


@pytest.mark.parametrize("tz", [None, "UTC", "Asia/Kolkata"])
def test_hand_computed_values(hand_table: tuple[Any, list[Written]], catalog: FeatureCatalog, tz: str | None) -> None:
    table, written = hand_table
    features = ["amount_max_15m", "txn_count_1h", "txn_amount_sum_1h"]
    order = [3, 0, 8, 15, 13, 1, 6, 11, 16, 2, 9, 4, 12, 7, 14, 5, 10]  # out of time order
    assert sorted(order) == list(range(len(HAND_CASES)))
    labels = [(HAND_CASES[i][0], HAND_CASES[i][1]) for i in order]
    result = get_historical_features(
        table, catalog, label_table(labels, tz), features, entity_type="user", entity_column="user"
    )
    assert result.column("row_id").to_pylist() == list(range(len(order)))
    assert result.column("txn_count_1h").to_pylist() == [HAND_CASES[i][2] for i in order]
    assert result.column("txn_amount_sum_1h").to_pylist() == [HAND_CASES[i][3] for i in order]
    assert result.column("amount_max_15m").to_pylist() == [HAND_CASES[i][4] for i in order]
    # And the reference agrees with the hand-computed values.
    assert reference(written, catalog, "user", features, labels) == {
        "amount_max_15m": [HAND_CASES[i][4] for i in order],
        "txn_count_1h": [HAND_CASES[i][2] for i in order],
        "txn_amount_sum_1h": [HAND_CASES[i][3] for i in order],
    }


def test_sub_millisecond_hand_computed_values(tmp_path: Path, catalog: FeatureCatalog) -> None:
    """Two windows ending within one millisecond, labels at and around them in µs and ns, and the TTL edge."""
    count = catalog.get("user", "txn_count_1h")  # sliding 1h / 5m, ttl 2h
    table = iceberg_table(tmp_path)
    early, late = FeatureRow.of(count, "u1", 5, T0 - HOUR, T0, 1), FeatureRow.of(count, "u1", 8, T0 - HOUR, T0, 2)
    write(table, catalog, [(CLOCK0, [(early, _us(T0, 300)), (late, _us(T0, 700))])])
    ttl_us = 2 * HOUR * 1000
    cases_us = [
        (_us(T0, 299), None),  # 1 µs before the first row: it is in this label's future
        (_us(T0, 300), 5),
        (_us(T0, 699), 5),  # the later row of the same millisecond is still in the future
        (_us(T0, 700), 8),
        (_us(T0, 700) + ttl_us, 8),  # exactly the TTL old: kept
        (_us(T0, 701) + ttl_us, None),  # 1 µs older than the TTL: expired
    ]
    cases_ns = [
        (_us(T0, 300) * 1000 - 1, None),  # 1 ns before the row
        (_us(T0, 300) * 1000, 5),
        (_us(T0, 700) * 1000 + 999, 8),
        ((_us(T0, 700) + ttl_us) * 1000, 8),
        ((_us(T0, 700) + ttl_us) * 1000 + 1, None),  # 1 ns older than the TTL
    ]
    for unit, cases in (("us", cases_us), ("ns", cases_ns)):
        labels = [("u1", at) for at, _ in cases]
        result = get_historical_features(
            table, catalog, label_table(labels, None, unit), ["txn_count_1h"], entity_type="user", entity_column="user"
        )
        expected = [value for _, value in cases]
        assert result.column("txn_count_1h").to_pylist() == expected, unit
        written = [Written(early, CLOCK0, _us(T0, 300)), Written(late, CLOCK0, _us(T0, 700))]
        assert reference(written, catalog, "user", ["txn_count_1h"], labels, 1000 if unit == "us" else 10**6) == {
            "txn_count_1h": expected
        }


def test_label_result_does_not_depend_on_other_labels(
    hand_table: tuple[Any, list[Written]], catalog: FeatureCatalog
) -> None:
    table, _ = hand_table

    def count_at(*labels: tuple[str, int]) -> list[Any]:
        result = get_historical_features(
            table, catalog, label_table(labels, None), ["txn_count_1h"], entity_type="user", entity_column="user"
        )
        return result.column("txn_count_1h").to_pylist()

    # The data reaches T0 + 30m (u0's row), so by T0 + 5m the window ending then has closed, empty for u1.
    assert count_at(("u1", _us(T0 + 5 * MIN)), ("u0", _us(T0 + 30 * MIN))) == [0, 3]
    # Alone: the reach must still come from the whole table, not from rows up to this label (that gave 6).
    assert count_at(("u1", _us(T0 + 5 * MIN))) == [0]


@pytest.mark.parametrize(
    ("unit", "value", "expected"),
    [
        ("s", T0 // 1000, 6),
        ("ms", T0, 6),
        ("ms", T0 - 1, None),
        ("ns", T0 * 1_000_000, 6),
        ("ns", T0 * 1_000_000 - 1, None),
        ("ns", (T0 + 5 * MIN) * 1_000_000 - 1, 6),
    ],
)
def test_timestamp_units(
    hand_table: tuple[Any, list[Written]], catalog: FeatureCatalog, unit: str, value: int, expected: int | None
) -> None:
    table, _ = hand_table
    labels = pa.table({"user": ["u1"], "event_timestamp": pa.array([value], type=pa.timestamp(unit))})
    result = get_historical_features(table, catalog, labels, ["txn_count_1h"], entity_type="user", entity_column="user")
    assert result.column("txn_count_1h").to_pylist() == [expected]


def test_snapshot_id_reads_the_table_as_of_that_snapshot(
    hand_table: tuple[Any, list[Written]], catalog: FeatureCatalog
) -> None:
    table, _ = hand_table
    snapshots = sorted(table.metadata.snapshots, key=lambda s: s.sequence_number)
    assert len(snapshots) == 3
    labels = label_table([("u1", _us(T0))], None)
    values = [
        get_historical_features(
            table,
            catalog,
            labels,
            ["txn_count_1h"],
            entity_type="user",
            entity_column="user",
            snapshot_id=s.snapshot_id,
        )
        .column("txn_count_1h")
        .to_pylist()
        for s in snapshots
    ]
    # Batch 2 (ingested at +3, revision 1) beats batch 3 (ingested at +2, revision 5), appended later:
    # the latest ingestion wins before the revision.
    assert values == [[5], [6], [6]]


def test_replayed_rows_are_not_appended_again(hand_table: tuple[Any, list[Written]], catalog: FeatureCatalog) -> None:
    table, written = hand_table
    before = table.scan().to_arrow().num_rows
    snapshots = len(table.metadata.snapshots)
    count = catalog.get("user", "txn_count_1h")
    replay = [FeatureRow.of(count, "u1", 5, T0 - HOUR, T0), FeatureRow.of(count, "u1", 6, T0 - HOUR, T0, 1)]
    now = [CLOCK0 + 100]
    writer = OfflineWriter(table, clock_ms=lambda: now[0])
    for row in replay:
        writer.add(row)
    writer.flush()
    assert writer.written == 0
    assert len(writer) == 0
    table.refresh()
    assert table.scan().to_arrow().num_rows == before == len(written)
    assert len(table.metadata.snapshots) == snapshots
    labels = label_table([("u1", _us(T0))], None)
    result = get_historical_features(table, catalog, labels, ["txn_count_1h"], entity_type="user", entity_column="user")
    assert result.column("txn_count_1h").to_pylist() == [6]
