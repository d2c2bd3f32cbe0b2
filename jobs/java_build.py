"""Compile a folder of ``jobs/java`` sources into a jar once, with the JDK's ``javac``.

The jar is cached under a name that carries the sources' hash, so an edit rebuilds it, and it is
moved into place atomically, so concurrent builds end with the same file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from registry.core.errors import FeatureStoreError

SOURCES = Path(__file__).resolve().parent / "java"


def flink_dist() -> Path:
    """PyFlink's own ``flink-dist`` jar (the Flink API the job's classes compile against)."""
    import pyflink

    found = sorted((Path(pyflink.__file__).parent / "lib").glob("flink-dist-*.jar"))
    if not found:
        raise FeatureStoreError("PyFlink's flink-dist jar is missing: reinstall apache-flink")
    return found[0]


def javac() -> str:
    home = os.environ.get("JAVA_HOME")
    candidates = [Path(home) / "bin" / "javac"] if home else []
    found = next((str(c) for c in candidates if c.exists()), None) or shutil.which("javac")
    if found is None:
        raise FeatureStoreError("no javac to build the job's Java classes: install a JDK 17")
    return found


def java_jar(
    name: str,
    cache_dir: Path,
    classpath: Sequence[Path],
    *,
    services: Mapping[str, str] | None = None,
) -> Path:
    """``jobs/java/<name>`` compiled against ``classpath`` into ``cache_dir/<name>-<hash>.jar``, built first if
    missing; ``services``: ``META-INF/services`` entries (interface -> implementing class)."""
    sources = sorted((SOURCES / name).rglob("*.java"))
    if not sources:
        raise FeatureStoreError(f"no Java sources in {SOURCES / name}")
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    jar = cache_dir / f"{name}-{digest}.jar"
    if jar.exists():
        return jar
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        classes = Path(tmp) / "classes"
        compiled = subprocess.run(
            [
                javac(),
                "--release",
                "11",
                "-nowarn",
                "-d",
                str(classes),
                "-cp",
                os.pathsep.join(map(str, classpath)),
                *map(str, sources),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if compiled.returncode != 0:
            raise FeatureStoreError(f"building the job's {name} classes failed:\n{compiled.stderr[-2000:]}")
        built = Path(tmp) / jar.name
        with zipfile.ZipFile(built, "w", zipfile.ZIP_DEFLATED) as out:
            for path in sorted(classes.rglob("*.class")):
                out.write(path, path.relative_to(classes).as_posix())
            for interface, implementation in (services or {}).items():
                out.writestr(f"META-INF/services/{interface}", implementation + "\n")
        built.replace(jar)
    return jar
