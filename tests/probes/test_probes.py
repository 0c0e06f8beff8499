"""`/health` and `/ready` as the contract describes them."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import httpx

from src import __version__
from tests.conftest import Backend

CHECKS = {"database", "read_database", "redis", "cpu", "memory", "disk"}
UNREACHABLE_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:9/nowhere"


async def test_health_is_ok_with_service_version_and_uptime(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"status", "service", "version", "uptime_seconds"}
    assert body["status"] == "ok"
    assert body["service"] == "inkwell"
    assert body["version"] == __version__
    assert body["uptime_seconds"] >= 0


async def test_health_touches_no_dependency(make_client: Callable[..., Any]) -> None:
    async with make_client(read_database_url=UNREACHABLE_DATABASE) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_ready_reports_every_check(client: httpx.AsyncClient, backend: Backend) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == CHECKS
    for name in ("database", "read_database", "cpu", "memory", "disk"):
        assert body["checks"][name]["status"] == "ok", name
    assert body["checks"]["database"]["latency_ms"] >= 0
    assert 0 <= body["checks"]["memory"]["used_percent"] <= 100
    assert body["checks"]["memory"]["threshold_percent"] == 95
    assert 0 <= body["checks"]["disk"]["used_percent"] <= 100
    assert body["checks"]["cpu"]["count"] >= 1
    if backend.redis_url is None:
        assert body["checks"]["redis"] == {"status": "skipped"}


async def test_ready_is_503_naming_the_unreachable_database(
    make_client: Callable[..., Any],
) -> None:
    async with make_client(
        read_database_url=UNREACHABLE_DATABASE, ready_check_timeout_seconds=2
    ) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["read_database"]["status"] == "fail"
    assert body["checks"]["read_database"]["error"]
    assert body["checks"]["database"]["status"] == "ok"


async def test_a_hanging_database_fails_its_check_after_the_short_timeout(
    make_client: Callable[..., Any],
) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        async with make_client(
            read_database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/silent",
            ready_check_timeout_seconds=0.3,
        ) as client:
            response = await client.get("/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["read_database"] == {"status": "fail", "error": "timed out after 0.3s"}
    assert checks["database"]["status"] == "ok"


async def test_ready_is_503_when_memory_is_above_its_threshold(
    make_client: Callable[..., Any],
) -> None:
    async with make_client(ready_max_memory_percent=0.001) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["memory"]["status"] == "fail"
    assert checks["memory"]["threshold_percent"] == 0.001
    assert checks["disk"]["status"] == "ok"


async def test_ready_is_503_when_disk_is_above_its_threshold(
    make_client: Callable[..., Any],
) -> None:
    async with make_client(ready_max_disk_percent=0.001) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["disk"]["status"] == "fail"
    assert checks["memory"]["status"] == "ok"


async def test_an_unsupported_method_on_a_probe_is_a_problem_405(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/health")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
