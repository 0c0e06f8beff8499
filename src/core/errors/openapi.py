"""OpenAPI documentation of problems: what each operation can answer besides success.

Routes document their own outcomes with `problem_responses(...)`; `install_openapi` adds, once
for all, what happens outside them: 413 and 500 anywhere, 429 and 503 on the API routes, the
Idempotency-Key answers (400, 409, 422) and header on the commands. Only
`application/problem+json` is listed, since no error is ever answered as plain JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI

from src.core.errors.problems import PROBLEM_CONTENT_TYPE, Problem, title

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting `statuses` with the problem model."""
    return {
        status: {
            "description": title(status),
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
# POST, PUT, PATCH and DELETE: the Idempotency-Key layer
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
    """Document in the OpenAPI schema every problem an operation can answer."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            _document_problems(schema)
            app.openapi_schema = schema
        return app.openapi_schema

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
            "description": f"{title(status)}: {named}",
            "content": {PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_REF}},
        }
    elif PROBLEM_CONTENT_TYPE in response.get("content", {}):
        response["description"] = f"{response.get('description', title(status))}; also: {named}"
    if headers:
        response.setdefault("headers", {}).update(headers)
