"""Import layering, checked in fresh interpreters: what a module imports is what its process pays for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)


def _loaded(modules: str, prefixes: tuple[str, ...]) -> list[str]:
    code = (
        f"import {modules}; import sys; "
        f"import json; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {prefixes!r})))"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_serving_process_imports_neither_flink_nor_iceberg() -> None:
    result = _run(
        "import serving.online.app, sinks.cassandra.reader, serving.online.vectors, serving.online.__main__; import sys; "
        "bad=[m for m in sys.modules if m.startswith(('pyflink','pyiceberg'))]; assert not bad, bad"
    )
    assert result.returncode == 0, result.stderr


def test_the_check_itself_can_fail() -> None:
    result = _run(
        "import serving.offline.historical, pyiceberg.expressions; import sys; "
        "bad=[m for m in sys.modules if m.startswith(('pyflink','pyiceberg'))]; assert not bad, bad"
    )
    assert result.returncode != 0
    assert "AssertionError" in result.stderr
    assert "pyiceberg" in result.stderr


HEAVY = ("pyflink", "pyarrow", "pyiceberg", "cassandra", "fastapi", "pandas", "numpy", "starlette", "uvicorn")


@pytest.mark.parametrize(
    "modules",
    [
        "registry.core.definitions",
        "registry.core.timeline",
        "registry.core.definitions, registry.core.timeline, registry.core.catalog, registry.core.durations, registry.core.errors",
        "registry.core.value_types, registry.core.refs, registry.core.settings, registry.core.bounded_json",
        "serving.online.http_errors",
    ],
)
def test_definition_modules_import_nothing_heavy(modules: str) -> None:
    assert _loaded(modules, HEAVY) == []
