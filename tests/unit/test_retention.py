"""Offline retention on a real Iceberg table (SQLite catalog, local warehouse), against a brute-force filter.

Exactly the rows past each version's ``offline_retention`` go (a row exactly at the limit stays), no
older snapshot can be read afterwards and no file on disk still holds a removed row, except what a
recently recorded training-set manifest pins (kept and named, or expired and named as invalidated).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.training_sets import Manifest, TrainingSetStore
from serving.offline.retention import apply_retention
from sinks.iceberg.writer import OfflineWriter
from sinks.records import FeatureRow
from tests.unit.conftest import build_definition
from tests.unit.test_training_sets import iceberg_table

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAY_MS = 86_400_000
SHORT = build_definition(name="short_count", offline_retention="10d")
LONG = build_definition(name="long_count", offline_retention="30d")
LONG_V2 = build_definition(name="long_count", version=2, offline_retention="5d", ttl="4h")
CATALOG = FeatureCatalog([SHORT, LONG, LONG_V2])
# Window ends (ms before NOW) written for every feature version, one append (snapshot) per group.
AGES_MS = [
    [1 * DAY_MS, 5 * DAY_MS, 5 * DAY_MS + 1],
    [10 * DAY_MS - 1, 10 * DAY_MS, 10 * DAY_MS + 1],
    [30 * DAY_MS, 30 * DAY_MS + 1, 45 * DAY_MS],
]


def _write(table: Any) -> list[int]:
    snapshots = []
    for ages in AGES_MS:
        writer = OfflineWriter(table, clock_ms=lambda: NOW_MS)
        for d in (SHORT, LONG, LONG_V2):
            for age in ages:
                for entity in ("alice", "bob"):
                    end = NOW_MS - age
                    writer.add(FeatureRow.of(d, entity, 1, end - 3_600_000, end))
        writer.flush()
        table = table.refresh()
        snapshots.append(table.current_snapshot().snapshot_id)
    return snapshots


def _limit_ms(d: FeatureDefinition) -> int:
    return NOW_MS - int(d.offline_retention.total_seconds() * 1000)


def _expected_kept() -> set[tuple[str, int, str, int]]:
    """Brute force: every written row whose window end is not before now - retention of its version."""
    return {
        (d.name, d.version, entity, NOW_MS - age)
        for d in (SHORT, LONG, LONG_V2)
        for ages in AGES_MS
        for age in ages
        for entity in ("alice", "bob")
        if NOW_MS - age >= _limit_ms(d)
    }


def _rows(table: Any, snapshot_id: int | None = None) -> set[tuple[str, int, str, int]]:
    rows = table.scan(snapshot_id=snapshot_id).to_arrow().to_pylist()
    return {
        (r["feature_name"], r["feature_version"], r["entity_id"], int(r["event_time"].timestamp() * 1000)) for r in rows
    }


def _on_disk(folder: Path) -> set[tuple[str, int, str, int]]:
    out = set()
    for path in (folder / "wh").rglob("*.parquet"):
        for r in pq.read_table(path).to_pylist():
            out.add((r["feature_name"], r["feature_version"], r["entity_id"], int(r["event_time"].timestamp() * 1000)))
    return out


def _manifest(snapshot_id: int, created: datetime, n: int | None = None) -> Manifest:
    """A training-set manifest on ``snapshot_id``; ``n`` (default: none) its row count and what tells it apart."""
    return Manifest.create(
        entity_type="user",
        entity_column="user_id",
        timestamp_column="event_timestamp",
        features=(),
        offline_table="fs.offline_feature_values",
        snapshot_id=snapshot_id,
        as_of=None,
        ingested_until=None,
        labels_sha256="0" * 64,
        labels_rows=0,
        row_count=n or 0,
        content_sha256=f"{snapshot_id if n is None else n:064d}",
        created_at=created.isoformat(),
    )


def test_exactly_the_rows_past_retention_go_and_time_travel_cannot_reach_them(tmp_path: Path) -> None:
    table = iceberg_table(tmp_path)
    snapshots = _write(table)
    written = _rows(table)
    assert len(written) == 3 * 9 * 2
    report = apply_retention(table, CATALOG, TrainingSetStore(tmp_path / "ts.db"), now=NOW, orphans_older_than_s=0)
    table = table.refresh()
    kept = _expected_kept()
    assert _rows(table) == kept
    removed = written - kept
    assert report.rows_removed_total == len(removed) == sum(report.rows_removed.values())
    assert report.rows_removed == {
        "user/short_count@1": 2 * 4,  # 10 d + 1 ms, 30 d, 30 d + 1 ms, 45 d (10 d exactly stays)
        "user/long_count@1": 2 * 2,  # 30 d + 1 ms, 45 d
        "user/long_count@2": 2 * 7,  # everything older than 5 d
    }
    assert ("short_count", 1, "alice", NOW_MS - 10 * DAY_MS) in kept  # at exactly the limit: in
    assert ("long_count", 1, "alice", NOW_MS - 30 * DAY_MS) in kept
    # No older snapshot is left to time-travel to, and no file on disk holds a removed row.
    assert set(report.snapshots_expired) >= set(snapshots)
    assert [s.snapshot_id for s in table.metadata.snapshots] == [table.current_snapshot().snapshot_id]
    for old in snapshots:
        assert table.snapshot_by_id(old) is None
    assert _on_disk(tmp_path) == kept
    assert report.files_deleted > 0
    # A second run finds nothing to remove.
    again = apply_retention(table, CATALOG, TrainingSetStore(tmp_path / "ts.db"), now=NOW)
    assert (again.rows_removed_total, again.rows_removed, again.snapshots_expired) == (0, {}, [])


def test_a_recent_manifests_snapshot_is_kept_and_named_unless_expired_on_purpose(tmp_path: Path) -> None:
    table = iceberg_table(tmp_path)
    snapshots = _write(table)
    store = TrainingSetStore(tmp_path / "ts.db")
    recent, old = _manifest(snapshots[2], NOW - timedelta(days=1)), _manifest(snapshots[0], NOW - timedelta(days=60))
    store.record(recent)
    store.record(old)
    report = apply_retention(table, CATALOG, store, now=NOW, pin_days=30)
    table = table.refresh()
    assert report.manifests_keeping_snapshots == {str(snapshots[2]): [recent.id]}
    assert report.manifests_invalidated == [old.id]  # its pin lapsed: its snapshot went
    assert table.snapshot_by_id(snapshots[2]) is not None and table.snapshot_by_id(snapshots[0]) is None
    held = len(_rows(table, snapshots[2]) - _expected_kept())
    assert held > 0 and report.rows_past_retention_in_kept_snapshots == {str(snapshots[2]): held}
    assert _rows(table) == _expected_kept()
    # --expire-pinned: the pinned snapshot goes too, and its manifest is named.
    strict = apply_retention(table, CATALOG, store, now=NOW, pin_days=30, expire_pinned=True, orphans_older_than_s=0)
    table = table.refresh()
    assert strict.manifests_invalidated == [recent.id]
    assert table.snapshot_by_id(snapshots[2]) is None
    assert _on_disk(tmp_path) == _expected_kept()


def test_a_training_set_built_again_pins_its_snapshot_from_its_latest_build(tmp_path: Path) -> None:
    """The registry kept the first build's manifest of a training set built again (the same id): its pin lapsed
    30 days after the first build, while the manifest file beside the latest build said that build's time."""
    table = iceberg_table(tmp_path)
    snapshots = _write(table)
    store = TrainingSetStore(tmp_path / "ts.db")
    first = _manifest(snapshots[0], NOW - timedelta(days=60))
    again = first.model_copy(update={"created_at": (NOW - timedelta(days=1)).isoformat()})
    assert again.id == first.id
    assert store.record(first, labels_uri="/a/labels.parquet") is True
    assert store.record(again, labels_uri="/b/labels.parquet") is False
    assert store.record(first) is False  # an older build recorded late does not take the pin back
    held = store.get(first.id)
    assert (held.manifest.created_at, held.labels_uri) == (again.created_at, "/a/labels.parquet")
    report = apply_retention(table, CATALOG, store, now=NOW, pin_days=30)
    assert report.manifests_keeping_snapshots == {str(snapshots[0]): [first.id]}
    assert report.manifests_invalidated == []
    assert table.refresh().snapshot_by_id(snapshots[0]) is not None
    store.record(again, labels_uri="/kept/labels.parquet", labels_kept=True)  # a copy kept for rebuilds replaces it
    assert store.get(first.id).labels_uri == "/kept/labels.parquet"


