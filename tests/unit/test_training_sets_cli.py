"""The store of training-set manifests and model links, and the training and historical CLIs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.errors import DatasetError
from registry.definition_store import DefinitionStore
from registry.training_sets import Manifest, TrainingSetStore
from serving.offline.historical import get_historical_features
from serving.offline.training import build_training_set
from tests.unit.test_training_sets import (
    FEATURES,
    INGEST0,
    T0,
    Row,
    _feature,
    append,
    built,
    catalog,
    iceberg_table,
    labels_table,
    write,
)

__all__ = ["built", "catalog"]  # the fixtures, used by name


# --- the store of manifests and model links, and the CLI -------------------------------------------


def test_store_keeps_manifests_and_model_links(
    built: tuple[Any, list[Row], list[tuple[str, int]]], catalog: FeatureCatalog, tmp_path: Path
) -> None:
    table, _, labels = built
    m = build_training_set(
        table, catalog, labels_table(labels), FEATURES, entity_type="user", entity_column="who"
    ).manifest
    db = tmp_path / "registry" / "definitions.db"
    DefinitionStore(db)  # the same file holds the definitions
    store = TrainingSetStore(db)
    assert store.record(m, labels_uri="/data/labels.parquet") is True
    assert store.record(m, output_uri="/data/train.parquet") is False
    store.link_model("fraud", "7", m.id)
    store.link_model("fraud", "7", m.id)  # idempotent
    store.link_model("fraud", "8", m.id)
    with pytest.raises(DatasetError, match="no training set 'nope'"):
        store.link_model("fraud", "9", "nope")
    reopened = TrainingSetStore(db)
    stored = reopened.get(m.id)
    assert stored.manifest == m
    assert (stored.labels_uri, stored.output_uri) == ("/data/labels.parquet", "/data/train.parquet")
    assert [(link.model, link.model_version) for link in stored.models] == [("fraud", "7"), ("fraud", "8")]
    assert [link.training_set_id for link in reopened.training_sets_for("fraud", "8")] == [m.id]
    assert reopened.ids() == [m.id]
    with pytest.raises(DatasetError, match="no training set 'x'"):
        reopened.get("x")


def _cli_environment(
    built: tuple[Any, list[Row], list[tuple[str, int]]],
    catalog: FeatureCatalog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """The offline table, the definitions and the FS_* settings the training CLI reads; the labels file."""
    _, rows, labels = built
    folder = tmp_path / "cli"
    write(iceberg_table(folder, "feature_store"), [rows])  # the catalog name connect_iceberg uses
    db = folder / "definitions.db"
    store = DefinitionStore(db)
    for d in sorted(catalog, key=lambda d: d.key):
        store.register(d)
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{folder}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (folder / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    labels_path = tmp_path / "labels.parquet"
    pq.write_table(labels_table(labels), labels_path)
    return labels_path


def _build(labels_path: Path) -> list[str]:
    """``training build`` of count_5m over the labels, without ``--out``."""
    who = ["--entity-type", "user", "--entity-column", "who"]
    return ["build", "--labels", str(labels_path), *who, "--features", "count_5m"]


def test_cli_build_link_show_rebuild(
    built: tuple[Any, list[Row], list[tuple[str, int]]],
    catalog: FeatureCatalog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from serving.offline import training

    _cli_environment(built, catalog, tmp_path, monkeypatch)
    args = [
        "--labels",
        str(tmp_path / "labels.parquet"),
        "--entity-type",
        "user",
        "--entity-column",
        "who",
        "--features",
        "count_5m,amount_max@v1",
        "--chunk-rows",
        "3",
    ]
    assert (
        training.main(
            ["build", *args, "--out", str(tmp_path / "train.parquet"), "--copy-labels-to", str(tmp_path / "kept")]
        )
        == 0
    )
    manifest = Manifest.from_json((tmp_path / "train.parquet.manifest.json").read_text())
    assert [f.ref for f in manifest.features] == ["count_5m@v1", "amount_max@v1"]
    assert training.main(["link-model", "--id", manifest.id, "--model", "fraud", "--model-version", "3"]) == 0
    capsys.readouterr()
    assert training.main(["show", "--id", manifest.id]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["manifest"]["id"] == manifest.id and shown["models"][0]["model"] == "fraud"
    (tmp_path / "labels.parquet").unlink()  # the rebuild reads the kept copy
    assert training.main(["rebuild", "--id", manifest.id, "--out", str(tmp_path / "again.parquet")]) == 0
    assert pq.read_table(tmp_path / "again.parquet").equals(pq.read_table(tmp_path / "train.parquet"))
    # --manifest of a recorded training set takes the recorded labels too (--labels: "default: the labels path
    # recorded at build time"); it was refused with "no labels path recorded".
    manifest_file = str(tmp_path / "train.parquet.manifest.json")
    assert training.main(["rebuild", "--manifest", manifest_file, "--out", str(tmp_path / "again2.parquet")]) == 0
    assert pq.read_table(tmp_path / "again2.parquet").equals(pq.read_table(tmp_path / "train.parquet"))
    assert training.main(["show", "--model", "fraud"]) == 0
    assert manifest.id in capsys.readouterr().out
    assert training.main(["rebuild", "--id", "nope", "--out", str(tmp_path / "x.parquet")]) == 1
    # A manifest edited by hand keeps an id that is not its content's: refused before the join, not rebuilt under it.
    edited = tmp_path / "edited.json"
    doc = json.loads(Path(manifest_file).read_text())
    edited.write_text(json.dumps({**doc, "labels_rows": doc["labels_rows"] + 1}))
    capsys.readouterr()
    assert training.main(["rebuild", "--manifest", str(edited), "--out", str(tmp_path / "x.parquet")]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: --manifest {edited}: its id {manifest.id} is not its content's")
        and err.count("\n") == 1
    )


def test_a_build_that_cannot_finish_leaves_the_files_it_would_replace_as_they_were(
    built: tuple[Any, list[Row], list[tuple[str, int]]],
    catalog: FeatureCatalog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A manifest or label copy that cannot be written, or `--out` naming the labels: refused before any
    write, so neither a recorded training set nor the labels are replaced."""
    from serving.offline import training

    labels_path = _cli_environment(built, catalog, tmp_path, monkeypatch)
    base = _build(labels_path)
    out = tmp_path / "train.parquet"
    assert training.main([*base, "--out", str(out)]) == 0
    recorded, kept_labels = out.read_bytes(), labels_path.read_bytes()
    (tmp_path / "a_file").write_text("x")
    capsys.readouterr()
    for extra, message in [
        (["--manifest", str(tmp_path / "no" / "m.json")], "--manifest"),
        (["--manifest", str(tmp_path)], "--manifest"),
        (["--copy-labels-to", str(tmp_path / "a_file")], "--copy-labels-to"),
        (["--out", str(labels_path)], "is the labels file"),
    ]:
        argv = [*base, *extra] if "--out" in extra else [*base, "--out", str(out), *extra]
        assert training.main(argv) == 1, extra
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err, err
        assert out.read_bytes() == recorded and labels_path.read_bytes() == kept_labels, extra
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".building")] == []
    not_parquet = tmp_path / "labels.csv"
    not_parquet.write_text("who,event_timestamp\nu1,2024-01-01T00:00:00Z\n")
    assert training.main([*base[:2], str(not_parquet), *base[3:], "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Parquet" in err and "Traceback" not in err, err
    assert out.read_bytes() == recorded


def test_a_build_the_registry_refuses_to_record_leaves_out_and_its_manifest_as_they_were(
    built: tuple[Any, list[Row], list[tuple[str, int]]],
    catalog: FeatureCatalog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The set was moved into place and then recorded: a registry locked at that moment left a new `--out` and
    manifest the registry did not know (found by a CLI fuzzer). Recorded first, nothing is moved when it refuses."""
    from registry.core.errors import StoreUnavailableError
    from registry.training_sets import TrainingSetStore
    from serving.offline import training

    labels_path = _cli_environment(built, catalog, tmp_path, monkeypatch)
    out = tmp_path / "train.parquet"
    out.write_bytes(b"before")

    def locked(*args: Any, **kwargs: Any) -> bool:
        raise StoreUnavailableError("registry store unavailable: database is locked")

    monkeypatch.setattr(TrainingSetStore, "record", locked)
    assert training.main([*_build(labels_path), "--out", str(out)]) == 1
    assert capsys.readouterr().err == "error: registry store unavailable: database is locked\n"
    assert out.read_bytes() == b"before" and not (tmp_path / "train.parquet.manifest.json").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".building")] == []


def test_a_build_into_a_folder_or_a_missing_folder_is_refused_before_the_join(
    built: tuple[Any, list[Row], list[tuple[str, int]]],
    catalog: FeatureCatalog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--out` that is a folder failed only when the joined file was moved there, leaving a manifest of a training
    set never recorded; a missing folder was named as --manifest, an option not given."""
    from serving.offline import training

    labels_path = _cli_environment(built, catalog, tmp_path, monkeypatch)
    base = _build(labels_path)
    (tmp_path / "outdir").mkdir()
    capsys.readouterr()
    for out in (tmp_path / "outdir", tmp_path / "nodir" / "x.parquet"):
        assert training.main([*base, "--out", str(out)]) == 1
        assert capsys.readouterr().err == f"error: --out {out}: not a file in an existing directory\n"
    assert sorted(p.name for p in tmp_path.iterdir() if "manifest" in p.name or p.name.endswith(".building")) == []
    assert list((tmp_path / "outdir").iterdir()) == []


def test_a_labels_copy_made_by_building_a_recorded_training_set_again_is_what_rebuilds_read(
    built: tuple[Any, list[Row], list[tuple[str, int]]],
    catalog: FeatureCatalog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same training set built again with --copy-labels-to kept its first labels path: once that file was gone,
    `rebuild --id` failed on it (an Arrow error naming no option)."""
    from registry.training_sets import TrainingSetStore
    from serving.offline import training

    labels_path = _cli_environment(built, catalog, tmp_path, monkeypatch)
    base = _build(labels_path)
    assert training.main([*base, "--out", str(tmp_path / "one.parquet")]) == 0
    kept = tmp_path / "kept"
    assert training.main([*base, "--out", str(tmp_path / "two.parquet"), "--copy-labels-to", str(kept)]) == 0
    manifest = Manifest.from_json((tmp_path / "two.parquet.manifest.json").read_text())
    stored = TrainingSetStore(Path(os.environ["FS_DEFINITIONS_DB"])).get(manifest.id)
    assert stored.labels_uri == str((kept / f"{manifest.id}.labels.parquet").resolve())
    labels_path.unlink()
    assert training.main(["rebuild", "--id", manifest.id, "--out", str(tmp_path / "again.parquet")]) == 0
    assert pq.read_table(tmp_path / "again.parquet").equals(pq.read_table(tmp_path / "one.parquet"))
    (kept / f"{manifest.id}.labels.parquet").unlink()
    capsys.readouterr()
    assert training.main(["rebuild", "--id", manifest.id, "--out", str(tmp_path / "x.parquet")]) == 1
    assert capsys.readouterr().err == (
        f"error: labels {stored.labels_uri} recorded for training set {manifest.id} not found: pass --labels\n"
    )


def test_null_and_integer_entities_and_the_historical_cli(
    tmp_path: Path, catalog: FeatureCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.offline import historical

    folder = tmp_path / "cli"
    table = iceberg_table(folder, "feature_store")
    count = _feature(catalog, "count_5m")
    append(table, [Row(count, "7", 3, T0, INGEST0), Row(count, "8", 4, T0, INGEST0)])
    labels = pa.table(
        {"who": pa.array([7, None, 8, 9], pa.int64()), "event_timestamp": pa.array([T0] * 4, pa.timestamp("ms"))}
    )
    result = get_historical_features(table, catalog, labels, ["count_5m"], entity_type="user", entity_column="who")
    assert result.column("count_5m").to_pylist() == [3, None, 4, None]
    db = folder / "definitions.db"
    store = DefinitionStore(db)
    for d in sorted(catalog, key=lambda d: d.key):
        store.register(d)
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{folder}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (folder / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    pq.write_table(labels, tmp_path / "labels.parquet")
    args = [
        "--labels",
        str(tmp_path / "labels.parquet"),
        "--out",
        str(tmp_path / "out.parquet"),
        "--entity-type",
        "user",
        "--entity-column",
        "who",
        "--features",
        "count_5m",
        "--chunk-rows",
        "2",
    ]
    assert historical.main(args) == 0
    assert pq.read_table(tmp_path / "out.parquet").equals(result)
    assert historical.main([*args, "--as-of", "2000-01-01T00:00:00Z"]) == 0  # before any snapshot: all null
    assert pq.read_table(tmp_path / "out.parquet").column("count_5m").null_count == 4
    assert historical.main([*args, "--as-of", "yesterday"]) == 1
    nope = [a if a != "count_5m" else "nope" for a in args]  # one --features: a second is a usage error
    assert historical.main(nope) == 1
    assert not list(tmp_path.glob(".out.parquet.*"))  # no partial file left behind
