"""Audit H6: the freshness alert judges each feature by its own ``freshness_slo`` (design §5.2 rule 4,
§7 "page on the freshness SLO's burn rate", §9 "Alert rules"; seeds: "Streaming materializer lag: serving
returns stale flag and alert fires", "Some features update hourly; others update within seconds").

Two features, each over Prometheus' own rule evaluator (``promtool test rules``): ``hourly`` (a 1 h
tumbling window, freshness_slo 90m: its newest window is at most ~1 h old, never stale) and ``fast``
(freshness_slo 5m: its newest window is always 7 minutes old, so every read of it is ``stale``). The
breach signal must be 1 for ``fast`` and 0 for ``hourly``. The rule compared every feature with a fixed
600,000 ms, so it was the other way round; the writer now exports ``freshness_slo_ms`` per feature and the
rule compares with it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from infra.promtool import ensure_promtool

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "infra" / "prometheus" / "alerts.yml"
PREFIX = "flink_taskmanager_job_task_operator_entity_type_feature_version_"
MINUTES = 421


def _values(xs: list[int]) -> str:
    return " ".join(str(x) for x in xs)


def _test_file() -> str:
    hourly = [(m // 60) * 3_600_000 if m >= 60 else 0 for m in range(MINUTES)]  # written at each hour
    fast = [m * 60_000 - 7 * 60_000 for m in range(MINUTES)]  # always 7 minutes behind the clock
    series = [
        (
            f'{PREFIX}online_window_end_ms{{entity_type="user", feature="hourly", version="1", subtask_index="0"}}',
            _values(hourly),
        ),
        (
            f'{PREFIX}online_window_end_ms{{entity_type="user", feature="fast", version="1", subtask_index="0"}}',
            _values(fast),
        ),
        (
            f'{PREFIX}freshness_slo_ms{{entity_type="user", feature="hourly", version="1", subtask_index="0"}}',
            f"5400000+0x{MINUTES - 1}",
        ),
        (
            f'{PREFIX}freshness_slo_ms{{entity_type="user", feature="fast", version="1", subtask_index="0"}}',
            f"300000+0x{MINUTES - 1}",
        ),
    ]
    lines = [
        "rule_files:",
        f"  - {RULES}",
        "evaluation_interval: 1m",
        "tests:",
        "  - interval: 1m",
        "    input_series:",
    ]
    for name, values in series:
        lines += [f"      - series: '{name}'", f"        values: '{values}'"]
    lines += [
        "    promql_expr_test:",
        "      - expr: feature:freshness_slo_breach:bool",
        "        eval_time: 400m",  # hourly's newest window is 40 min old (its SLO 90m); fast's 7 min (SLO 5m)
        "        exp_samples:",
        '          - labels: \'feature:freshness_slo_breach:bool{entity_type="user", feature="fast", version="1"}\'',
        "            value: 1",
        '          - labels: \'feature:freshness_slo_breach:bool{entity_type="user", feature="hourly", version="1"}\'',
        "            value: 0",
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def promtool() -> Path:
    cache = Path(os.environ.get("FS_CACHE_DIR", Path.home() / ".cache" / "featurestore"))
    return ensure_promtool(cache)


def test_freshness_breach_follows_each_features_own_slo(promtool: Path, tmp_path: Path) -> None:
    (tmp_path / "freshness_test.yml").write_text(_test_file())
    result = subprocess.run(
        [str(promtool), "test", "rules", "freshness_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
