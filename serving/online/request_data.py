"""The request fields of request-time features as a request gives them: from a query string (each field exactly
once) or from a body's ``request_data`` (per field, one value or null per entity id); anything else is a 400
``bad_request_data`` naming the fields."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from registry.core.request_features import check_json, parse_text
from serving.online.http_errors import ApiError, ErrorCode
from serving.online.plans import Plan


def request_params(query: bytes) -> dict[str, list[str]]:
    """A query string's parameters with their values read as UTF-8 strictly, percent-escaped or not: a request
    field's value is data a function computes on, never one with its undecodable bytes replaced by U+FFFD (a JSON
    body's are refused alike, 400 ``bad_json``)."""
    try:
        return parse_qs(query.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise ApiError(
            ErrorCode.BAD_REQUEST_DATA,
            "the query string is not UTF-8: request fields are read from it as UTF-8, percent-escaped or not",
        ) from None


def query_data(plan: Plan, params: dict[str, list[str]]) -> dict[str, list[Any]]:
    """The request fields of ``plan``'s request-time features from a query string (each exactly once)."""
    missing = [f.name for f in plan.fields if f.name not in params]
    if missing:
        raise ApiError(
            ErrorCode.BAD_REQUEST_DATA,
            f"request-time features need query parameter(s) {missing}",
            fields=missing,
        )
    twice = [f.name for f in plan.fields if len(params[f.name]) > 1]
    if twice:
        raise ApiError(
            ErrorCode.BAD_REQUEST_DATA, f"request field query parameter(s) {twice} given more than once: give each once"
        )
    try:
        return {f.name: [parse_text(f, params[f.name][0])] for f in plan.fields}
    except ValueError as exc:
        raise ApiError(ErrorCode.BAD_REQUEST_DATA, str(exc)) from exc


def fields_once(request_data: dict[str, Any]) -> None:
    """400 for a request field given twice in a body's ``request_data`` (as ``with_repeats`` read it), as for one
    given twice as a query parameter: never one of its values picked."""
    twice = getattr(request_data, "repeated", ())
    if twice:
        raise ApiError(
            ErrorCode.BAD_REQUEST_DATA,
            f"request field(s) {list(twice)} given more than once in `request_data`: give each once",
            fields=list(twice),
        )


def body_data(plan: Plan, raw: Any, n: int) -> dict[str, list[Any]]:
    """``request_data`` of a batch body: per request field, one value (or null) per entity id."""
    if raw is None and not plan.fields:
        return {}
    if not isinstance(raw, dict):  # absent or not an object: every request field is missing
        raise ApiError(
            ErrorCode.BAD_REQUEST_DATA,
            "`request_data` must be an object of request fields, each a list with one value per entity id",
            fields=[f.name for f in plan.fields],
        )
    fields_once(raw)
    wanted = {f.name: f for f in plan.fields}
    missing = sorted(set(wanted) - set(raw))
    extra = sorted(set(raw) - set(wanted))
    if missing or extra:
        raise ApiError(
            ErrorCode.BAD_REQUEST_DATA,
            f"`request_data` must hold exactly the requested features' request fields: missing {missing}, "
            f"not taken {extra[:20]}",
            fields=missing,
        )
    out: dict[str, list[Any]] = {}
    for name, values in raw.items():
        if not isinstance(values, list) or len(values) != n:
            raise ApiError(
                ErrorCode.BAD_REQUEST_DATA, f"`request_data.{name}` must list {n} values (one per entity id)"
            )
        try:
            out[name] = [check_json(wanted[name], v) for v in values]
        except ValueError as exc:
            raise ApiError(ErrorCode.BAD_REQUEST_DATA, str(exc)) from exc
    return out
