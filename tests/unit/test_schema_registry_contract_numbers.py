"""Numbers in paths and query strings are read as Confluent's Java reads them, never as Python's ``int`` does.

A version in a path is Confluent's ``VersionId``: ``trim()``, ``latest`` in any case, else ``Integer.parseInt``
(an optional sign and digits), then 0 or less but -1 is 42202 naming the number it read. ``offset``/``limit``
and an id are Jersey's ``Integer.valueOf`` (no trim). Python's ``int`` also reads ``1_0`` as 10 and strips any
Unicode blank: before this, ``/versions/1_0`` answered version 10 and ``/schemas/ids/1_0`` schema 10.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from registry.schema_registry.api import create_schema_registry_app
from registry.schema_registry.store import SchemaStore

_INVALID = (
    "The specified version '{}' is not a valid version id. "
    'Allowed values are between [1, 2^31-1] and the string "latest"'
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    """Subjects s00..s11, one version each (ids 1..12); subject ``s`` with versions 1..10 (ids 13..22)."""
    db: Path = tmp_path_factory.mktemp("numbers") / "schemas.db"
    client = TestClient(create_schema_registry_app(SchemaStore(db)), raise_server_exceptions=False)
    for i in range(12):
        enum = {"type": "enum", "name": "E", "symbols": [f"A{i}"]}
        assert client.post(f"/subjects/s{i:02d}/versions", json={"schema": json.dumps(enum)}).status_code == 200
    for i in range(10):
        fields = [{"name": f"f{j}", "type": "int", "default": 0} for j in range(i + 1)]
        schema = json.dumps({"type": "record", "name": "R", "fields": fields})
        assert client.post("/subjects/s/versions", json={"schema": schema}).status_code == 200
    return client


@pytest.mark.parametrize(
    ("version", "number"),
    [("1", 1), ("+1", 1), ("01", 1), (" 3\t", 3), ("LATEST", 10), (" latest ", 10), ("-1", 10), ("2", 2)],
)
def test_a_version_java_reads(client: TestClient, version: str, number: int) -> None:
    answer = client.get(f"/subjects/s/versions/{quote(version, safe='')}")
    assert (answer.status_code, answer.json()["version"]) == (200, number)


@pytest.mark.parametrize(
    ("version", "named"),
    [
        ("1_0", "1_0"),  # Python's int reads 10
        ("\u00a01", "\u00a01"),  # Java's trim keeps a no-break space
        ("1.0", "1.0"),
        ("2147483648", "2147483648"),
        ("9" * 5000, "9" * 100),  # past what Python's int converts from text (the message shows 100 characters)
        ("0", "0"),
        ("-0", "0"),  # the number Java read, not the text
        ("+0", "0"),
        (" -5 ", "-5"),
        ("-2147483648", "-2147483648"),
    ],
)
def test_a_version_java_refuses_is_42202(client: TestClient, version: str, named: str) -> None:
    answer = client.get(f"/subjects/s/versions/{quote(version, safe='')}")
    assert (answer.status_code, answer.json()) == (422, {"error_code": 42202, "message": _INVALID.format(named)})


@pytest.mark.parametrize("query", ["offset=1_0", "limit=1_0", "limit=%202", "offset=99999999999", "limit=1.0"])
def test_a_paging_parameter_java_refuses_is_jerseys_404(client: TestClient, query: str) -> None:
    answer = client.get(f"/subjects?{query}")
    assert (answer.status_code, answer.json()) == (404, {"error_code": 404, "message": "HTTP 404 Not Found"})


def test_paging_parameters_java_reads(client: TestClient) -> None:
    assert len(client.get("/subjects?offset=10").json()) == 3
    assert len(client.get("/subjects?offset=%2B10&limit=-5").json()) == 3
    assert client.get("/subjects?offset=010&limit=1").json() == ["s09"]


@pytest.mark.parametrize("schema_id", ["1_0", " 10", "10 ", "\u0661\u0660x"])
def test_an_id_java_does_not_read_is_not_found(client: TestClient, schema_id: str) -> None:
    answer = client.get(f"/schemas/ids/{quote(schema_id, safe='')}")
    assert (answer.status_code, answer.json()["error_code"]) == (404, 40403)


def test_an_id_java_reads(client: TestClient) -> None:
    ten = client.get("/schemas/ids/10").json()
    assert ten == {"schema": '{"type":"enum","name":"E","symbols":["A9"]}'}
    assert client.get("/schemas/ids/%2B10").json() == ten
    assert client.get("/schemas/ids/010").json() == ten
