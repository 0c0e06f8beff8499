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
