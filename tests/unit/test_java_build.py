"""``jobs.java_build``: a folder of Java sources becomes a cached jar, rebuilt only when a source changes."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from jobs import java_build
from registry.core.errors import FeatureStoreError

SOURCE = "package demo;\npublic class Hello implements Runnable {\n    public void run() {}\n}\n"


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "java"
    (root / "demo" / "demo").mkdir(parents=True)
    (root / "demo" / "demo" / "Hello.java").write_text(SOURCE)
    monkeypatch.setattr(java_build, "SOURCES", root)
    return root / "demo" / "demo" / "Hello.java"


def test_a_jar_is_built_once_with_its_classes_and_services(sources: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    jar = java_build.java_jar("demo", cache, [], services={"java.lang.Runnable": "demo.Hello"})
    with zipfile.ZipFile(jar) as built:
        assert "demo/Hello.class" in built.namelist()
        assert built.read("META-INF/services/java.lang.Runnable") == b"demo.Hello\n"
    built_at = jar.stat().st_mtime_ns
    assert java_build.java_jar("demo", cache, []) == jar  # cached: not compiled again
    assert jar.stat().st_mtime_ns == built_at
    assert sorted(p.name for p in cache.iterdir()) == [jar.name]  # no temporary folder left behind


def test_an_edited_source_builds_a_new_jar(sources: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = java_build.java_jar("demo", cache, [])
    sources.write_text(SOURCE.replace("public void run() {}", "public void run() { System.out.println(); }"))
    second = java_build.java_jar("demo", cache, [])
    assert second != first and second.exists()


def test_a_compile_error_is_a_named_failure(sources: Path, tmp_path: Path) -> None:
    sources.write_text(SOURCE.replace("{}", "{ undefinedCall(); }"))
    with pytest.raises(FeatureStoreError, match=r"building the job's demo classes failed:[\s\S]*undefinedCall"):
        java_build.java_jar("demo", tmp_path / "cache", [])
    assert not list((tmp_path / "cache").glob("*.jar"))


def test_a_folder_without_sources_is_a_named_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(java_build, "SOURCES", tmp_path)
    with pytest.raises(FeatureStoreError, match="no Java sources"):
        java_build.java_jar("nothing", tmp_path / "cache", [])
