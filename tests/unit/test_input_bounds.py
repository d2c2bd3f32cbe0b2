"""Out-of-range and malformed input gets the service's own JSON error, never a 500 or a dropped connection.

The cases a fuzzing run found (issue #14): ids and versions past 2^63, JSON and Avro nested ~1,000
levels deep, a 100,000-character subject, and control characters in definition text.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry.core.bounded_json import MAX_NESTING
from registry.schema_registry.api import create_schema_registry_app
from registry.schema_registry.store import SchemaStore

REPO = Path(__file__).resolve().parents[2]
DEEP_JSON = "[" * 1000 + "]" * 1000
SCHEMA = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]})


def _nested_schema(levels: int) -> str:
    return '{"type":"array","items":' * levels + '"int"' + "}" * levels


@pytest.fixture
def registry(tmp_path: Path) -> TestClient:
    return TestClient(create_schema_registry_app(SchemaStore(tmp_path / "schemas.db")), raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", f"/schemas/ids/{2**63}", 404, 40403),
        ("GET", f"/schemas/ids/{2**64}", 404, 40403),
        ("GET", f"/schemas/ids/{2**31}", 404, 40403),
        ("GET", f"/schemas/ids/{2**63}/versions", 404, 40403),
        ("GET", f"/schemas/ids/{2**63}/subjects", 404, 40403),
        ("GET", f"/schemas/ids/{2**63}/schema", 404, 40403),
        ("GET", f"/subjects/s/versions/{2**63}", 422, 42202),
        ("DELETE", f"/subjects/s/versions/{2**70}", 422, 42202),  # Confluent parses the version first
    ],
)
def test_ids_and_versions_past_every_integer_width(
    registry: TestClient, method: str, path: str, status: int, code: int
) -> None:
    response = registry.request(method, path)
    assert (response.status_code, response.json()["error_code"]) == (status, code), response.text


@pytest.mark.parametrize("path", ["/subjects/s/versions", "/subjects/s", "/compatibility/subjects/s/versions/latest"])
def test_deeply_nested_bodies_and_schemas_are_refused(registry: TestClient, path: str) -> None:
    assert registry.post("/subjects/s/versions", json={"schema": SCHEMA}).status_code == 200
    body = registry.post(path, content=DEEP_JSON, headers={"content-type": "application/json"})
    assert (body.status_code, body.json()["error_code"]) == (422, 42201), body.text
    schema = registry.post(path, json={"schema": _nested_schema(1000)})
    assert (schema.status_code, schema.json()["error_code"]) == (422, 42201), schema.text
    assert f"nested more than {MAX_NESTING} levels" in schema.json()["message"]


def test_nesting_up_to_the_limit_still_registers_and_checks(registry: TestClient) -> None:
    deepest = _nested_schema(MAX_NESTING // 2 - 1)  # two JSON levels per array type
    assert registry.post("/subjects/deep/versions", json={"schema": deepest}).status_code == 200
    check = registry.post("/compatibility/subjects/deep/versions/latest", json={"schema": deepest})
    assert check.json() == {"is_compatible": True}


@pytest.fixture
def registry_server(tmp_path: Path) -> Iterator[int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "registry.schema_registry", "--port", "0", "--db", str(tmp_path / "schemas.db")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://"), line
        yield int(line.rsplit(":", 1)[1])
    finally:
        process.terminate()
        process.wait(timeout=30)


def _raw_get(port: int, path: str) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_a_100k_character_subject_gets_a_confluent_error_from_the_real_server(registry_server: int) -> None:
    status, body = _raw_get(registry_server, "/subjects/" + "a" * 100_000 + "/versions")
    assert status == 404
    assert json.loads(body)["error_code"] == 40401


# --- the definition API --------------------------------------------------------------------------


@pytest.fixture
def definitions(tmp_path: Path) -> TestClient:
    from registry.definition_store import DefinitionStore
    from registry.live import LiveCatalog
    from serving.online.app import create_app

    class NoValues:
        def read(self, entity_type: str, entity_id: str) -> dict[Any, Any]:
            return {}

        def progress(self) -> dict[str, int]:
            return {}

    return TestClient(
        create_app(LiveCatalog(DefinitionStore(tmp_path / "d.db")), NoValues()), raise_server_exceptions=False
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"version": 2**63}, "version: Input should be less than or equal to 2147483647"),
        ({"version": 2**31}, "version: Input should be less than or equal to 2147483647"),
        ({"owner": "risk\x00team"}, "owner: must not contain control characters"),
        ({"owner": "risk\nteam"}, "owner: must not contain control characters"),
        ({"tags": ["ok", "b\x1bad"]}, "tags.1: must not contain control characters"),
        ({"description": "a\x07b"}, "description: must not contain control characters other than"),
        ({"owner": "x" * 257}, "owner: String should have at most 256 characters"),
        ({"owner": "risk\x85team"}, "owner: must not contain control characters"),
        ({"version": True}, "version: Input should be a valid integer"),
        ({"version": "7"}, "version: Input should be a valid integer"),
        ({"version": 7.0}, "version: Input should be a valid integer"),
        ({"source.topic": "tnl\n"}, "source.topic: topic 'tnl\\n'"),
    ],
)
def test_definition_fields_out_of_range(
    definitions: TestClient,
    make_definition_dict: Callable[..., dict[str, Any]],
    overrides: dict[str, Any],
    message: str,
) -> None:
    response = definitions.post("/v1/feature-definitions", json=make_definition_dict(**overrides))
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_definition"
    assert response.json()["message"].startswith(message)


def test_descriptions_keep_newlines(
    definitions: TestClient, make_definition_dict: Callable[..., dict[str, Any]]
) -> None:
    response = definitions.post("/v1/feature-definitions", json=make_definition_dict(description="line 1\n\tline 2"))
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("version", [2**31, 2**63, 2**70, 0, -1])
def test_activating_a_version_out_of_range_is_unknown(
    definitions: TestClient, make_definition_dict: Callable[..., dict[str, Any]], version: int
) -> None:
    assert definitions.post("/v1/feature-definitions", json=make_definition_dict()).status_code == 201
    response = definitions.post(f"/v1/feature-definitions/user/txn_count_1h/activate?version={version}")
    assert response.status_code == 404, response.text
    assert response.json()["error"] == "unknown_feature"


def test_malformed_parameters_and_unknown_routes_answer_in_the_apis_own_shape(
    definitions: TestClient, make_definition_dict: Callable[..., dict[str, Any]]
) -> None:
    assert definitions.post("/v1/feature-definitions", json=make_definition_dict()).status_code == 201
    bad = definitions.post("/v1/feature-definitions/user/txn_count_1h/activate?version=x")
    assert (bad.status_code, bad.json()["error"]) == (400, "bad_request")
    assert "query.version" in bad.json()["message"]
    missing = definitions.get("/v1/no-such-route")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    wrong = definitions.delete("/v1/feature-definitions")
    assert (wrong.status_code, wrong.json()["error"]) == (405, "method_not_allowed")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_schema_registry_stops_cleanly_on_ctrl_c_and_sigterm(tmp_path: Path, stop: signal.Signals) -> None:
    """Ctrl-C ended the registry with a KeyboardInterrupt traceback (``server.run`` does not catch it, unlike
    ``uvicorn.run``), SIGTERM by the signal itself, before ``atexit``: a stop is a normal stop, exit 0, as the API's."""
    process = subprocess.Popen(
        [sys.executable, "-m", "registry.schema_registry", "--port", "0", "--db", str(tmp_path / "schemas.db")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("listening on http://"), line
    assert _raw_get(int(line.rsplit(":", 1)[1]), "/subjects")[0] == 200  # serving
    process.send_signal(stop)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0 and "Traceback" not in err, err
