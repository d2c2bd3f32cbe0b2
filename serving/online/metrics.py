"""Prometheus metrics of the feature API, registered in a registry the app factory is given.

Per request the API pays one counter increment and one histogram observation (in an ASGI
middleware). Per-feature counts would cost a locked increment per feature and request, so the hot
path only counts in plain dicts: vectors served per read plan, and values served with a status
other than ``present``; this module expands them into per-feature series when Prometheus scrapes.

Series:
    fs_requests_total{route,status}, fs_request_seconds{route} (histogram),
    fs_errors_total{class} (the error code of a refused or failed request),
    fs_cache_requests_total{result=hit|miss|coalesced}, fs_cache_entries,
    fs_values_served_total{entity_type,feature,version,status},
    fs_online_undecodable_cells_total (cells a read skipped: damaged, or a key this build does not write).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from serving.online.plans import Plan
from serving.online.refusals import refusal
from serving.online.vectors import Tally
from sinks.cassandra.reader import Undecodable

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from serving.online.cache import VectorCache

_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_MAX_PLANS = 1024  # plans whose served vectors are tallied before folding into per-feature counts
_MAX_PLAN_LABELS = 100_000  # their features summed: plans of 1,000 names each held ~290 KB past the plan cache


class Metrics:
    def __init__(self, registry: CollectorRegistry, cache: VectorCache | None = None) -> None:
        self.registry = registry
        self._requests = Counter(
            "fs_requests", "HTTP requests by route and status", ["route", "status"], registry=registry
        )
        self._latency = Histogram(
            "fs_request_seconds", "HTTP request latency by route", ["route"], buckets=_BUCKETS, registry=registry
        )
        self._errors = Counter("fs_errors", "Refused or failed requests by error class", ["class"], registry=registry)
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._error_children: dict[str, Any] = {}
        self.tally: Tally = {}
        self._vectors_by_plan: dict[Plan, int] = {}
        self._plan_labels = 0  # labels summed over the plans in ``_vectors_by_plan``
        self._vectors_folded: dict[tuple[str, str, int], int] = {}
        registry.register(_ServingCollector(self, cache))

    def request(self, route: str, status: int, seconds: float) -> None:
        children = self._children.get((route, status))
        if children is None:
            children = self._children[(route, status)] = (
                self._requests.labels(route, str(status)),
                self._latency.labels(route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def error(self, kind: str) -> None:
        counter = self._error_children.get(kind)
        if counter is None:
            counter = self._error_children[kind] = self._errors.labels(kind)
        counter.inc()

    def vectors(self, plan: Plan, n: int) -> None:
        """``n`` entity vectors were served under ``plan`` (each feature of the plan once per vector)."""
        served = self._vectors_by_plan.get(plan)
        if served is None:
            self._plan_labels += len(plan.labels) + len(plan.requests)
        self._vectors_by_plan[plan] = (served or 0) + n
        if len(self._vectors_by_plan) > _MAX_PLANS or self._plan_labels > _MAX_PLAN_LABELS:
            self._fold()

    def _fold(self) -> None:
        for plan, n in self._vectors_by_plan.items():
            for label in (*plan.labels, *(r.label for r in plan.requests)):
                self._vectors_folded[label] = self._vectors_folded.get(label, 0) + n
        self._vectors_by_plan = {}
        self._plan_labels = 0

    def served_values(self) -> dict[tuple[tuple[str, str, int], str], int]:
        """Values served per (feature label, status), ``present`` included."""
        self._fold()
        out: dict[tuple[tuple[str, str, int], str], int] = {}
        others: dict[tuple[str, str, int], int] = {}
        for (label, status), n in self.tally.items():
            out[(label, status)] = n
            others[label] = others.get(label, 0) + n
        for label, total in self._vectors_folded.items():
            out[(label, "present")] = total - others.get(label, 0)
        return out


class _ServingCollector(Collector):
    def __init__(self, metrics: Metrics, cache: VectorCache | None) -> None:
        self._metrics = metrics
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        if self._cache is not None:
            requests = CounterMetricFamily("fs_cache_requests", "Vector cache lookups by result", labels=["result"])
            requests.add_metric(["hit"], self._cache.hits)
            requests.add_metric(["miss"], self._cache.misses)
            requests.add_metric(["coalesced"], self._cache.coalesced)
            yield requests
            yield GaugeMetricFamily("fs_cache_entries", "Entity vectors held in the cache", value=len(self._cache))
        yield CounterMetricFamily(
            "fs_online_undecodable_cells",
            "Online store cells reads skipped because they could not be decoded (their features read missing)",
            value=Undecodable.cells,
        )
        served = CounterMetricFamily(
            "fs_values_served",
            "Feature values served by status",
            labels=["entity_type", "feature", "version", "status"],
        )
        for ((entity, name, version), status), n in sorted(self._metrics.served_values().items()):
            served.add_metric([entity, name, str(version), status], n)
        yield served


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (bounded label values) and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        answered = False

        async def send_status(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except Exception as exc:
            if not answered:  # answered outside (the app's error handler): a refusal's own status, a bug's 500
                refused = refusal(exc)
                status = 500 if refused is None else refused.status
            raise
        finally:
            # FastAPI routes set scope["route"]; the plain read endpoints carry their template as ``route_path``.
            route = getattr(scope.get("route"), "path", None) or getattr(scope.get("endpoint"), "route_path", None)
            self._metrics.request(route or "unmatched", status, time.perf_counter() - started)
