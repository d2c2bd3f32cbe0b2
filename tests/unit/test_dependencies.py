"""The declared dependencies are what the code imports: nothing imported undeclared, nothing declared unused."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("jobs", "udfs", "schemas", "sinks", "serving", "registry", "infra")
# Declared but used without an import statement, each for a stated reason (pyproject.toml says which):
# pandas through pyarrow's to_pandas, httptools and uvloop named in uvicorn's settings.
USED_WITHOUT_IMPORT = {"pandas", "httptools", "uvloop"}


def _imports(folders: tuple[str, ...]) -> set[str]:
    found: set[str] = set()
    for folder in folders:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found


def _distributions(modules: set[str]) -> set[str]:
    local = set(PACKAGES) | {"bench", "tests"}
    of_module = importlib.metadata.packages_distributions()
    out = set()
    for module in modules - local - set(sys.stdlib_module_names) - {"__future__"}:
        dists = of_module.get(module)
        assert dists, f"imported module {module} belongs to no installed distribution"
        out.add(_norm(dists[0]))
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(spec: list[str]) -> set[str]:
    return {_norm(re.split(r"[\[<>=!~ ;]", s, maxsplit=1)[0]) for s in spec}


def test_runtime_dependencies_are_exactly_what_the_packages_import() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = _declared(project["dependencies"])
    imported = _distributions(_imports(PACKAGES))
    imported = {"apache-flink" if d == "apache-flink-libraries" else d for d in imported}
    assert imported - declared == set(), "imported but not declared"
    assert declared - imported - USED_WITHOUT_IMPORT == set(), "declared but never imported"


def test_dev_dependencies_cover_what_tests_and_benches_import() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = _declared(project["dependencies"]) | _declared(project["optional-dependencies"]["dev"])
    imported = _distributions(_imports(("tests", "bench")))
    imported = {"apache-flink" if d == "apache-flink-libraries" else d for d in imported}
    assert imported - declared == set(), "imported by tests or benches but not declared"
