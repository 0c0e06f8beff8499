"""The error model: every 4xx/5xx is RFC 9457 problem+json, with the request id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from src.core.errors.problems import problem_response, send_error
from src.core.errors.types import ValidationFailed
from src.main import create_app
from src.settings import Settings
from tests.conftest import BASE_SETTINGS
from tests.helpers import assert_problem


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert_problem(response, 404, "not_found")


async def test_wrong_method_is_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/signup")
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


async def test_crash_is_500_without_stack_trace_or_sql(client: httpx.AsyncClient) -> None:
    app: FastAPI = client.app  # type: ignore[attr-defined]

    async def explode() -> None:
        raise RuntimeError("SELECT secret FROM internals -- Traceback")

    app.router.add_api_route("/test-only/explode", explode)
    response = await client.get("/test-only/explode")
    problem = assert_problem(response, 500, "internal_error")
    assert "SELECT" not in response.text
    assert "Traceback" not in response.text
    assert problem["detail"] == "An unexpected error occurred."


async def _app_with_database(url: str) -> tuple[FastAPI, httpx.AsyncClient]:
    settings = Settings.model_validate(
        {
            **BASE_SETTINGS,
            "database_url": url,
            "db_pool_timeout_seconds": 1,
            "db_connect_timeout_seconds": 1,
        }
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return app, httpx.AsyncClient(transport=transport, base_url="http://inkwell.test")


async def test_unreachable_postgres_is_503_service_unavailable() -> None:
    app, client = await _app_with_database("postgresql+asyncpg://postgres@127.0.0.1:9/inkwell")
    async with app.router.lifespan_context(app), client:
        response = await client.get("/api/v1/users")
    assert_problem(response, 503, "service_unavailable")
    assert "Retry-After" in response.headers


async def test_unopenable_sqlite_is_503_service_unavailable(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    app, client = await _app_with_database(f"sqlite+aiosqlite:///{not_a_folder}/inkwell.db")
    async with app.router.lifespan_context(app), client:
        response = await client.get("/api/v1/users")
    assert_problem(response, 503, "service_unavailable")


async def test_a_middleware_s_problem_carries_the_error_s_extra_members() -> None:
    # send_error (outside the framework) answers an AppError as the exception handlers do.
    error = ValidationFailed(errors=[{"field": "limit", "message": "too large"}])
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await send_error(send, {"type": "http", "path": "/api/v1/content"}, error)

    start, body = sent
    assert start["status"] == 422
    assert body["body"] == problem_response(error, "/api/v1/content").body
    assert json.loads(body["body"])["errors"] == [{"field": "limit", "message": "too large"}]
