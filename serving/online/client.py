"""A small Python client of the feature API.

    with FeatureClient("http://127.0.0.1:8000") as fs:
        vector = fs.get_features("user", "u1", ["txn_count_1h"])
        vector["features"]["txn_count_1h"]["status"]       # present | missing | expired | stale | error (a request-time feature)

The HTTP client is injected (any ``httpx.Client``: a test passes FastAPI's ``TestClient``), and
failures arrive as the project's errors: ``UnknownFeatureError`` and ``UnknownFeatureServiceError``
for what is not registered, ``DefinitionConflictError`` for a version conflict, ``UnauthenticatedError``
and ``ForbiddenError`` for 401 and 403, ``StoreUnavailableError`` when the API or its store does not answer
(any 503, a refused connection, the timeout, an answer that cannot be read; its subclass ``OverloadedError``, with
``retry_after_s``, for a 503 ``overloaded``: the API shed the request), ``RequestError`` for any
other refusal (``code`` is the API's ``ErrorCode``, from the table the server uses too). Nothing is retried.

``score_vector`` and ``score_vectors`` judge vectors by a model's ``ModelPolicy``
(``serving.online.policy``): a required feature that is stale, expired or missing (as the policy says)
gives the policy's named fallback, counted, instead of a silent default.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from decimal import Decimal
from numbers import Real
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from registry.core.deadline import bound_by_deadline, deadline
from registry.core.definitions import FeatureDefinition
from registry.core.errors import (
    ForbiddenError,
    OverloadedError,
    RequestError,
    StoreUnavailableError,
    UnauthenticatedError,
    UnknownFeatureError,
    UnknownFeatureServiceError,
)
from registry.definition_store import DefinitionConflictError
from registry.feature_services import FeatureService
from serving.online.http_errors import ErrorCode, code_of
from serving.online.policy import Decision, Fallbacks, ModelPolicy, decide, unavailable
from serving.online.serving_log import REQUEST_ID_RULE, well_formed_request_id

_MAX_TIMEOUT_S = 86_400 * 365  # a year: past it a socket's timeout may overflow the platform's time_t


def _retry_after_s(header: str | None) -> int | None:
    """``Retry-After`` as delay seconds (RFC 9110: a non-negative integer, of any length); None when absent or
    another form."""
    text = None if header is None else header.strip()
    if text is None or not text.isascii() or not text.isdigit():
        return None
    return int(Decimal(text))  # exact; int() of a string refuses more than 4,300 digits


def _segment(entity_id: str) -> str:
    """``entity_id`` (or an entity type) as one path segment: percent-encoded where a URL would read it
    otherwise (``/``, ``?``, ``#``, ``%``, spaces; the API refuses such an id by name instead of the client asking for another path), and
    an id of dots only (``.``, ``..``) with its dots encoded, ``%2E``, which HTTP clients would otherwise
    remove as a dot segment (``/v1/features/user/.`` is ``/v1/features/user``); the API decodes both."""
    if entity_id and entity_id.strip(".") == "":
        return "%2E" * len(entity_id)
    return quote(entity_id, safe=":@")


def _header(what: str, value: str) -> bytes:
    """``value`` as a header's bytes: UTF-8, as the API reads header text (its serving log records it so). A
    control character (Unicode category Cc, C1's included: a line break would end the header) or white space at
    either end (HTTP drops it) cannot travel as given: ``ValueError``, before anything is sent, not a failure of
    the API."""
    if _text(what, value).strip() != value or any(c < " " or "\x7f" <= c <= "\x9f" for c in value):  # Cc: C0, DEL, C1
        raise ValueError(f"{what} must hold no control character nor white space at either end, not {value[:200]!r}")
    return value.encode()


@contextmanager
def _shaped() -> Iterator[None]:
    """A 2xx answer whose body is not of the API's shape (another server on the port, a proxy's page in JSON) is a
    ``RequestError`` (``bad_answer``), never a ``KeyError`` or ``TypeError``: every failure is a FeatureStoreError."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise RequestError(
            "bad_answer", f"feature API answer of an unexpected shape: {type(exc).__name__}: {exc}"
        ) from exc


