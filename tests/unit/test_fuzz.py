"""Fuzzing every HTTP service: no input gets a 5xx (the stores here are up, so not even a 503).

- The feature API (reads, batch reads, definitions, feature services), from its own OpenAPI
  description, with schemathesis: every documented operation, generated parameters and bodies.
- The schema registry's Confluent routes, with Hypothesis: each route with path segments from huge
  integers to control characters and long text, and bodies from well-formed schemas to arbitrary,
  deeply nested JSON (it serves no OpenAPI document, as Confluent's serves none, so schemathesis
  has nothing to read).

Bounded in time: a fixed number of examples per operation or route. Each test prints how many
requests it sent.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from registry.core.catalog import load_folder
from registry.definition_store import DefinitionStore
from registry.feature_services import FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from registry.plan import apply
from registry.quality import QualityStore
from registry.schema_registry.api import create_schema_registry_app
from registry.schema_registry.store import SchemaStore
from serving.online.app import create_app
from sinks.cassandra.reader import StoredValue

T = 1_700_000_000_000 // 300_000 * 300_000
SENT = {"feature api": 0, "schema registry": 0}


class _Values:
    """Two users with values for both shipped features; the store is up."""

    def read(self, entity_type: str, entity_id: str) -> dict[tuple[str, int], StoredValue]:
        if entity_type != "user" or entity_id not in ("u1", "u2"):
            return {}
        return {("txn_count_1h", 1): StoredValue(3, T), ("txn_amount_sum_1h", 1): StoredValue(12.5, T)}

    def progress(self) -> dict[str, int]:
        return {}


def _feature_api() -> FastAPI:
    """The API over the shipped definitions in a temporary registry (built at import: schemathesis
    reads the OpenAPI description while pytest collects)."""
    db = Path(tempfile.mkdtemp(prefix="fs-fuzz-")) / "definitions.db"
    atexit.register(shutil.rmtree, db.parent, ignore_errors=True)
    store = DefinitionStore(db)
    apply(store, load_folder())
    return create_app(
        LiveCatalog(store),
        _Values(),
        services=LiveFeatureServices(FeatureServiceStore(db)),
        clock_us=lambda: (T + 60_000) * 1000,
        quality=QualityStore(db),
    )


schema = schemathesis.openapi.from_asgi("/openapi.json", _feature_api())


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    print(f"\nfuzzed: feature API {SENT['feature api']} requests, schema registry {SENT['schema registry']}; no 5xx")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_feature_api_never_answers_5xx(case: Any) -> None:
    response = case.call()
    SENT["feature api"] += 1
    case.validate_response(response, checks=[not_a_server_error])


# --- the schema registry's Confluent routes ---------------------------------------------------------

_ROUTES = [
    ("GET", "/subjects"),
    ("GET", "/subjects/{s}/versions"),
    ("GET", "/subjects/{s}/versions/{v}"),
    ("GET", "/subjects/{s}/versions/{v}/schema"),
    ("GET", "/subjects/{s}/versions/{v}/referencedby"),
    ("POST", "/subjects/{s}/versions"),
    ("POST", "/subjects/{s}"),
    ("DELETE", "/subjects/{s}"),
    ("DELETE", "/subjects/{s}/versions/{v}"),
    ("GET", "/schemas/ids/{i}"),
    ("GET", "/schemas/ids/{i}/schema"),
    ("GET", "/schemas/ids/{i}/subjects"),
    ("GET", "/schemas/ids/{i}/versions"),
    ("GET", "/schemas/types"),
    ("POST", "/compatibility/subjects/{s}/versions/{v}"),
    ("POST", "/compatibility/subjects/{s}/versions"),
    ("GET", "/config"),
    ("PUT", "/config"),
    ("DELETE", "/config"),
    ("GET", "/config/{s}"),
    ("PUT", "/config/{s}"),
    ("DELETE", "/config/{s}"),
    ("GET", "/mode"),
    ("GET", "/mode/{s}"),
]
_EDGES = [2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, 2**70, -(2**31), -(2**63) - 1, 0, -1]
_SEGMENT = st.one_of(
    st.sampled_from(_EDGES).map(str),
    st.integers(-(2**80), 2**80).map(str),
    st.sampled_from(["latest", "-1", "0", "1", "2", "01", "1e3", " 1", "%00", "..", "%2F", "a%20b"]),
    st.text(st.characters(codec="utf-8", exclude_characters="/?#"), min_size=1, max_size=40),
    st.integers(1, 20_000).map(lambda n: "s" * n),
)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_SCHEMAS = st.sampled_from(
    [
        '"int"',
        '"string"',
        '{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}',
        '{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":["null","string"],'
        '"default":null}]}',
        '{"type":"enum","name":"E","symbols":["A","B"]}',
        '{"type":"array","items":"long"}',
        '{"type":"record","name":"R","fields":[{"name":"a","type":"nope"}]}',
        "not json",
        "",
        "[" * 300 + "]" * 300,
        '{"type":"array","items":' * 300 + '"int"' + "}" * 300,
        '{"type":"array","items":' * 1200 + '"int"' + "}" * 1200,
    ]
)
_BODIES = st.one_of(
    st.integers(900, 3000).map(lambda n: _Raw("[" * n + "]" * n)),
    st.integers(900, 3000).map(lambda n: _Raw('{"schema": ' + "[" * n + "]" * n + "}")),
    st.builds(lambda s: {"schema": s}, _SCHEMAS | st.text(max_size=60)),
    st.builds(
        lambda s, extra: {"schema": s, **extra}, _SCHEMAS, st.dictionaries(st.text(max_size=12), _JSON, max_size=3)
    ),
    st.builds(
        lambda s, refs: {"schema": s, "references": refs},
        _SCHEMAS,
        _JSON
        | st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.text(max_size=8),
                    "subject": st.sampled_from(["known", "x"]),
                    "version": st.sampled_from(_EDGES) | st.integers(-2, 3),
                }
            ),
            max_size=3,
        ),
    ),
    st.builds(
        lambda level: {"compatibility": level},
        st.sampled_from(["BACKWARD", "FULL_TRANSITIVE", "NONE", "bogus", ""]) | st.text(max_size=10) | _JSON,
    ),
    _JSON,
)


class _Raw(str):
    """A body sent as these bytes, not serialized as JSON (nesting json.dumps cannot produce)."""


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = create_schema_registry_app(SchemaStore(tmp_path_factory.mktemp("fuzz-registry") / "schemas.db"))
    client = TestClient(app, raise_server_exceptions=False)
    client.post("/subjects/known/versions", json={"schema": '"int"'})  # something for reads to find
    yield client


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    route=st.sampled_from(_ROUTES),
    segment=_SEGMENT,
    version=_SEGMENT,
    body=_BODIES,
    raw=st.booleans(),
    flags=st.sampled_from(["", "?permanent=true", "?deleted=true", "?normalize=true"]),
)
def test_schema_registry_routes_never_answer_5xx(
    registry: TestClient, route: tuple[str, str], segment: str, version: str, body: Any, raw: bool, flags: str
) -> None:
    method, template = route
    s, v = quote(segment, safe=""), quote(version, safe="")  # as a client sends them
    path = template.replace("{s}", s).replace("{v}", v).replace("{i}", v) + flags
    started = time.perf_counter()
    if method in ("POST", "PUT"):
        text = str(body) if isinstance(body, _Raw) else json.dumps(body)
        content = text if not raw else text[: len(text) // 2]
        response = registry.request(
            method, path, content=content, headers={"content-type": "application/vnd.schemaregistry.v1+json"}
        )
    else:
        response = registry.request(method, path)
    SENT["schema registry"] += 1
    assert response.status_code < 500, (method, path[:200], response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert set(response.json()) == {"error_code", "message"}, response.text[:300]
    assert time.perf_counter() - started < 5


def test_the_fuzzed_app_holds_what_was_registered(registry: TestClient) -> None:
    assert "known" in registry.get("/subjects").json()
    assert Path(__file__).name == "test_fuzz.py"


# --- definition bodies: the registration route reads raw JSON, which its OpenAPI does not model -------

_BASE = {
    "name": "txn_count_1h",
    "entity": "user",
    "version": 1,
    "owner": "risk-team",
    "value_type": "long",
    "source": {
        "topic": "card_transactions",
        "event_schema": "card_transaction",
        "subject": "card_transactions-value",
        "entity_key": "user_id",
        "timestamp_field": "event_time",
    },
    "window": {"kind": "sliding", "size": "1h", "slide": "5m"},
    "aggregation": {"function": "count"},
    "freshness_slo": "10m",
    "ttl": "2h",
}
_ODD = st.one_of(
    st.sampled_from(_EDGES),
    st.sampled_from(["", "\x00", "a\x00b", "\n", "1h", "-1h", "0s", "99999999999d", "x" * 5000]),
    _JSON,
)


@pytest.fixture(scope="module")
def definitions_client() -> TestClient:
    return TestClient(_feature_api(), raise_server_exceptions=False)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.lists(
        st.sampled_from(
            [
                "version",
                "owner",
                "name",
                "ttl",
                "freshness_slo",
                "tags",
                "description",
                "window",
                "aggregation",
                "source",
                "value_type",
                "window.size",
                "window.slide",
                "window.allowed_lateness",
                "source.topic",
                "source.entity_key",
                "aggregation.field",
                "aliases",
                "sensitivity",
                "offline_retention",
            ]
        ),
        min_size=1,
        max_size=3,
    ),
    values=st.lists(_ODD, min_size=3, max_size=3),
    activate=st.sampled_from(_EDGES).map(str) | st.text(max_size=8),
)
def test_definition_routes_never_answer_5xx(
    definitions_client: TestClient, path: list[str], values: list[Any], activate: str
) -> None:
    body = json.loads(json.dumps(_BASE))
    for key, value in zip(path, values, strict=False):
        *parents, leaf = key.split(".")
        target = body
        for parent in parents:
            if not isinstance(target.get(parent), dict):
                target[parent] = {}
            target = target[parent]
        target[leaf] = value
    response = definitions_client.post("/v1/feature-definitions", json=body)
    SENT["feature api"] += 1
    assert response.status_code < 500, (body, response.status_code, response.text[:300])
    activated = definitions_client.post(f"/v1/feature-definitions/user/txn_count_1h/activate?version={quote(activate)}")
    SENT["feature api"] += 1
    assert activated.status_code < 500, (activate, activated.text[:300])
