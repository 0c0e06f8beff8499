"""The error types: `AppError` and the failures every slice shares.

An `AppError` is an expected failure with a stable machine-readable `code`; it becomes an RFC
9457 problem (see `problems.py`). Each slice keeps its own errors in its `errors.py`, as
subclasses of these.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from sqlalchemy import exc as sa_exc


class AppError(Exception):
    """An expected failure with a stable machine-readable `code`."""

    status: int = 500
    code: str = "internal_error"
    detail: str = "An unexpected error occurred."

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.detail = detail or type(self).detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        super().__init__(self.detail)


class ValidationFailed(AppError):
    status, code, detail = 422, "validation_error", "The request is not valid."

    def __init__(self, detail: str | None = None, *, errors: list[dict[str, str]]) -> None:
        super().__init__(detail, extra={"errors": errors})


class Unauthenticated(AppError):
    status, code, detail = 401, "not_authenticated", "Authentication is required."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class InvalidCredentials(Unauthenticated):
    code, detail = "invalid_credentials", "The e-mail address or password is incorrect."


class InvalidToken(Unauthenticated):
    code, detail = "invalid_token", "The token is invalid or has expired."


class Forbidden(AppError):
    status, code, detail = 403, "forbidden", "You are not allowed to do this."


class NotFound(AppError):
    status, code, detail = 404, "not_found", "The resource does not exist."


class Conflict(AppError):
    status, code, detail = 409, "conflict", "The request conflicts with the current state."


class ServiceUnavailable(AppError):
    status, code = 503, "service_unavailable"
    detail = "A service this request depends on is unavailable; try again shortly."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


class InternalError(AppError):
    """A bug: never carries more than the request id to the client."""


_DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    ConnectionError,
    TimeoutError,
    asyncio.TimeoutError,
    OSError,
)


def is_dependency_failure(error: BaseException) -> bool:
    """A database or network failure (503), as opposed to a bug (500)."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, _DEPENDENCY_ERRORS):
        return True
    cause = error.__cause__
    return cause is not None and cause is not error and is_dependency_failure(cause)


def classify_unexpected(error: BaseException) -> AppError:
    """The one decision between 503 and 500 for an exception no layer expected.

    Used by the exception handler inside the application and by the edge layer outside it, so
    both answer (and log) a crash the same way.
    """
    if is_dependency_failure(error):
        return ServiceUnavailable()
    return InternalError()
