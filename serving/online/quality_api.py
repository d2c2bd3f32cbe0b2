"""``/v1/quality``: the stored data-quality results of a feature (``registry.quality``).

``GET /v1/quality/{entity_type}/{name}?version=N&since=T&until=T`` answers ``{"entity_type", "feature",
"since", "until", "hourly": [...], "drift": [...], "parity": [...]}``: the hourly statistics whose hour
is in ``[since, until)`` (both sources, in hour order) and the drift and parity runs computed in
``[since, until)`` (in time order), of one version or (without ``version``) of every version.
``since`` and ``until`` are ISO-8601 instants with a UTC offset (``2026-11-30T10:00:00Z``);
``until`` defaults to now and ``since`` to 24 hours before ``until``. An unknown feature or version is
404; a malformed or offset-less time, one outside years 1-9999 once in UTC, one with a fraction of a second past
its 6th digit or in its offset that is not zero (Python's ISO reader drops it), or ``since`` not before ``until``,
is 400.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from registry.access import Access
from registry.core.definitions import FeatureDefinition
from registry.core.durations import extended_date, finer_than_microseconds, offset_finer_than_seconds
from registry.core.errors import ForbiddenError
from registry.live import LiveCatalog
from registry.quality import QualityStore, iso
from serving.online.auth import caller_of, client_of
from serving.online.definitions_api import query_once, version_once
from serving.online.http_errors import ApiError, ErrorCode
from serving.online.responses import BAD_PARAMETER, FORBIDDEN_READ, JSONResponse, problems

DEFAULT_SPAN = timedelta(hours=24)
_EARLIEST = datetime.min.replace(tzinfo=UTC)  # a default `since` no earlier than this (then `until` is refused)


def _instant(name: str, text: str | None, default: datetime) -> datetime:
    if text is None:
        return default
    try:
        if not extended_date(text):  # Python reads ISO's basic form too: 1796032800000Z was the year 1796
            raise ValueError(text)
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ApiError(ErrorCode.BAD_REQUEST, f"{name}: not an ISO-8601 instant: {text!r}") from exc
    if parsed.tzinfo is None:
        raise ApiError(ErrorCode.BAD_REQUEST, f"{name}: give a UTC offset (Z or +00:00): {text!r}")
    if finer_than_microseconds(text):  # read as an earlier instant, it moved the range's edge
        raise ApiError(ErrorCode.BAD_REQUEST, f"{name}: give at most microseconds: {text!r}")
    if offset_finer_than_seconds(text):  # Python's reader drops it: the edge moved
        raise ApiError(ErrorCode.BAD_REQUEST, f"{name}: give an offset to the second at most: {text!r}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # year 1 or 9999 at an offset: outside what a UTC datetime holds
        raise ApiError(ErrorCode.BAD_REQUEST, f"{name}: out of range in UTC: {text!r}") from exc


class QualityDoc(BaseModel):
    """The answer of ``GET /v1/quality/{entity_type}/{name}`` (OpenAPI)."""

    entity_type: str
    feature: str = Field(description="the feature's own name (also when asked by a former name)")
    since: str
    until: str
    hourly: list[dict[str, Any]] = Field(description="hourly statistics whose hour is in [since, until), by hour")
    drift: list[dict[str, Any]] = Field(description="drift runs computed in [since, until), in time order")
    parity: list[dict[str, Any]] = Field(description="parity runs computed in [since, until), in time order")


_INSTANT = "an ISO-8601 instant with a UTC offset (`2026-11-30T10:00:00Z`), in years 1-9999 once in UTC; at most once"


# RFC 3339's instants (ISO 8601 with an offset) with `T` and `Z` upper-case, without a leap second (`:60`)
_TIME: dict[str, Any] = {"format": "date-time"}


def quality_router(
    live: LiveCatalog, quality: QualityStore, clock_us: Callable[[], int], access: Access | None = None
) -> APIRouter:
    router = APIRouter(prefix="/v1/quality", tags=["quality"])

    def _check_read(request: Request, definitions: list[FeatureDefinition]) -> None:
        """Statistics describe the values: the same grant as a read of them (403 naming every refused one)."""
        if access is None or not access.enabled or not definitions:
            return
        try:
            access.check_read(
                caller_of(request.scope), definitions, action="read_quality", client=client_of(request.scope)
            )
        except ForbiddenError as exc:
            raise ApiError(ErrorCode.FORBIDDEN, str(exc), names=exc.names) from exc

    @router.get(
        "/{entity_type}/{name}",
        summary="Stored hourly statistics, drift and parity runs of a feature",
        responses={
            200: {"model": QualityDoc, "description": "the stored results in [since, until)"},
            **problems(
                {
                    400: f"{BAD_PARAMETER} (`version`, `since`, `until`: each at most once, `version` written as a "
                    "JSON integer; or `since` not before `until`)",
                    403: FORBIDDEN_READ,
                    404: "`unknown_feature`: no such feature or version",
                }
            ),
        },
    )
    def feature_quality(
        request: Request,
        entity_type: str,
        name: str,
        version: Annotated[int | None, Query(description="one version; every version if omitted")] = None,
        since: Annotated[
            str | None,
            Query(description=f"{_INSTANT}; default 24 hours before `until`; before `until`", json_schema_extra=_TIME),
        ] = None,
        until: Annotated[str | None, Query(description=f"{_INSTANT}; default now", json_schema_extra=_TIME)] = None,
    ) -> JSONResponse:
        version_once(request)
        query_once(request, "since")
        query_once(request, "until")
        catalog = live.current()
        d = catalog.get(entity_type, name, version)  # 404 for an unknown feature or version
        if version is not None:
            _check_read(request, [d])  # one version: refused before any read
        end = _instant("until", until, datetime.fromtimestamp(clock_us() / 1e6, UTC))
        start = _instant("since", since, end - DEFAULT_SPAN if end >= _EARLIEST + DEFAULT_SPAN else end)
        if start >= end:
            raise ApiError(ErrorCode.BAD_REQUEST, "since: must be before until")
        stored = quality.feature(entity_type, d.name, version, start, end)
        # Without `version` the answer holds every version's rows: every version in it needs the grant, checked
        # together (the active one may be internal while an older one is restricted), so that the 403 names
        # every refused version and each is audited once.
        others = sorted({int(row["version"]) for rows in stored.values() for row in rows} - {d.version})
        if version is None:
            _check_read(request, [d, *(catalog.get(entity_type, d.name, v) for v in others)])
        return JSONResponse(
            {"entity_type": entity_type, "feature": d.name, "since": iso(start), "until": iso(end), **stored}
        )

    return router
