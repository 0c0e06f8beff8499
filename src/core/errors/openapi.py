"""The OpenAPI schema: problems, response headers, operation ids, summaries.

Routes document their own outcomes with `problem_responses(...)`; `install_openapi` adds, once
for all, what happens outside them: 413 and 500 anywhere, 429 and 503 on the API routes, the
Idempotency-Key answers (400, 409, 422) and header on the commands. Only
`application/problem+json` is listed, since no error is ever answered as plain JSON.

It also documents the response headers the layers around the routes add (`X-Request-ID` and
`X-Correlation-ID` on every answer, `RateLimit-Policy`/`RateLimit` on the API routes,
`Retry-After` on 429/503 and 409 in progress, `Idempotent-Replayed` on replayable command
answers), and gives every operation a summary and a description from its endpoint's docstring
(first paragraph: the summary; the whole docstring: the description) unless the route sets
them. `operation_id` (FastAPI's `generate_unique_id_function`) names each operation after its
endpoint function in camelCase, so generated SDKs get `createContent`, not
`create_content_api_v1_content_post`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from src.core.errors.problems import PROBLEM_CONTENT_TYPE, Problem, title

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

# Words that are one verb in English but written as one word in endpoint names.
_COMPOUND_VERBS = {"signup": ("sign", "up"), "login": ("log", "in"), "logout": ("log", "out")}


def operation_id(route: APIRoute) -> str:
    """`createContent` for `create_content`; a one-word GET endpoint names what it returns, so it
    gets `get` in front (`me` → `getMe`). Unique as long as endpoint names are (a test checks)."""
    words = [
        word
        for part in route.name.split("_")
        if part
        for word in _COMPOUND_VERBS.get(part.lower(), (part.lower(),))
    ]
    if len(words) == 1 and route.methods == {"GET"}:
        words.insert(0, "get")
    return words[0] + "".join(word.capitalize() for word in words[1:])


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
_RETRY_AFTER = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}
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


_VISIBLE_ASCII = r"^[!-~]{1,128}$"
_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's id: the client's `X-Request-ID` when it sent a sane one "
        "(1-128 visible ASCII characters), a fresh one otherwise. Logged with every line.",
        "required": True,
        "schema": {"type": "string", "pattern": _VISIBLE_ASCII},
    },
    "X-Correlation-ID": {
        "description": "The client's `X-Correlation-ID` when sane, else the request id; carried "
        "into logs and spans.",
        "required": True,
        "schema": {"type": "string", "pattern": _VISIBLE_ASCII},
    },
    "RateLimit-Policy": {
        "description": 'The limit of this route, e.g. `"default";q=600;w=60` (IETF '
        "draft-ietf-httpapi-ratelimit-headers); absent when rate limiting is off.",
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": 'What is left of it, e.g. `"default";r=42;t=17`: `r` requests remain, '
        "the window resets in `t` seconds.",
        "schema": {"type": "string"},
    },
    "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}},
    "Idempotent-Replayed": {
        "description": "`true` when this answer was replayed from the idempotency store for a "
        "retried Idempotency-Key (the command was not executed again).",
        "schema": {"type": "string", "enum": ["true"]},
    },
}
_EVERY_ANSWER = ("X-Request-ID", "X-Correlation-ID")
_RATE_LIMITED = ("RateLimit-Policy", "RateLimit")
# Answers given before the endpoint runs are never stored, so never replayed.
_NEVER_REPLAYED = frozenset({"400", "401", "413", "429"})


def install_openapi(app: FastAPI) -> None:
    """Document in the OpenAPI schema every problem an operation can answer, the response
    headers around the routes, and a summary and description for every operation."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            _document_problems(schema)
            _document_headers(schema)
            _describe_operations(schema, app)
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


def _document_headers(schema: dict[str, Any]) -> None:
    schema.setdefault("components", {})["headers"] = _HEADERS
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                names = list(_EVERY_ANSWER)
                if path.startswith("/api/"):
                    names += _RATE_LIMITED
                if (
                    method in _COMMAND_METHODS
                    and int(status) < 500
                    and status not in _NEVER_REPLAYED
                ):
                    names.append("Idempotent-Replayed")
                headers = response.setdefault("headers", {})
                for name in names:
                    headers.setdefault(name, {"$ref": f"#/components/headers/{name}"})


def _describe_operations(schema: dict[str, Any], app: FastAPI) -> None:
    """Summary: the route's own, else the docstring's first paragraph; description: the route's
    own, else the whole docstring (FastAPI's), else the summary."""
    endpoints: dict[str, tuple[Any, str | None]] = {}
    for context in iter_route_contexts(app.routes):
        if getattr(context, "include_in_schema", False) and context.endpoint is not None:
            key = str(getattr(context, "operation_id", None) or getattr(context, "unique_id", ""))
            endpoints[key] = (context.endpoint, getattr(context, "summary", None))
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            found = endpoints.get(operation.get("operationId", ""))
            if found is None:
                continue
            endpoint, summary = found
            docstring = inspect.cleandoc(endpoint.__doc__ or "")
            first_paragraph = " ".join(docstring.split("\n\n")[0].split())
            if summary is None and first_paragraph:
                operation["summary"] = first_paragraph.rstrip(".")
            if not operation.get("description"):
                operation["description"] = docstring or operation.get("summary", "")
