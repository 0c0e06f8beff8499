"""Exception handlers: every failure inside the application becomes a problem response."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from src.core.errors.problems import problem_response, unexpected
from src.core.errors.types import AppError, InternalError, ValidationFailed


def validation_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    """FastAPI/Pydantic errors as `{"pointer": "/a/0"}` or `{"parameter": "limit"}` entries."""
    out: list[dict[str, str]] = []
    for error in errors:
        location = list(error.get("loc", ()))
        message = str(error.get("msg", "Invalid value."))
        if location and location[0] == "body":
            pointer = "".join(
                "/" + str(part).replace("~", "~0").replace("/", "~1") for part in location[1:]
            )
            out.append({"pointer": pointer, "detail": message})
        elif location and location[0] in ("query", "path", "header", "cookie"):
            name = str(location[1]) if len(location) > 1 else str(location[0])
            out.append({"parameter": name, "detail": message})
        else:
            out.append({"pointer": "", "detail": message})
    return out


async def _app_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, AppError)
    return problem_response(error, request.url.path)


async def _request_validation(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    if any(e.get("type") == "json_invalid" for e in error.errors()):
        # The parser's location is a character offset, not a path: point at the whole body.
        failure = ValidationFailed(
            "The request body is not valid JSON.",
            errors=[{"pointer": "", "detail": "Not valid JSON."}],
        )
    else:
        failure = ValidationFailed(errors=validation_errors(error.errors()))
    return problem_response(failure, request.url.path)


class _HttpError(AppError):
    """A routing-level answer (404, 405, 413) raised by Starlette as an HTTPException."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str]) -> None:
        self.status, self.code = status, code
        super().__init__(detail, headers=headers)


_HTTP_CODES = {
    404: ("not_found", "No resource lives at this path."),
    405: ("method_not_allowed", "This method is not allowed on this resource."),
    413: ("payload_too_large", "The request body is too large."),
}


async def _http_exception(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == 400:
        # FastAPI's answer to a body it cannot decode (not UTF-8, a broken form): a malformed
        # body is a 422 validation_error like malformed JSON, never a bare 400.
        failure: AppError = ValidationFailed(
            "The request body could not be decoded.",
            errors=[{"pointer": "", "detail": "The body could not be decoded."}],
        )
    elif error.status_code >= 500:
        failure = InternalError()
    else:
        code, detail = _HTTP_CODES.get(error.status_code, ("http_error", str(error.detail)))
        failure = _HttpError(error.status_code, code, detail, dict(error.headers or {}))
    return problem_response(failure, request.url.path)


async def _unexpected(request: Request, error: Exception) -> Response:
    return problem_response(unexpected(error), request.url.path)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(Exception, _unexpected)
