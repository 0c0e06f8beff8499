"""The OpenAPI schema documents every answer an operation can give, errors as problem+json.

The fuzz run (test_fuzz.py) checks answers against this schema; these tests check that the
answers produced outside the routes — by middleware and the last-resort handlers — are in it.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

PROBLEM = {"$ref": "#/components/schemas/Problem"}
COMMANDS = {"post", "put", "patch", "delete"}


@pytest.fixture
async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def _operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, operations in openapi["paths"].items()
        for method, operation in operations.items()
    ]


def _documents_problem(operation: dict[str, Any], status: int) -> bool:
    response = operation["responses"].get(str(status), {})
    content = response.get("content", {})
    return content.get("application/problem+json", {}).get("schema") == PROBLEM


async def test_every_operation_documents_413_and_500(openapi: dict[str, Any]) -> None:
    operations = _operations(openapi)
    assert len(operations) == 19
    for method, path, operation in operations:
        for status in (413, 500):
            assert _documents_problem(operation, status), (method, path, status)


async def test_api_operations_document_429_and_503_with_retry_after(
    openapi: dict[str, Any],
) -> None:
    for method, path, operation in _operations(openapi):
        if not path.startswith("/api/"):
            continue
        for status in (429, 503):
            assert _documents_problem(operation, status), (method, path, status)
            assert "Retry-After" in operation["responses"][str(status)]["headers"]


async def test_commands_document_the_idempotency_answers_and_header(
    openapi: dict[str, Any],
) -> None:
    commands = [(m, p, o) for m, p, o in _operations(openapi) if m in COMMANDS]
    assert len(commands) == 11
    for method, path, operation in commands:
        for status in (400, 409, 422):
            assert _documents_problem(operation, status), (method, path, status)
        names = [parameter["name"] for parameter in operation.get("parameters", [])]
        assert "Idempotency-Key" in names, (method, path)


async def test_errors_are_documented_only_as_problem_json(openapi: dict[str, Any]) -> None:
    for method, path, operation in _operations(openapi):
        for status, response in operation["responses"].items():
            if int(status) < 400 or path == "/ready":  # the probe's 503 is plain JSON
                continue
            assert set(response["content"]) == {"application/problem+json"}, (method, path)


async def test_problem_schema_is_a_component(openapi: dict[str, Any]) -> None:
    problem = openapi["components"]["schemas"]["Problem"]
    assert set(problem["required"]) >= {"title", "status", "detail", "instance", "code"}
    assert "ProblemError" in openapi["components"]["schemas"]


async def test_metrics_documents_its_exposition_formats(openapi: dict[str, Any]) -> None:
    content = openapi["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"text/plain", "application/openmetrics-text"}
