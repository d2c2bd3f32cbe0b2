"""Promotion's readiness rule (``serving.offline.promotion``) on given data reaches, and its command line."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from registry.core.catalog import load_folder
from registry.definition_store import DefinitionStore
from registry.plan import apply
from serving.offline import promotion

T_MS = 1_700_000_100_000  # a 5-minute window end
STEP_MS = 300_000  # txn_count_1h slides by 5 minutes


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DefinitionStore:
    store = DefinitionStore(tmp_path / "d.db")
    apply(store, load_folder())
    v1 = store.catalog().get("user", "txn_count_1h")
    store.register(v1.model_copy(update={"version": 2, "ttl": timedelta(hours=5)}))  # same window, a new version
    monkeypatch.setattr(promotion, "read_point", lambda table, as_of: None)
    return store


def _reaches(monkeypatch: pytest.MonkeyPatch, active_ms: int | None, candidate_ms: int | None) -> None:
    reach = {1: active_ms, 2: candidate_ms}

    def data_reach(table: Any, point: Any, entity: str, definitions: list[Any]) -> dict[tuple[str, int], int]:
        return {(d.name, d.version): ms * 1000 for d in definitions if (ms := reach[d.version]) is not None}

    monkeypatch.setattr(promotion, "data_reach", data_reach)


@pytest.mark.parametrize(
    ("lag_ms", "max_lag", "problem"),
    [
        (STEP_MS, None, None),  # the default allowance: one window step of the candidate
        (STEP_MS + 1, None, "v2 trails v1 by 300001ms (allowed 300000ms): the backfill has not caught up"),
        (STEP_MS + 1, timedelta(minutes=5), "v2 trails v1 by 300001ms (allowed 300000ms)"),
        (600_000, timedelta(minutes=10), None),  # at most max_lag behind is ready
        (600_001, timedelta(minutes=10), "v2 trails v1 by 600001ms (allowed 600000ms)"),
        (1, timedelta(0), "v2 trails v1 by 1ms (allowed 0ms)"),
        (0, timedelta(0), None),
    ],
)
def test_not_ready_names_the_exact_lag_and_allowance(
    store: DefinitionStore,
    monkeypatch: pytest.MonkeyPatch,
    lag_ms: int,
    max_lag: timedelta | None,
    problem: str | None,
) -> None:
    """Trailing by more than ``max_lag`` is refused; the message gives both in exact milliseconds (not 300s
    for 300001ms)."""
    _reaches(monkeypatch, T_MS, T_MS - lag_ms)
    ready = promotion.readiness(store, None, "user", "txn_count_1h", 2, max_lag=max_lag)  # type: ignore[arg-type]
    if problem is None:
        assert ready.ready, ready.describe()
    else:
        assert len(ready.problems) == 1 and ready.problems[0].startswith(problem), ready.problems
        with pytest.raises(promotion.PromotionRefusedError, match=re.escape(problem)):
            promotion.promote(store, None, "user", "txn_count_1h", 2, max_lag=max_lag)  # type: ignore[arg-type]
        assert store.catalog().get("user", "txn_count_1h").version == 1


@pytest.mark.parametrize("version", ["1_0", "٣", "1.0", "0", "2147483648", "x"])
def test_the_command_takes_a_version_in_ascii_digits(capsys: pytest.CaptureFixture[str], version: str) -> None:
    """Not ``int()``: ``1_0`` is not v10 nor ``٣`` v3; a usage error naming the argument, exit 2."""
    with pytest.raises(SystemExit) as exited:
        promotion.main(["user", "txn_count_1h", version, "--check"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument version: must be a whole number from 1 to " in err and err.endswith(f", not {version!r}\n")


@pytest.mark.parametrize("max_lag", ["x", "-1m", "", "5", "1.5m"])
def test_a_max_lag_that_is_not_a_duration_is_a_usage_error(capsys: pytest.CaptureFixture[str], max_lag: str) -> None:
    with pytest.raises(SystemExit) as exited:
        promotion.main(["user", "txn_count_1h", "2", "--check", f"--max-lag={max_lag}"])
    assert exited.value.code == 2
    assert f"argument --max-lag: duration {max_lag!r} is not a whole number" in capsys.readouterr().err