def _registration(out: Any) -> dict[str, Any]:
    """A registration's answer, ``{result, ...}``; another shape is a ``RequestError`` (``bad_answer``)."""
    with _shaped():
        if not isinstance(out, dict) or not isinstance(out["result"], str):
            raise TypeError(f"not a registration result: {str(out)[:200]}")
        return dict(out)


def _names_of(names: Sequence[str] | None) -> list[str] | None:
    """``names`` as a list; a bare string (read as its characters one by one) or a name that is not a string is a
    ``TypeError``, before anything is sent."""
    if names is None:
        return None
    if isinstance(names, str | bytes):
        raise TypeError(f"names must be a sequence of feature names, not one string: {names[:200]!r}")
    listed = list(names)
    for name in listed:
        if not isinstance(name, str):
            raise TypeError(f"a feature name must be a string, not {type(name).__name__}: {name!r}"[:300])
    return listed


def _text(what: str, value: object) -> str:
    """``value`` when a string; a ``TypeError`` naming ``what`` otherwise (an id of 123 is not the id "123")."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, not {type(value).__name__}: {value!r}"[:300])
    return value


def _key_value(field: str, value: object) -> str:
    """A composite key field's value as its query parameter: a string, or an integer (an Avro ``long`` key) in
    decimal; anything else (a bool, a float, None) is a ``TypeError``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(f"key field {field!r}", value)


def _key(value: object) -> Mapping[Any, Any]:
    """A composite key given to ``get_features_batch``: a mapping; anything else (an id among keys) a ``TypeError``."""
    if not isinstance(value, Mapping):
        raise TypeError(f"an entity key must be a mapping of key fields, not {type(value).__name__}: {value!r}"[:300])
    return value


def _vector_part(part: object) -> dict[str, Any]:
    """A ``get_vectors`` part as sent: its id, key and names checked as ``get_features`` checks them (the rest,
    ``entity_type``, ``feature_service`` and ``request_data``, as given: the API answers for them)."""
    if not isinstance(part, Mapping):
        raise TypeError(f"a part must be a mapping (entity_type, entity_id or entity_key, ...), not {part!r}"[:300])
    out = dict(part)
    if "entity_id" in out:
        out["entity_id"] = _text("entity_id", out["entity_id"])
    if "entity_key" in out:
        out["entity_key"] = {_text("a key field", k): _key_value(k, v) for k, v in _key(out["entity_key"]).items()}
    if out.get("names") is not None:
        out["names"] = _names_of(out["names"])
    return out


_UNAVAILABLE = (502, 503, 504)
"""Statuses that say the API cannot answer: its own 503, or a proxy's or gateway's 502 and 504 (the API never sends
those: a gateway in front of it could not reach it)."""


MAX_URL_CHARS = 65_536  # a whole URL, base and query included; one longer is refused unsent


def _port_text_ok(base_url: str) -> bool:
    """Whether the URL's port, if it has a ``:`` for one, is ASCII digits: httpx took ``h:``, ``h:+80`` and ports in
    other scripts' digits (``h:٣٤٢٠٧``)."""
    authority = base_url.partition("://")[2].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rpartition("@")[2]
    if authority.startswith("["):  # an IPv6 address: the port follows its closing bracket
        tail = authority.partition("]")[2]
    else:
        _, colon, port = authority.partition(":")
        tail = colon + port
    return not tail or (tail.startswith(":") and tail[1:].isascii() and tail[1:].isdigit())


