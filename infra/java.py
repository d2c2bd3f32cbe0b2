"""Find the JDK 17 that Kafka 4 (17+) and Cassandra 5.0 (11 or 17 only) can both run on."""

from __future__ import annotations

import glob
import os
import re
import subprocess
from pathlib import Path

from infra.errors import InfraError


def _major_version(java: Path) -> int | None:
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=20).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)', out)
    return int(match.group(1)) if match else None


def default_candidates() -> list[Path]:
    """FS_JAVA_HOME, JAVA_HOME, Debian's JDK 17 folders, then the ``java`` on the default path."""
    candidates: list[Path] = []
    for var in ("FS_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(var):
            candidates.append(Path(os.environ[var]) / "bin" / "java")
    candidates += [Path(p) / "bin" / "java" for p in sorted(glob.glob("/usr/lib/jvm/*17*"))]
    candidates.append(Path("/usr/bin/java"))
    return candidates


def find_java17(candidates: list[Path] | None = None) -> Path:
    """Path of a Java 17 ``java`` binary, or InfraError naming what to install or set."""
    if candidates is None:
        candidates = default_candidates()
    seen: list[str] = []
    for java in candidates:
        if java.exists():
            version = _major_version(java)
            if version == 17:
                return java
            seen.append(f"{java} (Java {version})" if version is not None else f"{java} (did not say its version)")
    found = "; found: " + ", ".join(seen) if seen else ""
    raise InfraError(
        "no JDK 17 found (Cassandra 5.0 runs on Java 11 or 17 only, Kafka 4 needs 17+): "
        f"install openjdk-17-jdk-headless or set FS_JAVA_HOME{found}"
    )
