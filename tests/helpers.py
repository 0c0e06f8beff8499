"""Small helpers shared by API tests."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import httpx

_sequence = itertools.count(1)


def signup_body(**overrides: Any) -> dict[str, Any]:
    """A valid signup body with an e-mail unique to this call."""
    n = next(_sequence)
    body: dict[str, Any] = {
        "name": f"Ada Lovelace {n}",
        "email": f"ada.{n}.{uuid.uuid4().hex[:8]}@example.com",
        "password": "correct horse battery",
    }
    body.update(overrides)
    return body


async def sign_up(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    body = signup_body(**overrides)
    response = await client.post("/api/v1/signup", json=body)
    assert response.status_code == 201, response.text
    return {**response.json(), "password": body["password"]}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["type"] == "about:blank"
    assert problem["request_id"] == response.headers["x-request-id"]
    assert problem["instance"] == response.request.url.path
    return problem  # type: ignore[no-any-return]


async def log_in(client: httpx.AsyncClient, user: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": user["password"]}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def authed_user(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    """A signed-up user with `headers` carrying a bearer access token."""
    user = await sign_up(client, **overrides)
    tokens = await log_in(client, user)
    return {**user, "tokens": tokens, "headers": bearer(tokens["access_token"])}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def content_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": f"A title {next(_sequence)}",
        "content": "Some content that is long enough to be accepted.",
    }
    body.update(overrides)
    return body


async def publish(
    client: httpx.AsyncClient, author: dict[str, Any], **overrides: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/content", json=content_body(**overrides), headers=author["headers"]
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]
