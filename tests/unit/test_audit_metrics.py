"""Observability as documented (docs/design.md §7, §9; README): the feature API's metric names and labels,
``fs_errors_total{class}`` counting every refusal by its code, ``fs_values_served_total``'s counting rules,
``/health`` and ``/metrics`` never shed, HEAD on every metrics endpoint (the archiver's answered 405), and the
alert rules' thresholds at their boundaries under Prometheus' own rule evaluator."""

from __future__ import annotations

import asyncio
import http.client
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter

from registry.access import Access
from registry.access_store import AccessStore
from registry.core.catalog import FeatureCatalog
from registry.core.errors import StoreUnavailableError
from registry.feature_services import FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog
from serving.online.app import create_app
from sinks.archive import serve_metrics
from tests.unit.test_overload import _Held
from tests.unit.test_request_features import NOW, Source, store_with, vector

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "infra" / "prometheus" / "alerts.yml"
READ = "txn_count_1h"


class _Failing(Source):
    """Stored vectors; the ids in ``down`` fail (a whole read, or alone through ``read_each_async``)."""

    def __init__(self, values: dict[str, Any], down: set[str]) -> None:
        super().__init__(values)
        self.down = down

    async def read_many_async(self, entity_type: str, entity_ids: Any) -> list[Any]:
        if set(entity_ids) & self.down:
            raise StoreUnavailableError("store down")
        return await super().read_many_async(entity_type, entity_ids)

    async def read_each_async(self, entity_type: str, entity_ids: Any) -> list[Any]:
        return [
            StoreUnavailableError("store down") if e in self.down else dict(self.values.get(e, {})) for e in entity_ids
        ]


@pytest.fixture
def live(tmp_path: Path, shipped_catalog: FeatureCatalog) -> LiveCatalog:
    return LiveCatalog(store_with(tmp_path / "d.db", shipped_catalog))


def _client(live: LiveCatalog, source: Any, **kwargs: Any) -> tuple[TestClient, CollectorRegistry]:
    registry = CollectorRegistry()
    app = create_app(live, source, clock_us=lambda: NOW * 1000, registry=registry, **kwargs)
    return TestClient(app, raise_server_exceptions=False), registry


def _samples(registry: CollectorRegistry, sample: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(s.labels.values()): s.value for family in registry.collect() for s in family.samples if s.name == sample
    }


def _errors(registry: CollectorRegistry) -> dict[str, float]:
    return {labels[0]: value for labels, value in _samples(registry, "fs_errors_total").items()}


def _served(registry: CollectorRegistry) -> dict[tuple[str, str, str, str], float]:
    """fs_values_served_total by (entity_type, feature, version, status), zero series left out."""
    out = {}
    for family in registry.collect():
        for s in family.samples:
            if s.name == "fs_values_served_total" and s.value:
                labels = s.labels
                out[(labels["entity_type"], labels["feature"], labels["version"], labels["status"])] = s.value
    return out


# --- names and labels ----------------------------------------------------------------------------


def test_the_documented_series_are_exported_with_their_labels(live: LiveCatalog) -> None:
    client, _ = _client(live, Source({"u1": vector(4, 10.0)}), cache_ttl_ms=1000)
    assert client.get(f"/v1/features/user/u1?names={READ}").status_code == 200
    client.get("/v1/features/user/u1?names=nope")
    text = client.get("/metrics").text
    route = 'route="/v1/features/{entity_type}/{entity_id}"'
    for line in (
        f'fs_requests_total{{{route},status="200"}} 1.0',
        f'fs_request_seconds_bucket{{le="+Inf",{route}}} 2.0',
        f"fs_request_seconds_count{{{route}}} 2.0",
        'fs_errors_total{class="unknown_feature"} 1.0',
        'fs_cache_requests_total{result="miss"} 1.0',
        f'fs_values_served_total{{entity_type="user",feature="{READ}",status="present",version="1"}} 1.0',
    ):
        assert line in text, line


# --- fs_errors_total{class}: every refusal by its code ----------------------------------------------------


