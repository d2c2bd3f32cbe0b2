"""docker-compose.yml stays consistent with infra/: ports, mounted files, services, versions, FS_* names.

Static checks only (no Docker needed): they parse the compose file and compare it with the defaults
in infra/settings.py, the templates under infra/conf and the pins in infra/maven and constraints.txt.
"""

from __future__ import annotations

import os
import re
import string
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.settings import StackSettings

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("kafka", "cassandra", "registry", "definitions", "api", "flink-jobmanager", "flink-taskmanager", "job")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch) -> StackSettings:
    """infra's settings with no FS_* overrides: the defaults the compose file must match."""
    for name in [n for n in os.environ if n.startswith("FS_")]:
        monkeypatch.delenv(name)
    return StackSettings.from_env()


def _published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host_ip, host_port, container_port) of each port the service publishes."""
    out = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            out.append((entry.get("host_ip", ""), int(entry["published"]), int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")
        assert len(parts) in (2, 3), f"{entry!r}: publish an explicit host port"
        out.append((parts[0] if len(parts) == 3 else "", int(parts[-2]), int(parts[-1])))
    return out


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    return dict(e.split("=", 1) for e in env) if isinstance(env, list) else env


def _pom_version(component: str, artifact: str) -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.parse(REPO / "infra" / "maven" / component / "pom.xml").getroot()
    for dep in root.iterfind(".//m:dependency", ns):
        if dep.findtext("m:artifactId", namespaces=ns) == artifact:
            return str(dep.findtext("m:version", namespaces=ns))
    raise AssertionError(f"{artifact} not in infra/maven/{component}/pom.xml")


def test_services_present(compose: dict[str, Any]) -> None:
    assert set(SERVICES) <= set(compose["services"])
    assert compose["services"]["job"].get("profiles") == ["job"], "the job must not start by default"


def test_host_ports_match_infra_defaults(compose: dict[str, Any], defaults: StackSettings) -> None:
    expected = {
        "kafka": defaults.kafka_port,
        "cassandra": defaults.cassandra_port,
        "registry": defaults.registry_port,
        "api": defaults.api_port,
    }
    for name, port in expected.items():
        # the same port inside: the services in the network use kafka:9092, registry:8081, ...
        assert _published(compose["services"][name]) == [(defaults.host, port, port)], name
    for name in ("registry", "api"):
        command = compose["services"][name]["command"]
        assert command[command.index("--port") + 1] == str(expected[name]), name
    host_ports = [p for s in compose["services"].values() for _, p, _ in _published(s)]
    assert len(host_ports) == len(set(host_ports)), f"a host port is published twice: {host_ports}"
    infra_ports = {defaults.kafka_controller_port, defaults.cassandra_storage_port, *expected.values()}
    flink_ui = {p for _, p, _ in _published(compose["services"]["flink-jobmanager"])}
    assert flink_ui and not flink_ui & infra_ports, "Flink's UI must not take a port of infra's"


def test_mounted_and_built_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.get("source", "") if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith((".", "/")):
                path = (REPO / source).resolve()
                assert path.is_relative_to(REPO) and path.exists(), f"{name}: {source} does not exist"
        build = service.get("build")
        if isinstance(build, str):
            build = {"context": build}
        if build:
            dockerfile = REPO / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
            assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"


def test_kafka_command_renders_every_placeholder(compose: dict[str, Any], defaults: StackSettings) -> None:
    kafka = compose["services"]["kafka"]
    script = "\n".join(kafka["command"]).replace("$$", "$")
    # the sed expressions: s/[$]{NAME}/value/g (any delimiter)
    values = {name: value for _, name, value in re.findall(r"s(.)\[\$\]\{(\w+)\}\1(.*?)\1g", script)}
    template = (REPO / "infra" / "conf" / "kafka" / "server.properties").read_text()
    string.Template(template).substitute(values)  # KeyError names a placeholder the command misses
    assert values["FS_KAFKA_PORT"] == str(defaults.kafka_port)
    assert values["FS_KAFKA_CONTROLLER_PORT"] == str(defaults.kafka_controller_port)
    assert any(v.endswith(":" + values["FS_KAFKA_DATA_DIR"]) for v in kafka["volumes"]), "data dir is no volume"
    advertised = f"{values['FS_KAFKA_ADVERTISED_HOST']}:{values['FS_KAFKA_PORT']}"
    for service in compose["services"].values():
        bootstrap = _env(service).get("FS_KAFKA_BOOTSTRAP")
        assert bootstrap in (None, advertised), "clients must use the advertised listener"


def test_fs_variables_are_ones_the_code_reads(compose: dict[str, Any], defaults: StackSettings) -> None:
    read = {
        *re.findall(r"\"(FS_\w+)\"", (REPO / "registry" / "core" / "settings.py").read_text()),
        *re.findall(r"\"(FS_\w+)\"", (REPO / "infra" / "settings.py").read_text()),
    }
    dockerfile = (REPO / "infra" / "docker" / "Dockerfile").read_text()
    names = set(re.findall(r"\b(FS_\w+)=", dockerfile))
    for service in compose["services"].values():
        names |= {n for n in _env(service) if n.startswith("FS_")}
    assert names and names <= read, f"not read by the code: {sorted(names - read)}"
    env = _env(compose["services"]["api"])
    assert env["FS_SCHEMA_REGISTRY_URL"] == f"http://registry:{defaults.registry_port}"


def test_no_compose_interpolation() -> None:
    """Every $ is escaped: a bare ${FS_...} would be filled (or emptied) by Compose, not the container."""
    assert "$" not in (REPO / "docker-compose.yml").read_text().replace("$$", "")


def test_versions_match_infra_pins(compose: dict[str, Any]) -> None:
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{_pom_version('kafka', 'kafka_2.13')}"
    assert compose["services"]["cassandra"]["image"] == f"cassandra:{_pom_version('cassandra', 'cassandra-all')}"
    flink = re.search(r"^apache-flink==(\S+)$", (REPO / "constraints.txt").read_text(), re.M)
    dockerfile = (REPO / "infra" / "docker" / "Dockerfile").read_text()
    assert flink and f"FROM flink:{flink.group(1)}-" in dockerfile


def test_image_copies_the_files_the_package_metadata_names() -> None:
    """``pip install .`` in the image reads the readme and the license files pyproject.toml names: a missing one
    is a wheel without its license (setuptools warns now, and will refuse)."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    final_stage = (REPO / "infra" / "docker" / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    copied = {name for line in re.findall(r"^COPY (.*) \./$", final_stage, re.M) for name in line.split()}
    assert {project["readme"], *project["license-files"]} <= copied, copied


