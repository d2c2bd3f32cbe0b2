"""Training-set manifests and rebuilds: identical tables, refused differences, content ids, Parquet output."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DatasetError
from registry.training_sets import Manifest
from serving.offline.content_hash import ContentHasher, content_sha256
from serving.offline.historical import get_historical_features
from serving.offline.training import build_parquet, build_training_set, rebuild, rebuild_parquet
from tests.unit.test_training_sets import (
    FEATURES,
    HOUR,
    INGEST0,
    T0,
    Row,
    _feature,
    append,
    built,
    catalog,
    labels_table,
)

__all__ = ["built", "catalog"]  # the fixtures, used by name


# --- manifests and rebuilds --------------------------------------------------------------------------


def test_manifest_rebuilds_an_identical_table(
    built: tuple[Any, list[Row], list[tuple[str, int]]], catalog: FeatureCatalog
) -> None:
    table, _, labels = built
    given = labels_table(labels)
    first = build_training_set(table, catalog, given, FEATURES, entity_type="user", entity_column="who", chunk_rows=3)
    m = first.manifest
    assert first.table.equals(
        get_historical_features(table, catalog, given, FEATURES, entity_type="user", entity_column="who")
    )
    assert m.row_count == given.num_rows == m.labels_rows
    assert m.snapshot_id == table.metadata.current_snapshot_id and m.as_of is None and m.ingested_until is None
    assert [(f.name, f.version) for f in m.features] == [
        ("count_5m", 1),
        ("sum_10m", 1),
        ("last_merchant", 1),
        ("amount_max", 2),
    ]
    assert m.features[3].identity_hash == _feature(catalog, "amount_max").identity_hash
    assert m.content_sha256 == content_sha256(first.table) and m.labels_sha256 == content_sha256(given)
    assert "pyarrow" in m.code_version

    # Later: more data lands, and v1 of amount_max becomes the active version. The rebuild does not care.
    append(table, [Row(_feature(catalog, "count_5m"), "e1", 99, T0 + HOUR, INGEST0 + 5)])
    store_catalog = FeatureCatalog(list(catalog), {("user", "amount_max"): 1})
    again = rebuild(table, store_catalog, Manifest.from_json(m.to_json()), given, chunk_rows=100)
    assert again.table.equals(first.table)
    assert content_sha256(again.table) == m.content_sha256
    assert again.manifest == m


def test_rebuild_refuses_what_differs(
    built: tuple[Any, list[Row], list[tuple[str, int]]],
    catalog: FeatureCatalog,
    make_definition: Callable[..., FeatureDefinition],
) -> None:
    table, _, labels = built
    given = labels_table(labels)
    as_of = datetime.now(UTC)
    m = build_training_set(
        table, catalog, given, FEATURES, entity_type="user", entity_column="who", as_of=as_of
    ).manifest
    assert m.as_of is not None and m.ingested_until == m.as_of
    assert rebuild(table, catalog, m, given).table.num_rows == given.num_rows
    with pytest.raises(DatasetError, match="these labels are not training set"):
        rebuild(table, catalog, m, given.slice(1))
    changed = FeatureCatalog(
        [d for d in catalog if d.name != "count_5m" or d.entity != "user"]
        + [make_definition(name="count_5m", window={"kind": "tumbling", "size": "5m"}, ttl="21m")]
    )
    with pytest.raises(DatasetError, match="count_5m@v1 changed since"):
        rebuild(table, changed, m, given)
    with pytest.raises(DatasetError, match="differs"):
        rebuild(table, catalog, m.model_copy(update={"content_sha256": "0" * 64}), given)
    with pytest.raises(DatasetError, match="no snapshot 42 any more"):
        rebuild(table, catalog, m.model_copy(update={"snapshot_id": 42}), given)


def test_manifest_id_is_its_content(
    built: tuple[Any, list[Row], list[tuple[str, int]]], catalog: FeatureCatalog
) -> None:
    table, _, labels = built
    given = labels_table(labels)
    a = build_training_set(table, catalog, given, FEATURES, entity_type="user", entity_column="who").manifest
    b = build_training_set(table, catalog, given, FEATURES, entity_type="user", entity_column="who").manifest
    c = build_training_set(table, catalog, given, FEATURES[:2], entity_type="user", entity_column="who").manifest
    assert a.id == b.id != c.id
    assert json.loads(a.to_json())["id"] == a.id == Manifest.content_id(a.model_dump(mode="json"))


def test_parquet_build_and_rebuild_match_the_in_memory_ones(
    built: tuple[Any, list[Row], list[tuple[str, int]]], catalog: FeatureCatalog, tmp_path: Path
) -> None:
    table, _, labels = built
    pq.write_table(labels_table(labels), tmp_path / "labels.parquet")
    given = pq.read_table(tmp_path / "labels.parquet")
    in_memory = build_training_set(table, catalog, given, FEATURES, entity_type="user", entity_column="who")
    m = build_parquet(
        table,
        catalog,
        tmp_path / "labels.parquet",
        tmp_path / "out.parquet",
        FEATURES,
        entity_type="user",
        entity_column="who",
        chunk_rows=4,
    )
    assert (m.content_sha256, m.labels_sha256) == (in_memory.manifest.content_sha256, in_memory.manifest.labels_sha256)
    assert pq.read_table(tmp_path / "out.parquet").equals(in_memory.table)
    rebuild_parquet(table, catalog, m, tmp_path / "labels.parquet", tmp_path / "again.parquet", chunk_rows=5)
    assert pq.read_table(tmp_path / "again.parquet").equals(in_memory.table)
    # Byte for byte, whatever the chunks either was joined in (the row groups do not follow them).
    rebuild_parquet(table, catalog, m, tmp_path / "labels.parquet", tmp_path / "default.parquet")
    assert (tmp_path / "again.parquet").read_bytes() == (tmp_path / "out.parquet").read_bytes()
    assert (tmp_path / "default.parquet").read_bytes() == (tmp_path / "out.parquet").read_bytes()
    with pytest.raises(DatasetError, match="differs"):
        rebuild_parquet(
            table, catalog, m.model_copy(update={"row_count": 1}), tmp_path / "labels.parquet", tmp_path / "bad.parquet"
        )
    assert not (tmp_path / "bad.parquet").exists()  # a differing result never appears under its name


def test_written_row_groups_do_not_follow_the_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.offline import command_io

    monkeypatch.setattr(command_io, "OUTPUT_ROW_GROUP_ROWS", 10)
    table = pa.table({"x": pa.array(range(35), pa.int64())})
    for size in (1, 3, 10, 35):
        rows = command_io.write_parquet(
            table.to_batches(max_chunksize=size), table.schema, tmp_path / f"{size}.parquet"
        )
        assert rows == 35
        metadata = pq.ParquetFile(tmp_path / f"{size}.parquet").metadata
        assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [10, 10, 10, 5]
        assert (tmp_path / f"{size}.parquet").read_bytes() == (tmp_path / "1.parquet").read_bytes()
    assert command_io.write_parquet(iter([]), table.schema, tmp_path / "empty.parquet") == 0
    assert pq.read_table(tmp_path / "empty.parquet").num_rows == 0


def test_content_hash_ignores_layout_and_bytes_under_nulls() -> None:
    values = pa.array([1, 99, 3, 77, 5], pa.int64())
    masked = pa.array([True, False, True, False, True])
    a = pa.table({"x": pa.array([1, None, 3, None, 5], pa.int64()), "s": ["a", None, "c", None, "e"]})
    b = pa.table(
        {
            "x": values.take(pa.array([0, None, 2, None, 4])),
            "s": pa.array(["a", "zz", "c", "yy", "e"]).filter(pa.array([True] * 5)),
        }
    )
    b = b.set_column(1, "s", pa.compute.if_else(masked, b.column("s"), pa.scalar(None, pa.string())))
    b = b.set_column(0, "x", pa.compute.if_else(masked, values, pa.scalar(None, pa.int64())))
    assert a.equals(b) and content_sha256(a) == content_sha256(b)
    streamed = ContentHasher(a.schema)
    for batch in pa.concat_tables([a] * 30000).to_batches(max_chunksize=7777):
        streamed.update(batch)
    assert streamed.hexdigest() == content_sha256(pa.concat_tables([a] * 30000).combine_chunks())
    assert content_sha256(a) != content_sha256(a.slice(1))
    assert content_sha256(a) != content_sha256(a.set_column(0, "x", pa.array([1, None, 3, None, 6])))


def test_an_installed_package_records_no_other_repositorys_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Installed in a virtualenv inside a user's repository, ``git describe`` from site-packages named the user's
    commit as the code's. The code vendored (tracked) in a larger repository records that repository's commit."""
    import subprocess

    from serving.offline import training

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(tmp_path), "-c", "user.name=u", "-c", "user.email=u@e", *args],
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip()

    site = tmp_path / "venv" / "site-packages"
    (site / "serving" / "offline").mkdir(parents=True)
    (site / "serving" / "offline" / "training.py").write_text("")  # installed, not tracked
    vendored = tmp_path / "vendor" / "featurestore"
    (vendored / "serving" / "offline").mkdir(parents=True)
    (vendored / "serving" / "offline" / "training.py").write_text("")
    git("init", "-q")
    git("add", "vendor")
    git("commit", "-q", "-m", "x")
    head = git("rev-parse", "HEAD")
    found = {}
    for name, folder in (("site", site), ("vendored", vendored)):
        monkeypatch.setattr(training, "_REPO", folder)
        training.code_version.cache_clear()
        try:
            found[name] = training.code_version().get("git_commit")
        finally:
            training.code_version.cache_clear()
    assert found["site"] is None
    assert found["vendored"] is not None and found["vendored"].startswith(head)