def test_every_refusal_is_counted_under_its_code(live: LiveCatalog, tmp_path: Path) -> None:
    services = LiveFeatureServices(FeatureServiceStore(tmp_path / "d.db"))
    client, registry = _client(live, _Failing({"u1": vector(4, 10.0)}, {"down"}), services=services)
    asks: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("GET", "/nope", {}, 404, "not_found"),
        ("GET", "/v1/features/user%2Fu1", {}, 404, "not_found"),
        ("DELETE", "/v1/features/user/u1", {}, 405, "method_not_allowed"),
        ("POST", "/metrics", {}, 405, "method_not_allowed"),
        ("HEAD", "/v1/vectors", {}, 405, "method_not_allowed"),
        ("GET", "/v1/features/nobody/u1", {}, 404, "unknown_entity_type"),
        ("GET", "/v1/features/user/u1?names=nope", {}, 404, "unknown_feature"),
        ("GET", "/v1/features/user/u1?feature_service=nope", {}, 404, "unknown_feature_service"),
        ("GET", f"/v1/features/user/u1?names={READ}&names={READ}", {}, 400, "bad_names"),
        ("GET", "/v1/features/user/u1?names=amount_vs_mean_1h", {}, 400, "bad_request_data"),
        ("GET", "/v1/feature-services/Bad%20Name", {}, 400, "bad_request"),
        ("POST", "/v1/features/user/batch", {"content": b"{"}, 400, "bad_json"),
        ("POST", "/v1/features/user/batch", {"content": b" " * 1_048_577}, 413, "body_too_large"),
        ("POST", "/v1/feature-definitions", {"json": {}}, 422, "invalid_definition"),
        ("GET", f"/v1/features/user/down?names={READ}", {}, 503, "store_unavailable"),
        (
            "POST",
            "/v1/features/user/batch",
            {"json": {"entity_ids": ["down"], "names": [READ]}},
            503,
            "store_unavailable",
        ),
    ]
    expected: dict[str, float] = {}
    for method, path, kwargs, status, code in asks:
        response = client.request(method, path, **kwargs)
        assert response.status_code == status, (method, path, response.text)
        expected[code] = expected.get(code, 0) + 1
        assert _errors(registry) == expected, (method, path)


def test_a_bug_is_counted_as_internal_error_under_its_500(live: LiveCatalog) -> None:
    source = _Failing({}, set())
    source.down = None  # type: ignore[assignment]  # `set(ids) & None`: a TypeError inside the read, a bug
    client, registry = _client(live, source)
    response = client.get(f"/v1/features/user/u1?names={READ}")
    assert (response.status_code, response.json()["error"]) == (500, "internal_error")
    assert _errors(registry) == {"internal_error": 1}
    route = ("/v1/features/{entity_type}/{entity_id}", "500")
    assert _samples(registry, "fs_requests_total")[route] == 1


def test_a_401_of_the_auth_middleware_is_counted_as_unauthenticated(live: LiveCatalog, tmp_path: Path) -> None:
    access = Access(AccessStore(tmp_path / "d.db"), enabled=True)
    client, registry = _client(live, Source({}), access=access)
    for path in ("/health", "/metrics", f"/v1/features/user/u1?names={READ}", "/nope"):
        assert client.get(path).status_code == 401
    assert _errors(registry) == {"unauthenticated": 4}


def test_a_refusal_answered_outside_routing_is_counted_under_the_status_it_answered(
    live: LiveCatalog, tmp_path: Path
) -> None:
    """The access store gone under a running API: the auth middleware's check is a 503 ``store_unavailable``
    (answered by the app's error handler, outside the metrics middleware), counted as that 503, not as a 500."""
    store = AccessStore(tmp_path / "a.db")
    token = store.issue("p", "t", admin=True)
    client, registry = _client(live, Source({"u1": vector(4, 10.0)}), access=Access(store, enabled=True, refresh_s=0))
    (tmp_path / "a.db").unlink()
    response = client.get(f"/v1/features/user/u1?names={READ}", headers={"authorization": f"Bearer {token}"})
    assert (response.status_code, response.json()["error"]) == (503, "store_unavailable")
    assert _samples(registry, "fs_requests_total") == {("unmatched", "503"): 1}
    assert _errors(registry) == {"store_unavailable": 1}


@pytest.mark.parametrize("bound", ["max_in_flight", "max_entities_in_flight"])
def test_both_kinds_of_overloaded_are_counted_and_health_and_metrics_are_never_shed(
    live: LiveCatalog, bound: str
) -> None:
    async def scenario() -> None:
        source = _Held()
        registry = CollectorRegistry()
        bounds: dict[str, Any] = {bound: 2}
        app = create_app(live, source, registry=registry, **bounds)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            held = [asyncio.create_task(client.get(f"/v1/features/user/u{i}?names={READ}")) for i in range(2)]
            while source.reads < 2:
                await asyncio.sleep(0.001)
            shed = [
                await client.get(f"/v1/features/user/x?names={READ}"),
                await client.post("/v1/features/user/batch", json={"entity_ids": ["a"], "names": [READ]}),
                await client.post(
                    "/v1/vectors", json={"entities": [{"entity_type": "user", "entity_id": "a", "names": [READ]}]}
                ),
            ]
            assert [(r.status_code, r.json()["error"]) for r in shed] == [(503, "overloaded")] * 3
            for method in ("GET", "HEAD"):
                for path in ("/health", "/metrics"):
                    answer = await client.request(method, path)
                    assert answer.status_code == 200, (method, path, answer.text)
            assert _errors(registry) == {"overloaded": 3}
            source.release.set()
            assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]

    asyncio.run(scenario())


