from __future__ import annotations

from typing import Any

import httpx
import pytest


async def test_generates_request_id_and_defaults_correlation_to_it(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/health")
    request_id = response.headers["x-request-id"]
    assert len(request_id) == 32
    assert response.headers["x-correlation-id"] == request_id


async def test_echoes_sane_ids(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/health", headers={"X-Request-ID": "abc-123_XYZ.9", "X-Correlation-ID": "flow-7"}
    )
    assert response.headers["x-request-id"] == "abc-123_XYZ.9"
    assert response.headers["x-correlation-id"] == "flow-7"


@pytest.mark.parametrize(
    "hostile",
    [
        "x" * 129,
        "has space",
        "tab\there",
        "café",
    ],
)
async def test_replaces_hostile_or_oversized_request_id(
    client: httpx.AsyncClient, hostile: str
) -> None:
    response = await client.get("/health", headers={"X-Request-ID": hostile.encode("utf-8")})
    assert response.headers["x-request-id"] != hostile
    assert len(response.headers["x-request-id"]) == 32
    assert hostile not in response.text


async def test_problem_bodies_carry_the_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope", headers={"X-Request-ID": "trace-me-1"})
    assert response.json()["request_id"] == "trace-me-1"


async def test_security_headers_on_every_response(client: httpx.AsyncClient) -> None:
    for path in ("/health", "/api/v1/users", "/nope"):
        response = await client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert "strict-transport-security" not in response.headers


async def test_hsts_only_over_https(client: httpx.AsyncClient) -> None:
    response = await client.get("https://inkwell.test/health")
    assert response.headers["strict-transport-security"].startswith("max-age=")


async def test_cors_allows_only_configured_origins(make_client: Any) -> None:
    async with make_client(cors_origins=["https://app.example"]) as client:
        allowed = await client.options(
            "/api/v1/content",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,idempotency-key",
            },
        )
        denied = await client.get("/api/v1/users", headers={"Origin": "https://evil.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "idempotency-key" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in denied.headers


async def test_no_cors_headers_without_configured_origins(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/users", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in response.headers
