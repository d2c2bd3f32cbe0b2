"""Promotion against README "Training sets, batch scoring, promotion", on a real Iceberg table and the CLI.

The model: the event time a version's offline data covers is its latest window end minus its window's
length; the candidate is refused when that trails the active version's by more than ``--max-lag``
(exactly ``--max-lag`` is ready; default one window step of the candidate), compared at the precision
the table stores (microseconds, docs/design.md §5.1: "never rounded to whole milliseconds"). Exit 0
promoted, 1 refused (the active version unchanged); ``--check`` 0 ready, 2 not ready; ``--force`` promotes.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from registry.core.catalog import load_folder
from registry.definition_store import DefinitionStore
from registry.plan import apply
from serving.offline import promotion
from tests.unit.test_oracle_lifecycle_retention import _append
from tests.unit.test_training_sets import iceberg_table

T_US = 1_700_000_100_000_000  # a window end
STEP_US = 300_000_000  # txn_count_1h slides by 5 minutes; both versions are 1-hour windows


def _setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, active_us: int, candidate_us: int | None
) -> DefinitionStore:
    monkeypatch.setenv("FS_AUTH", "off")
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "d.db"))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/t/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "t" / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    store = DefinitionStore(tmp_path / "d.db")
    apply(store, load_folder())
    v1 = store.catalog().get("user", "txn_count_1h")
    store.register(v1.model_copy(update={"version": 2, "ttl": timedelta(hours=5)}))
    table = iceberg_table(tmp_path / "t", "feature_store")
    rows = [("txn_count_1h", 1, "u1", active_us), ("txn_count_1h", 1, "u2", active_us - STEP_US)]
    if candidate_us is not None:
        rows.append(("txn_count_1h", 2, "u1", candidate_us))
    _append(table, rows)
    return store


@pytest.mark.parametrize(
    ("max_lag", "lag_us"),
    [
        (None, STEP_US), (None, STEP_US + 1), (None, STEP_US - 1),
        ("10m", 600_000_000), ("10m", 600_000_001), ("10m", 599_999_999), ("10m", 600_000_500),
        ("0s", 0), ("0s", 1), ("0s", -1), ("0s", 999),
    ],
)  # fmt: skip
@pytest.mark.parametrize("active_frac_us", [0, 1])  # window ends stored off the whole millisecond
def test_check_promote_and_force_follow_the_exact_lag(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    max_lag: str | None,
    lag_us: int,
    active_frac_us: int,
) -> None:
    allowed = STEP_US if max_lag is None else {"10m": 600_000_000, "0s": 0}[max_lag]
    ready = lag_us <= allowed  # exactly --max-lag is ready
    store = _setup(tmp_path, monkeypatch, T_US + active_frac_us, T_US + active_frac_us - lag_us)
    lag = [] if max_lag is None else [f"--max-lag={max_lag}"]
    assert promotion.main(["user", "txn_count_1h", "2", "--check", *lag]) == (0 if ready else 2)
    assert store.catalog().get("user", "txn_count_1h").version == 1
    assert promotion.main(["user", "txn_count_1h", "2", *lag]) == (0 if ready else 1)
    assert store.catalog().get("user", "txn_count_1h").version == (2 if ready else 1)
    if not ready:
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and err.startswith("error: not promoted: ")
        assert promotion.main(["user", "txn_count_1h", "2", "--force", *lag]) == 0
        assert store.catalog().get("user", "txn_count_1h").version == 2


def test_a_candidate_without_rows_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _setup(tmp_path, monkeypatch, T_US, None)
    assert promotion.main(["user", "txn_count_1h", "2", "--check"]) == 2
    assert "v2 has no offline rows" in capsys.readouterr().out
    assert promotion.main(["user", "txn_count_1h", "2"]) == 1
    assert store.catalog().get("user", "txn_count_1h").version == 1
    capsys.readouterr()
    # --force overrides the lag alone ("when only the lag stands in the way"): a version with no rows would serve
    # `missing` for every entity
    assert promotion.main(["user", "txn_count_1h", "2", "--force"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: not promoted: ") and "v2 has no offline rows" in err
    assert store.catalog().get("user", "txn_count_1h").version == 1


@pytest.mark.parametrize("broken", ["a data file", "the table's metadata"])
@pytest.mark.parametrize("check", [[], ["--check"]], ids=["promote", "check"])
def test_a_table_whose_files_are_gone_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], broken: str, check: list[str]
) -> None:
    """A file of the offline table missing ended in a FileNotFoundError traceback (exit 1); training's commands
    answer one `error:` line for the same table."""
    store = _setup(tmp_path, monkeypatch, T_US, T_US)
    pattern = "*.parquet" if broken == "a data file" else "*.metadata.json"
    for path in (tmp_path / "t" / "wh").rglob(pattern):
        path.unlink()
    assert promotion.main(["user", "txn_count_1h", "2", *check]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: the offline table fs: "), err
    assert store.catalog().get("user", "txn_count_1h").version == 1


def test_check_names_what_the_activation_itself_would_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A caught-up v3 whose allowed_lateness differs from its stream's other active feature: ``--check`` said
    "ready" (exit 0) and the promotion then failed on the activation's own check. Now --check says not ready, and
    why; the promotion is refused with the same reason, and --force still cannot activate it."""
    store = _setup(tmp_path, monkeypatch, T_US, T_US)
    v1 = store.catalog().get("user", "txn_count_1h")
    late = v1.window.model_copy(update={"allowed_lateness": timedelta(minutes=1)})
    store.register(v1.model_copy(update={"version": 3, "window": late}))
    _append(iceberg_table(tmp_path / "t", "feature_store"), [("txn_count_1h", 3, "u1", T_US)])
    assert promotion.main(["user", "txn_count_1h", "2", "--check"]) == 0  # v2 changes the TTL only: ready
    capsys.readouterr()
    assert promotion.main(["user", "txn_count_1h", "3", "--check"]) == 2
    out = capsys.readouterr().out
    assert out.startswith("not ready: user.txn_count_1h: v3 reaches ")
    assert "v3 cannot be activated: " in out and "allowed_lateness" in out
    for forced in ([], ["--force"]):
        assert promotion.main(["user", "txn_count_1h", "3", *forced]) == 1
        assert "allowed_lateness" in capsys.readouterr().err
        assert store.catalog().get("user", "txn_count_1h").version == 1