# --- fs_values_served_total: what counts -----------------------------------------------------------------


def _part(entity_id: str, names: list[str], **extra: Any) -> dict[str, Any]:
    return {"entity_type": "user", "entity_id": entity_id, "names": names, **extra}


COUNT = ("user", READ, "1", "present")
SUM = ("user", "txn_amount_sum_1h", "1", "present")
RT = ("user", "amount_vs_mean_1h", "1")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "served"),
    [
        # A GET or a /v1/vectors part: once per distinct name.
        ("GET", f"/v1/features/user/u1?names={READ},{READ},txn_amount_sum_1h", None, 200, {COUNT: 1, SUM: 1}),
        (
            "GET",
            "/v1/features/user/u1?names=amount_vs_mean_1h,amount_vs_mean_1h&amount=3",
            None,
            200,
            {(*RT, "present"): 1},
        ),
        ("GET", "/v1/features/user/u2?names=amount_vs_mean_1h&amount=3", None, 200, {(*RT, "missing"): 1}),
        (
            "POST",
            "/v1/vectors",
            {
                "entities": [
                    _part("u1", [READ, READ]),
                    _part("u1", [READ, "amount_vs_mean_1h"], request_data={"amount": 2.0}),
                ]
            },
            200,
            {COUNT: 2, (*RT, "present"): 1},
        ),
        # A batch: once per column, duplicates included, for each entity served (not the one whose read failed).
        ("POST", "/v1/features/user/batch", {"entity_ids": ["u1", "u2"], "names": [READ, READ]}, 200, {COUNT: 4}),
        (
            "POST",
            "/v1/features/user/batch",
            {
                "entity_ids": ["u1", "down", "u1"],
                "names": ["amount_vs_mean_1h", "amount_vs_mean_1h"],
                "request_data": {"amount": [1.0, 2.0, 3.0]},
            },
            200,
            {(*RT, "present"): 4},
        ),
        # A request answered with an error counts none: a /v1/vectors request with a failed part is a 503.
        ("GET", f"/v1/features/user/down?names={READ}", None, 503, {}),
        ("GET", "/v1/features/user/u1?names=amount_vs_mean_1h", None, 400, {}),
        ("POST", "/v1/vectors", {"entities": [_part("u1", [READ]), _part("down", [READ])]}, 503, {}),
        ("POST", "/v1/vectors", {"entities": [_part("u1", [READ]), _part("u1", ["nope"])]}, 404, {}),
        ("POST", "/v1/features/user/batch", {"entity_ids": ["down"], "names": [READ]}, 503, {}),
    ],
)
def test_values_served_are_counted_as_documented(
    live: LiveCatalog, method: str, path: str, body: Any, status: int, served: dict[tuple[str, ...], float]
) -> None:
    client, registry = _client(live, _Failing({"u1": vector(4, 10.0), "u2": vector(2, None)}, {"down"}))
    response = client.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert _served(registry) == served


# --- HEAD on every metrics endpoint -------------------------------------------------------------------------


@pytest.fixture
def archive_metrics() -> Iterator[int]:
    registry = CollectorRegistry()
    Counter("fs_archive_records", "Records appended", ["topic"], registry=registry).labels("t").inc(3)
    server = serve_metrics(0, registry)
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def _ask(port: int, method: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, "/metrics")
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def test_the_archivers_metrics_answer_head_as_their_get(archive_metrics: int) -> None:
    status, headers, body = _ask(archive_metrics, "GET")
    assert status == 200 and b'fs_archive_records_total{topic="t"} 3.0' in body
    head_status, head_headers, head_body = _ask(archive_metrics, "HEAD")
    assert (head_status, head_body) == (200, b"")
    assert head_headers["content-type"] == headers["content-type"]
    assert head_headers["content-length"] == headers["content-length"] == str(len(body))
    with socket.create_connection(("127.0.0.1", archive_metrics), timeout=10) as raw:  # nothing after the headers
        raw.sendall(b"HEAD /metrics HTTP/1.0\r\n\r\n")
        wire = b"".join(iter(lambda: raw.recv(65536), b""))
    assert wire.endswith(b"\r\n\r\n")