def _base_url(base_url: object) -> str:
    """``base_url`` if it is an absolute http(s) URL with a host (and a port from 1 to 65535 if given), else a
    ``ValueError``: ``''``, ``host:8000`` (no scheme), ``http//x`` or ``http://a b`` were taken as URLs, and every
    call then failed as if the API were down."""
    problem = None
    if isinstance(base_url, httpx.URL):
        base_url = str(base_url)
    try:
        if not isinstance(base_url, str):
            raise TypeError(f"a {type(base_url).__name__}, not a str")
        url = httpx.URL(base_url)
        port = url.port
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        problem = str(exc)
    else:
        if any(c.isspace() or not c.isprintable() for c in base_url):
            problem = "it holds white space or a control character"
        elif url.scheme not in ("http", "https"):
            problem = "give its scheme, http:// or https://"
        elif not url.host or "%" in url.host:
            problem = "it names no host" if not url.host else "its host is not a host name"
        elif port is not None and not 0 < port < 65536:
            problem = f"its port {port} is not from 1 to 65535"
        elif not _port_text_ok(base_url):
            problem = "its port is not ASCII digits (nor empty)"
        elif url.query or url.fragment or "?" in base_url or "#" in base_url:  # a bare `?` lost the path
            problem = "a base URL takes no query or fragment"
    if problem is not None or not isinstance(base_url, str):
        raise ValueError(f"base_url must be a URL such as http://host:8000, not {str(base_url)[:200]!r}: {problem}")
    return base_url


