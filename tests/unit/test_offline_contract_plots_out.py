"""``serving.offline.plots --out DIR``: a path that is a file is a usage error naming ``--out`` (exit 2, the file
untouched; it was a ``FileExistsError`` traceback), a folder that cannot be written is one ``error:`` line (exit 1),
and a PNG is never left half-written under its name (a drawing that fails leaves the previous one, or none)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from registry.quality import QualityStore
from serving.offline import plots

PNG = "user.txn_count_1h.v1.png"


@pytest.fixture
def stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "definitions.db"
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    now = datetime.now(UTC)
    row = {"entity_type": "user", "feature": "txn_count_1h", "version": 1, "checked": 3, "mismatched": 0}
    row |= {"missing_offline": 0, "mismatch_ratio": 0.0, "missing_ratio": 0.0, "served": 3, "stale": 0}
    QualityStore(db).put_parity([row], now - timedelta(minutes=30), now, now)
    return db


def test_out_that_is_a_file_is_a_usage_error(stored: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plots"
    out.write_bytes(b"keep")
    with pytest.raises(SystemExit) as exited:
        plots.main(["--since", "1h", "--out", str(out)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --out: {out} is not a folder" in err and err.count("error") == 1
    assert out.read_bytes() == b"keep"


def test_a_failed_drawing_leaves_no_partial_png(
    stored: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from matplotlib.figure import Figure

    out = tmp_path / "plots"
    assert plots.main(["--since", "1h", "--out", str(out)]) == 0
    before = (out / PNG).read_bytes()

    def broken(self: Figure, path: Any, **kwargs: Any) -> None:
        Path(path).write_bytes(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", broken)
    capsys.readouterr()
    assert plots.main(["--since", "1h", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "No space left on device" in err and err.count("\n") == 1, err
    assert (out / PNG).read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == [PNG]


def test_a_read_only_disk_keeps_the_reason_the_drawing_failed(
    stored: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a read-only file system the clean-up's unlink of the hidden file fails too (EROFS): the error printed is
    still the one that said why the drawing failed."""
    from matplotlib.figure import Figure

    def refused(self: Figure, path: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    def read_only(self: Path, missing_ok: bool = False) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(Figure, "savefig", refused)
    monkeypatch.setattr(Path, "unlink", read_only)
    assert plots.main(["--since", "1h", "--out", str(tmp_path / "plots")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "No space left on device" in err and "Read-only" not in err, err


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--feature", "txn_count_1h", "--feature", "txn_cnt_typo"], "--feature txn_cnt_typo"),
        (["--feature", "user.txn_count_1h"], "--feature user.txn_count_1h"),
        (["--entity-type", "usr"], "--entity-type usr"),
        (["--entity-type", "usr", "--feature", "txn_count_1h"], "--entity-type usr, --feature txn_count_1h"),
    ],
)
def test_a_feature_or_entity_type_without_results_is_named(
    stored: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], named: str
) -> None:
    """A misspelt ``--feature`` passed without a word (exit 0, the other's PNG written), and a misspelt
    ``--entity-type`` said to run statistics and parity first, whose results are stored (audit, 2026-12-07)."""
    out = tmp_path / "plots"
    assert plots.main(["--since", "1h", "--out", str(out), *options]) == 1
    err = capsys.readouterr().err
    assert err == f"error: no stored results in the last 1h for {named}\n", err
    drawn = "txn_count_1h" in options and "usr" not in options
    assert (sorted(p.name for p in out.iterdir()) if out.exists() else []) == ([PNG] if drawn else [])


def test_with_nothing_stored_in_the_span_the_options_are_not_blamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No feature with results in the span: the advice to run statistics and parity, whatever was asked for, and
    a registry without quality tables is left without them."""
    db = tmp_path / "definitions.db"
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    QualityStore(db).put_parity(
        [
            {"entity_type": "user", "feature": "txn_count_1h", "version": 1, "checked": 3, "mismatched": 0}
            | {"missing_offline": 0, "mismatch_ratio": 0.0, "missing_ratio": 0.0, "served": 3, "stale": 0}
        ],
        datetime.now(UTC) - timedelta(days=3, minutes=30),
        datetime.now(UTC) - timedelta(days=3),
        datetime.now(UTC) - timedelta(days=3),
    )
    for options in ([], ["--feature", "txn_count_1h"], ["--entity-type", "usr"]):
        assert plots.main(["--since", "1h", "--out", str(tmp_path / "plots"), *options]) == 1
        err = capsys.readouterr().err
        assert err == "error: nothing stored in the last 1h: run serving.offline.statistics and parity first\n", err
