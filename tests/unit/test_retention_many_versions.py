"""Retention with a catalog of 10,000 feature versions (design §2.1's size), against a brute-force filter.

Its filter was one term per version joined by one ``Or``, which pyiceberg nests a level per term and walks
recursively: at about 500 registered versions ``python -m serving.offline.retention`` ended in a RecursionError and
deleted nothing. Exactly the rows past their own version's retention go (one exactly at the limit stays), whatever
versions of one name, entity types and retentions share."""

from __future__ import annotations

from typing import Any

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.training_sets import TrainingSetStore
from serving.offline.retention import apply_retention
from sinks.iceberg.writer import OfflineWriter
from sinks.records import FeatureRow
from tests.unit.conftest import build_definition
from tests.unit.test_retention import DAY_MS, NOW, NOW_MS
from tests.unit.test_training_sets import iceberg_table

RETENTIONS_DAYS = (3, 10, 30, 90, 400)
AGES_MS = (1 * DAY_MS, 3 * DAY_MS, 3 * DAY_MS + 1, 10 * DAY_MS, 10 * DAY_MS + 1, 31 * DAY_MS, 120 * DAY_MS)


def _definitions() -> list[FeatureDefinition]:
    """2,500 names x 4 versions over two entity types; a version's retention differs from its neighbours'."""
    base = build_definition(name="f0")
    out = []
    for i in range(10_000):
        days = RETENTIONS_DAYS[(i * 7 + i // 2_500) % len(RETENTIONS_DAYS)]
        out.append(
            base.model_copy(
                update={
                    "name": f"f{i % 2_500}",
                    "version": 1 + i // 2_500,
                    "entity": ("user", "card")[i % 2],
                    "offline_retention": FeatureDefinition.model_validate(
                        {**base.model_dump(mode="json"), "offline_retention": f"{days}d"}
                    ).offline_retention,
                }
            )
        )
    return out


def _rows(table: Any) -> set[tuple[str, str, int, str, int]]:
    return {
        (
            r["entity_type"],
            r["feature_name"],
            r["feature_version"],
            r["entity_id"],
            int(r["event_time"].timestamp() * 1000),
        )
        for r in table.scan().to_arrow().to_pylist()
    }


def test_ten_thousand_versions_remove_exactly_the_rows_past_their_own_retention(tmp_path: Any) -> None:
    definitions = _definitions()
    written = definitions[::97]  # ~100 versions with rows, of every retention, version and entity type
    assert {d.version for d in written} == {1, 2, 3, 4} and {d.entity for d in written} == {"user", "card"}
    table = iceberg_table(tmp_path)
    writer = OfflineWriter(table, clock_ms=lambda: NOW_MS)
    for d in written:
        for age in AGES_MS:
            writer.add(FeatureRow.of(d, "e1", 1, NOW_MS - age - 3_600_000, NOW_MS - age))
    undefined = build_definition(name="not_in_the_catalog", offline_retention="1d")
    writer.add(FeatureRow.of(undefined, "e1", 1, NOW_MS - 120 * DAY_MS - 3_600_000, NOW_MS - 120 * DAY_MS))
    writer.flush()
    table = table.refresh()
    before = _rows(table)
    assert len(before) == len(written) * len(AGES_MS) + 1

    report = apply_retention(
        table, FeatureCatalog(definitions), TrainingSetStore(tmp_path / "ts.db"), now=NOW, orphans_older_than_s=0
    )

    limit = {
        (d.entity, d.name, d.version): NOW_MS - int(d.offline_retention.total_seconds() * 1000) for d in definitions
    }
    kept = {row for row in before if row[:3] not in limit or row[4] >= limit[row[:3]]}  # brute force
    assert _rows(table.refresh()) == kept
    assert report.rows_removed_total == len(before - kept) > 0
    assert ("user", "not_in_the_catalog", 1, "e1", NOW_MS - 120 * DAY_MS) in kept
    at_limit = [d for d in written if d.offline_retention.days == 10]
    assert at_limit and all((d.entity, d.name, d.version, "e1", NOW_MS - 10 * DAY_MS) in kept for d in at_limit)