def test_a_dry_run_changes_nothing(tmp_path: Path) -> None:
    table = iceberg_table(tmp_path)
    snapshots = _write(table)
    report = apply_retention(table, CATALOG, TrainingSetStore(tmp_path / "ts.db"), now=NOW, dry_run=True)
    table = table.refresh()
    assert report.dry_run and report.rows_removed_total == len(_rows(table) - _expected_kept())
    assert [s.snapshot_id for s in table.metadata.snapshots] == snapshots
    # Rows go, so the run commits a new current snapshot and every one there now expires (none is pinned).
    assert sorted(report.snapshots_expired) == sorted(snapshots)


@pytest.mark.parametrize("text", ["0d", "1d"])
def test_orphan_files_younger_than_the_cutoff_stay(tmp_path: Path, text: str) -> None:
    from sinks.iceberg.maintenance import remove_orphan_files

    table = iceberg_table(tmp_path)
    _write(table)
    stray = tmp_path / "wh" / "fs.db" / "offline_feature_values" / "data" / "stray.parquet"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"not reachable")
    deleted = remove_orphan_files(table.refresh(), older_than_s=0 if text == "0d" else 86_400)
    assert (deleted, stray.exists()) == ((1, False) if text == "0d" else (0, True))


@pytest.mark.parametrize(("value", "message"), [("-5", "must be 0 or more days"), ("nan", "must be 0 or more days")])
def test_cli_refuses_a_pin_days_that_pins_nothing_or_is_not_a_number(
    capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    from serving.offline import retention

    with pytest.raises(SystemExit) as exited:
        retention.main(["--dry-run", f"--pin-days={value}"])
    assert exited.value.code == 2
    assert f"argument --pin-days: {message}" in capsys.readouterr().err


def test_a_retention_reaching_back_before_year_1_deletes_nothing() -> None:
    """A valid but very long ``offline_retention`` (1,000,000 days): its cutoff has no timestamp; nothing is past it."""
    from pyiceberg.expressions import AlwaysFalse

    from serving.offline.retention import past_retention

    forever = build_definition(name="forever_count", offline_retention="1000000d")
    assert past_retention([forever], NOW_MS * 1000) == AlwaysFalse()


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "error: no API token"),
        ("fs_bogus_secret", "error: unknown or revoked API token"),
        ("team", "error: scorer (team ml-team) may not apply retention: it needs an admin token"),
    ],
)
def test_with_auth_on_retention_needs_an_admin_token(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    token: str | None,
    message: str,
) -> None:
    """It deletes every team's rows: FS_AUTH=on asks an admin token of it, as of erasure (a refusal audited)."""
    from registry.access_store import AccessStore
    from serving.offline import retention

    db = tmp_path / "definitions.db"
    tokens = AccessStore(db)
    issued = {"team": tokens.issue("scorer", "ml-team"), "admin": tokens.issue("ops", "platform", admin=True)}
    monkeypatch.setenv("FS_AUTH", "on")
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    if token is None:
        monkeypatch.delenv("FS_TOKEN", raising=False)
    else:
        monkeypatch.setenv("FS_TOKEN", issued.get(token, token))
    assert retention.main(["--dry-run"]) == 1
    assert capsys.readouterr().err.startswith(message)
    if token == "team":
        assert [(r["action"], r["outcome"]) for r in tokens.audit(principal="scorer")] == [("retention_dry_run", 403)]
    monkeypatch.setenv("FS_TOKEN", issued["admin"])  # the admin passes the check: the table is what is missing
    assert retention.main(["--dry-run"]) == 1
    assert "error: offline table fs.offline_feature_values does not exist" in capsys.readouterr().err


def test_a_dry_run_names_what_the_run_will_expire(tmp_path: Path) -> None:
    """With rows to delete, the run's delete commits a new snapshot and the current one expires with the rest
    (unless pinned): the dry run says so, and names the manifest whose lapsed pin held it."""
    table = iceberg_table(tmp_path / "t")
    snapshots = _write(table)
    store = TrainingSetStore(tmp_path / "ts.db")
    lapsed = _manifest(snapshots[-1], NOW - timedelta(days=60))  # made on the current snapshot, pin lapsed
    store.record(lapsed, labels_uri="x", output_uri="y")
    dry = apply_retention(table, CATALOG, store, now=NOW, dry_run=True)
    real = apply_retention(table.refresh(), CATALOG, store, now=NOW, orphans_older_than_s=0)
    assert dry.rows_removed_total == real.rows_removed_total > 0
    assert sorted(dry.snapshots_expired) == sorted(s for s in real.snapshots_expired if s in snapshots)
    assert snapshots[-1] in dry.snapshots_expired
    assert dry.manifests_invalidated == real.manifests_invalidated == [lapsed.id]
