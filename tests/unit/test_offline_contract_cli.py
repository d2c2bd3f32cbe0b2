"""The offline commands' options. The quality commands' ``--since`` (parity, statistics, plots): a positive duration reaching back no
further than 1970-01-01, as the gate's; anything else is a usage error (exit 2) naming the option, never a
traceback (``1000000d`` reached back before year 1 and ended in ``OverflowError``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from registry.core.catalog import FeatureCatalog
from serving.offline import parity, plots, statistics


@pytest.mark.parametrize("command", [parity.main, statistics.main, plots.main], ids=["parity", "statistics", "plots"])
@pytest.mark.parametrize("since", ["1000000d", "0s", "0ms", "30000d"])
def test_since_is_a_positive_duration_back_to_1970_at_most(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: Callable[[list[str]], int],
    since: str,
) -> None:
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "none" / "d.db"))  # never reached
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/none/cat.db")
    argv = ["--since", since, *(["--out", str(tmp_path / "p")] if command is plots.main else ["--no-store"])]
    try:
        code = command(argv)
    except SystemExit as exc:  # argparse
        code = exc.code  # type: ignore[assignment]
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    assert err[-1].endswith(
        f"argument --since: must be a positive duration reaching back no further than 1970, not {since!r}"
    )
    assert err[0].startswith("usage: python -m serving.offline.")  # a usage error alike in all three (parity and plots
    # printed one `error:` line without the usage)


@pytest.mark.parametrize("content", [b"\xff\xfe", b"garbage", b"{}"], ids=["not-utf8", "not-json", "not-a-manifest"])
def test_rebuild_from_a_file_that_is_not_a_manifest_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    """A manifest file not in UTF-8 ended in a ``UnicodeDecodeError`` traceback; pydantic's refusal of one that
    is not a manifest printed three lines."""
    from serving.offline import training

    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "d.db"))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    from registry.definition_store import DefinitionStore
    from tests.unit.test_training_sets import iceberg_table

    DefinitionStore(tmp_path / "d.db")  # a registry is there (one that is not is refused first)
    iceberg_table(tmp_path, "feature_store")
    manifest = tmp_path / "m.json"
    manifest.write_bytes(content)
    argv = [
        "rebuild",
        "--manifest",
        str(manifest),
        "--labels",
        str(tmp_path / "l.parquet"),
        "--out",
        str(tmp_path / "o"),
    ]
    assert training.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --manifest {manifest}: not a training-set manifest"), err


def test_retention_refuses_a_malformed_orphan_age_as_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--orphans-older-than x`` was checked only after the table loaded (exit 1); it is an option like the others."""
    from serving.offline import retention

    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "none" / "d.db"))  # never reached
    with pytest.raises(SystemExit) as caught:
        retention.main(["--dry-run", "--orphans-older-than", "x"])
    assert caught.value.code == 2
    assert "argument --orphans-older-than: duration 'x'" in capsys.readouterr().err


@pytest.mark.parametrize("out", ["missing/v.parquet", "."], ids=["missing-folder", "a-folder"])
def test_batch_scoring_refuses_an_out_that_cannot_be_a_file_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], out: str
) -> None:
    """An ``--out`` in a missing folder failed after the whole export, naming the hidden temporary file."""
    from serving.offline import batch_scoring

    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "none" / "d.db"))  # never reached
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/none/cat.db")
    target = tmp_path / out
    argv = ["--entity-type", "user", "--features", "txn_count_1h", "--as-of", "0", "--out", str(target)]
    assert batch_scoring.main(argv) == 1
    assert capsys.readouterr().err.strip() == f"error: --out {target}: not a file in an existing directory"


@pytest.mark.parametrize("raw", ["1_0", "\u0663", " 7", "-1", "1.0", "9223372036854775808"])
@pytest.mark.parametrize("module", ["historical", "batch_scoring"])
def test_snapshot_id_is_ascii_digits_as_every_whole_number_option(
    module: str, raw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--snapshot-id`` was parsed with ``int()``: ``1_0`` read snapshot 10 and an Arabic-Indic digit a snapshot."""
    import importlib

    main = importlib.import_module(f"serving.offline.{module}").main
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "none" / "d.db"))  # never reached
    with pytest.raises(SystemExit) as caught:
        main(["--labels", "l.parquet", "--out", "o.parquet", "--features", "f", "--snapshot-id", raw])
    assert caught.value.code == 2
    assert "argument --snapshot-id: must be a whole number from 0 to 9223372036854775807" in capsys.readouterr().err


def _fifo(tmp_path: Path) -> Path:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    return fifo


@pytest.mark.parametrize("module", ["batch_scoring", "historical", "training"])
def test_an_out_that_is_not_a_regular_file_is_refused_and_left_as_it_is(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    module: str,
    shipped_catalog: FeatureCatalog,
) -> None:
    """The write's rename replaced whatever ``--out`` named: run as root, ``--out /dev/null`` turned the system's null
    device into a Parquet file, exit 0 (found by a fuzzer). A FIFO stands for any device here."""
    import stat

    from serving.offline import batch_scoring, historical, training
    from tests.unit.test_request_features import store_with

    store_with(tmp_path / "d.db", shipped_catalog)  # training reads the registry first
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "d.db"))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/none/cat.db")  # never reached
    target = _fifo(tmp_path)
    labels = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"user_id": ["u"], "event_time": [0]}), labels)
    common = ["--entity-type", "user", "--features", "txn_count_1h", "--out", str(target)]
    with_labels = ["--labels", str(labels), "--entity-column", "user_id", *common]
    run = {
        "batch_scoring": lambda: batch_scoring.main([*common, "--as-of", "0"]),
        "historical": lambda: historical.main(with_labels),
        "training": lambda: training.main(["build", *with_labels]),
    }[module]
    assert run() == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: --out {target}: not a regular file (a device, FIFO or socket): it would be replaced"
    )
    assert stat.S_ISFIFO(target.stat().st_mode)


def test_an_out_that_is_not_utf8_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Arrow takes a path as UTF-8: a name holding a byte that is not (``\\xff``) was a UnicodeEncodeError traceback."""
    from serving.offline import batch_scoring

    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "none" / "d.db"))
    target = tmp_path / os.fsdecode(b"\xff.parquet")
    argv = ["--entity-type", "user", "--features", "txn_count_1h", "--as-of", "0", "--out", str(target)]
    assert batch_scoring.main(argv) == 1
    assert capsys.readouterr().err.strip() == f"error: --out {str(target)!r}: not a UTF-8 path"


@pytest.mark.parametrize("module", ["parity", "statistics"])
def test_a_metrics_file_that_is_not_a_regular_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], module: str
) -> None:
    import stat

    target = _fifo(tmp_path)
    main = {"parity": parity.main, "statistics": statistics.main}[module]
    with pytest.raises(SystemExit) as caught:
        main(["--since", "1h", "--metrics-file", str(target)])
    assert caught.value.code == 2
    assert f"argument --metrics-file: {target} is not a regular file (a device, FIFO or socket)" in (
        capsys.readouterr().err
    )
    assert stat.S_ISFIFO(target.stat().st_mode)
