"""Training-set commands against their documented contract: bad input is one ``error:`` line naming the option,
exit 1, never a hang or a traceback, and nothing is written under ``--out``."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from registry.core.definitions import FeatureDefinition
from registry.core.errors import DatasetError
from registry.definition_store import DefinitionStore
from registry.training_sets import TrainingSetStore
from serving.offline import training
from tests.unit.test_training_sets import INGEST0, MIN, T0, Row, append, iceberg_table


@pytest.fixture
def built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_definition: Callable[..., FeatureDefinition]
) -> Iterator[tuple[Path, str]]:
    """A registry and offline table holding one row, and a training set built from them: (folder, its id)."""
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "d.db"))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    d = make_definition(name="count_5m", window={"kind": "tumbling", "size": "5m"}, ttl="20m")
    DefinitionStore(tmp_path / "d.db").register(d)
    append(iceberg_table(tmp_path, "feature_store"), [Row(d, "u1", 3, T0 + 5 * MIN, INGEST0)])
    labels = pa.table({"user_id": ["u1"], "event_timestamp": pa.array([T0 + 6 * MIN], pa.timestamp("ms", tz="UTC"))})
    pq.write_table(labels, tmp_path / "labels.parquet")
    argv = ["build", "--labels", str(tmp_path / "labels.parquet"), "--out", str(tmp_path / "train.parquet")]
    assert training.main([*argv, "--entity-type", "user", "--entity-column", "user_id", "--features", "count_5m"]) == 0
    yield tmp_path, TrainingSetStore(tmp_path / "d.db").ids()[0]


def _within(seconds: float, command: Callable[[], int]) -> int:
    """``command``'s exit code; a command still running after ``seconds`` fails the test (it hung)."""
    outcome: list[int] = []
    worker = threading.Thread(target=lambda: outcome.append(command()), daemon=True)
    worker.start()
    worker.join(seconds)
    if not outcome:
        raise AssertionError(f"still running after {seconds} s")
    return outcome[0]


@pytest.mark.parametrize("kind", ["fifo", "folder", "missing"])
def test_labels_that_are_no_parquet_file_are_refused_at_once_naming_labels(
    built: tuple[Path, str], capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """A FIFO given as ``--labels`` held build and rebuild for good (Arrow opened it and waited for a writer);
    historical features refused it at once. Both training commands read labels as historical features does."""
    folder, training_set = built
    labels = folder / kind
    if kind == "fifo":
        os.mkfifo(labels)
    elif kind == "folder":
        labels.mkdir()
    capsys.readouterr()
    join = ["--entity-type", "user", "--entity-column", "user_id", "--features", "count_5m"]
    commands = {
        "build": ["build", "--labels", str(labels), "--out", str(folder / "b.parquet"), *join],
        "rebuild": ["rebuild", "--id", training_set, "--labels", str(labels), "--out", str(folder / "r.parquet")],
    }
    for name, argv in commands.items():
        assert _within(20, lambda argv=argv: training.main(argv)) == 1, name  # type: ignore[misc]
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: --labels {labels}: not a readable Parquet file"), err
    assert not (folder / "b.parquet").exists() and not (folder / "r.parquet").exists()


@pytest.mark.parametrize("where", ["folder", "missing folder"])
def test_rebuild_refuses_an_out_that_cannot_be_a_file_naming_it(
    built: tuple[Path, str], capsys: pytest.CaptureFixture[str], where: str
) -> None:
    """``rebuild --out`` a folder was found only after the join, when the result was moved there, and the error
    named the hidden temporary file (``.<out>.<pid>.tmp -> <out>``); in a missing folder it named that file too.
    Build and batch scoring refuse such an ``--out`` before reading anything, naming it: rebuild does the same."""
    folder, training_set = built
    out = folder / "taken" if where == "folder" else folder / "nowhere" / "r.parquet"
    if where == "folder":
        out.mkdir()
    capsys.readouterr()
    assert training.main(["rebuild", "--id", training_set, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --out {out}: not a file in an existing directory"], err
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_a_rebuild_with_other_chunk_rows_is_byte_identical(
    built: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Design §9: a manifest's ``rebuild`` makes the training set again byte for byte, the Parquet file written in
    row groups of 131,072 rows whatever ``--chunk-rows`` the join ran with. Rows were the same but the bytes were
    not once a column chunk passed a data page (1 MiB): Arrow closed pages where the join's batches ended."""
    folder, _ = built
    rows = 20_000
    labels = pa.table(
        {
            "user_id": ["u1"] * rows,
            "event_timestamp": pa.array([T0 + 6 * MIN] * rows, pa.timestamp("ms", tz="UTC")),
            "note": [f"{i:07d}" + "x" * 100 for i in range(rows)],  # about 2 MiB: several pages
        }
    )
    pq.write_table(labels, folder / "many.parquet")
    join = ["--entity-type", "user", "--entity-column", "user_id", "--features", "count_5m"]
    argv = ["build", "--labels", str(folder / "many.parquet"), "--out", str(folder / "many_train.parquet"), *join]
    assert training.main([*argv, "--chunk-rows", str(rows)]) == 0
    training_set = capsys.readouterr().out.split()[2].rstrip(":")
    for chunk_rows in ("1000", "333"):
        out = folder / f"again_{chunk_rows}.parquet"
        assert training.main(["rebuild", "--id", training_set, "--out", str(out), "--chunk-rows", chunk_rows]) == 0
        assert out.read_bytes() == (folder / "many_train.parquet").read_bytes(), chunk_rows


def test_a_build_from_its_kept_labels_copy_keeps_it_there(
    built: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The same training set built again from the labels copy an earlier build kept (``--copy-labels-to`` the same
    folder) failed after the whole join, ``... and ... are the same file``, exit 1, nothing written; the copy is
    already there: the build completes and the copy stays the labels path ``rebuild --id`` reads."""
    folder, _ = built
    join = ["--entity-type", "user", "--entity-column", "user_id", "--features", "count_5m"]
    kept = folder / "kept"
    argv = ["build", "--labels", str(folder / "labels.parquet"), "--out", str(folder / "a.parquet")]
    assert training.main([*argv, "--copy-labels-to", str(kept), *join]) == 0
    training_set = capsys.readouterr().out.split()[2].rstrip(":")
    copy = kept / f"{training_set}.labels.parquet"
    copied = copy.read_bytes()
    argv = ["build", "--labels", str(copy), "--out", str(folder / "b.parquet"), "--copy-labels-to", str(kept)]
    assert training.main([*argv, *join]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.split()[2].rstrip(":") == training_set
    assert (folder / "b.parquet").read_bytes() == (folder / "a.parquet").read_bytes()
    assert copy.read_bytes() == copied
    assert TrainingSetStore(folder / "d.db").get(training_set).labels_uri == str(copy.resolve())


def test_a_label_copy_folder_under_a_file_is_refused_before_the_join(tmp_path: Path) -> None:
    """``--copy-labels-to a_file/kept``: the folder cannot be made, which was found only after the whole join."""
    from serving.offline.command_io import check_build_paths

    (tmp_path / "a_file").write_text("x")
    labels, out, manifest = tmp_path / "l.parquet", tmp_path / "o.parquet", tmp_path / "m.json"
    with pytest.raises(DatasetError, match=r"--copy-labels-to .*a_file is not a directory"):
        check_build_paths(labels, out, manifest, tmp_path / "a_file" / "kept" / "deeper")
    check_build_paths(labels, out, manifest, tmp_path / "new" / "kept")  # made by the build: fine


@pytest.mark.parametrize("target", ["out", "manifest", "labels"])
def test_a_label_copy_folder_at_an_output_or_the_labels_is_refused_before_anything_is_written(
    built: tuple[Path, str], capsys: pytest.CaptureFixture[str], target: str
) -> None:
    """``--copy-labels-to <out>.manifest.json``: its folder was made there, the output moved into place, then the
    manifest's move failed with ``[Errno 21] Is a directory``: a training set without its manifest, and a folder."""
    folder, _ = built
    out = folder / f"copy_{target}.parquet"
    paths = {"out": out, "manifest": out.with_name(out.name + ".manifest.json"), "labels": folder / "labels.parquet"}
    join = ["--entity-type", "user", "--entity-column", "user_id", "--features", "count_5m"]
    argv = ["build", "--labels", str(folder / "labels.parquet"), "--out", str(out), *join]
    assert training.main([*argv, "--copy-labels-to", str(paths[target])]) == 1
    said = capsys.readouterr().err.strip().splitlines()
    assert said == [f"error: --copy-labels-to {paths[target]} is the --{target} file: give a folder"], said
    assert not out.exists() and not paths["manifest"].exists()
    assert paths["labels"].is_file()


def test_show_by_id_refuses_a_model_version_it_would_ignore(capsys: pytest.CaptureFixture[str]) -> None:
    from serving.offline import training

    with pytest.raises(SystemExit) as exited:
        training.main(["show", "--id", "abc", "--model-version", "7"])
    assert exited.value.code == 2 and "--model-version goes with --model" in capsys.readouterr().err


def test_rebuild_refuses_an_out_that_is_its_manifest(
    built: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``rebuild --manifest M --out M`` replaced the manifest with the Parquet result, exit 0 (build refuses a
    ``--manifest`` that is its output; rebuild an ``--out`` that is the labels): refused before anything is read."""
    folder, _ = built
    manifest = folder / "train.parquet.manifest.json"
    kept = manifest.read_bytes()
    capsys.readouterr()
    assert training.main(["rebuild", "--manifest", str(manifest), "--out", str(manifest)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --out {manifest} is the manifest: writing it would replace the manifest"], err
    assert manifest.read_bytes() == kept


def test_rebuild_against_another_offline_table_names_the_table_the_manifest_read(
    built: tuple[Path, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With FS_ICEBERG_NAMESPACE pointing at another deployment's table, the rebuild said the manifest's snapshot
    was gone ("expired?"): the snapshot ids are another table's. It names the table the set was read from."""
    folder, training_set = built
    from pyiceberg.catalog.sql import SqlCatalog

    from sinks.iceberg.writer import ensure_table

    sql = SqlCatalog("feature_store", uri=f"sqlite:///{folder}/cat.db", warehouse=(folder / "wh").as_uri())
    ensure_table(sql, "other")  # another deployment's (empty) offline table, in the same catalog
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "other")
    capsys.readouterr()
    out = folder / "again.parquet"
    assert training.main(["rebuild", "--id", training_set, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"error: training set {training_set} was read from the offline table fs."
    ), err
    assert err[0].endswith(": set FS_ICEBERG_NAMESPACE to its namespace"), err
    assert not out.exists()


def test_out_names_up_to_the_file_systems_limit_are_written_and_longer_ones_refused_first(
    built: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """An ``--out`` the file system takes failed once written: the hidden names the commands write aside were
    built on it (``.<out>.<pid>.building`` then ``.<that>.<pid>.tmp``: 'File name too long' naming a file never
    asked for) from about 224 bytes for a training build and 240 for historical features (audit, 2026-12-07).
    They are of a fixed length now: a name of 255 bytes is written; one longer is refused before anything is
    read, as is a build whose manifest (``<out>.manifest.json``) would be (a build of 242 bytes wrote the set and
    recorded it, then failed to put its manifest in place)."""
    from serving.offline import batch_scoring, historical

    folder, _ = built
    labels = str(folder / "labels.parquet")
    join = ["--entity-type", "user", "--entity-column", "user_id", "--features", "count_5m"]
    as_of = ["--as-of", str(T0 + 6 * MIN), "--entity-type", "user", "--features", "count_5m"]
    commands = {
        "build": (241, lambda out: training.main(["build", "--labels", labels, "--out", out, *join])),
        "historical": (255, lambda out: historical.main(["--labels", labels, "--out", out, *join])),
        "scoring": (255, lambda out: batch_scoring.main([*as_of, "--out", out])),
    }
    for name, (longest, command) in commands.items():
        out = folder / (name[0] * (longest - len(".parquet")) + ".parquet")
        assert command(str(out)) == 0, name
        assert pq.read_table(out).column("count_5m").to_pylist() == [3], name
        if name == "build":
            assert len(out.with_name(out.name + ".manifest.json").name.encode()) == 255
        longer = out.with_name("x" + out.name)
        capsys.readouterr()
        assert command(str(longer)) == 1, name
        err = capsys.readouterr().err
        what = "the manifest (--manifest" if name == "build" else f"--out {longer}"
        assert err.startswith(f"error: {what}") and "longer than the 255 its file system takes" in err, err
        assert err.count("\n") == 1 and longer.name not in {p.name for p in folder.iterdir()}, err
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert len(TrainingSetStore(folder / "d.db").ids()) == 1  # the refused build recorded nothing


def test_a_set_built_into_another_sets_out_takes_its_recorded_path(built: tuple[Path, str]) -> None:
    """Building a second training set into the ``--out`` of a first replaced the file, while the registry still
    named that file as the first set's output: a model linked to the first pointed at the second's rows (audit,
    2026-12-07). The earlier set's path is cleared; it is rebuilt from its manifest by id."""
    folder, first = built
    store = TrainingSetStore(folder / "d.db")
    out = folder / "train.parquet"
    assert store.get(first).output_uri == str(out.resolve())
    other = pa.table({"user_id": ["u1", "u2"], "event_timestamp": pa.array([T0 + 6 * MIN] * 2, pa.timestamp("ms"))})
    pq.write_table(other, folder / "other.parquet")
    join = ["--entity-type", "user", "--entity-column", "user_id", "--features", "count_5m"]
    assert training.main(["build", "--labels", str(folder / "other.parquet"), "--out", str(out), *join]) == 0
    [second] = [i for i in store.ids() if i != first]
    assert store.get(second).output_uri == str(out.resolve())
    assert store.get(first).output_uri is None
    assert training.main(["build", "--labels", str(folder / "labels.parquet"), "--out", str(out), *join]) == 0
    assert store.get(first).output_uri == str(out.resolve())  # built there again: its path again
    assert store.get(second).output_uri is None
    again = folder / "first_again.parquet"
    assert training.main(["rebuild", "--id", first, "--out", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()


def test_batch_scoring_over_a_damaged_data_file_is_one_error_line(
    built: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A data file of the offline table cut short (not Parquet any more) is one ``error:`` line in historical
    features and training builds; batch scoring printed a traceback (audit, 2026-12-07)."""
    from serving.offline import batch_scoring

    folder, _ = built
    [data] = [p for p in (folder / "wh").rglob("*.parquet") if "/data/" in str(p)]
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    capsys.readouterr()
    argv = ["--as-of", str(T0 + 6 * MIN), "--entity-type", "user", "--features", "count_5m"]
    assert batch_scoring.main([*argv, "--out", str(folder / "scored.parquet")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (folder / "scored.parquet").exists()


def test_a_link_given_as_out_is_replaced_and_a_rebuild_over_a_set_clears_its_path(built: tuple[Path, str]) -> None:
    """The review's two cases: a build to a symbolic link replaces the link (the file it named keeps its set), so
    the set is recorded at the link's path and the other set keeps its own; a rebuild of one set into another's
    recorded output replaces that file, and that set's path is cleared as a build's is."""
    folder, first = built
    store = TrainingSetStore(folder / "d.db")
    link = folder / "link.parquet"
    link.symlink_to(folder / "train.parquet")
    other = pa.table({"user_id": ["u1", "u2"], "event_timestamp": pa.array([T0 + 6 * MIN] * 2, pa.timestamp("ms"))})
    pq.write_table(other, folder / "other.parquet")
    join = ["--entity-type", "user", "--entity-column", "user_id", "--features", "count_5m"]
    assert training.main(["build", "--labels", str(folder / "other.parquet"), "--out", str(link), *join]) == 0
    [second] = [i for i in store.ids() if i != first]
    assert not link.is_symlink() and pq.read_table(link).num_rows == 2
    assert store.get(second).output_uri == str(folder.resolve() / "link.parquet")
    assert store.get(first).output_uri == str((folder / "train.parquet").resolve())  # its file is still there
    assert pq.read_table(folder / "train.parquet").num_rows == 1
    assert training.main(["rebuild", "--id", first, "--out", str(link)]) == 0  # over the second set's file
    assert store.get(second).output_uri is None
    assert store.get(first).output_uri == str((folder / "train.parquet").resolve())  # a rebuild records no path


def test_a_rebuild_records_before_it_replaces_out_and_takes_a_path_it_lost(
    built: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The second review's cases: a rebuild replaced ``--out`` and then failed to record it (a locked registry),
    leaving another set recorded at a file holding this one; and a set whose path a later build took, rebuilt
    there, stayed without a path."""
    from registry.sqlite_store import RegistryStoreUnavailable

    folder, first = built
    store = TrainingSetStore(folder / "d.db")
    out = folder / "train.parquet"
    other = pa.table({"user_id": ["u1", "u2"], "event_timestamp": pa.array([T0 + 6 * MIN] * 2, pa.timestamp("ms"))})
    pq.write_table(other, folder / "other.parquet")
    join = ["--entity-type", "user", "--entity-column", "user_id", "--features", "count_5m"]
    assert training.main(["build", "--labels", str(folder / "other.parquet"), "--out", str(out), *join]) == 0
    [second] = [i for i in store.ids() if i != first]
    held = out.read_bytes()

    def locked(self: TrainingSetStore, output_uri: str, training_set_id: str) -> None:
        raise RegistryStoreUnavailable("registry store d.db unavailable: database is locked")

    with monkeypatch.context() as patch:
        patch.setattr(TrainingSetStore, "written", locked)
        capsys.readouterr()
        assert training.main(["rebuild", "--id", first, "--out", str(out)]) == 1
    assert capsys.readouterr().err.startswith("error: registry store d.db unavailable")
    assert out.read_bytes() == held and store.get(second).output_uri == str(out.resolve())
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert store.get(first).output_uri is None
    assert training.main(["rebuild", "--id", first, "--out", str(out)]) == 0
    assert store.get(first).output_uri == str(out.resolve()) and store.get(second).output_uri is None
