"""``/v1/features``: feature vectors of one entity (GET) or of many (POST .../batch), with freshness.

The hot path does no pydantic validation, no framework parameter resolution and no registry read:
the two routes are plain ASGI endpoints; the request's names or feature service resolve through
the plan cache (keyed by the raw query string, so a repeated request is not even parsed); the
stored vectors come from the vector cache (on a miss one single-partition read for an entity; a batch's
reads concurrent, 25 entities per query through the native driver); the body is encoded by orjson. Errors raised here (unknown feature or
service, store unavailable) go to the app's exception handlers; ``serving.online.feature_routes`` holds the
ASGI endpoints, ``serving.online.request_data`` reads request fields. ``serving.online.features_docs``
describes the routes for the OpenAPI document only. ``POST /v1/vectors`` assembles one vector from
several entities' features; composite keys are read by ``serving.online.keys``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, NoReturn
from urllib.parse import parse_qs, urlencode

import orjson

from registry.access import ANONYMOUS, Access
from registry.access_store import Caller
from registry.core.definitions import MAX_VERSION
from registry.core.errors import ForbiddenError, RequestFeatureError, StoreUnavailableError
from registry.core.refs import SERVICE_NAME_PATTERN, parse_ref
from serving.online.cache import VectorCache
from serving.online.http_errors import ApiError, ErrorCode
from serving.online.keys import (
    body_ids,
    entity_key,
    members_given_once,
    members_once,
    part_key,
    query_key,
    single_id,
)
from serving.online.metrics import Metrics
from serving.online.overload import DEFAULT_MAX_ENTITIES_IN_FLIGHT, EntityBound
from serving.online.plans import Plan, PlanKey, Plans
from serving.online.request_data import body_data, fields_once, query_data, request_params
from serving.online.request_values import Served, request_values
from serving.online.responses import parse_json_object
from serving.online.serving_log import ServingLog, request_context
from serving.online.vectors import ColumnWriter, Tally, features_object, format_ms, iso

MAX_NAMES = 1000
MAX_VECTOR_PARTS = 16
_PART_FIELDS = {"entity_type", "entity_id", "entity_key", "names", "feature_service", "request_data"}
MAX_BATCH = 1000
MAX_BATCH_BODY_BYTES = 1024 * 1024


# --- routes ----------------------------------------------------------------------------------------

GET_PATH = "/v1/features/{entity_type}/{entity_id}"
KEY_PATH = "/v1/features/{entity_type}"  # a composite key: a query parameter per key field
BATCH_PATH = "/v1/features/{entity_type}/batch"
VECTORS_PATH = "/v1/vectors"


def _names(names: list[str]) -> list[str]:
    if not names or len(names) > MAX_NAMES or not all(names):
        raise ApiError(ErrorCode.BAD_NAMES, f"`names` must list 1-{MAX_NAMES} non-empty, comma-separated names")
    return names


def _distinct(names: list[str]) -> list[str]:
    """``names`` checked by ``_names``, each once at its first place: a GET or a ``/v1/vectors`` part answers (and
    counts, logs and reports unknown) each distinct name once; a batch keeps one column per name given."""
    return list(dict.fromkeys(_names(names)))


class FeatureReads:
    """The two read routes, as ``(status, JSON body)`` computations over plans, the cache and the clock."""

    def __init__(
        self,
        plans: Plans,
        cache: VectorCache,
        metrics: Metrics,
        clock_us: Callable[[], int],
        serving_log: ServingLog | None = None,
        access: Access | None = None,
        bound: EntityBound | None = None,
    ) -> None:
        self.bound = bound if bound is not None else EntityBound(DEFAULT_MAX_ENTITIES_IN_FLIGHT)
        self._access = access if access is not None and access.enabled else None
        self._plans = plans
        self._cache = cache
        self._metrics = metrics
        self._clock_us = clock_us
        self._log = serving_log

    def check_entity_type(self, entity_type: str) -> None:
        if entity_type not in self._plans.snapshot()[0].entity_types():
            raise ApiError(ErrorCode.UNKNOWN_ENTITY_TYPE, f"no features are registered for entity type {entity_type!r}")

    def _compile(self, key: PlanKey, entity_type: str, names: list[str] | None, service: str | None) -> Plan:
        if names is not None and service is not None:
            raise ApiError(ErrorCode.BAD_REQUEST, "give `names` or `feature_service`, not both")
        if service is not None:
            check_service_ref(service)
        try:
            if service is None:
                return self._plans.for_names(key, entity_type, names)
            plan = self._plans.for_service(key, entity_type, service)
        except RequestFeatureError as exc:  # two request features giving one request field two types
            raise ApiError(ErrorCode.BAD_REQUEST_DATA, str(exc)) from exc
        if not plan.output_keys:
            raise ApiError(
                ErrorCode.BAD_FEATURE_SERVICE,
                f"feature service {service!r} has no features of entity type {entity_type!r}",
            )
        return plan

    def _authorize(self, plans: Sequence[Plan], caller: Caller, client: str) -> None:
        """403 naming every feature above `internal` of ``plans`` (a request's, or each part's of a vector) the
        caller has no grant for; each one audited either way, once per request."""
        if self._access is None:
            return
        sensitive = list({d.key: d for plan in plans for d in plan.sensitive}.values())
        if sensitive:
            try:
                self._access.check_read(caller, sensitive, action="read_features", client=client)
            except ForbiddenError as exc:
                raise ApiError(ErrorCode.FORBIDDEN, str(exc), names=exc.names) from exc

    @staticmethod
    def _log_served(
        log: ServingLog,
        headers: Sequence[tuple[bytes, bytes]],
        service: str | None,
        now_us: int,
        plan: Plan,
        vectors: Sequence[tuple[str, Sequence[Any], Sequence[str | None], Sequence[str]]],
    ) -> None:
        """A sampled request's served vectors to the serving log, with the plan's stored names and versions."""
        names = [name for name, _ in plan.row_keys]
        log.log(request_context(headers, service), now_us // 1000, plan.entity_type, names, plan.versions, vectors)

    def _composite(self, entity_type: str) -> tuple[str, ...]:
        return self._plans.snapshot()[0].composite_key(entity_type)

    def _get_plan(self, entity_type: str, query: str) -> tuple[Plan, dict[str, list[str]] | None]:
        """The plan of a GET's query string (cached under it when it has no request-time features), and
        the parsed query when it had to be parsed."""
        key = ("get", entity_type, query)
        plan = self._plans.cached(key)  # a plan without request-time features, under its raw query string
        if plan is not None:
            return plan, None
        self.check_entity_type(entity_type)
        params = parse_qs(query, keep_blank_values=True)
        names = _once(params, "names", ErrorCode.BAD_NAMES)
        service = _once(params, "feature_service", ErrorCode.BAD_REQUEST)
        named = ("get-names", entity_type, names, service)
        plan = self._plans.cached(named)
        if plan is None:
            # Each name as given, as in a body's list: " a" is not "a" (an unknown name, 404).
            requested = None if names is None else _distinct(names.split(","))
            plan = self._compile(named, entity_type, requested, service)
        if not plan.requests:  # request data varies per request: such a plan is kept by names, not by query string
            self._plans.alias(key, plan)
        return plan, params

    async def get(
        self,
        entity_type: str,
        entity_id: str | None,
        query: bytes,
        headers: Sequence[tuple[bytes, bytes]] = (),
        caller: Caller = ANONYMOUS,
        client: str = "",
    ) -> bytes:
        """``GET /v1/features/{entity_type}/{entity_id}`` or, for a composite key (``entity_id`` None),
        ``GET /v1/features/{entity_type}?<key field>=<value>&...``."""
        text = query.decode("latin-1")
        params: dict[str, list[str]] | None
        if entity_id is None:  # the key is in the query, which then differs per entity: no plan under it
            self.check_entity_type(entity_type)
            params = parse_qs(text, keep_blank_values=True)
            entity_id, key = query_key(entity_type, self._composite(entity_type), params)
            plan, _ = self._get_plan(entity_type, _plan_query(params, key))
        else:
            cached = self._plans.cached(("get", entity_type, text))
            if cached is None:
                self.check_entity_type(entity_type)
            entity_id = single_id(entity_type, self._composite(entity_type), entity_id)
            plan, params = (cached, None) if cached is not None else self._get_plan(entity_type, text)
            key = None
        data: dict[str, list[Any]] = {}
        if plan.requests:
            data = query_data(plan, request_params(query))
        self._authorize([plan], caller, client)
        with self.bound.admit(1):
            body, now_us = await self._vector(plan, entity_id, key, data)
        if self._log is not None and self._log.sampled():
            service = parse_qs(text).get("feature_service", [None])[-1]
            self._log_vector(headers, service, plan, body, now_us)
        return orjson.dumps(body)

    async def _vector(
        self,
        plan: Plan,
        entity_id: str,
        key: dict[str, str] | None,
        data: dict[str, list[Any]],
        tally: Tally | None = None,
    ) -> tuple[dict[str, Any], int]:
        """One entity's GET body (its features object in request order, with freshness) and the instant
        it was served at (epoch µs, the one clock reading its freshness and the serving log use).

        Its values are counted in the metrics as served, unless ``tally`` is given: then their statuses go
        there, and the caller counts them once the whole answer is served (``vectors``: none of a 503)."""
        entity_type = plan.entity_type
        (snapshot,) = await self._cache.get_many(entity_type, (entity_id,))
        now_us = self._clock_us()
        counts = self._metrics.tally if tally is None else tally
        features = features_object(plan, snapshot.stored, snapshot.progress, now_us, counts)
        if plan.requests:
            served = request_values(plan, [(snapshot.stored, snapshot.progress)], data, now_us, counts)
            features = _object_in_order(plan, features, [s[0] for s in served], now_us)
        body: dict[str, Any] = {"entity_type": entity_type, "entity_id": entity_id}
        if key is not None:
            body["entity_key"] = key
        body["served_at"] = format_ms(now_us // 1000)
        body["features"] = features
        if tally is None:
            self._metrics.vectors(plan, 1)
        return body, now_us

    def _log_vector(
        self,
        headers: Sequence[tuple[bytes, bytes]],
        service: str | None,
        plan: Plan,
        body: dict[str, Any],
        now_us: int,
    ) -> None:
        assert self._log is not None
        logged = [body["features"][k] for k in plan.keys]
        vector = (
            body["entity_id"],
            [f["value"] for f in logged],
            [f["feature_timestamp"] for f in logged],
            [f["status"] for f in logged],
        )
        self._log_served(self._log, headers, service, now_us, plan, [vector])

    async def vectors(
        self,
        raw: bytes,
        headers: Sequence[tuple[bytes, bytes]] = (),
        caller: Caller = ANONYMOUS,
        client: str = "",
    ) -> bytes:
        """``POST /v1/vectors``: one vector assembled from several entities' features (a user's and the
        user x merchant pair's), read concurrently; each part is the GET body of its entity."""
        body = members_once(raw, parse_json_object(raw))  # read again if a member could be given twice
        members_given_once(body, "the body")
        parts = body.get("entities")
        if set(body) != {"entities"} or not isinstance(parts, list) or not 1 <= len(parts) <= MAX_VECTOR_PARTS:
            raise ApiError(
                ErrorCode.BAD_REQUEST,
                f"body must be an object with `entities`: a list of 1-{MAX_VECTOR_PARTS} objects, each with "
                "`entity_type`, `entity_id` or `entity_key`, and `names` or `feature_service` (and `request_data`)",
            )
        asks: list[tuple[Plan, str, dict[str, str] | None, dict[str, list[Any]], str | None]] = []
        with self._plans.one_snapshot():  # every part at the same versions, whatever the registry activates meanwhile
            for i, part in enumerate(parts):
                try:
                    asks.append(self._part(part))
                except ApiError as exc:
                    if exc.status != 400:
                        raise
                    # A malformed part names its index, whichever check refused it (the code stays the check's).
                    raise ApiError(exc.code, f"entities[{i}]: {exc.message}", **exc.details) from exc
        self._authorize([plan for plan, *_ in asks], caller, client)
        tally: Tally = {}  # counted once every part is served: a part that fails makes the whole request a 503
        with self.bound.admit(len(asks)):
            # Every part's read ends before the bound is given back: a part that failed does not leave the others
            # reading outside it. The error answered is the first failed part's, in request order.
            outcomes = await asyncio.gather(
                *(self._vector(plan, eid, key, data, tally) for plan, eid, key, data, _ in asks),
                return_exceptions=True,
            )
        served: list[tuple[dict[str, Any], int]] = []
        for i, outcome in enumerate(outcomes):
            if isinstance(outcome, StoreUnavailableError):  # the 503 names the part, as a 400 does
                raise StoreUnavailableError(f"entities[{i}]: {outcome}") from outcome
            if isinstance(outcome, BaseException):
                raise outcome
            served.append(outcome)
        counts = self._metrics.tally
        for label, n in tally.items():
            counts[label] = counts.get(label, 0) + n
        for plan, *_ in asks:
            self._metrics.vectors(plan, 1)
        if self._log is not None and self._log.sampled():
            for (plan, *_, service), (one, at_us) in zip(asks, served, strict=True):
                self._log_vector(headers, service, plan, one, at_us)
        latest_us = max(at_us for _, at_us in served)  # every part was served by then
        return orjson.dumps({"served_at": format_ms(latest_us // 1000), "vectors": [one for one, _ in served]})

    def _part(self, part: Any) -> tuple[Plan, str, dict[str, str] | None, dict[str, list[Any]], str | None]:
        """One ``POST /v1/vectors`` part checked and resolved: (plan, entity id, composite key or None, request
        data, feature service). Its errors do not name the part: ``vectors`` prefixes the 400s with its index."""
        if not isinstance(part, dict) or set(part) - _PART_FIELDS or not isinstance(part.get("entity_type"), str):
            raise ApiError(
                ErrorCode.BAD_REQUEST,
                "a part must be an object with `entity_type`, `entity_id` or `entity_key`, "
                "`names` or `feature_service`, and optional `request_data`",
            )
        members_given_once(part, "the part")
        entity_type: str = part["entity_type"]
        self.check_entity_type(entity_type)
        composite = self._composite(entity_type)
        key: dict[str, str] | None
        if composite:
            given = part.get("entity_key")
            if not isinstance(given, dict) or set(given) != set(composite) or "entity_id" in part:
                raise ApiError(ErrorCode.BAD_ENTITY_KEY, _usage_part(entity_type, composite))
            entity_id, key = part_key(entity_type, composite, given)
        else:
            usage = f"entity type {entity_type!r} has a single key: give its one id as `entity_id`"
            if "entity_key" in part:  # the wrong form of key, as `entity_keys` in a batch body
                raise ApiError(ErrorCode.BAD_ENTITY_KEY, usage)
            if not isinstance(part.get("entity_id"), str):
                raise ApiError(ErrorCode.BAD_ENTITY_ID, usage)
            entity_id, key = single_id(entity_type, composite, part["entity_id"]), None
        names, service = part.get("names"), part.get("feature_service")
        if names is None and service is None:
            raise ApiError(ErrorCode.BAD_NAMES, "give `names` or `feature_service`")
        selection = _selection_key(entity_type, names, service)
        if selection is None:
            _bad_selection(names, service)
        plan_key = ("part", *selection[1:])  # not a batch's plan: a part answers each distinct name once
        plan = self._plans.cached(plan_key) or self._compile(
            plan_key, entity_type, None if names is None else _distinct(names), service
        )
        request_data = part.get("request_data")
        if not isinstance(request_data, dict) and (request_data is not None or plan.fields):
            raise ApiError(  # a part's form, not a batch's list per field (as `body_data` would say)
                ErrorCode.BAD_REQUEST_DATA,
                "`request_data` must be an object of the request fields, one value per field",
                fields=[f.name for f in plan.fields],
            )
        if request_data is not None:
            fields_once(request_data)
        data = body_data(plan, None if request_data is None else {k: [v] for k, v in request_data.items()}, 1)
        return plan, entity_id, key, data, service

    async def batch(
        self,
        entity_type: str,
        raw: bytes,
        headers: Sequence[tuple[bytes, bytes]] = (),
        caller: Caller = ANONYMOUS,
        client: str = "",
    ) -> bytes:
        try:
            body = parse_json_object(raw)
        except ApiError:
            self.check_entity_type(entity_type)  # the entity type first, as on a GET (404 before 400)
            raise
        names, service = body.get("names"), body.get("feature_service")
        key = _selection_key(entity_type, names, service)
        plan = None if key is None else self._plans.cached(key)
        if plan is None:  # not a request seen before: the entity type first, then the body
            self.check_entity_type(entity_type)
        body = members_once(raw, body)  # read again if a member could be given twice (key and request fields too)
        members_given_once(body, "the body")
        if set(body) - {"entity_ids", "entity_keys", "names", "feature_service", "request_data"}:
            raise ApiError(
                ErrorCode.BAD_REQUEST,
                "body must be an object with `entity_ids` (or `entity_keys` for a composite key) and optional "
                "`names` or `feature_service`, and `request_data`",
            )
        if key is None:
            _bad_selection(names, service)
        composite = self._composite(entity_type)
        ids = body_ids(entity_type, composite, body, MAX_BATCH)
        if plan is None:
            plan = self._compile(key, entity_type, None if names is None else _names(names), service)
        data = body_data(plan, body.get("request_data"), len(ids))
        self._authorize([plan], caller, client)
        with self.bound.admit(len(ids)):
            snapshots = await self._cache.get_each(entity_type, ids)
        failed = [s for s in snapshots if isinstance(s, StoreUnavailableError)]
        if len(failed) == len(snapshots):
            raise failed[0]  # nothing to serve: the store is down (503)
        now_us = self._clock_us()
        writer = ColumnWriter(plan, now_us, self._metrics.tally)
        self._metrics.vectors(plan, len(ids) - len(failed))
        for _ in failed:
            self._metrics.error(ErrorCode.STORE_UNAVAILABLE)
        results = [
            _unavailable(eid, snap)
            if isinstance(snap, StoreUnavailableError)
            else writer.row(eid, snap.stored, snap.progress)
            for eid, snap in zip(ids, snapshots, strict=True)
        ]
        if composite:
            for eid, result in zip(ids, results, strict=True):
                result["entity_key"] = entity_key(composite, eid)
        if self._log is not None and self._log.sampled():
            vectors = [
                (r["entity_id"], r["values"], r["feature_timestamps"], r["statuses"]) for r in results if "values" in r
            ]
            self._log_served(self._log, headers, service, now_us, plan, vectors)
        if plan.requests:
            ok = [i for i, snap in enumerate(snapshots) if not isinstance(snap, StoreUnavailableError)]
            pairs = [
                (s.stored, s.progress) for s in (snapshots[i] for i in ok) if not isinstance(s, StoreUnavailableError)
            ]
            served = request_values(
                plan, pairs, {f: [column[i] for i in ok] for f, column in data.items()}, now_us, self._metrics.tally
            )
            for row, i in enumerate(ok):
                _columns_in_order(plan, results[i], [s[row] for s in served], now_us)
        return orjson.dumps(
            {
                "entity_type": entity_type,
                "served_at": format_ms(now_us // 1000),
                "names": plan.output_keys,
                "versions": plan.output_versions,
                "results": results,
            }
        )


def _selection_key(entity_type: str, names: Any, service: Any) -> PlanKey | None:
    """The plan key of a body's `names` or `feature_service` (the names as a tuple: no separator two name
    lists could share), or None when either is not of its JSON type (``_bad_selection`` says which)."""
    if service is not None and not isinstance(service, str):
        return None
    if names is None:
        return ("batch", entity_type, None, service)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    return ("batch", entity_type, tuple(names), service)


def _bad_selection(names: Any, service: Any) -> NoReturn:
    """The refusal of a body whose ``_selection_key`` is None."""
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise ApiError(ErrorCode.BAD_NAMES, f"`names` must list 1-{MAX_NAMES} non-empty names")
    raise ApiError(ErrorCode.BAD_REQUEST, "`feature_service` must be a string like `name@3`")


def check_service_ref(ref: str, parameter: str = "feature_service") -> None:
    """400 ``bad_request`` naming ``parameter`` when ``ref`` is not a feature service reference (``name``,
    ``name@N`` or ``name@vN``); a well-formed one that names no registered service is 404 later."""
    if parse_ref(ref, name_pattern=SERVICE_NAME_PATTERN) is None:
        raise ApiError(
            ErrorCode.BAD_REQUEST,
            f"`{parameter}` must be `name`, `name@N` or `name@vN` (a name of 1-63 characters of a-z 0-9 _ - starting with a letter, "
            f"N in 1-{MAX_VERSION}), not {ref[:300]!r}",
        )


def _plan_query(params: dict[str, list[str]], key: dict[str, str]) -> str:
    """The query a composite-key GET's plan is cached under: its own without the key fields."""
    return urlencode([(k, v) for k, vs in params.items() if k not in key for v in vs])


def _usage_part(entity_type: str, composite: tuple[str, ...]) -> str:
    return f"entity type {entity_type!r} takes its key as `entity_key`: an object of exactly {list(composite)}"


def _once(params: dict[str, list[str]], name: str, code: ErrorCode) -> str | None:
    """The value of query parameter ``name`` (None when absent); given more than once, a 400 ``code``
    (the code of that parameter's malformed value), never one of the values picked silently."""
    values = params.get(name)
    if values is None:
        return None
    if len(values) > 1:
        raise ApiError(code, f"query parameter `{name}` is given more than once ({len(values)} times): give it once")
    return values[0]


def _stamp(ts: int | None, now_us: int) -> tuple[str | None, float | None]:
    return (None, None) if ts is None else (iso(ts), (now_us // 1000 - ts) / 1000)


def _object_in_order(
    plan: Plan, stored: dict[str, dict[str, Any]], served: list[Served], now_us: int
) -> dict[str, dict[str, Any]]:
    """One entity's features object with its request-time features, in request order."""
    entries: list[tuple[str, dict[str, Any]]] = [("", {})] * len(plan.output_keys)
    for i, key in zip(plan.stored_at, plan.keys, strict=True):
        entries[i] = (key, stored[key])
    for r, (value, ts, status, message) in zip(plan.requests, served, strict=True):
        at, age = _stamp(ts, now_us)
        entry = {"value": value, "feature_timestamp": at, "age_seconds": age, "version": r.feature.version}
        entry["status"] = status
        if message is not None:
            entry["message"] = message
        entries[r.position] = (r.key, entry)
    return dict(entries)


def _columns_in_order(plan: Plan, result: dict[str, Any], served: list[Served], now_us: int) -> None:
    """One entity's batch columns with its request-time features put in request order (in place)."""
    width = len(plan.output_keys)
    columns: dict[str, list[Any]] = {
        k: [None] * width for k in ("values", "feature_timestamps", "age_seconds", "statuses")
    }
    for j, i in enumerate(plan.stored_at):
        for name, column in columns.items():
            column[i] = result[name][j]
    errors: dict[str, str] = {}
    for r, (value, ts, status, message) in zip(plan.requests, served, strict=True):
        at, age = _stamp(ts, now_us)
        columns["values"][r.position] = value
        columns["feature_timestamps"][r.position] = at
        columns["age_seconds"][r.position] = age
        columns["statuses"][r.position] = status
        if message is not None:
            errors[r.key] = message
    result.update(columns)
    if errors:
        result["errors"] = errors


def _unavailable(entity_id: str, error: StoreUnavailableError) -> dict[str, Any]:
    """A batch result for an entity whose read failed while others succeeded: its error, no columns."""
    return {"entity_id": entity_id, "error": ErrorCode.STORE_UNAVAILABLE.value, "message": str(error)}