def test_the_archivers_metrics_list_head_among_the_methods_they_take(archive_metrics: int) -> None:
    status, headers, _ = _ask(archive_metrics, "POST")
    assert status == 405
    assert {m.strip() for m in headers["allow"].split(",")} == {"GET", "HEAD", "OPTIONS"}


def test_a_taken_archive_metrics_port_is_an_os_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            serve_metrics(taken.getsockname()[1], CollectorRegistry())


# --- alert rules at their documented thresholds --------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> Path:
    from infra.promtool import ensure_promtool

    cache = Path(os.environ.get("FS_CACHE_DIR", Path.home() / ".cache" / "featurestore"))
    return ensure_promtool(cache)


_API = "more than 1 % of feature API requests answer 5xx (503: store down, over budget or overloaded)"
_BOUNDARIES = f"""
rule_files:
  - {RULES}
evaluation_interval: 1m
tests:
  - name: 5xx at exactly 1 % is quiet, just above fires
    interval: 1m
    input_series:
      - series: 'fs_requests_total{{route="at", status="200"}}'
        values: '0+990x40'
      - series: 'fs_requests_total{{route="at", status="503"}}'
        values: '0+10x40'
    alert_rule_test:
      - eval_time: 30m
        alertname: FeatureAPIErrors
        exp_alerts: []
  - name: 5xx just above 1 %
    interval: 1m
    input_series:
      - series: 'fs_requests_total{{route="above", status="200"}}'
        values: '0+989x40'
      - series: 'fs_requests_total{{route="above", status="500"}}'
        values: '0+11x40'
    alert_rule_test:
      - eval_time: 30m
        alertname: FeatureAPIErrors
        exp_alerts:
          - exp_labels: {{severity: page}}
            exp_annotations: {{summary: "{_API}"}}
  - name: p99 at exactly 10 ms is quiet, above it fires
    interval: 1m
    input_series:
      - series: 'fs_request_seconds_bucket{{route="at", le="0.0075"}}'
        values: '0x40'
      - series: 'fs_request_seconds_bucket{{route="at", le="0.01"}}'
        values: '0+100x40'
      - series: 'fs_request_seconds_bucket{{route="at", le="+Inf"}}'
        values: '0+100x40'
      - series: 'fs_request_seconds_bucket{{route="above", le="0.01"}}'
        values: '0+98x40'
      - series: 'fs_request_seconds_bucket{{route="above", le="0.02"}}'
        values: '0+100x40'
      - series: 'fs_request_seconds_bucket{{route="above", le="+Inf"}}'
        values: '0+100x40'
    alert_rule_test:
      - eval_time: 30m
        alertname: FeatureAPILatencyOverBudget
        exp_alerts:
          - exp_labels: {{severity: page, route: above}}
            exp_annotations: {{summary: "above: p99 above 10 ms"}}
  - name: dead letters at exactly 1 % of a topic's events are quiet, above it fire
    interval: 1m
    input_series:
      - series: 'flink_taskmanager_job_task_operator_topic_events_in{{topic="at"}}'
        values: '0+1000x40'
      - series: 'flink_taskmanager_job_task_operator_topic_reason_events_dead_lettered{{topic="at", reason="a"}}'
        values: '0+6x40'
      - series: 'flink_taskmanager_job_task_operator_topic_reason_events_dead_lettered{{topic="at", reason="b"}}'
        values: '0+4x40'
      - series: 'flink_taskmanager_job_task_operator_topic_events_in{{topic="above"}}'
        values: '0+1000x40'
      - series: 'flink_taskmanager_job_task_operator_topic_reason_events_dead_lettered{{topic="above", reason="a"}}'
        values: '0+11x40'
    alert_rule_test:
      - eval_time: 30m
        alertname: DeadLetterRateHigh
        exp_alerts:
          - exp_labels: {{severity: ticket, topic: above}}
            exp_annotations: {{summary: "above: more than 1 % of events dead-lettered"}}
"""


def test_the_alert_thresholds_hold_at_their_boundaries(promtool: Path, tmp_path: Path) -> None:
    tests = tmp_path / "boundaries_test.yml"
    tests.write_text(_BOUNDARIES)
    checked = subprocess.run([str(promtool), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    result = subprocess.run(
        [str(promtool), "test", "rules", tests.name], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr
