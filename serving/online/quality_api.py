"""``/v1/quality``: the stored data-quality results of a feature (``registry.quality``).

``GET /v1/quality/{entity_type}/{name}?version=N&since=T&until=T`` answers ``{"entity_type", "feature",
"since", "until", "hourly": [...], "drift": [...], "parity": [...]}``: the hourly statistics whose hour
is in ``[since, until)`` (both sources, in hour order) and the drift and parity runs computed in
``[since, until)`` (in time order), of one version or (without ``version``) of every version.
``since`` and ``until`` are ISO-8601 instants with a UTC offset (``2026-11-30T10:00:00Z``);
``until`` defaults to now and ``since`` to 24 hours before ``until``. An unknown feature or version is
404; a malformed or offset-less time, one outside years 1-9999 once in UTC, or ``since`` not before
``until``, is 400.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request

from registry.access import Access
from registry.core.definitions import FeatureDefinition
from registry.core.errors import ForbiddenError
from registry.live import LiveCatalog
from registry.quality import QualityStore, iso
from serving.online.auth import caller_of, client_of
from serving.online.http_errors import ApiError, ErrorCode
from serving.online.responses import BAD_PARAMETER, JSONResponse, problems

DEFAULT_SPAN = timedelta(hours=24)
_EARLIEST = datetime.min.replace(tzinfo=UTC)  # a default `since` no earlier than this (then `until` is refused)


def _instant(name: str, text: str | None, default: datetime) -> datetime:
    if text is None:
        return default
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ApiError(ErrorCode.BAD_REQUEST, f"{name}: not an ISO-8601 instant: {text!r}") from exc
    if parsed.tzinfo is None:
        raise ApiError(ErrorCode.BAD_REQUEST, f"{name}: give a UTC offset (Z or +00:00): {text!r}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # year 1 or 9999 at an offset: outside what a UTC datetime holds
        raise ApiError(ErrorCode.BAD_REQUEST, f"{name}: out of range in UTC: {text!r}") from exc


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
        responses=problems(
            {
                400: f"{BAD_PARAMETER} (`version`, `since`, `until`; or `since` not before `until`)",
                404: "`unknown_feature`: no such feature or version",
            }
        ),
    )
    def feature_quality(
        request: Request,
        entity_type: str,
        name: str,
        version: int | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> JSONResponse:
        catalog = live.current()
        d = catalog.get(entity_type, name, version)  # 404 for an unknown feature or version
        _check_read(request, [d])
        end = _instant("until", until, datetime.fromtimestamp(clock_us() / 1e6, UTC))
        start = _instant("since", since, end - DEFAULT_SPAN if end > _EARLIEST + DEFAULT_SPAN else end)
        if start >= end:
            raise ApiError(ErrorCode.BAD_REQUEST, "since: must be before until")
        stored = quality.feature(entity_type, d.name, version, start, end)
        # Without `version` the answer holds every version's rows: each other version in it needs the grant
        # too (the active one may be internal while an older one is restricted).
        others = sorted({int(row["version"]) for rows in stored.values() for row in rows} - {d.version})
        _check_read(request, [catalog.get(entity_type, d.name, v) for v in others])
        return JSONResponse(
            {"entity_type": entity_type, "feature": d.name, "since": iso(start), "until": iso(end), **stored}
        )

    return router
