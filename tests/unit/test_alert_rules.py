"""The alert rules (infra/prometheus/alerts.yml) under Prometheus' own rule evaluator, ``promtool``:
valid, and each alert firing on a synthetic series and quiet on a healthy one (tests/alerts/)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from infra.promtool import ensure_promtool

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "infra" / "prometheus" / "alerts.yml"
TESTS = REPO / "tests" / "alerts" / "alerts_test.yml"


@pytest.fixture(scope="session")
def promtool() -> Path:
    cache = Path(os.environ.get("FS_CACHE_DIR", Path.home() / ".cache" / "featurestore"))
    return ensure_promtool(cache)  # built once from the Go module (minutes the first time), then cached


def _run(promtool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(promtool), *args], cwd=TESTS.parent, capture_output=True, text=True, timeout=120)


def test_the_rules_are_valid(promtool: Path) -> None:
    result = _run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_alert_fires_on_its_signal_and_not_on_a_healthy_series(promtool: Path) -> None:
    result = _run(promtool, "test", "rules", TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_test() -> None:
    alerts = set(re.findall(r"^\s*- alert: (\w+)", RULES.read_text(), re.MULTILINE))
    tested = set(re.findall(r"alertname: (\w+)", TESTS.read_text()))
    assert alerts and alerts == tested
