"""Prometheus' ``promtool``, built from its Go module at a pinned version and cached.

The alert rules (``infra/prometheus/alerts.yml``) are tested by the real rule evaluator
(``promtool test rules``). There is no release download here (only the Go module proxy), so the
binary is built once with the machine's ``go`` into ``<cache>/promtool/<version>/promtool``
(about 5 minutes the first time). Go's module and build caches (about 3.5 GB) go to the build's temporary
folder and are removed with it, since only the binary is kept; a ``GOMODCACHE`` or ``GOCACHE`` set in the
environment is used instead, and kept.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from infra.errors import InfraError

VERSION = "v0.316.0"  # github.com/prometheus/prometheus (Prometheus 3.x's Go module)
MODULE = "github.com/prometheus/prometheus"


def ensure_promtool(cache_dir: Path, *, timeout_s: float = 1200) -> Path:
    """The cached promtool, built first if absent; InfraError naming what is missing otherwise."""
    target = cache_dir / "promtool" / VERSION / "promtool"
    if target.exists():
        return target
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise InfraError("promtool is built from its Go module, and no `go` command was found")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # FS_CACHE_DIR a file, or not ours to write: one line, not a traceback
        raise InfraError(f"FS_CACHE_DIR={cache_dir}: cannot keep promtool there ({exc.strerror or exc})") from None
    with tempfile.TemporaryDirectory(prefix="promtool-build-") as tmp:
        (Path(tmp) / "go.mod").write_text("module promtoolbuild\n\ngo 1.26\n")
        # -modcacherw: Go makes its module cache read-only, which the temporary folder's removal could not delete.
        env = {
            "GOMODCACHE": str(Path(tmp) / "gomodcache"),
            "GOCACHE": str(Path(tmp) / "gocache"),
            **os.environ,
            "GOFLAGS": "-mod=mod -modcacherw",
        }
        built = Path(tmp) / "promtool"
        for step in (
            [go, "get", f"{MODULE}/cmd/promtool@{VERSION}"],
            [go, "build", "-o", str(built), f"{MODULE}/cmd/promtool"],
        ):
            try:
                result = subprocess.run(step, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout_s)
            except subprocess.TimeoutExpired:  # it was this exception's traceback
                raise InfraError(
                    f"building promtool did not finish within {timeout_s:g}s at `{' '.join(step[1:3])}` (stopped)"
                ) from None
            if result.returncode != 0:
                raise InfraError(f"building promtool failed at `{' '.join(step[1:3])}`: {result.stderr[-2000:]}")
        partial = target.with_name(".promtool.partial")
        shutil.copy2(built, partial)
        partial.replace(target)  # atomic: a concurrent or interrupted build never leaves half a binary
    return target
