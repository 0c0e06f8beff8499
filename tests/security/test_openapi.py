"""The OpenAPI schema documents every answer an operation can give, errors as problem+json.

The fuzz run (test_fuzz.py) checks answers against this schema; these tests check that the
answers produced outside the routes — by middleware and the last-resort handlers — are in it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.helpers import content_body, signup_body

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
    assert len(operations) == 34
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
    assert len(commands) == 19
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


# --- operation ids, summaries, descriptions -----------------------------------------------------

CAMEL_CASE = re.compile(r"[a-z]+(?:[A-Z][a-z0-9]*)*")


async def test_every_operation_has_a_unique_camel_case_operation_id(
    openapi: dict[str, Any],
) -> None:
    ids = [operation["operationId"] for _, _, operation in _operations(openapi)]
    assert len(ids) == len(set(ids)), sorted(ids)
    for operation_id in ids:
        assert CAMEL_CASE.fullmatch(operation_id), operation_id


async def test_operation_ids_read_as_what_the_operation_does(openapi: dict[str, Any]) -> None:
    ids = {(method, path): op["operationId"] for method, path, op in _operations(openapi)}
    assert ids[("post", "/api/v1/signup")] == "signUp"
    assert ids[("post", "/api/v1/auth/login")] == "logIn"
    assert ids[("get", "/api/v1/users/me")] == "getMe"
    assert ids[("get", "/api/v1/users/{user_id}")] == "getUser"
    assert ids[("post", "/api/v1/content")] == "createContent"
    assert ids[("get", "/api/v1/content")] == "listContent"
    assert ids[("delete", "/api/v1/content/{content_id}")] == "deleteContent"
    assert ids[("put", "/api/v1/users/{user_id}/follow")] == "followUser"
    assert ids[("delete", "/api/v1/users/{user_id}/follow")] == "unfollowUser"
    assert ids[("get", "/api/v1/content/feed")] == "getFeed"
    assert ids[("get", "/api/v1/notifications")] == "listNotifications"
    assert ids[("post", "/api/v1/notifications/{notification_id}/read")] == "markNotificationRead"
    assert ids[("post", "/api/v1/notifications/read-all")] == "markAllNotificationsRead"
    assert ids[("get", "/health")] == "getHealth"
    assert not any("_" in operation_id for operation_id in ids.values())


async def test_every_operation_has_a_summary_and_a_description(openapi: dict[str, Any]) -> None:
    for method, path, operation in _operations(openapi):
        assert operation.get("summary", "").strip(), (method, path)
        description = operation.get("description", "").strip()
        assert description, (method, path)
        assert description != operation["summary"], f"{method} {path}: no docstring"


# --- response headers --------------------------------------------------------------------------


def _header(response: dict[str, Any], name: str) -> dict[str, Any] | None:
    header: dict[str, Any] | None = response.get("headers", {}).get(name)
    return header


async def test_every_answer_documents_the_request_and_correlation_ids(
    openapi: dict[str, Any],
) -> None:
    headers = openapi["components"]["headers"]
    for name in ("X-Request-ID", "X-Correlation-ID"):
        assert headers[name]["required"] is True
        for method, path, operation in _operations(openapi):
            for status, response in operation["responses"].items():
                assert _header(response, name) == {"$ref": f"#/components/headers/{name}"}, (
                    method,
                    path,
                    status,
                )


async def test_api_answers_document_the_rate_limit_headers(openapi: dict[str, Any]) -> None:
    for method, path, operation in _operations(openapi):
        for status, response in operation["responses"].items():
            for name in ("RateLimit-Policy", "RateLimit"):
                documented = _header(response, name) is not None
                assert documented == path.startswith("/api/"), (method, path, status, name)


async def test_retry_after_is_documented_where_it_is_sent(openapi: dict[str, Any]) -> None:
    for method, path, operation in _operations(openapi):
        responses = operation["responses"]
        statuses = {"429", "503"} if path.startswith("/api/") else set()
        if method in COMMANDS:
            statuses.add("409")  # idempotency_request_in_progress
        for status in statuses:
            assert _header(responses[status], "Retry-After"), (method, path, status)


async def test_command_answers_document_idempotent_replayed(openapi: dict[str, Any]) -> None:
    for method, path, operation in _operations(openapi):
        for status, response in operation["responses"].items():
            replayable = method in COMMANDS and int(status) < 500
            replayable = replayable and status not in {"400", "401", "413", "429"}
            assert (_header(response, "Idempotent-Replayed") is not None) == replayable, (
                method,
                path,
                status,
            )


ANSWER_HEADERS = {
    "x-request-id",
    "x-correlation-id",
    "ratelimit-policy",
    "ratelimit",
    "retry-after",
    "idempotent-replayed",
    "location",
    "cache-status",
}


async def test_every_header_a_real_answer_carries_is_documented(
    make_client: Callable[..., Any],
) -> None:
    """The answers of a short session (with rate limiting on) against the schema."""
    async with make_client(rate_limit_enabled=True, rate_limit_auth="3/hour") as client:
        spec = (await client.get("/openapi.json")).json()
        body = signup_body()
        key = {"Idempotency-Key": "documented-headers"}
        seen = [
            ("post", "/api/v1/signup", await client.post("/api/v1/signup", json=body, headers=key)),
            ("post", "/api/v1/signup", await client.post("/api/v1/signup", json=body, headers=key)),
        ]
        login = await client.post(
            "/api/v1/auth/login", json={"email": body["email"], "password": body["password"]}
        )
        seen.append(("post", "/api/v1/auth/login", login))
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = await client.post("/api/v1/content", json=content_body(), headers=auth)
        seen.append(("post", "/api/v1/content", created))
        item = f"/api/v1/content/{created.json()['id']}"
        seen.append(("get", "/api/v1/content/{content_id}", await client.get(item)))
        seen.append(("get", "/api/v1/content/{content_id}", await client.get(item)))
        seen.append(("get", "/api/v1/users/me", await client.get("/api/v1/users/me")))
        seen.append(("get", "/health", await client.get("/health")))
        refused = await client.post(
            "/api/v1/auth/login", json={"email": "a@b.co", "password": "x" * 8}
        )
        seen.append(("post", "/api/v1/auth/login", refused))
    assert seen[1][2].headers["idempotent-replayed"] == "true"
    assert refused.status_code == 429
    assert {"location", "cache-status", "retry-after", "ratelimit"} <= {
        name for _, _, answer in seen for name in answer.headers
    }
    for method, path, answer in seen:
        documented = spec["paths"][path][method]["responses"][str(answer.status_code)]
        names = {name.lower() for name in documented.get("headers", {})}
        carried = ANSWER_HEADERS & {name.lower() for name in answer.headers}
        assert carried <= names, (method, path, answer.status_code, carried - names)
