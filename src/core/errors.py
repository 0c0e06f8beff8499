"""The error model: `AppError` subclasses and RFC 9457 problem-details responses.

Every 4xx/5xx the API produces — raised by a use case, by FastAPI's validation, by routing
(404/405), by a middleware, or by an unexpected crash — goes through `problem_body()` so that
clients always get the same `application/problem+json` shape:
`type, title, status, detail, instance, code, request_id` (+ `errors` on 422).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope, Send

from src.core.context import request_id_var

PROBLEM_CONTENT_TYPE = "application/problem+json"


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


# --- the problem-details model (documented in the OpenAPI schema) -------------------------


class ProblemError(BaseModel):
    pointer: str | None = Field(default=None, description="JSON Pointer into the request body")
    parameter: str | None = Field(default=None, description="Query, path or header parameter")
    detail: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    code: str
    request_id: str
    errors: list[ProblemError] | None = None


def problem_body(
    status: int,
    code: str,
    detail: str,
    instance: str,
    *,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _title(status),
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
        "request_id": request_id_var.get(),
    }
    if extra:
        body.update(extra)
    return orjson.dumps(body)


def problem_response(
    status: int,
    code: str,
    detail: str,
    instance: str,
    *,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    return Response(
        content=problem_body(status, code, detail, instance, extra=extra),
        status_code=status,
        headers=dict(headers or {}),
        media_type=PROBLEM_CONTENT_TYPE,
    )


async def send_problem(
    send: Send,
    scope: Scope,
    status: int,
    code: str,
    detail: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer with a problem directly over ASGI (for middleware, which runs outside FastAPI)."""
    body = problem_body(status, code, detail, scope.get("path", ""))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting `statuses` with the problem model.

    Only `application/problem+json` is listed (`install_openapi` adds the `Problem` schema to
    the components), since no error is ever answered as plain `application/json`.
    """
    return {
        status: {
            "description": _title(status),
            "content": {PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_REF}},
        }
        for status in statuses
    }


# Answers the middleware and the last-resort handlers can give, and which operations they
# can affect: (status, error codes, response headers).
_Answer = tuple[int, tuple[str, ...], Mapping[str, Any]]
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
_EVERY_OPERATION: tuple[_Answer, ...] = (
    (413, ("payload_too_large",), {}),
    (500, ("internal_error",), {}),
)
# every /api/ route: rate limited, and backed by the database
_API_OPERATIONS: tuple[_Answer, ...] = (
    (429, ("rate_limited",), _RETRY_AFTER),
    (503, ("service_unavailable",), _RETRY_AFTER),
)
# POST, PUT, PATCH and DELETE: the Idempotency-Key middleware
_COMMAND_OPERATIONS: tuple[_Answer, ...] = (
    (400, ("invalid_idempotency_key",), {}),
    (409, ("idempotency_request_in_progress",), _RETRY_AFTER),
    (422, ("idempotency_key_reused",), {}),
)
_COMMAND_METHODS = frozenset({"post", "put", "patch", "delete"})
_IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a retry safe: 1-255 visible ASCII characters, bare or as a quoted "
    "structured-field string. The same key with another request is 422 idempotency_key_reused.",
    "schema": {"type": "string", "pattern": r"^[!#-\[\]-~]{1,255}$"},
}


def install_openapi(app: FastAPI) -> None:
    """Document in the OpenAPI schema every problem an operation can answer.

    Routes document their own outcomes (`problem_responses`); this adds, once for all, what
    happens outside them: 413 and 500 anywhere, 429 and 503 on the API routes, the
    Idempotency-Key answers (400, 409, 422) and header on the commands.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _document_problems(generate())
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def _document_problems(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem.pop("$defs", {}))
    components["Problem"] = problem
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            answers = list(_EVERY_OPERATION)
            if path.startswith("/api/"):
                answers += _API_OPERATIONS
            if method in _COMMAND_METHODS:
                answers += _COMMAND_OPERATIONS
                operation.setdefault("parameters", []).append(_IDEMPOTENCY_KEY_PARAMETER)
            responses = operation.setdefault("responses", {})
            for status, codes, headers in answers:
                _add_problem(responses, status, codes, headers)


def _add_problem(
    responses: dict[str, Any], status: int, codes: Sequence[str], headers: Mapping[str, Any]
) -> None:
    named = ", ".join(f"`{code}`" for code in codes)
    response = responses.get(str(status))
    if response is None:
        response = responses[str(status)] = {
            "description": f"{_title(status)}: {named}",
            "content": {PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_REF}},
        }
    elif PROBLEM_CONTENT_TYPE in response.get("content", {}):
        response["description"] = f"{response.get('description', _title(status))}; also: {named}"
    if headers:
        response.setdefault("headers", {}).update(headers)


# --- exception handlers -----------------------------------------------------------------------

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


def _instance(request: Request) -> str:
    return request.url.path


def validation_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    """FastAPI/Pydantic errors as `{"pointer": "/a/0"}` or `{"parameter": "limit"}` entries."""
    out: list[dict[str, str]] = []
    for error in errors:
        location = list(error.get("loc", ()))
        message = str(error.get("msg", "Invalid value."))
        if location and location[0] == "body":
            path = location[1:]
            pointer = "".join(
                "/" + str(part).replace("~", "~0").replace("/", "~1") for part in path
            )
            out.append({"pointer": pointer, "detail": message})
        elif location and location[0] in ("query", "path", "header", "cookie"):
            name = str(location[1]) if len(location) > 1 else str(location[0])
            out.append({"parameter": name, "detail": message})
        else:
            out.append({"pointer": "", "detail": message})
    return out


def _escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


async def _app_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, AppError)
    return problem_response(
        error.status,
        error.code,
        error.detail,
        _instance(request),
        headers=error.headers,
        extra=error.extra,
    )


async def _request_validation(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    errors = validation_errors(error.errors())
    detail = "The request is not valid."
    if any(e.get("type") == "json_invalid" for e in error.errors()):
        # The parser's location is a character offset, not a path: point at the whole body.
        detail = "The request body is not valid JSON."
        errors = [{"pointer": "", "detail": "Not valid JSON."}]
    return problem_response(
        422, "validation_error", detail, _instance(request), extra={"errors": errors}
    )


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
        return problem_response(
            422,
            "validation_error",
            "The request body could not be decoded.",
            _instance(request),
            extra={"errors": [{"pointer": "", "detail": "The body could not be decoded."}]},
        )
    code, detail = _HTTP_CODES.get(error.status_code, ("http_error", str(error.detail)))
    if error.status_code >= 500:
        code = "internal_error"
    return problem_response(
        error.status_code, code, detail, _instance(request), headers=error.headers
    )


async def _unexpected(request: Request, error: Exception) -> Response:
    if is_dependency_failure(error):
        logger.opt(exception=error).warning("dependency unavailable: {}", type(error).__name__)
        return problem_response(
            503,
            ServiceUnavailable.code,
            ServiceUnavailable.detail,
            _instance(request),
            headers={"Retry-After": "1"},
        )
    logger.opt(exception=error).error("unhandled error")
    return problem_response(
        500, "internal_error", "An unexpected error occurred.", _instance(request)
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(Exception, _unexpected)
