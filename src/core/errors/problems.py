"""RFC 9457 problem details: the one rendering of every 4xx/5xx the API produces.

`problem_body()` is used by the exception handlers (inside FastAPI) and by `send_problem()`
(for middleware, which answers over raw ASGI), so clients always get the same
`application/problem+json` shape: `type, title, status, detail, instance, code, request_id`
(+ `errors` on 422).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response
from starlette.types import Scope, Send

from src.core.context import request_id_var
from src.core.errors.types import AppError, ServiceUnavailable, classify_unexpected

PROBLEM_CONTENT_TYPE = "application/problem+json"


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


def title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


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
        "title": title(status),
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
        "request_id": request_id_var.get(),
    }
    if extra:
        body.update(extra)
    return orjson.dumps(body)


def problem_response(error: AppError, instance: str) -> Response:
    return Response(
        content=problem_body(error.status, error.code, error.detail, instance, extra=error.extra),
        status_code=error.status,
        headers=error.headers,
        media_type=PROBLEM_CONTENT_TYPE,
    )


async def send_problem(
    send: Send,
    scope: Scope,
    status: int,
    code: str,
    detail: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Answer with a problem directly over ASGI (for middleware, which runs outside FastAPI)."""
    body = problem_body(status, code, detail, scope.get("path", ""), extra=extra)
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


async def send_error(send: Send, scope: Scope, error: AppError) -> None:
    """`send_problem` for an `AppError`, with its headers and extra members: the answer the
    exception handlers give it inside the framework."""
    headers = [(name.lower().encode(), value.encode()) for name, value in error.headers.items()]
    await send_problem(
        send, scope, error.status, error.code, error.detail, headers, extra=error.extra
    )


_LOGGED = "_inkwell_logged"


def unexpected(error: BaseException) -> AppError:
    """Log an exception nobody expected — once per request, however many layers it passes —
    and choose its answer (503 or 500)."""
    answer = classify_unexpected(error)
    request_id = request_id_var.get()
    if request_id and getattr(error, _LOGGED, None) == request_id:
        return answer
    if isinstance(answer, ServiceUnavailable):
        logger.opt(exception=error).warning("dependency unavailable: {}", type(error).__name__)
    else:
        logger.opt(exception=error).error("unhandled error")
    with contextlib.suppress(AttributeError, TypeError):  # an exception type without a __dict__
        setattr(error, _LOGGED, request_id)
    return answer
