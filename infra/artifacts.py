"""Fetch the pinned JVM artifacts from Maven Central into the cache, and verify them.

Maven resolves each component's dependency closure from the POMs under ``infra/maven/`` and, run
with ``--strict-checksums``, refuses any file whose checksum does not match Maven Central's. After a
fetch we record the SHA-256 of every jar in ``<cache>/<component>/manifest.txt``; ``verify`` checks
the jars against that manifest so a truncated or swapped file is caught before a JVM starts on it.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from infra.errors import InfraError
from infra.settings import REPO_DIR, StackSettings

COMPONENTS = ("kafka", "cassandra", "flink")
MAVEN_DIR = REPO_DIR / "infra" / "maven"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest_path(settings: StackSettings, component: str) -> Path:
    return settings.cache_dir / component / "manifest.txt"


def _pom_digest(component: str, maven_dir: Path = MAVEN_DIR) -> str:
    return hashlib.sha256((maven_dir / component / "pom.xml").read_bytes()).hexdigest()[:16]


def is_fetched(settings: StackSettings, component: str, maven_dir: Path = MAVEN_DIR) -> bool:
    manifest = _manifest_path(settings, component)
    if not manifest.exists():
        return False
    try:
        first = manifest.read_text(errors="replace").splitlines()[:1]
    except OSError as exc:  # a folder there, a file its user cannot read: a traceback, with nothing said to run
        again = "run `python -m infra fetch --force`"
        raise InfraError(f"{component}: manifest {manifest} is unreadable ({exc}); {again}") from None
    return first == [f"# pom {_pom_digest(component, maven_dir)}"]


def verify(settings: StackSettings, component: str) -> None:
    """Raise InfraError unless every jar of the component matches its recorded SHA-256."""
    manifest = _manifest_path(settings, component)
    if not is_fetched(settings, component):
        raise InfraError(f"{component}: not fetched (or its POM changed); run `python -m infra fetch`")
    verify_manifest(settings.lib_dir(component), manifest)


def verify_manifest(lib: Path, manifest: Path) -> None:
    """Raise InfraError unless every jar listed in the manifest is in lib with its recorded SHA-256, and
    lib holds no other jar (the classpath is ``lib/*``: an unlisted jar would run unchecked). A manifest
    that does not read as ``<sha256>  <jar>`` lines, or lists no jar, is a corrupt download too."""
    component = lib.parent.name
    again = "run `python -m infra fetch --force`"
    listed: dict[str, str] = {}
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()[1:]
    except (OSError, UnicodeDecodeError) as exc:
        raise InfraError(f"{component}: manifest {manifest} is unreadable ({exc}); {again}") from None
    for number, line in enumerate(lines, start=2):
        digest, sep, name = line.partition("  ")
        if not sep or not re.fullmatch(r"[0-9a-f]{64}", digest) or not name.endswith(".jar") or "/" in name:
            raise InfraError(f"{component}: manifest {manifest} line {number} is corrupt: {line[:80]!r}; {again}")
        listed[name] = digest
    if not listed:
        raise InfraError(f"{component}: manifest {manifest} lists no jars; {again}")
    for name, digest in listed.items():
        path = lib / name
        if not path.is_file() or _sha256(path) != digest:
            raise InfraError(f"{component}: {name} is missing or corrupt; {again}")
    extra = sorted(j.name for j in lib.glob("*.jar") if j.name not in listed)
    if extra:
        raise InfraError(f"{component}: {', '.join(extra[:3])} in {lib} is not in the manifest; {again}")


def fetch(settings: StackSettings, component: str, *, force: bool = False, maven_dir: Path = MAVEN_DIR) -> None:
    """Download a component's jars (with progress on stderr) unless already fetched and intact."""
    if not force and is_fetched(settings, component, maven_dir):
        verify(settings, component)
        print(f"[fetch] {component}: cached in {settings.lib_dir(component)}", file=sys.stderr)
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise InfraError("Maven (`mvn`) is not on PATH; install it (apt-get install maven) to fetch jars")
    lib = settings.lib_dir(component)
    staging = lib.with_name("lib.partial")
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        mvn,
        "-B",
        "--strict-checksums",
        "-f",
        str(maven_dir / component / "pom.xml"),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
        f"-Dmaven.repo.local={settings.cache_dir / 'm2'}",
        "-Dmaven.wagon.http.retryHandler.count=3",
        "-Dmaven.wagon.rto=60000",
    ]
    print(f"[fetch] {component}: resolving from Maven Central ...", file=sys.stderr)
    started = time.monotonic()
    downloaded = 0
    tail: list[str] = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    # The deadline on a timer, not between lines: a Maven that hangs printing nothing is stopped on time too.
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        proc.kill()

    # A timer waits at most TIMEOUT_MAX (~292 years): past it, its thread ended in an OverflowError traceback.
    timer = threading.Timer(min(settings.fetch_timeout_s, threading.TIMEOUT_MAX), expire)
    timer.daemon = True
    timer.start()
    try:
        for line in proc.stdout:
            tail = ([*tail, line.rstrip()])[-25:]
            if "Downloaded from" in line and line.rstrip().endswith(")"):
                downloaded += 1
                if downloaded % 10 == 0:
                    elapsed = time.monotonic() - started
                    print(f"[fetch] {component}: {downloaded} files downloaded, {elapsed:.0f}s", file=sys.stderr)
        rc = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
    if timed_out.is_set():
        raise InfraError(f"{component}: fetch took longer than {settings.fetch_timeout_s:g}s (FS_FETCH_TIMEOUT_S)")
    if rc != 0:
        # Its first error line says why (Maven's next ones say how to re-run it); joined with line feeds, they
        # were printed as literal "\n" runs in the one error line.
        said = [line.strip() for line in tail if line.strip() and line.strip() != "[ERROR]"]
        detail = next((line for line in said if "ERROR" in line), said[-1] if said else None)
        what = f"{component}: download from Maven Central failed (mvn exit {rc})"
        raise InfraError(f"{what}: {detail}" if detail else f"{what}, no output")
    jars = sorted(staging.glob("*.jar"))
    if not jars:
        raise InfraError(f"{component}: Maven finished but produced no jars")
    lines = [f"# pom {_pom_digest(component, maven_dir)}"] + [f"{_sha256(j)}  {j.name}" for j in jars]
    size_mb = sum(j.stat().st_size for j in jars) / 1e6
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    _manifest_path(settings, component).write_text("\n".join(lines) + "\n")
    print(
        f"[fetch] {component}: {len(jars)} jars, {size_mb:.0f} MB, {time.monotonic() - started:.0f}s", file=sys.stderr
    )


def classpath(settings: StackSettings, component: str) -> str:
    verify(settings, component)
    return str(settings.lib_dir(component) / "*")


def jar_urls(settings: StackSettings, component: str) -> list[str]:
    """file:// URLs of a component's jars, for Flink's ``pipeline.jars``."""
    verify(settings, component)
    return [j.resolve().as_uri() for j in sorted(settings.lib_dir(component).glob("*.jar"))]
