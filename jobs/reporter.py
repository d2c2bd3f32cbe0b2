"""Build the job's Prometheus reporter jar once: Flink's reporter, bound to one host.

Flink's own Prometheus reporter serves on every interface and has no host option; the class in
``jobs/java`` serves the same metrics on one host (127.0.0.1 by default). It is compiled here with
the JDK's ``javac`` against PyFlink's own jars the first time a job needs it, and cached under a name
that carries the source's hash, so an edit rebuilds it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from registry.core.errors import FeatureStoreError

FACTORY = "org.apache.flink.metrics.prometheus.HostPrometheusReporterFactory"
_SOURCES = Path(__file__).resolve().parent / "java"
_SERVICE = "META-INF/services/org.apache.flink.metrics.reporter.MetricReporterFactory"


def _javac() -> str:
    home = os.environ.get("JAVA_HOME")
    candidates = [Path(home) / "bin" / "javac"] if home else []
    found = next((str(c) for c in candidates if c.exists()), None) or shutil.which("javac")
    if found is None:
        raise FeatureStoreError(
            "no javac to build the job's metrics reporter: install a JDK 17, or run --metrics-port 0"
        )
    return found


def reporter_jar(cache_dir: Path, flink_jars: list[Path]) -> Path:
    """The reporter jar in ``cache_dir``, built first if missing. ``flink_jars``: PyFlink's flink-dist
    and metrics-prometheus jars, which it compiles against and runs beside."""
    sources = sorted(_SOURCES.rglob("*.java"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    jar = cache_dir / f"host-prometheus-reporter-{digest}.jar"
    if jar.exists():
        return jar
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        classes = Path(tmp) / "classes"
        compiled = subprocess.run(
            [
                _javac(),
                "--release",
                "11",
                "-nowarn",
                "-d",
                str(classes),
                "-cp",
                os.pathsep.join(map(str, flink_jars)),
                *map(str, sources),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if compiled.returncode != 0:
            raise FeatureStoreError(f"building the job's metrics reporter failed:\n{compiled.stderr[-2000:]}")
        built = Path(tmp) / jar.name
        with zipfile.ZipFile(built, "w", zipfile.ZIP_DEFLATED) as out:
            for path in sorted(classes.rglob("*.class")):
                out.write(path, path.relative_to(classes).as_posix())
            out.writestr(_SERVICE, FACTORY + "\n")
        built.replace(jar)  # atomic: a concurrent build ends with the same file
    return jar