class FeatureClient:
    def __init__(
        self,
        base_url: str | None = None,
        *,
        client: httpx.Client | None = None,
        timeout_s: float = 1.0,
        caller: str | None = None,
        fallbacks: Fallbacks | None = None,
        token: str | None = None,
    ) -> None:
        """``caller`` is sent as ``x-caller`` (the serving log records it); ``fallbacks`` counts the
        fallbacks ``score_vector`` takes (a fresh registry's counter if None); ``token`` is sent as
        ``Authorization: Bearer`` (needed when the API runs with ``FS_AUTH=on``). Header values are sent UTF-8
        encoded; one holding a control character (a line break, NUL, ...) or white space at either end, which HTTP
        cannot carry as given, is a ``ValueError`` here, as is such a ``model`` name or version per call."""
        self._headers: dict[str, bytes] = {}
        if caller is not None and _text("caller", caller):
            self._headers["x-caller"] = _header("caller", caller)
        if token is not None and _text("token", token):
            self._headers["authorization"] = b"Bearer " + _header("token", token)
        self.fallbacks = fallbacks if fallbacks is not None else Fallbacks()
        if client is None:
            if base_url is None:
                raise ValueError("give the API's base_url or an httpx.Client")
            # NaN, infinity or None would wait for ever or fail each call with a bare error: refused here
            # any real number (numpy's and Decimal too), read as a float; a bool is not a number of seconds
            real = isinstance(timeout_s, Real | Decimal) and not isinstance(timeout_s, bool)
            try:
                seconds = float(timeout_s) if real else math.nan
            except (OverflowError, ValueError, ArithmeticError):  # 10**400, Fraction(10**400), Decimal("sNaN")
                seconds = math.nan
            if not 0 < seconds < _MAX_TIMEOUT_S:
                raise ValueError(
                    f"timeout_s must be a number of seconds above 0 and below {_MAX_TIMEOUT_S:,}, not {timeout_s!r}"
                )
            timeout_s = seconds
            client = bound_by_deadline(httpx.Client(base_url=_base_url(base_url), timeout=timeout_s))
            self._owned = True
        else:
            self._owned = False
        self._http = client
        self._timeout_s = timeout_s if self._owned else None  # an injected client's timeouts are its own

    def __enter__(self) -> FeatureClient:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            self._http.close()

    # --- feature vectors ---------------------------------------------------------------------------

    def get_features(
        self,
        entity_type: str,
        entity_id: str | Mapping[str, str | int],
        names: Sequence[str] | None = None,
        *,
        feature_service: str | None = None,
        model: tuple[str, str] | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """``{entity_type, entity_id, served_at, features: {name: {value, feature_timestamp, age_seconds,
        version, status}}}``; all of the entity's features when neither names nor a feature service is given.

        ``entity_id``: the id, or for a composite-keyed entity type a mapping of each key field to its value
        (the response then carries ``entity_key`` too). ``model`` (name, version) and ``request_id`` are sent
        as headers for the serving log (``request_id``: 1-128 visible ASCII characters, else ``ValueError``).
        """
        params: list[tuple[str, str]] = []  # pairs: a key member named like another parameter is sent beside it
        listed = _names_of(names)
        if listed is not None:
            # A GET sends names comma-separated: one holding "," would be read as several. No registered name holds
            # one (names are [a-z][a-z0-9_]*), so it is unknown, as a batch read of it answers.
            if commas := [n for n in listed if "," in n]:
                raise UnknownFeatureError(_text("entity_type", entity_type), commas)
            params.append(("names", ",".join(listed)))
        if feature_service is not None:
            params.append(("feature_service", feature_service))
        if isinstance(entity_id, Mapping):
            path = f"/v1/features/{_segment(_text('entity_type', entity_type))}"
            # A member named `names` replaced the names asked for, and the API served other features; sent beside
            # them, it is a parameter given twice, which the API refuses (400).
            params.extend((_text("a key field", k), _key_value(k, v)) for k, v in entity_id.items())
        elif not _text(
            "entity_id (or a mapping of key fields)", entity_id
        ):  # its path, `/v1/features/user/`, is another route's (the API redirects to it)
            raise RequestError(ErrorCode.BAD_ENTITY_ID, "entity id must not be empty")
        else:
            path = f"/v1/features/{_segment(_text('entity_type', entity_type))}/{_segment(entity_id)}"
        out = self._call("GET", path, params=params, headers=self._request_headers(model, request_id))
        with _shaped():
            if not isinstance(out, dict) or not isinstance(out["features"], dict):
                raise TypeError(f"not a vector: {str(out)[:200]}")
            return out

    def score_vector(
        self,
        policy: ModelPolicy,
        entity_type: str,
        entity_id: str,
        names: Sequence[str] | None = None,
        *,
        feature_service: str | None = None,
        request_id: str | None = None,
    ) -> Decision:
        """The vector judged by ``policy``: its fallback, named, when a required feature's status is refused.

        ``names`` default to the policy's required features (a feature service, if given, instead).
        """
        if names is None and feature_service is None:
            names = list(policy.required)
        vector = self.get_features(
            entity_type,
            entity_id,
            names,
            feature_service=feature_service,
            model=(policy.model, policy.version),
            request_id=request_id,
        )
        features = vector["features"]  # a dict: get_features checked it
        with _shaped():  # each feature judged must carry its value and status (before anything is counted)
            for name, feature in features.items():
                if not isinstance(feature, dict) or "value" not in feature or "status" not in feature:
                    raise TypeError(f"feature {name!r} is not {{value, status, ...}}: {str(feature)[:200]}")
        return decide(policy, entity_id, features, self.fallbacks)

    def score_vectors(
        self,
        policy: ModelPolicy,
        entity_type: str,
        entity_ids: Sequence[str],
        names: Sequence[str] | None = None,
        *,
        feature_service: str | None = None,
    ) -> list[Decision]:
        """``score_vector`` for many entities in one batch request; an entity whose read failed falls back."""
        if names is None and feature_service is None:
            names = list(policy.required)
        results = self.get_features_batch(
            entity_type, entity_ids, names, feature_service=feature_service, model=(policy.model, policy.version)
        )
        return [
            unavailable(policy, r["entity_id"], self.fallbacks, r["error"])
            if "error" in r
            else decide(policy, r["entity_id"], r["features"], self.fallbacks)
            for r in results
        ]

    def _request_headers(self, model: tuple[str, str] | None, request_id: str | None) -> dict[str, bytes]:
        headers = dict(self._headers)
        if model is not None:
            if not isinstance(model, tuple | list) or len(model) != 2:  # a str was read as its first two characters
                raise TypeError(f"model must be a (name, version) pair, not {model!r:.200}")
            headers["x-model-name"] = _header("model name", model[0])
            headers["x-model-version"] = _header("model version", model[1])
        if request_id is not None:
            # The API would log a fresh id in place of a malformed one: refused here, before anything is sent.
            if not _text("request_id", request_id).isascii() or not well_formed_request_id(request_id.encode()):
                raise ValueError(f"request_id must be {REQUEST_ID_RULE}, not {request_id[:200]!r}")
            headers["x-request-id"] = request_id.encode()
        return headers

    def get_features_batch(
        self,
        entity_type: str,
        entity_ids: Sequence[str] | Sequence[Mapping[str, str | int]],
        names: Sequence[str] | None = None,
        *,
        feature_service: str | None = None,
        model: tuple[str, str] | None = None,
        request_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """One ``{entity_id, features: {name: {...}}}`` per id, in order (the API's columns, reshaped); an entity
        whose read failed while others succeeded is ``{entity_id, error: "store_unavailable", message}``. An answer
        with another number of results than ids sent is a ``RequestError`` (``bad_answer``).
        ``entity_ids`` of a composite-keyed entity type are mappings of key field to value (sent as ``entity_keys``;
        each result then carries ``entity_key``; an integer value is sent in decimal, as ``get_features`` sends it).
        An id that is not a string, or a key value neither a string nor an integer, is a ``TypeError`` before
        anything is sent."""
        if isinstance(entity_ids, str | bytes):
            raise TypeError(f"entity_ids must be a sequence of ids, not one string: {entity_ids[:200]!r}")
        ids: list[Any] = list(entity_ids)  # a generator too (read once)
        composite = bool(ids) and isinstance(ids[0], Mapping)
        # Each id a string, each key a mapping of key fields to strings or integers (sent in decimal, as
        # get_features sends them): anything else a TypeError before anything is sent, not the API's 400.
        sent: list[Any] = [
            {_text("a key field", k): _key_value(k, v) for k, v in _key(i).items()}
            if composite
            else _text("entity_id", i)
            for i in ids
        ]
        body: dict[str, Any] = {"entity_keys" if composite else "entity_ids": sent}
        listed = _names_of(names)
        if listed is not None:
            body["names"] = listed
        if feature_service is not None:
            body["feature_service"] = feature_service
        out = self._call(
            "POST",
            f"/v1/features/{_segment(entity_type)}/batch",
            json=body,
            headers=self._request_headers(model, request_id),
        )
        with _shaped():
            rows = self._columns_to_rows(out)
            if len(rows) != len(ids):
                raise ValueError(f"{len(rows)} results for {len(ids)} entities")
            return rows

    @staticmethod
    def _columns_to_rows(out: Any) -> list[dict[str, Any]]:
        keys, versions = out["names"], out["versions"]
        results: list[dict[str, Any]] = []
        for r in out["results"]:
            if "error" in r:  # this entity's read failed while others succeeded
                results.append({"entity_id": r["entity_id"], "error": r["error"], "message": r.get("message", "")})
                continue
            columns = zip(
                keys, versions, r["values"], r["feature_timestamps"], r["age_seconds"], r["statuses"], strict=True
            )
            features = {
                key: {"value": v, "feature_timestamp": t, "age_seconds": a, "version": ver, "status": s}
                for key, ver, v, t, a, s in columns
            }
            one = {"entity_id": r["entity_id"], "features": features}
            if "entity_key" in r:
                one["entity_key"] = r["entity_key"]
            results.append(one)
        return results

    def get_vectors(
        self, entities: Sequence[Mapping[str, Any]], *, request_id: str | None = None
    ) -> list[dict[str, Any]]:
        """One vector from several entities' features: per item of ``entities`` (``entity_type``, ``entity_id``
        or ``entity_key``, ``names`` or ``feature_service``, optional ``request_data``), its ``get_features``
        body, in order. A part that is not a mapping, an ``entity_id`` that is not a string, an ``entity_key`` that is
        not a mapping of key fields to strings or integers (an integer sent in decimal, as ``get_features`` sends it)
        or ``names`` that are not a sequence of strings is a ``TypeError`` before anything is sent."""
        if isinstance(entities, str | bytes):
            raise TypeError(f"entities must be a sequence of parts, not one string: {entities[:200]!r}")
        parts = [_vector_part(e) for e in entities]
        out = self._call(
            "POST",
            "/v1/vectors",
            json={"entities": parts},
            headers=self._request_headers(None, request_id),
        )
        with _shaped():
            if not isinstance(out["vectors"], list):
                raise TypeError(f"not a list of vectors: {str(out)[:200]}")
            if len(out["vectors"]) != len(parts):
                raise ValueError(f"{len(out['vectors'])} vectors for {len(parts)} entities")
            return list(out["vectors"])

    # --- registry ----------------------------------------------------------------------------------

    def list_definitions(
        self, *, entity: str | None = None, owner: str | None = None, tag: str | None = None, q: str | None = None
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"entity": entity, "owner": owner, "tag": tag, "q": q}.items() if v is not None}
        out = self._call("GET", "/v1/feature-definitions", params=params)
        with _shaped():
            if not isinstance(out, list):
                raise TypeError(f"not a list of definitions: {str(out)[:200]}")
            return list(out)

    def register_definition(
        self, definition: FeatureDefinition | dict[str, Any], *, activate: bool = False
    ) -> dict[str, Any]:
        """``{result: created|new_version|metadata_updated|unchanged, definition: {...}}``."""
        body = definition.model_dump(mode="json") if isinstance(definition, FeatureDefinition) else definition
        out = self._call(
            "POST", "/v1/feature-definitions", json=body, params={"activate": "true"} if activate else None
        )
        return _registration(out)

    def register_feature_service(self, service: FeatureService | dict[str, Any]) -> dict[str, Any]:
        """``{result: created|new_version|unchanged, feature_service: {...}}``."""
        body = service.model_dump(mode="json") if isinstance(service, FeatureService) else service
        return _registration(self._call("POST", "/v1/feature-services", json=body))

    # --- transport ---------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        kwargs.setdefault("headers", self._headers)
        # the whole answer, body included, within the timeout (an injected client's timeouts are its own)
        bounded = deadline(self._timeout_s) if self._timeout_s is not None else nullcontext()
        try:
            with bounded:
                request = self._http.build_request(method, path, **kwargs)
                if len(str(request.url)) > MAX_URL_CHARS:  # httpx bounds each part only, not the whole URL
                    raise httpx.InvalidURL(f"a URL of {len(str(request.url)):,} characters")
                response = self._http.send(request)
        except httpx.InvalidURL as exc:  # not an HTTPError: a URL httpx will not build, or one past MAX_URL_CHARS
            raise RequestError(
                ErrorCode.BAD_REQUEST,
                f"the request cannot be sent: {exc} (URLs of at most {MAX_URL_CHARS:,} characters: read a long "
                "list of names with get_features_batch or get_vectors, which send it in the body)",
            ) from None
        except httpx.TransportError as exc:
            raise StoreUnavailableError(
                f"feature API unreachable: {type(exc).__name__}: {exc} (at {self._http.base_url})"
            ) from exc
        except httpx.HTTPError as exc:  # an answer that cannot be read (a body its encoding cannot decode, ...)
            raise StoreUnavailableError(f"feature API answer unreadable: {type(exc).__name__}: {exc}") from exc
        try:
            problem = response.json()
        except (ValueError, RecursionError):  # a redirect (not followed), a proxy's page, JSON nested past the parser
            problem = response.text[:500]
            if response.status_code < 400:
                raise RequestError(f"http_{response.status_code}", problem or response.reason_phrase) from None
        if response.status_code < 300:
            return problem
        code, message = code_of(problem, response.status_code)
        # the status first: a 502, 503 or 504 says the API cannot answer now, whatever code a body passed on holds
        if response.status_code == 503 and code is ErrorCode.OVERLOADED:
            raise OverloadedError(message, retry_after_s=_retry_after_s(response.headers.get("retry-after")))
        if code is ErrorCode.STORE_UNAVAILABLE or response.status_code in _UNAVAILABLE:
            raise StoreUnavailableError(message)
        details = problem if isinstance(problem, dict) else {}
        listed = details.get("names")
        names = [str(n) for n in listed] if isinstance(listed, list) else []  # another shape names none
        if code is ErrorCode.UNKNOWN_FEATURE:
            raise UnknownFeatureError(str(details.get("entity_type", "")), names)
        if code is ErrorCode.UNKNOWN_FEATURE_SERVICE:
            raise UnknownFeatureServiceError(str(details.get("feature_service", "")))
        if code is ErrorCode.UNAUTHENTICATED:
            raise UnauthenticatedError(message)
        if code is ErrorCode.FORBIDDEN:
            raise ForbiddenError(message, names=names)
        if code is ErrorCode.VERSION_CONFLICT:
            raise DefinitionConflictError(message)
        raise RequestError(code, message)