def test_image_copies_every_package() -> None:
    packages = re.search(r"^include\s*=\s*\[(.*?)\]", (REPO / "pyproject.toml").read_text(), re.M | re.S)
    assert packages
    final_stage = (REPO / "infra" / "docker" / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    for package in re.findall(r"\"(\w+)\*\"", packages.group(1)):
        assert re.search(rf"^COPY {package}/ ", final_stage, re.M), f"Dockerfile does not copy {package}/"


def test_image_can_build_the_jobs_java_classes() -> None:
    """The `job` service's `flink run` compiles jobs/java (decoder, batching operator) in the installed
    package on first submission (jobs/java_build.py): the sources must be package data of `jobs` (the image
    runs `pip install .`, and `flink run --python` imports `jobs` from site-packages, not /app) and the image
    needs a JDK's javac, not only a JRE."""
    import tomllib

    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = {p for pattern in package_data.get("jobs", []) for p in (REPO / "jobs").glob(pattern)}
    sources = set((REPO / "jobs" / "java").rglob("*.java"))
    assert sources and sources <= shipped, f"not in the installed package: {sorted(sources - shipped)}"
    dockerfile = (REPO / "infra" / "docker" / "Dockerfile").read_text()
    base = dockerfile.split("\nFROM python:", 1)[1].split("\nFROM ", 1)[0]
    assert re.search(r"\bopenjdk-17-jdk(-headless)?\b", base), "the image has no javac (a JRE only)"


def test_task_manager_exports_the_jobs_metrics(compose: dict[str, Any]) -> None:
    """Under `flink run` the job configures no metric reporter (jobs/flink_environment.py: the cluster's
    configuration decides), so the compose cluster must: the alerts read the writers' and decoder's metrics,
    which live on the task managers. Published where a local run serves them (--metrics-port's default)."""
    command = compose["services"]["flink-taskmanager"]["command"]
    options = dict(command[i + 1].split("=", 1) for i, arg in enumerate(command) if arg == "-D")
    names = {k.split(".")[2] for k, v in options.items() if k.endswith(".factory.class") and "Prometheus" in v}
    assert names, "the task managers have no Prometheus reporter: the job's metrics are exported nowhere"
    port = int(options[f"metrics.reporter.{names.pop()}.port"])
    assert _published(compose["services"]["flink-taskmanager"]) == [("127.0.0.1", 9249, port)]


def test_image_jars_stage_can_run_infra_fetch(tmp_path: Path) -> None:
    """The Dockerfile's `jars` stage copies part of the repository and runs `python -m infra fetch flink`:
    those files alone (Docker COPY semantics: several sources into a folder land flat in it) must be enough
    to import infra's command (stdlib only: no site-packages, no installed project)."""
    import shutil
    import subprocess
    import sys

    dockerfile = (REPO / "infra" / "docker" / "Dockerfile").read_text()
    stage = dockerfile.split(" AS jars\n", 1)[1].split("\nFROM ", 1)[0]
    copies = re.findall(r"^COPY\s+(.+)$", stage, re.M)
    assert copies
    for line in copies:
        *sources, dest = line.split()
        target = tmp_path / dest
        for source in sources:
            path = REPO / source
            if path.is_dir():
                shutil.copytree(path, target, dirs_exist_ok=True)
            else:
                folder = target if dest.endswith("/") or len(sources) > 1 else target.parent
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, folder / (path.name if folder == target else target.name))
    run = subprocess.run(
        [sys.executable, "-S", "-E", "-m", "infra", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-2000:]


def test_the_jar_stage_copies_what_infra_imports(tmp_path: Path) -> None:
    """The image's jar stage runs ``python -m infra fetch flink`` with only ``infra/`` and the ``registry`` files it
    copies, and no dependency installed: infra's modules import there with the standard library alone."""
    import shutil
    import subprocess
    import sys

    dockerfile = (REPO / "infra" / "docker" / "Dockerfile").read_text()
    stage = dockerfile.split(" AS jars\n", 1)[1].split("\nFROM ", 1)[0]
    shutil.copytree(REPO / "infra", tmp_path / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    for line in re.findall(r"^COPY (registry/.*)$", stage, re.M):
        *sources, destination = line.split()
        (tmp_path / destination).mkdir(parents=True, exist_ok=True)
        for source in sources:
            shutil.copy(REPO / source, tmp_path / destination)
    modules = sorted(f"infra.{p.stem}" for p in (REPO / "infra").glob("*.py") if p.stem != "__init__")
    imported = subprocess.run(
        [sys.executable, "-E", "-s", "-S", "-c", f"import {', '.join(modules)}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert imported.returncode == 0, imported.stderr
