"""The refusal each of the project's errors stands for: one mapping, used by the app's error handler and by
the write routes that audit a refusal (``audited``) before it is answered."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from registry.access import Access
from registry.access_store import Caller
from registry.core.errors import (
    DefinitionError,
    ForbiddenError,
    StoreUnavailableError,
    UnauthenticatedError,
    UnknownFeatureError,
    UnknownFeatureServiceError,
)
from registry.definition_store import DefinitionConflictError
from serving.online.http_errors import ApiError, ErrorCode


def refusal(exc: Exception) -> ApiError | None:
    """The ``ApiError`` a project error is answered with; None for any other exception (the framework's own,
    or a bug)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, UnauthenticatedError):
        return ApiError(ErrorCode.UNAUTHENTICATED, str(exc))
    if isinstance(exc, ForbiddenError):
        return (
            ApiError(ErrorCode.FORBIDDEN, str(exc), names=exc.names)
            if exc.names
            else ApiError(ErrorCode.FORBIDDEN, str(exc))
        )
    if isinstance(exc, UnknownFeatureError):
        return ApiError(ErrorCode.UNKNOWN_FEATURE, str(exc), entity_type=exc.entity_type, names=exc.names)
    if isinstance(exc, UnknownFeatureServiceError):
        return ApiError(ErrorCode.UNKNOWN_FEATURE_SERVICE, str(exc), feature_service=exc.ref)
    if isinstance(exc, DefinitionConflictError):
        return ApiError(ErrorCode.VERSION_CONFLICT, str(exc))
    if isinstance(exc, StoreUnavailableError):
        return ApiError(ErrorCode.STORE_UNAVAILABLE, str(exc))
    if isinstance(exc, DefinitionError):  # a definition valid alone that the registry's others refuse
        return ApiError(ErrorCode.INVALID_DEFINITION, str(exc))
    return None


@contextmanager
def audited(access: Access, caller: Caller, action: str, target: str, client: str) -> Iterator[None]:
    """Record a write refused inside the block (a conflict, an unknown version, ...) with its status before
    the refusal is answered, as a 403 is (``serving.online.auth.authorize_write``); the route records the
    write it allows itself, with its outcome."""
    try:
        yield
    except Exception as exc:
        refused = refusal(exc)
        if refused is not None:
            access.write_audited(caller, action, target, refused.status, client, refused.code.value)
        raise
